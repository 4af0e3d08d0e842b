// The samplers (ddpm, ddim, dpm++2m, ode) and timestep respacing, checked
// against the closed-form optimal denoiser for Gaussian data and against
// each other where the math says they coincide.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "gaussian_model.h"
#include "microdiffusion/microdiffusion.h"

namespace {

using md_test::GaussianModel;

std::vector<float> run(const GaussianModel& g, const md::SamplerConfig& cfg, uint32_t n, uint64_t seed,
                       uint32_t* evals = nullptr) {
  std::vector<unsigned char> buf(md::sampling_arena_bytes(g.desc, 512));
  md::Arena arena(buf.data(), buf.size());
  md::Sampler s;
  md::Status st = s.init(g.model(), g.sched, cfg, 512, arena);
  EXPECT_TRUE(st.ok()) << st.message;
  std::vector<float> out(static_cast<size_t>(n) * g.desc.D);
  st = s.sample(seed, 0, n, out.data());
  EXPECT_TRUE(st.ok()) << st.message;
  if (evals) *evals = s.evaluations();
  return out;
}

double variance(const std::vector<float>& x) {
  double m = 0, v = 0;
  for (float f : x) m += f;
  m /= x.size();
  for (float f : x) v += (f - m) * (f - m);
  return v / x.size();
}

// For this model every sampler is linear in x: x0_hat = c0 x, eps = c1 x.
// So the variance of its output follows a scalar recursion, computed here in
// double straight from each method's published update. Sampled variances
// must match it; and as steps grow it must approach s^2.
double predicted_variance(const GaussianModel& g, double s, const md::SamplerConfig& cfg) {
  const uint32_t T = g.desc.T;
  std::vector<double> ab(T);
  double a = 1.0;
  for (uint32_t k = 0; k < T; ++k) ab[k] = a *= 1.0 - md::schedule_beta(g.sched, k);
  std::vector<uint32_t> ts(T);
  uint32_t K = 0;
  std::vector<float> abf(ab.begin(), ab.end());
  EXPECT_TRUE(md::make_timesteps(T, cfg.spacing, cfg.steps, ts.data(), &K, abf.data()).ok());
  auto c1 = [&](double abt) { return std::sqrt(1 - abt) / (abt * s * s + 1 - abt); };
  auto c0 = [&](double abt) { return (1 - std::sqrt(1 - abt) * c1(abt)) / std::sqrt(abt); };
  double var = 1.0, gain = 1.0, prev_gain = 0.0, h_prev = 0.0;  // x_T ~ N(0, 1)
  bool have_prev = false;
  for (uint32_t i = K; i-- > 0;) {
    const double at = ab[ts[i]], an = i > 0 ? ab[ts[i - 1]] : 1.0;
    switch (cfg.kind) {
      case md::SamplerKind::kDdpm: {
        const double beta = 1 - at / an;
        const double A = (1 - beta / std::sqrt(1 - at) * c1(at)) / std::sqrt(1 - beta);
        const double noise = i == 0 ? 0 : beta * (1 - an) / (1 - at);
        var = A * A * var + noise;
        break;
      }
      case md::SamplerKind::kDdim: {
        const double sig = i == 0 ? 0 : cfg.eta * std::sqrt((1 - an) / (1 - at)) * std::sqrt(1 - at / an);
        const double A = std::sqrt(an) * c0(at) + std::sqrt(1 - an - sig * sig) * c1(at);
        var = A * A * var + sig * sig;
        break;
      }
      case md::SamplerKind::kDpmSolver2M: {
        const double x0 = c0(at) * gain;
        if (i == 0) {
          gain = x0;
          break;
        }
        const double h = std::log(std::sqrt(an / (1 - an))) - std::log(std::sqrt(at / (1 - at)));
        const double D = have_prev ? x0 + 0.5 * h / h_prev * (x0 - prev_gain) : x0;
        gain = std::sqrt((1 - an) / (1 - at)) * gain - std::sqrt(an) * std::expm1(-h) * D;
        prev_gain = x0;
        h_prev = h;
        have_prev = true;
        break;
      }
      case md::SamplerKind::kOdeHeun: {
        if (i == 0) {
          gain = c0(at) * gain;
          break;
        }
        const double xt = gain / std::sqrt(at), d = c1(at) * gain;
        const double ds = std::sqrt((1 - an) / an) - std::sqrt((1 - at) / at);
        const double d2 = c1(an) * (xt + ds * d) * std::sqrt(an);
        gain = (xt + ds * 0.5 * (d + d2)) * std::sqrt(an);
        break;
      }
    }
  }
  return cfg.kind == md::SamplerKind::kDdpm || cfg.kind == md::SamplerKind::kDdim ? var : gain * gain;
}

struct SamplerCase {
  md::SamplerKind kind;
  uint32_t steps;
  float eta;
};

TEST(Samplers, EachMatchesItsExactVarianceRecursionWithTheOptimalDenoiser) {
  const double s = 0.5;
  GaussianModel g(2, 1000, s);
  const SamplerCase cases[] = {
      {md::SamplerKind::kDdpm, 1000, 0.0f},      {md::SamplerKind::kDdpm, 100, 0.0f},
      {md::SamplerKind::kDdim, 50, 0.0f},        {md::SamplerKind::kDdim, 50, 1.0f},
      {md::SamplerKind::kDdim, 10, 0.5f},        {md::SamplerKind::kDpmSolver2M, 15, 0.0f},
      {md::SamplerKind::kDpmSolver2M, 5, 0.0f},  {md::SamplerKind::kOdeHeun, 15, 0.0f},
      {md::SamplerKind::kOdeHeun, 5, 0.0f},
  };
  // Also on log-SNR spacing.
  for (md::SamplerKind k : {md::SamplerKind::kDpmSolver2M, md::SamplerKind::kDdim}) {
    md::SamplerConfig cfg;
    cfg.kind = k;
    cfg.steps = 10;
    cfg.spacing = md::Spacing::kLogSnr;
    EXPECT_NEAR(variance(run(g, cfg, 8000, 22)) / predicted_variance(g, s, cfg), 1.0, 0.04) << md::sampler_kind_name(k);
  }
  for (const SamplerCase& c : cases) {
    md::SamplerConfig cfg;
    cfg.kind = c.kind;
    cfg.steps = c.steps;
    cfg.eta = c.eta;
    uint32_t evals = 0;
    const std::vector<float> x = run(g, cfg, 8000, 21, &evals);
    const double expected = predicted_variance(g, s, cfg);
    // 16000 values: the variance estimate has ~1.1% sampling error; 4% is ~3.5 sigma.
    EXPECT_NEAR(variance(x) / expected, 1.0, 0.04)
        << md::sampler_kind_name(c.kind) << " steps " << c.steps << " eta " << c.eta << ": sampled "
        << variance(x) << " predicted " << expected;
    EXPECT_EQ(evals, c.kind == md::SamplerKind::kOdeHeun ? 2 * c.steps - 1 : c.steps);
  }
}

TEST(Samplers, EveryMethodConvergesToTheDataVarianceAsStepsGrow) {
  // Fixed variances and first-order steps shrink the variance; the error
  // must fall with more steps and be small at the top (the recursion is exact).
  const double s = 0.5;
  GaussianModel g(2, 1000, s);
  const SamplerCase cases[] = {{md::SamplerKind::kDdpm, 0, 0.0f},
                               {md::SamplerKind::kDdim, 0, 0.0f},
                               {md::SamplerKind::kDpmSolver2M, 0, 0.0f},
                               {md::SamplerKind::kOdeHeun, 0, 0.0f}};
  for (const SamplerCase& c : cases) {
    double last = 1e9;
    for (uint32_t steps : {10u, 50u, 250u, 1000u}) {
      md::SamplerConfig cfg;
      cfg.kind = c.kind;
      cfg.steps = steps;
      const double err = std::fabs(predicted_variance(g, s, cfg) / (s * s) - 1);
      EXPECT_LE(err, std::fmax(last, 1e-3)) << md::sampler_kind_name(c.kind) << " " << steps;
      last = err;
    }
    EXPECT_LT(last, 0.05) << md::sampler_kind_name(c.kind);
  }
  // On log-SNR-uniform steps (what DPM-Solver is derived for) the
  // second-order multistep solver beats DDIM at 10 steps. (Heun on these
  // steps is no better than DDIM here; its convergence is checked above.)
  md::SamplerConfig ddim, dpm;
  ddim.spacing = dpm.spacing = md::Spacing::kLogSnr;
  ddim.kind = md::SamplerKind::kDdim;
  dpm.kind = md::SamplerKind::kDpmSolver2M;
  ddim.steps = dpm.steps = 10;
  const double e_ddim = std::fabs(predicted_variance(g, s, ddim) / (s * s) - 1);
  EXPECT_LT(std::fabs(predicted_variance(g, s, dpm) / (s * s) - 1), e_ddim);
}

TEST(Samplers, DdimWithEtaOneIsDdpmWithTheSmallVariance) {
  GaussianModel g(3, 200, 1.5);
  for (uint32_t steps : {200u, 40u}) {
    md::SamplerConfig ddpm, ddim;
    ddpm.steps = ddim.steps = steps;
    ddim.kind = md::SamplerKind::kDdim;
    ddim.eta = 1.0f;
    const std::vector<float> a = run(g, ddpm, 64, 9), b = run(g, ddim, 64, 9);
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 2e-4 * (1 + std::fabs(a[i]))) << steps << " " << i;
  }
}

