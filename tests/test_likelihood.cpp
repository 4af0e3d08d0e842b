// The variational bound against its exact value: for x_0 ~ N(0, s^2 I) and the
// closed-form optimal denoiser, every expected term of the bound is known.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "gaussian_model.h"
#include "microdiffusion/microdiffusion.h"

namespace {

using GaussianSetup = md_test::GaussianModel;

// Expected bound per dimension in nats, from the formulas alone (float64).
double exact_bound_per_dim(const md::ScheduleDesc& sched, double s) {
  const uint32_t T = sched.T;
  std::vector<double> beta(T), ab(T);
  double a = 1;
  for (uint32_t k = 0; k < T; ++k) {
    beta[k] = md::schedule_beta(sched, k);
    ab[k] = a *= 1 - beta[k];
  }
  auto post_var = [&](uint32_t k) { return beta[k] * (1 - (k ? ab[k - 1] : 1.0)) / (1 - ab[k]); };
  auto var_x0_given_xt = [&](uint32_t k) { return s * s * (1 - ab[k]) / (ab[k] * s * s + 1 - ab[k]); };
  double total = 0.5 * (ab[T - 1] * s * s - ab[T - 1] - std::log(1 - ab[T - 1]));  // L_T
  for (uint32_t k = 1; k < T; ++k) {
    const double coef1 = beta[k] * std::sqrt(ab[k - 1]) / (1 - ab[k]);
    total += 0.5 * coef1 * coef1 * var_x0_given_xt(k) / post_var(k);  // same variances: only the means differ
  }
  const double lv = std::log(post_var(1));  // t = 1 uses t = 2's variance (clipped)
  total += 0.5 * (std::log(2 * M_PI) + lv + var_x0_given_xt(0) * std::exp(-lv));  // L_0
  return total;
}

TEST(Likelihood, BoundOfTheOptimalGaussianDenoiserMatchesTheExactValue) {
  for (double s : {0.5, 1.5}) {
    const uint32_t D = 2, T = 100, n = 1500;
    GaussianSetup g(D, T, s);
    std::vector<float> x0(static_cast<size_t>(n) * D);
    md::gaussian_fill(77, md::RngStream::kDataset, 0, 0, x0.data(), x0.size());
    for (float& v : x0) v = static_cast<float>(v * s);
    std::vector<unsigned char> buf(md::bound_arena_bytes(g.desc, 256));
    md::Arena arena(buf.data(), buf.size());
    md::BoundEvaluator ev;
    ASSERT_TRUE(ev.init(md::bind_model(g.desc, g.params.data()), g.sched, md::Variance::kFixedSmall,
                        md::Decoder::kGaussian, 256, arena).ok());
    std::vector<md::BoundTerms> terms(n);
    ASSERT_TRUE(ev.evaluate(x0.data(), n, 5, 0, terms.data()).ok());
    double mean = 0, sq = 0;
    for (const md::BoundTerms& t : terms) mean += t.total() / D;
    mean /= n;
    for (const md::BoundTerms& t : terms) sq += (t.total() / D - mean) * (t.total() / D - mean);
    const double stderr_ = std::sqrt(sq / (n - 1) / n);
    const double exact = exact_bound_per_dim(g.sched, s);
    const double entropy = 0.5 * std::log(2 * M_PI * M_E * s * s);  // the true NLL per dimension
    EXPECT_NEAR(mean, exact, 4 * stderr_) << "s=" << s << " exact " << exact << " stderr " << stderr_;
    EXPECT_GT(exact, entropy);  // a bound; with fixed variances not a tight one,
    // but it tightens as T grows (gap 1.27 -> 0.57 nats/dim for s = 0.5, T = 100 -> 1000).
    EXPECT_LT(exact_bound_per_dim(md::linear_schedule(1000), s) - entropy, 0.7 * (exact - entropy));
  }
}

TEST(Likelihood, DiscretizedDecoderGivesBinProbabilities) {
  // With data on the 8-bit grid in [-1, 1], L_0 is -log of a probability: >= 0.
  GaussianSetup g(1, 20, 0.5);
  const uint32_t n = 64;
  std::vector<float> x0(n);
  for (uint32_t i = 0; i < n; ++i) x0[i] = std::round((i * 4.0f - 127.5f) ) / 127.5f;
  std::vector<unsigned char> buf(md::bound_arena_bytes(g.desc, 16));
  md::Arena arena(buf.data(), buf.size());
  md::BoundEvaluator ev;
  ASSERT_TRUE(ev.init(md::bind_model(g.desc, g.params.data()), g.sched, md::Variance::kFixedLarge,
                      md::Decoder::kDiscretized8Bit, 16, arena).ok());
  std::vector<md::BoundTerms> terms(n);
  ASSERT_TRUE(ev.evaluate(x0.data(), n, 1, 0, terms.data()).ok());
  for (const md::BoundTerms& t : terms) {
    EXPECT_GE(t.decoder, 0.0);
    EXPECT_GE(t.diffusion, 0.0);
    EXPECT_GE(t.prior, 0.0);
  }
}

TEST(Likelihood, MmdIsZeroForTheSameSetAndGrowsWithShift) {
  std::vector<float> a(2 * 300), b(2 * 300);
  md::gaussian_fill(1, md::RngStream::kDataset, 0, 0, a.data(), a.size());
  md::gaussian_fill(2, md::RngStream::kDataset, 0, 0, b.data(), b.size());
  const double same = md::mmd_rbf(a.data(), 300, b.data(), 300, 2, 1.0);
  for (float& v : b) v += 1.0f;
  const double shifted = md::mmd_rbf(a.data(), 300, b.data(), 300, 2, 1.0);
  EXPECT_LT(std::fabs(same), 0.01);
  EXPECT_GT(shifted, 0.1);
}

}  // namespace
