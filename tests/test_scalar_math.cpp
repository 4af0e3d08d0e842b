// The runtime's scalar transcendentals (runtime/src/scalar_math.h) against the
// host's libm in double precision, over wide ranges. Each test prints the
// worst error it finds; the bounds are the ones scalar_math.h states.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>

#include "scalar_math.h"

namespace {

namespace mm = md::math;

// Distance in float ulps (at the reference's magnitude).
double ulps_f(float got, double want) {
  const double ulp = std::ldexp(1.0, std::ilogb(static_cast<float>(want) == 0.0f ? FLT_MIN : static_cast<float>(want)) - 23);
  return std::fabs(got - want) / ulp;
}

struct Worst {
  const char* what;
  double err = 0.0, at = 0.0;
  void see(double e, double x) {
    if (e > err || std::isnan(e)) err = e, at = x;
  }
  ~Worst() { std::printf("[ worst    ] %-28s %.3g at x = %.17g\n", what, err, at); }
};

template <class F>
void sweep(double lo, double hi, int n, F f) {
  std::mt19937_64 rng(1234);
  std::uniform_real_distribution<double> u(lo, hi);
  for (int i = 0; i <= n; ++i) f(lo + (hi - lo) * i / n);
  for (int i = 0; i < n; ++i) f(u(rng));
}

TEST(ScalarMath, ExpFloatWithinTwoUlp) {
  Worst w{"exp_f (ulp)"};
  sweep(-87.3, 88.7, 400000, [&](double xd) {
    const float x = static_cast<float>(xd);
    w.see(ulps_f(mm::exp_f(x), std::exp(static_cast<double>(x))), x);
  });
  EXPECT_LE(w.err, 2.0);
  EXPECT_EQ(mm::exp_f(-100.0f), 0.0f);
  EXPECT_TRUE(std::isinf(mm::exp_f(89.0f)));
  EXPECT_TRUE(std::isnan(mm::exp_f(NAN)));
  EXPECT_EQ(mm::exp_f(0.0f), 1.0f);
}

TEST(ScalarMath, TanhLog1pPhiFloat) {
  {
    Worst w{"tanh_f (abs or 2 ulp)"};
    sweep(-30, 30, 400000, [&](double xd) {
      const float x = static_cast<float>(xd);
      const double want = std::tanh(static_cast<double>(x));
      w.see(std::min(std::fabs(mm::tanh_f(x) - want) / 1.2e-7, ulps_f(mm::tanh_f(x), want) / 2.0), x);
    });
    EXPECT_LE(w.err, 2.0);  // within 2.4e-7 absolute or 4 ulp
  }
  {
    Worst w{"log1p01_f (relative)"};
    sweep(0, 1, 400000, [&](double td) {
      const float t = static_cast<float>(td);
      const double want = std::log1p(static_cast<double>(t));
      w.see(want == 0 ? std::fabs(mm::log1p01_f(t)) : std::fabs(mm::log1p01_f(t) - want) / want, t);
    });
    EXPECT_LE(w.err, 3e-7);
  }
  {
    Worst w{"phi_f (relative, x > -5.6)"};
    sweep(-5.6, 30, 400000, [&](double xd) {
      const float x = static_cast<float>(xd);
      const double want = 0.5 * std::erfc(-static_cast<double>(x) / std::sqrt(2.0));
      w.see(std::fabs(mm::phi_f(x) - want) / want, x);
    });
    EXPECT_LE(w.err, 2e-6);
    Worst w2{"phi_f (absolute, x < -5.6)"};
    sweep(-30, -5.6, 100000, [&](double xd) {
      const float x = static_cast<float>(xd);
      w2.see(std::fabs(mm::phi_f(x) - 0.5 * std::erfc(-static_cast<double>(x) / std::sqrt(2.0))), x);
    });
    EXPECT_LE(w2.err, 2e-8);  // the tail is clamped at |x / sqrt 2| = 4
  }
  EXPECT_TRUE(std::isnan(mm::tanh_f(NAN)));
  EXPECT_TRUE(std::isnan(mm::phi_f(NAN)));
  EXPECT_TRUE(std::isnan(mm::log1p01_f(NAN)));
  EXPECT_EQ(mm::tanh_f(50.0f), 1.0f);
  EXPECT_EQ(mm::tanh_f(-50.0f), -1.0f);
}

TEST(ScalarMath, SinCosFloatUpToLargeArguments) {
  Worst ws{"sincos_f sin (units of 2^-24)"}, wc{"sincos_f cos (units of 2^-24)"};
  auto check = [&](double ad) {
    const float a = static_cast<float>(ad);
    float s, c;
    mm::sincos_f(a, &s, &c);
    // Absolute error in units of 2^-24 (half an ulp of 1), or ulps near 0.
    const double ws_ = std::sin(static_cast<double>(a)), wc_ = std::cos(static_cast<double>(a));
    ws.see(std::min(std::fabs(s - ws_) * 0x1p24, ulps_f(s, ws_)), a);
    wc.see(std::min(std::fabs(c - wc_) * 0x1p24, ulps_f(c, wc_)), a);
  };
  sweep(-10, 10, 200000, check);
  sweep(-1e6, 1e6, 200000, check);
  for (int t = 0; t < 100000; ++t) check(t);
  EXPECT_LE(ws.err, 4.0);
  EXPECT_LE(wc.err, 4.0);
  float s, c;
  mm::sincos_f(INFINITY, &s, &c);
  EXPECT_TRUE(std::isnan(s) && std::isnan(c));
  // Huge arguments (fuzz_weights found -2.9e28 from a hostile embed scale):
  // no overflowing conversion (UBSan would report it), a bounded result.
  for (float a : {1e9f, -1e9f, 3e9f, -2.87793e28f, 3.4e38f, -3.4e38f}) {
    mm::sincos_f(a, &s, &c);
    EXPECT_EQ(s, 0.0f) << a;
    EXPECT_EQ(c, 1.0f) << a;
  }
  mm::sincos_f(9.99e8f, &s, &c);  // just below: still reduced
  EXPECT_NEAR(s, std::sin(static_cast<double>(9.99e8f)), 1e-6);
}

TEST(ScalarMath, ExpExpm1LogDouble) {
  {
    Worst w{"exp_d (relative)"};
    sweep(-708, 709, 400000, [&](double x) { w.see(std::fabs(mm::exp_d(x) - std::exp(x)) / std::exp(x), x); });
    EXPECT_LE(w.err, 4e-16);
    EXPECT_EQ(mm::exp_d(-746.0), 0.0);
    EXPECT_TRUE(std::isinf(mm::exp_d(710.0)));
    EXPECT_NEAR(mm::exp_d(-740.0), std::exp(-740.0), 1e-323);  // subnormal result
  }
  {
    Worst w{"expm1_d (relative)"};
    auto f = [&](double x) {
      if (x != 0.0) w.see(std::fabs(mm::expm1_d(x) - std::expm1(x)) / std::fabs(std::expm1(x)), x);
    };
    sweep(-40, 40, 200000, f);
    sweep(-1, 1, 200000, f);
    for (double x = 1e-300; x < 1; x *= 1.7) f(x), f(-x);
    EXPECT_LE(w.err, 4e-16);
  }
  {
    Worst w{"log_d (relative)"};
    auto f = [&](double x) { w.see(std::fabs(mm::log_d(x) - std::log(x)) / std::fabs(std::log(x)), x); };
    sweep(1e-6, 100, 200000, f);
    for (double x = 1e-300; x < 1e300; x *= 1.37) f(x);
    EXPECT_LE(w.err, 5e-16);
    EXPECT_TRUE(std::isinf(mm::log_d(0.0)) && mm::log_d(0.0) < 0);
    EXPECT_TRUE(std::isnan(mm::log_d(-1.0)));
    EXPECT_TRUE(std::isinf(mm::log_d(INFINITY)));
  }
}

// Bit for bit IEEE sqrt: the noise generator depends on it (rng.cpp).
TEST(ScalarMath, PortableSqrtIsCorrectlyRounded) {
  std::mt19937_64 rng(99);
  uint64_t mismatches = 0, tried = 0;
  auto check = [&](double x) {
    ++tried;
    const double got = mm::sqrt_d_portable(x), want = std::sqrt(x);
    if (std::memcmp(&got, &want, sizeof got) != 0 && !(std::isnan(got) && std::isnan(want))) {
      if (++mismatches < 5) ADD_FAILURE() << "sqrt_d_portable(" << x << ") = " << got << ", sqrt: " << want;
    }
  };
  // Every exponent, random mantissas (the whole positive range, subnormals included).
  for (int i = 0; i < 2000000; ++i) {
    const uint64_t bits = rng() & 0x7FFFFFFFFFFFFFFFull;
    double x;
    std::memcpy(&x, &bits, sizeof x);
    if (!std::isnan(x)) check(x);
  }
  // What the Box-Muller transform takes the root of: -2 log u, u in (0, 1].
  std::uniform_real_distribution<double> u(0.0, 50.0);
  for (int i = 0; i < 2000000; ++i) check(u(rng));
  for (double x : {0.0, -0.0, 1.0, 2.0, 4.0, DBL_MIN, DBL_MAX, DBL_TRUE_MIN, 1e-310, double(INFINITY), -1.0,
                   -double(INFINITY)})
    check(x);
  EXPECT_TRUE(std::isnan(mm::sqrt_d_portable(NAN)));
  EXPECT_EQ(mismatches, 0u) << "of " << tried;
  std::printf("[ worst    ] sqrt_d_portable: %llu of %llu differ from sqrt\n",
              static_cast<unsigned long long>(mismatches), static_cast<unsigned long long>(tried));
}

}  // namespace