TEST(Samplers, DeterministicSamplersIgnoreTheSeedAfterXT) {
  // ddim (eta 0), dpm++2m and ode use noise only for x_T: same x_T, same output.
  GaussianModel g(2, 100, 1.0);
  md::SamplerConfig cfg;
  cfg.kind = md::SamplerKind::kDdim;
  cfg.steps = 10;
  EXPECT_EQ(run(g, cfg, 16, 3), run(g, cfg, 16, 3));
  EXPECT_NE(run(g, cfg, 16, 3), run(g, cfg, 16, 4));
}

TEST(Samplers, ClippingBoundsTheDataPrediction) {
  GaussianModel g(2, 100, 3.0);  // wide data, so clipping to 1 bites
  md::SamplerConfig cfg;
  cfg.kind = md::SamplerKind::kDdim;
  cfg.steps = 20;
  cfg.clip_x0 = 1.0f;
  for (float v : run(g, cfg, 500, 1)) EXPECT_LE(std::fabs(v), 1.0f + 1e-5f);
  cfg.clip_x0 = 0.0f;
  cfg.dynamic_threshold = 0.9f;  // Imagen: the final x0 is divided by s >= 1
  float biggest = 0;
  for (float v : run(g, cfg, 500, 1)) biggest = std::fmax(biggest, std::fabs(v));
  EXPECT_LE(biggest, 1.0f + 1e-5f);
}

