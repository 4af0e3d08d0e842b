// Arena sizing, the sampler (against the closed-form optimal denoiser for
// Gaussian data), the trainer's plumbing, datasets and the energy distance.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "gaussian_model.h"
#include "microdiffusion/microdiffusion.h"

namespace {

// Firmware can size its buffers at compile time.
constexpr md::ModelDesc kTutorial = md::preset_tutorial();
static_assert(md::sampling_arena_bytes(kTutorial, 1) > 0, "constexpr sampling size");
static_assert(md::training_arena_bytes(kTutorial, 32) > md::sampling_arena_bytes(kTutorial, 32), "constexpr training size");

TEST(Arena, ExactlyTheAdvertisedBytesAreEnoughAndOneLessIsNot) {
  const md::ModelDesc d = md::preset_default();
  for (uint32_t batch : {1u, 7u, 256u}) {
    const size_t need = md::sampling_arena_bytes(d, batch);
    std::vector<unsigned char> buf(need + 1);
    // Misalign on purpose: the advertised size covers any base address.
    for (size_t shift : {size_t(0), size_t(1)}) {
      md::Arena arena(buf.data() + shift, need);
      md::Sampler s;
      std::vector<float> params(md::param_layout(d).total_floats, 0.0f);
      EXPECT_TRUE(s.init(md::bind_model(d, params.data()), md::linear_schedule(d.T), md::Variance::kFixedSmall, batch,
                         arena).ok());
    }
    // Far too small: the status names bytes needed and available.
    md::Arena small(buf.data(), need / 2);
    md::Sampler s;
    std::vector<float> params(md::param_layout(d).total_floats, 0.0f);
    const md::Status st = s.init(md::bind_model(d, params.data()), md::linear_schedule(d.T),
                                 md::Variance::kFixedSmall, batch, small);
    EXPECT_EQ(st.code, md::StatusCode::kOutOfMemory);
    EXPECT_EQ(st.needed, need);
    EXPECT_EQ(st.available, need / 2);
  }
  const size_t need = md::training_arena_bytes(d, 16);
  std::vector<unsigned char> buf(need);
  md::TrainConfig cfg;
  cfg.batch = 16;
  {
    md::Arena arena(buf.data(), need);
    md::Trainer t;
    EXPECT_TRUE(t.init(d, md::linear_schedule(d.T), cfg, arena).ok());
  }
  {
    md::Arena arena(buf.data(), need - 128);
    md::Trainer t;
    const md::Status st = t.init(d, md::linear_schedule(d.T), cfg, arena);
    EXPECT_EQ(st.code, md::StatusCode::kOutOfMemory);
    EXPECT_EQ(st.needed, need);
  }
}

// The closed-form optimal denoiser for N(0, s^2 I) data (gaussian_model.h).
struct GaussianDenoiser : md_test::GaussianModel {
  GaussianDenoiser(uint32_t D, const md::ScheduleDesc& sched, double s) : GaussianModel(D, sched.T, s) {}
};

std::vector<float> draw(const md::Model& m, const md::ScheduleDesc& sched, md::Variance v, uint32_t batch,
                        uint32_t first, uint32_t n, uint64_t seed) {
  std::vector<unsigned char> buf(md::sampling_arena_bytes(m.desc, batch));
  md::Arena arena(buf.data(), buf.size());
  md::Sampler s;
  EXPECT_TRUE(s.init(m, sched, v, batch, arena).ok());
  std::vector<float> out(static_cast<size_t>(n) * m.desc.D);
  EXPECT_TRUE(s.sample(seed, first, n, out.data()).ok());
  return out;
}

TEST(Sampler, OptimalDenoiserForGaussianDataRecoversItsVariance) {
  for (md::Variance v : {md::Variance::kFixedSmall, md::Variance::kFixedLarge}) {
    for (double s : {0.5, 2.0}) {
      const md::ScheduleDesc sched = md::linear_schedule(1000);
      GaussianDenoiser g(2, sched, s);
      const uint32_t n = 10000;
      const std::vector<float> x = draw(md::bind_model(g.desc, g.params.data()), sched, v, 500, 0, n, 11);
      double mean = 0, var = 0;
      for (float f : x) mean += f;
      mean /= x.size();
      for (float f : x) var += (f - mean) * (f - mean);
      var /= x.size();
      // 20000 values: std error of the variance is ~1%; the reverse chain
      // with fixed variances is itself accurate to ~1-2% at T = 1000.
      EXPECT_NEAR(mean, 0.0, 0.03 * s) << "s=" << s;
      EXPECT_NEAR(var / (s * s), 1.0, 0.05) << "s=" << s << " variance " << static_cast<int>(v);
    }
  }
}

TEST(Sampler, SamplesDependOnSeedAndIndexNotOnBatching) {
  const md::ScheduleDesc sched = md::linear_schedule(50);
  GaussianDenoiser g(3, sched, 1.0);
  const md::Model m = md::bind_model(g.desc, g.params.data());
  const std::vector<float> a = draw(m, sched, md::Variance::kFixedSmall, 7, 0, 20, 3);
  const std::vector<float> b = draw(m, sched, md::Variance::kFixedSmall, 20, 0, 20, 3);
  const std::vector<float> c = draw(m, sched, md::Variance::kFixedSmall, 4, 10, 10, 3);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << i;
  for (size_t i = 0; i < c.size(); ++i) EXPECT_EQ(c[i], a[30 + i]) << i;
  const std::vector<float> d = draw(m, sched, md::Variance::kFixedSmall, 7, 0, 20, 4);
  EXPECT_NE(a[0], d[0]);
}

TEST(Sampler, ObserverSeesEveryStepFromTDownToZero) {
  const md::ScheduleDesc sched = md::linear_schedule(12);
  GaussianDenoiser g(2, sched, 1.0);
  const md::Model m = md::bind_model(g.desc, g.params.data());
  std::vector<unsigned char> buf(md::sampling_arena_bytes(m.desc, 4));
  md::Arena arena(buf.data(), buf.size());
  md::Sampler s;
  ASSERT_TRUE(s.init(m, sched, md::Variance::kFixedSmall, 4, arena).ok());
  std::vector<int32_t> seen;
  std::vector<float> out(2 * 4);
  auto obs = [](void* user, int32_t t, const float*, uint32_t, uint32_t) {
    static_cast<std::vector<int32_t>*>(user)->push_back(t);
  };
  ASSERT_TRUE(s.sample(1, 0, 4, out.data(), obs, &seen).ok());
  ASSERT_EQ(seen.size(), 13u);
  for (int32_t i = 0; i <= 12; ++i) EXPECT_EQ(seen[i], 12 - i);
}

TEST(Schedule, LinearEndpointsAndCosineCapAndValidation) {
  const md::ScheduleDesc lin = md::linear_schedule(1000);
  EXPECT_FLOAT_EQ(lin.beta_start, 1e-4f);
  EXPECT_FLOAT_EQ(lin.beta_end, 0.02f);
  EXPECT_NEAR(md::schedule_beta(lin, 0), 1e-4, 1e-10);  // stored as float
  EXPECT_NEAR(md::schedule_beta(lin, 999), 0.02, 1e-9);
  const md::ScheduleDesc cos = md::cosine_schedule(50);
  EXPECT_LE(md::schedule_beta(cos, 49), static_cast<double>(0.999f));
  md::ScheduleDesc bad = lin;
  bad.T = 0;
  EXPECT_FALSE(md::validate_schedule(bad).ok());
  bad = lin;
  bad.beta_end = 1.5f;
  EXPECT_FALSE(md::validate_schedule(bad).ok());
  std::vector<float> tables(md::kScheduleTables * 1000);
  md::Schedule s;
  ASSERT_TRUE(md::build_schedule(lin, tables.data(), &s).ok());
  // alpha_bar decreases; the x_0 and x_t posterior coefficients reproduce x when x_0 = x_t = x at t = 1.
  for (uint32_t k = 1; k < 1000; ++k) EXPECT_LT(s.alpha_bar[k], s.alpha_bar[k - 1]);
  EXPECT_NEAR(s.posterior_mean_coef1[0], 1.0f, 1e-6);
  EXPECT_EQ(s.posterior_variance[0], 0.0f);
}

// The sampler builds only alpha_bar (build_alpha_bar): it must be build_schedule's table, bit for bit.
TEST(Schedule, AlphaBarAloneMatchesTheFullTables) {
  std::vector<md::ScheduleDesc> descs = {md::linear_schedule(1000), md::cosine_schedule(50), md::linear_schedule(1)};
  md::ScheduleDesc sig = md::linear_schedule(100);
  sig.kind = md::ScheduleKind::kSigmoid;
  md::ScheduleDesc scaled = md::linear_schedule(200);
  scaled.kind = md::ScheduleKind::kScaledLinear;
  md::ScheduleDesc zsnr = md::cosine_schedule(30);
  zsnr.zero_terminal_snr = 1;
  descs.insert(descs.end(), {sig, scaled, zsnr});
  for (const md::ScheduleDesc& d : descs) {
    std::vector<float> tables(md::kScheduleTables * d.T), ab(d.T, -1.0f);
    md::Schedule s;
    ASSERT_TRUE(md::build_schedule(d, tables.data(), &s).ok());
    ASSERT_TRUE(md::build_alpha_bar(d, ab.data()).ok());
    for (uint32_t k = 0; k < d.T; ++k) EXPECT_EQ(ab[k], s.alpha_bar[k]) << md::schedule_kind_name(d.kind) << " k " << k;
  }
  md::ScheduleDesc bad = md::linear_schedule(10);
  bad.beta_end = 1.5f;
  float ab[10];
  EXPECT_FALSE(md::build_alpha_bar(bad, ab).ok());
}

TEST(Trainer, LossFallsOnTheSwissRollAndStateIsConsistent) {
  const md::ModelDesc d = md::preset_tutorial(2, 50, 32);
  md::TrainConfig cfg;
  cfg.batch = 64;
  cfg.lr = 3e-3;
  cfg.seed = 5;
  std::vector<unsigned char> buf(md::training_arena_bytes(d, cfg.batch));
  md::Arena arena(buf.data(), buf.size());
  md::Trainer t;
  ASSERT_TRUE(t.init(d, md::linear_schedule(50), cfg, arena).ok());
  t.init_parameters(5);
  std::vector<float> data(2 * 4000);
  md::make_dataset(md::Dataset::kSwissRoll, 5, 0, 4000, data.data());
  double first = 0, last = 0;
  for (int i = 0; i < 600; ++i) {
    float loss;
    ASSERT_TRUE(t.step(data.data(), 4000, &loss).ok());
    if (i < 50) first += loss / 50;
    if (i >= 550) last += loss / 50;
  }
  EXPECT_LT(last, 0.8 * first) << "first " << first << " last " << last;
  EXPECT_EQ(t.steps_done(), 600u);
  // The EMA lags the weights but tracks them.
  double diff = 0, norm = 0;
  for (uint32_t i = 0; i < t.param_floats(); ++i) {
    diff += std::fabs(t.ema()[i] - t.params()[i]);
    norm += std::fabs(t.params()[i]);
  }
  EXPECT_GT(diff, 0.0);
  EXPECT_LT(diff, 0.2 * norm);
}

TEST(Trainer, SameSeedSameBitsDifferentSeedDifferentBits) {
  const md::ModelDesc d = md::preset_default(2, 20, 16, 8, 1);
  auto run = [&](uint64_t seed) {
    md::TrainConfig cfg;
    cfg.batch = 16;
    cfg.seed = seed;
    std::vector<unsigned char> buf(md::training_arena_bytes(d, cfg.batch));
    md::Arena arena(buf.data(), buf.size());
    md::Trainer t;
    EXPECT_TRUE(t.init(d, md::linear_schedule(20), cfg, arena).ok());
    t.init_parameters(seed);
    std::vector<float> data(2 * 100);
    md::make_dataset(md::Dataset::kMoons, seed, 0, 100, data.data());
    float loss;
    for (int i = 0; i < 20; ++i) EXPECT_TRUE(t.step(data.data(), 100, &loss).ok());
    return std::vector<float>(t.params(), t.params() + t.param_floats());
  };
  EXPECT_EQ(run(1), run(1));
  EXPECT_NE(run(1), run(2));
}

TEST(Trainer, LearningRateWarmsUpAndDecays) {
  const md::ModelDesc d = md::preset_tutorial(2, 10, 4);
  md::TrainConfig cfg;
  cfg.batch = 2;
  cfg.lr = 1.0;
  cfg.warmup_steps = 4;
  cfg.total_steps = 10;
  std::vector<unsigned char> buf(md::training_arena_bytes(d, cfg.batch));
  md::Arena arena(buf.data(), buf.size());
  md::Trainer t;
  ASSERT_TRUE(t.init(d, md::linear_schedule(10), cfg, arena).ok());
  t.init_parameters(0);
  std::vector<double> lrs;
  const float x0[4] = {0.1f, 0.2f, 0.3f, 0.4f}, eps[4] = {1, -1, 0.5f, 0};
  const int32_t ts[2] = {1, 2};
  for (int i = 0; i < 10; ++i) {
    lrs.push_back(t.learning_rate());
    float loss;
    ASSERT_TRUE(t.step_on(x0, ts, eps, &loss).ok());
  }
  // step s: min(1, (s+1)/warmup) * 0.5 (1 + cos(pi s / total))
  for (int s = 0; s < 10; ++s)
    EXPECT_NEAR(lrs[s], std::fmin(1.0, (s + 1) / 4.0) * 0.5 * (1 + std::cos(M_PI * s / 10)), 1e-12) << s;
}

TEST(Data, SwissRollFollowsTheTutorialConstruction) {
  const uint32_t n = 20000;
  std::vector<float> p(2 * n);
  md::make_dataset(md::Dataset::kSwissRoll, 1, 0, n, p.data());
  // Radius |s|/10 with s in [1.5 pi, 4.5 pi], blurred by 0.05 noise.
  double mean_r = 0;
  for (uint32_t i = 0; i < n; ++i) mean_r += std::hypot(p[2 * i], p[2 * i + 1]) / n;
  EXPECT_NEAR(mean_r, 3.0 * M_PI / 10, 0.02);
  // Point i depends only on (seed, i).
  float q[4];
  md::make_dataset(md::Dataset::kSwissRoll, 1, 100, 2, q);
  EXPECT_EQ(q[0], p[200]);
  EXPECT_EQ(q[3], p[203]);
  md::Dataset ds;
  EXPECT_TRUE(md::dataset_from_name("8gaussians", &ds));
  EXPECT_EQ(ds, md::Dataset::kEightGaussians);
  EXPECT_FALSE(md::dataset_from_name("swiss", &ds));
}

TEST(EnergyDistance, MatchesTheReferenceFiguresOnTheSwissRoll) {
  const uint32_t n = 2000;
  std::vector<float> a(2 * n), b(2 * n), g(2 * n);
  md::make_dataset(md::Dataset::kSwissRoll, 1, 0, n, a.data());
  md::make_dataset(md::Dataset::kSwissRoll, 2, 0, n, b.data());
  md::gaussian_fill(3, md::RngStream::kSampleInit, 0, 0, g.data(), g.size());
  EXPECT_EQ(md::energy_distance(a.data(), n, a.data(), n, 2), 0.0);
  const double same = md::energy_distance(a.data(), n, b.data(), n, 2);
  const double noise = md::energy_distance(a.data(), n, g.data(), n, 2);
  // Issue figures: about 0.0008 for a second draw, about 0.08 for N(0, I).
  EXPECT_GT(same, 0.0);
  EXPECT_LT(same, 0.002);
  EXPECT_NEAR(noise, 0.08, 0.02);
  // Exact on a tiny case: X = {0}, Y = {3} in 1-D gives 2*3 - 0 - 0.
  const float x = 0.0f, y = 3.0f;
  EXPECT_DOUBLE_EQ(md::energy_distance(&x, 1, &y, 1, 1), 6.0);
}

}  // namespace
