// The portable generator: known-answer Philox values, portable log/sincos
// against the C library, Gaussian moments, and independence from fill length.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "microdiffusion/rng.h"

TEST(Philox, MatchesRandom123KnownAnswers) {
  // Known-answer vectors of Random123's philox4x32-10 (kat_vectors).
  uint32_t out[4];
  md::philox4x32(0, md::Counter{{0, 0, 0, 0}}, out);
  EXPECT_EQ(out[0], 0x6627e8d5u);
  EXPECT_EQ(out[1], 0xe169c58du);
  EXPECT_EQ(out[2], 0xbc57ac4cu);
  EXPECT_EQ(out[3], 0x9b00dbd8u);
  md::philox4x32(0xffffffffffffffffull, md::Counter{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, out);
  EXPECT_EQ(out[0], 0x408f276du);
  EXPECT_EQ(out[1], 0x41c83b0eu);
  EXPECT_EQ(out[2], 0xa20bc7c6u);
  EXPECT_EQ(out[3], 0x6d5451fdu);
  // key = (0xa4093822, 0x299f31d0), counter = pi digits
  md::philox4x32(0x299f31d0a4093822ull, md::Counter{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, out);
  EXPECT_EQ(out[0], 0xd16cfe09u);
  EXPECT_EQ(out[1], 0x94fdccebu);
  EXPECT_EQ(out[2], 0x5001e420u);
  EXPECT_EQ(out[3], 0x24126ea1u);
}

TEST(PortableMath, LogAndSincosAgreeWithTheCLibrary) {
  double worst_log = 0, worst_trig = 0;
  for (int i = 1; i <= 200000; ++i) {
    const double x = i / 200000.0;
    worst_log = std::fmax(worst_log, std::fabs(md::portable_log(x) - std::log(x)) / (std::fabs(std::log(x)) + 1e-300));
    double s, c;
    const double u = (i - 1) / 200000.0;
    md::portable_sincos_2pi(u, &s, &c);
    worst_trig = std::fmax(worst_trig, std::fmax(std::fabs(s - std::sin(2 * M_PI * u)), std::fabs(c - std::cos(2 * M_PI * u))));
  }
  EXPECT_LT(worst_log, 1e-14);
  EXPECT_LT(worst_trig, 1e-14);
  // The cosine schedule's cos(q pi/2) = cos(2 pi q/4), q in [0, 1], against long double.
  const long double pi = 3.141592653589793238462643383279502884L;
  double worst_quarter = 0;
  for (int i = 0; i <= 200000; ++i) {
    const double q = i / 200000.0;
    double s, c;
    md::portable_sincos_2pi(q * 0.25, &s, &c);
    worst_quarter = std::fmax(worst_quarter, static_cast<double>(std::fabs(c - std::cos(q * pi / 2))));
  }
  EXPECT_LE(worst_quarter, 2.5e-16);
  EXPECT_NEAR(md::portable_log(4294967296.0), std::log(4294967296.0), 1e-12);
  EXPECT_NEAR(md::portable_log(1.0 / 4294967296.0), std::log(1.0 / 4294967296.0), 1e-12);
}

TEST(Gaussian, MomentsOfAMillionDraws) {
  std::vector<float> z(1 << 20);
  md::gaussian_fill(123, md::RngStream::kTrainNoise, 0, 0, z.data(), z.size());
  double m1 = 0, m2 = 0, m3 = 0, m4 = 0;
  for (float v : z) {
    m1 += v;
    m2 += v * v;
    m3 += v * v * v;
    m4 += (double)v * v * v * v;
  }
  const double n = z.size();
  // Standard errors: mean 1e-3, var 1.4e-3, skew 2.4e-3, kurtosis 4.8e-3; allow ~5 sigma.
  EXPECT_NEAR(m1 / n, 0.0, 5e-3);
  EXPECT_NEAR(m2 / n, 1.0, 7e-3);
  EXPECT_NEAR(m3 / n, 0.0, 1.2e-2);
  EXPECT_NEAR(m4 / n, 3.0, 2.5e-2);
}

TEST(Gaussian, ElementDependsOnlyOnItsIndex) {
  std::vector<float> a(11), b(4);
  md::gaussian_fill(5, md::RngStream::kSampleStep, 9, 3, a.data(), a.size());
  md::gaussian_fill(5, md::RngStream::kSampleStep, 9, 3, b.data(), b.size());
  for (size_t i = 0; i < b.size(); ++i) EXPECT_EQ(a[i], b[i]);
  // Different stream, seed or counter words give different numbers.
  std::vector<float> c(4), d(4), e(4);
  md::gaussian_fill(5, md::RngStream::kSampleInit, 9, 3, c.data(), 4);
  md::gaussian_fill(6, md::RngStream::kSampleStep, 9, 3, d.data(), 4);
  md::gaussian_fill(5, md::RngStream::kSampleStep, 9, 4, e.data(), 4);
  EXPECT_NE(a[0], c[0]);
  EXPECT_NE(a[0], d[0]);
  EXPECT_NE(a[0], e[0]);
}

TEST(Gaussian, BoxMullerMatchesTheCLibraryFormula) {
  float z[4];
  md::gaussian_fill(0, md::RngStream::kSampleInit, 0, 0, z, 4);
  uint32_t words[4];
  md::philox4x32(0, md::Counter{{1, 0, 0, 0}}, words);
  // Recompute the first Box-Muller pair in double with the C library as a cross-check.
  const double u1 = (words[0] + 1.0) / 4294967296.0, u2 = words[1] / 4294967296.0;
  const double r = std::sqrt(-2 * std::log(u1));
  EXPECT_NEAR(z[0], r * std::cos(2 * M_PI * u2), 1e-6);
  EXPECT_NEAR(z[1], r * std::sin(2 * M_PI * u2), 1e-6);
}

TEST(Uniform, BoundedIsInRangeAndCoversIt) {
  std::vector<uint32_t> bits(100000);
  md::bits_fill(1, md::RngStream::kTrainTime, 0, 0, bits.data(), bits.size());
  std::vector<int> hist(7, 0);
  for (uint32_t b : bits) {
    const uint32_t v = md::bounded_from_bits(b, 7);
    ASSERT_LT(v, 7u);
    ++hist[v];
  }
  for (int h : hist) EXPECT_NEAR(h, 100000 / 7.0, 600);  // ~5 sigma
  for (uint32_t b : {0u, 1u, 0xffffffffu}) {
    const float u = md::uniform_from_bits(b);
    EXPECT_GE(u, 0.0f);
    EXPECT_LT(u, 1.0f);
  }
}