TEST(Timesteps, SpacingsMatchTheLibrariesTables) {
  std::vector<uint32_t> ts(1000);
  uint32_t n = 0;
  ASSERT_TRUE(md::make_timesteps(1000, md::Spacing::kLeading, 10, ts.data(), &n).ok());
  ASSERT_EQ(n, 10u);
  for (uint32_t i = 0; i < 10; ++i) EXPECT_EQ(ts[i], 100 * i);  // diffusers "leading"
  ASSERT_TRUE(md::make_timesteps(1000, md::Spacing::kTrailing, 10, ts.data(), &n).ok());
  for (uint32_t i = 0; i < 10; ++i) EXPECT_EQ(ts[i], 99 + 100 * i);  // diffusers "trailing"
  ASSERT_TRUE(md::make_timesteps(1000, md::Spacing::kLinspace, 4, ts.data(), &n).ok());
  const uint32_t lin[] = {0, 333, 666, 999};  // round(linspace(0, 999, 4))
  for (uint32_t i = 0; i < 4; ++i) EXPECT_EQ(ts[i], lin[i]);
  // improved-diffusion space_timesteps(300, [10, 15, 20]).
  const uint32_t counts[] = {10, 15, 20};
  ASSERT_TRUE(md::section_timesteps(300, counts, 3, ts.data(), &n).ok());
  ASSERT_EQ(n, 45u);
  EXPECT_EQ(ts[0], 0u);
  EXPECT_EQ(ts[1], 11u);    // round(99/9)
  EXPECT_EQ(ts[9], 99u);
  EXPECT_EQ(ts[10], 100u);
  EXPECT_EQ(ts[11], 107u);  // round(99/14) = 7
  EXPECT_EQ(ts[44], 299u);
  EXPECT_FALSE(md::make_timesteps(10, md::Spacing::kLinspace, 11, ts.data(), &n).ok());
  const uint32_t too_many[] = {301};
  EXPECT_FALSE(md::section_timesteps(300, too_many, 1, ts.data(), &n).ok());
}

