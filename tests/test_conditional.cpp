// Class-conditional models and classifier-free guidance: trained on the 8
// Gaussians labelled by mode, samples drawn for a label land on its mode.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "microdiffusion/microdiffusion.h"

namespace {

TEST(Conditional, DatasetsCarryTheirClasses) {
  std::vector<float> p(2 * 400);
  std::vector<int32_t> labels(400);
  md::make_dataset(md::Dataset::kEightGaussians, 3, 0, 400, p.data(), labels.data());
  EXPECT_EQ(md::dataset_classes(md::Dataset::kEightGaussians), 8u);
  EXPECT_EQ(md::dataset_classes(md::Dataset::kSwissRoll), 0u);
  for (uint32_t i = 0; i < 400; ++i) {
    // Mode k sits at angle 2 pi k / 8 on the radius-2 circle.
    const double a = 2 * M_PI * labels[i] / 8;
    EXPECT_LT(std::hypot(p[2 * i] - 2 * std::cos(a), p[2 * i + 1] - 2 * std::sin(a)), 0.6) << i;
  }
  std::vector<int32_t> moons(400);
  md::make_dataset(md::Dataset::kMoons, 3, 0, 400, p.data(), moons.data());
  for (uint32_t i = 0; i < 400; ++i) EXPECT_TRUE(moons[i] == 0 || moons[i] == 1);
}

TEST(Conditional, GuidedSamplesLandOnTheirMode) {
  const md::ModelDesc desc = md::with_label_embedding(md::preset_default(2, 50, 64, 16, 2), 8);
  ASSERT_TRUE(md::validate_model(desc).ok());
  EXPECT_EQ(desc.layers[2].kind, md::LayerKind::kLabelAdd);
  const md::ScheduleDesc sched = md::linear_schedule(50);
  md::TrainConfig cfg;
  cfg.batch = 128;
  cfg.lr = 3e-3;
  cfg.total_steps = 1500;
  cfg.warmup_steps = 50;
  cfg.seed = 2;
  std::vector<unsigned char> buf(md::training_arena_bytes(desc, cfg.batch));
  md::Arena arena(buf.data(), buf.size());
  md::Trainer trainer;
  ASSERT_TRUE(trainer.init(desc, sched, cfg, arena).ok());
  trainer.init_parameters(2);
  const uint32_t n = 20000;
  std::vector<float> data(2 * n);
  std::vector<int32_t> labels(n);
  md::make_dataset(md::Dataset::kEightGaussians, 2, 0, n, data.data(), labels.data());
  for (uint32_t i = 0; i < cfg.total_steps; ++i) {
    float loss;
    ASSERT_TRUE(trainer.step(data.data(), n, &loss, labels.data()).ok());
  }
  int hits[2] = {0, 0}, total = 0;
  for (float w : {0.0f, 1.0f}) {
    int on_mode = 0;
    total = 0;
    for (int32_t k = 0; k < 8; ++k) {
      md::SamplerConfig sc;
      sc.label = k;
      sc.guidance = w;
      sc.kind = md::SamplerKind::kDdim;
      sc.steps = 25;
      std::vector<unsigned char> sbuf(md::sampling_arena_bytes(desc, 64));
      md::Arena sarena(sbuf.data(), sbuf.size());
      md::Sampler sampler;
      ASSERT_TRUE(sampler.init(trainer.model(true), sched, sc, 64, sarena).ok());
      std::vector<float> out(2 * 64);
      ASSERT_TRUE(sampler.sample(5, 0, 64, out.data()).ok());
      EXPECT_EQ(sampler.evaluations(), w > 0 ? 50u : 25u);
      for (int i = 0; i < 64; ++i) {
        // Nearest mode of the sample.
        int best = 0;
        double best_d = 1e9;
        for (int m = 0; m < 8; ++m) {
          const double a = 2 * M_PI * m / 8;
          const double dist = std::hypot(out[2 * i] - 2 * std::cos(a), out[2 * i + 1] - 2 * std::sin(a));
          if (dist < best_d) best_d = dist, best = m;
        }
        on_mode += best == k;
        ++total;
      }
    }
    hits[w > 0] = on_mode;
    std::printf("guidance %.0f: %d of %d samples on their label's mode\n", w, on_mode, total);
  }
  // Unconditional sampling would put 1/8 on each mode; a working label
  // embedding puts nearly all on the asked-for one, with or without guidance.
  // (Guidance does not sharpen this briefly trained model: its rarely trained
  // unconditional branch is poor, and extrapolating from it pushes outliers out.)
  EXPECT_GT(hits[0], 0.9 * total);
  EXPECT_GT(hits[1], 0.8 * total);
}

TEST(Conditional, GuidanceCombinesTheConditionalAndUnconditionalOutputs) {
  // One DDIM step from x_T lands on x0_hat = (x_T - sqrt(1 - ab) y) / sqrt(ab),
  // so the sample exposes y = y_c + w (y_c - y_u) exactly.
  const md::ModelDesc desc = md::with_label_embedding(md::preset_default(2, 20, 8, 4, 1), 3);
  md::TrainConfig cfg;
  cfg.batch = 4;
  std::vector<unsigned char> buf(md::training_arena_bytes(desc, 4));
  md::Arena arena(buf.data(), buf.size());
  md::Trainer tr;
  ASSERT_TRUE(tr.init(desc, md::linear_schedule(20), cfg, arena).ok());
  tr.init_parameters(8);
  const md::Model m = tr.model(false);
  const uint32_t top[] = {19};
  md::SamplerConfig sc;
  sc.kind = md::SamplerKind::kDdim;
  sc.timesteps = top;
  sc.n_timesteps = 1;
  sc.label = 2;
  sc.guidance = 1.5f;
  std::vector<unsigned char> sbuf(md::sampling_arena_bytes(desc, 4));
  md::Arena sarena(sbuf.data(), sbuf.size());
  md::Sampler sampler;
  ASSERT_TRUE(sampler.init(m, md::linear_schedule(20), sc, 4, sarena).ok());
  float out[8];
  ASSERT_TRUE(sampler.sample(6, 0, 4, out).ok());
  float x[8], yc[8], yu[8];
  for (uint32_t r = 0; r < 4; ++r) md::gaussian_fill(6, md::RngStream::kSampleInit, r, 0, x + 2 * r, 2);
  const int32_t t[4] = {19, 19, 19, 19}, lc[4] = {2, 2, 2, 2}, lu[4] = {3, 3, 3, 3};
  std::vector<float> scratch(md::forward_scratch_floats(desc, 4));
  md::model_forward(m, x, t, 4, yc, scratch.data(), lc);
  md::model_forward(m, x, t, 4, yu, scratch.data(), lu);
  const double ab = tr.schedule().alpha_bar[19];
  for (int i = 0; i < 8; ++i) {
    const double y = yc[i] + 1.5 * (yc[i] - yu[i]);
    EXPECT_NEAR(out[i], (x[i] - std::sqrt(1 - ab) * y) / std::sqrt(ab), 1e-4 * (1 + std::fabs(out[i]))) << i;
  }
  // The label must be a class; guidance needs one.
  md::SamplerConfig bad = sc;
  bad.label = 3;
  md::Arena a2(sbuf.data(), sbuf.size());
  md::Sampler s2;
  EXPECT_EQ(s2.init(m, md::linear_schedule(20), bad, 4, a2).code, md::StatusCode::kInvalidArgument);
  bad.label = -1;
  md::Arena a3(sbuf.data(), sbuf.size());
  EXPECT_EQ(s2.init(m, md::linear_schedule(20), bad, 4, a3).code, md::StatusCode::kInvalidArgument);
}

}  // namespace
