// The eps / x0 / v parameterisations: exact conversions, samplers that agree
// across parameterisations of the same optimal model, and the training loss
// (with and without Min-SNR-gamma) against a direct double computation.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "gaussian_model.h"
#include "microdiffusion/microdiffusion.h"

namespace {

TEST(Prediction, ConversionsInvertEachOther) {
  const float a = 0.6f, s = 0.8f, x0 = 0.3f, eps = -1.2f, xt = a * x0 + s * eps;
  for (md::Prediction p : {md::Prediction::kEpsilon, md::Prediction::kX0, md::Prediction::kV}) {
    const float y = md::prediction_target(p, x0, eps, a, s);
    float e, z;
    md::prediction_to_eps_x0(p, y, xt, a, s, &e, &z);
    EXPECT_NEAR(e, eps, 1e-6) << md::prediction_name(p);
    EXPECT_NEAR(z, x0, 1e-6) << md::prediction_name(p);
    md::Prediction back;
    ASSERT_TRUE(md::prediction_from_name(md::prediction_name(p), &back));
    EXPECT_EQ(back, p);
  }
  md::Prediction p;
  EXPECT_FALSE(md::prediction_from_name("score", &p));
}

TEST(Prediction, EveryParameterisationOfTheOptimalModelSamplesAlike) {
  md::ModelBuilder b(2, 200);
  b.embed(1, 0, 1.0f, 0).time_gate(2).linear(2);
  const md::ScheduleDesc sched = md::linear_schedule(200);
  for (md::SamplerKind kind : {md::SamplerKind::kDdpm, md::SamplerKind::kDdim, md::SamplerKind::kDpmSolver2M}) {
    std::vector<std::vector<float>> outs;
    for (md::Prediction p : {md::Prediction::kEpsilon, md::Prediction::kX0, md::Prediction::kV}) {
      const md_test::GaussianModel g(2, 200, 0.7, p);
      const std::vector<float>& params = g.params;
      md::SamplerConfig cfg;
      cfg.kind = kind;
      cfg.steps = 40;
      cfg.prediction = p;
      std::vector<unsigned char> buf(md::sampling_arena_bytes(b.d, 32));
      md::Arena arena(buf.data(), buf.size());
      md::Sampler s;
      ASSERT_TRUE(s.init(md::bind_model(b.d, params.data()), sched, cfg, 32, arena).ok());
      std::vector<float> out(2 * 64);
      ASSERT_TRUE(s.sample(3, 0, 64, out.data()).ok());
      outs.push_back(out);
    }
    for (size_t i = 0; i < outs[0].size(); ++i) {
      EXPECT_NEAR(outs[1][i], outs[0][i], 2e-3) << md::sampler_kind_name(kind) << " x0 vs eps at " << i;
      EXPECT_NEAR(outs[2][i], outs[0][i], 2e-3) << md::sampler_kind_name(kind) << " v vs eps at " << i;
    }
  }
}

TEST(Prediction, TrainingLossMatchesADirectComputation) {
  const md::ModelDesc d = md::preset_default(2, 20, 8, 4, 1);
  const uint32_t B = 6;
  const float x0[2 * B] = {0.1f, -0.4f, 1.2f, 0.3f, -0.7f, 0.0f, 0.5f, 0.5f, -1.0f, 0.2f, 0.9f, -0.9f};
  const float eps[2 * B] = {0.3f, 1.1f, -0.2f, -1.5f, 0.6f, 0.4f, -0.8f, 0.05f, 1.7f, -0.3f, 0.0f, 0.9f};
  const int32_t ts[B] = {0, 3, 7, 11, 15, 19};
  for (md::Prediction p : {md::Prediction::kEpsilon, md::Prediction::kX0, md::Prediction::kV}) {
    for (double gamma : {0.0, 5.0}) {
      md::TrainConfig cfg;
      cfg.batch = B;
      cfg.prediction = p;
      cfg.min_snr_gamma = gamma;
      std::vector<unsigned char> buf(md::training_arena_bytes(d, B));
      md::Arena arena(buf.data(), buf.size());
      md::Trainer tr;
      ASSERT_TRUE(tr.init(d, md::linear_schedule(20), cfg, arena).ok());
      tr.init_parameters(4);
      float loss = 0;
      ASSERT_TRUE(tr.loss_and_gradients(x0, ts, eps, &loss).ok());
      // Direct: run the network on x_t, form the target and weight in double.
      const md::Schedule& S = tr.schedule();
      std::vector<float> xt(2 * B), y(2 * B), scratch(md::forward_scratch_floats(d, B));
      for (uint32_t i = 0; i < 2 * B; ++i)
        xt[i] = S.sqrt_alpha_bar[ts[i / 2]] * x0[i] + S.sqrt_one_minus_alpha_bar[ts[i / 2]] * eps[i];
      md::model_forward(tr.model(false), xt.data(), ts, B, y.data(), scratch.data());
      double want = 0;
      for (uint32_t i = 0; i < 2 * B; ++i) {
        const double ab = S.alpha_bar[ts[i / 2]], a = std::sqrt(ab), s = std::sqrt(1 - ab), snr = ab / (1 - ab);
        const double target = p == md::Prediction::kEpsilon ? eps[i] : p == md::Prediction::kX0 ? x0[i] : a * eps[i] - s * x0[i];
        double w = 1;
        if (gamma > 0) {
          const double c = std::fmin(snr, gamma);
          w = p == md::Prediction::kEpsilon ? c / snr : p == md::Prediction::kX0 ? c : c / (snr + 1);
        }
        want += w * (y[i] - target) * (y[i] - target) / (2 * B);
      }
      EXPECT_NEAR(loss, want, 1e-5 * (1 + want)) << md::prediction_name(p) << " gamma " << gamma;
    }
  }
}

}  // namespace