TEST(Timesteps, ExplicitListIsSortedDedupedAndChecked) {
  GaussianModel g(2, 50, 1.0);
  const uint32_t list[] = {49, 10, 30, 10, 0};
  md::SamplerConfig cfg;
  cfg.timesteps = list;
  cfg.n_timesteps = 5;
  std::vector<unsigned char> buf(md::sampling_arena_bytes(g.desc, 4));
  md::Arena arena(buf.data(), buf.size());
  md::Sampler s;
  ASSERT_TRUE(s.init(g.model(), g.sched, cfg, 4, arena).ok());
  ASSERT_EQ(s.steps(), 4u);
  EXPECT_EQ(s.timesteps()[0], 0u);
  EXPECT_EQ(s.timesteps()[3], 49u);
  const uint32_t bad[] = {50};
  cfg.timesteps = bad;
  cfg.n_timesteps = 1;
  md::Arena arena2(buf.data(), buf.size());
  md::Sampler s2;
  EXPECT_EQ(s2.init(g.model(), g.sched, cfg, 4, arena2).code, md::StatusCode::kInvalidArgument);
}

// init(model, schedule, variance, ...) names only the DDPM step (so that
// firmware using it links no other sampler): it must draw the same samples,
// bit for bit, as the SamplerConfig init with only the variance set, for every
// variance (learned range included) and schedule kind; and build_alpha_bar_plain,
// which it uses, must give build_alpha_bar's table.
// The DDPM-only init's step assumes eps: a model that says it predicts x0 or
// v (as load_weights and Trainer::model set it) is refused, not sampled wrongly.
TEST(Samplers, DdpmOnlyInitRefusesOtherPredictions) {
  const md::ModelDesc d = md::preset_tutorial(2, 10, 8);
  std::vector<float> params(md::param_layout(d).total_floats, 0.01f);
  md::Model m = md::bind_model(d, params.data());
  std::vector<unsigned char> buf(md::sampling_arena_bytes(d, 2));
  for (md::Prediction p : {md::Prediction::kX0, md::Prediction::kV}) {
    m.prediction = p;
    md::Arena arena(buf.data(), buf.size());
    md::Sampler s;
    EXPECT_EQ(s.init(m, md::linear_schedule(10), md::Variance::kFixedSmall, 2, arena).code,
              md::StatusCode::kInvalidArgument);
    md::SamplerConfig cfg;
    cfg.prediction = p;
    md::Arena arena2(buf.data(), buf.size());
    EXPECT_TRUE(s.init(m, md::linear_schedule(10), cfg, 2, arena2).ok());
  }
  // The weight file's prediction reaches the bound model.
  md::WeightsMeta meta;
  meta.prediction = md::Prediction::kV;
  std::vector<unsigned char> file(md::weights_file_bytes(d));
  size_t n = 0;
  ASSERT_TRUE(md::write_weights(d, md::linear_schedule(10), meta, params.data(), file.data(), file.size(), &n).ok());
  md::LoadedWeights w;
  ASSERT_TRUE(md::load_weights(file.data(), n, &w).ok());
  EXPECT_EQ(w.model.prediction, md::Prediction::kV);
}

