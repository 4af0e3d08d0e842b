// Importance sampling of t (improved-diffusion's LossSecondMomentResampler):
// uniform until every t has a full loss history, then t ~ p_t with weights
// 1 / (T p_t) that average to 1; the history is part of a checkpoint, so a
// resumed run continues bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "microdiffusion/microdiffusion.h"

namespace {

constexpr uint32_t kT = 10;

struct TrainRun {
  md::ModelDesc desc = md::preset_default(2, kT, 16, 8, 1);
  md::TrainConfig cfg;
  std::vector<unsigned char> buf;
  md::Arena arena;
  md::Trainer trainer;
  std::vector<float> data = std::vector<float>(2 * 500);
  explicit TrainRun(bool importance) {
    cfg.batch = 32;
    cfg.seed = 4;
    cfg.importance_sampling = importance;
    buf.resize(md::training_arena_bytes(desc, cfg.batch));
    arena = md::Arena(buf.data(), buf.size());
    EXPECT_TRUE(trainer.init(desc, md::linear_schedule(kT), cfg, arena).ok());
    trainer.init_parameters(4);
    md::make_dataset(md::Dataset::kMoons, 4, 0, 500, data.data());
  }
  void steps(int n) {
    float loss;
    for (int i = 0; i < n; ++i) ASSERT_TRUE(trainer.step(data.data(), 500, &loss).ok());
  }
};

TEST(ImportanceSampling, UniformUntilEveryTimestepHasItsHistory) {
  // 32 draws a step over T = 10: a full history (10 per t) takes at least 4 steps.
  TrainRun plain(false), sampled(true);
  plain.steps(3);
  sampled.steps(3);
  const uint32_t P = plain.trainer.param_floats();
  EXPECT_EQ(0, std::memcmp(plain.trainer.params(), sampled.trainer.params(), 4 * P));
  plain.steps(40);
  sampled.steps(40);
  EXPECT_NE(0, std::memcmp(plain.trainer.params(), sampled.trainer.params(), 4 * P))
      << "importance sampling never took over";
}

// Once warm, each example's weight is 1 / (T p_t) for the p it was drawn
// from; the weights average to 1 (E_p[1 / (T p)] = 1), and the draws follow p.
TEST(ImportanceSampling, DrawsFollowPAndWeightsAverageToOne) {
  TrainRun r(true);
  r.steps(30);  // warm
  std::vector<double> freq(kT, 0.0), mean_p(kT, 0.0);
  double weight_sum = 0;
  const int kSteps = 300;
  const uint32_t B = r.cfg.batch;
  for (int i = 0; i < kSteps; ++i) {
    r.steps(1);
    const int32_t* t = r.trainer.last_timesteps();
    const float* w = r.trainer.last_example_weights();
    const float* p = r.trainer.timestep_probabilities();
    for (uint32_t k = 0; k < kT; ++k) mean_p[k] += p[k] / kSteps;
    for (uint32_t b = 0; b < B; ++b) {
      ASSERT_FLOAT_EQ(w[b], static_cast<float>(1.0 / (kT * static_cast<double>(p[t[b]])))) << i << " " << b;
      freq[t[b]] += 1.0 / (kSteps * B);
      weight_sum += w[b];
    }
  }
  EXPECT_NEAR(weight_sum / (kSteps * B), 1.0, 0.05);
  double spread = 0;
  for (uint32_t k = 0; k < kT; ++k) {
    EXPECT_NEAR(freq[k], mean_p[k], 0.02) << "t index " << k;
    spread = std::max(spread, std::fabs(mean_p[k] - 1.0 / kT));
  }
  EXPECT_GT(spread, 0.01) << "p stayed uniform: the test would not see a wrong sampler";
}

TEST(ImportanceSampling, CheckpointResumeIsBitIdentical) {
  TrainRun a(true);
  a.steps(60);
  TrainRun b(true);
  b.steps(25);
  std::vector<unsigned char> ckpt(md::checkpoint_bytes(b.desc));
  size_t n = 0;
  ASSERT_TRUE(b.trainer.write_checkpoint(md::WeightsMeta{}, 7, ckpt.data(), ckpt.size(), &n).ok());
  TrainRun c(true);
  const md::Status s = c.trainer.restore_checkpoint(ckpt.data(), n, 7);
  ASSERT_TRUE(s.ok()) << s.message;
  c.steps(35);
  const uint32_t P = a.trainer.param_floats();
  EXPECT_EQ(0, std::memcmp(a.trainer.params(), c.trainer.params(), 4 * P));
  EXPECT_EQ(0, std::memcmp(a.trainer.ema(), c.trainer.ema(), 4 * P));
  // A run without importance sampling refuses this checkpoint.
  TrainRun d(false);
  EXPECT_STREQ(d.trainer.restore_checkpoint(ckpt.data(), n, 7).message,
               "checkpoint was made with importance sampling on or off differently");
}

}  // namespace
