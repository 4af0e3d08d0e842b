// Zero terminal SNR (Lin et al. 2024): the rescaled schedule itself is checked
// against float64 numpy in test_golden.cpp; here, what depends on it: beta_T =
// 1 and alpha_bar_T = 0 by both routes, the weight file keeps the flag where
// older readers refuse it, eps prediction and the ODE sampler are refused, and
// a v-prediction model trained on it samples the swiss roll well.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "microdiffusion/microdiffusion.h"

namespace {

md::ScheduleDesc zsnr(uint32_t T) {
  md::ScheduleDesc d = md::linear_schedule(T);
  d.zero_terminal_snr = 1;
  return d;
}

TEST(ZeroTerminalSnr, BetaByIndexAgreesWithTheTables) {
  const md::ScheduleDesc d = zsnr(50);
  std::vector<float> storage(md::kScheduleTables * 50);
  md::Schedule s;
  ASSERT_TRUE(md::build_schedule(d, storage.data(), &s).ok());
  EXPECT_EQ(s.alpha_bar[49], 0.0f);
  EXPECT_EQ(s.beta[49], 1.0f);
  EXPECT_EQ(md::terminal_alpha_bar(d), 0.0);
  // alpha_bar_1 is kept: beta_1 as in the base schedule.
  EXPECT_EQ(s.beta[0], static_cast<float>(md::schedule_beta(md::linear_schedule(50), 0)));
  for (uint32_t k = 0; k < 50; ++k) EXPECT_NEAR(md::schedule_beta(d, k), s.beta[k], 1e-6 * s.beta[k]) << k;
  // Monotone: the rescale keeps alpha_bar decreasing.
  for (uint32_t k = 1; k < 50; ++k) EXPECT_LT(s.alpha_bar[k], s.alpha_bar[k - 1]) << k;
}

TEST(ZeroTerminalSnr, WeightFileKeepsTheFlagInTheKindField) {
  const md::ModelDesc desc = md::preset_tutorial(2, 20, 8);
  std::vector<float> params(md::param_layout(desc).total_floats, 0.01f);
  md::WeightsMeta meta;
  meta.prediction = md::Prediction::kV;
  std::vector<unsigned char> file(md::weights_file_bytes(desc) + 64);
  unsigned char* p = file.data() + (64 - reinterpret_cast<uintptr_t>(file.data()) % 64) % 64;
  size_t n = 0;
  ASSERT_TRUE(md::write_weights(desc, zsnr(20), meta, params.data(), p, md::weights_file_bytes(desc), &n).ok());
  uint32_t kind_field;
  std::memcpy(&kind_field, p + 40, 4);
  EXPECT_EQ(kind_field, md::kScheduleZeroTerminalSnrBit | 0u);  // linear, flagged: unknown to older readers
  md::LoadedWeights w;
  ASSERT_TRUE(md::load_weights(p, n, &w).ok());
  EXPECT_EQ(w.schedule.zero_terminal_snr, 1u);
  EXPECT_EQ(w.schedule.kind, md::ScheduleKind::kLinear);
}

TEST(ZeroTerminalSnr, EpsPredictionAndTheOdeSamplerAreRefused) {
  const md::ModelDesc desc = md::preset_tutorial(2, 20, 8);
  md::TrainConfig cfg;
  cfg.batch = 4;
  std::vector<unsigned char> buf(md::training_arena_bytes(desc, 4));
  md::Arena arena(buf.data(), buf.size());
  md::Trainer trainer;
  EXPECT_EQ(trainer.init(desc, zsnr(20), cfg, arena).code, md::StatusCode::kInvalidArgument);
  std::vector<float> params(md::param_layout(desc).total_floats, 0.01f);
  const md::Model m = md::bind_model(desc, params.data());
  std::vector<unsigned char> sbuf(md::sampling_arena_bytes(desc, 4));
  md::SamplerConfig c;
  md::Arena a1(sbuf.data(), sbuf.size());
  md::Sampler s1;
  EXPECT_EQ(s1.init(m, zsnr(20), c, 4, a1).code, md::StatusCode::kInvalidArgument);  // eps
  c.prediction = md::Prediction::kV;
  c.kind = md::SamplerKind::kOdeHeun;
  md::Arena a2(sbuf.data(), sbuf.size());
  md::Sampler s2;
  EXPECT_EQ(s2.init(m, zsnr(20), c, 4, a2).code, md::StatusCode::kInvalidArgument);
  c.kind = md::SamplerKind::kDdim;
  md::Arena a3(sbuf.data(), sbuf.size());
  md::Sampler s3;
  EXPECT_TRUE(s3.init(m, zsnr(20), c, 4, a3).ok());
  // logsnr spacing: lambda_T = -inf; the last step is still taken, the rest spaced.
  md::Schedule s;
  std::vector<float> storage(md::kScheduleTables * 20);
  ASSERT_TRUE(md::build_schedule(zsnr(20), storage.data(), &s).ok());
  uint32_t steps[20], count = 0;
  ASSERT_TRUE(md::make_timesteps(20, md::Spacing::kLogSnr, 5, steps, &count, s.alpha_bar).ok());
  ASSERT_EQ(count, 5u);
  EXPECT_EQ(steps[4], 19u);
  EXPECT_EQ(steps[0], 0u);
}

// v prediction on the rescaled linear schedule: ancestral sampling from the
// exact prior. Measured (CLI defaults, seed 0): energy distance 0.0016 (ddpm),
// 0.0007 (ddim); the data itself scores about 0.0008.
TEST(Quality, ZeroTerminalSnrVModelSamplesTheSwissRoll) {
  const md::ModelDesc desc = md::preset_default(2, 200);
  md::TrainConfig cfg;
  cfg.batch = 256;
  cfg.lr = 2e-3;
  cfg.warmup_steps = 100;
  cfg.total_steps = 3000;
  cfg.grad_clip_norm = 1.0;
  cfg.prediction = md::Prediction::kV;
  std::vector<unsigned char> buf(md::training_arena_bytes(desc, cfg.batch));
  md::Arena arena(buf.data(), buf.size());
  md::Trainer trainer;
  ASSERT_TRUE(trainer.init(desc, zsnr(200), cfg, arena).ok());
  trainer.init_parameters(0);
  std::vector<float> data(2 * 100000);
  md::make_dataset(md::Dataset::kSwissRoll, 0, 0, 100000, data.data());
  float loss;
  for (int i = 0; i < 3000; ++i) ASSERT_TRUE(trainer.step(data.data(), 100000, &loss).ok());
  const md::Model m = trainer.model(true);
  std::vector<unsigned char> sbuf(md::sampling_arena_bytes(desc, 500));
  md::Arena sarena(sbuf.data(), sbuf.size());
  md::Sampler sampler;
  md::SamplerConfig c;
  c.prediction = md::Prediction::kV;
  ASSERT_TRUE(sampler.init(m, zsnr(200), c, 500, sarena).ok());
  std::vector<float> x(2 * 2000), ref(2 * 2000);
  ASSERT_TRUE(sampler.sample(1, 0, 2000, x.data()).ok());
  md::make_dataset(md::Dataset::kSwissRoll, 77, 0, 2000, ref.data());
  const double ed = md::energy_distance(x.data(), 2000, ref.data(), 2000, 2);
  std::printf("energy distance, zero terminal SNR, v prediction, ddpm: %.5f\n", ed);
  EXPECT_LT(ed, 0.004);
}

}  // namespace