TEST(Samplers, DdpmOnlyInitMatchesTheConfigInit) {
  constexpr uint32_t kT = 30, kBatch = 3, kN = 5;
  for (const bool learned : {false, true}) {
    const md::ModelDesc d = learned ? md::with_learned_variance(md::preset_default(2, kT, 16, 8, 1))
                                    : md::preset_tutorial(2, kT, 16);
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> u(-0.4f, 0.4f);
    std::vector<float> params(md::param_layout(d).total_floats);
    for (float& p : params) p = u(rng);
    const md::Model m = md::bind_model(d, params.data());
    for (const md::ScheduleDesc& sched : {md::linear_schedule(kT), md::cosine_schedule(kT)}) {
      std::vector<float> ab(kT), ab_plain(kT);
      ASSERT_TRUE(md::build_alpha_bar(sched, ab.data()).ok());
      ASSERT_TRUE(md::build_alpha_bar_plain(sched, ab_plain.data()).ok());
      EXPECT_EQ(std::memcmp(ab.data(), ab_plain.data(), kT * sizeof(float)), 0);
      for (uint32_t v = 0; v < md::kVarianceCount; ++v) {
        const md::Variance var = static_cast<md::Variance>(v);
        if (var == md::Variance::kLearnedRange && !learned) continue;
        std::vector<unsigned char> b1(md::sampling_arena_bytes(d, kBatch)), b2(b1.size());
        md::Arena a1(b1.data(), b1.size()), a2(b2.data(), b2.size());
        md::Sampler lean, full;
        ASSERT_TRUE(lean.init(m, sched, var, kBatch, a1).ok());
        md::SamplerConfig cfg;
        cfg.variance = var;
        ASSERT_TRUE(full.init(m, sched, cfg, kBatch, a2).ok());
        EXPECT_EQ(lean.steps(), full.steps());
        std::vector<float> x1(kN * d.D), x2(kN * d.D);
        ASSERT_TRUE(lean.sample(7, 2, kN, x1.data()).ok());
        ASSERT_TRUE(full.sample(7, 2, kN, x2.data()).ok());
        EXPECT_EQ(std::memcmp(x1.data(), x2.data(), x1.size() * sizeof(float)), 0) << "learned " << learned
                                                                                    << ", variance " << v;
      }
    }
  }
  // Eps prediction cannot start from zero terminal SNR; build_alpha_bar_plain refuses the rescale.
  md::ScheduleDesc zsnr = md::linear_schedule(kT);
  zsnr.zero_terminal_snr = 1;
  std::vector<float> ab(kT);
  EXPECT_EQ(md::build_alpha_bar_plain(zsnr, ab.data()).code, md::StatusCode::kInvalidArgument);
  const md::ModelDesc d = md::preset_tutorial(2, kT, 16);
  std::vector<float> params(md::param_layout(d).total_floats, 0.0f);
  std::vector<unsigned char> buf(md::sampling_arena_bytes(d, 1));
  md::Arena arena(buf.data(), buf.size());
  md::Sampler s;
  EXPECT_EQ(s.init(md::bind_model(d, params.data()), zsnr, md::Variance::kFixedSmall, 1, arena).code,
            md::StatusCode::kInvalidArgument);
}

}  // namespace
