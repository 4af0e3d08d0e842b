// Built with -ffp-contract=off (see CMakeLists.txt): FMA contraction would
// change the rounding and break bit-identical noise across platforms.
#include "microdiffusion/rng.h"

#include "scalar_math.h"

namespace md {
namespace {

constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;

inline void mulhilo(uint32_t a, uint32_t b, uint32_t* hi, uint32_t* lo) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  *lo = static_cast<uint32_t>(p);
}

constexpr double kLn2 = 0.6931471805599453094;
constexpr double kPi = 3.14159265358979323846;
// 1/27, 1/25, ..., 1/1: the series' coefficients, rounded by the compiler as
// the division would round them at run time (the same bits, no soft-float
// divisions on a single-precision FPU).
constexpr double kInvOdd[14] = {1.0 / 27, 1.0 / 25, 1.0 / 23, 1.0 / 21, 1.0 / 19, 1.0 / 17, 1.0 / 15,
                                1.0 / 13, 1.0 / 11, 1.0 / 9,  1.0 / 7,  1.0 / 5,  1.0 / 3,  1.0 / 1};

using math::cos_small_d;
using math::sin_small_d;

}  // namespace

void philox4x32(uint64_t seed, const Counter& counter, uint32_t out[4]) {
  uint32_t c0 = counter.c[0], c1 = counter.c[1], c2 = counter.c[2], c3 = counter.c[3];
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kPhiloxM0, c0, &hi0, &lo0);
    mulhilo(kPhiloxM1, c2, &hi1, &lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0;
    const uint32_t n1 = lo1;
    const uint32_t n2 = hi0 ^ c3 ^ k1;
    const uint32_t n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

double portable_log(double x) {
  // x = m * 2^e with m in [sqrt(1/2), sqrt(2)); log(m) = 2 atanh(s), s = (m-1)/(m+1).
  int e = 0;
  while (x >= 1.4142135623730951) { x *= 0.5; ++e; }
  while (x < 0.70710678118654752) { x *= 2.0; --e; }
  const double s = (x - 1.0) / (x + 1.0);  // |s| <= 0.1716
  const double s2 = s * s;
  double sum = 0.0;
  for (double inv_k : kInvOdd) sum = sum * s2 + inv_k;  // sum_k s^(k-1)/k, k = 27, 25, ..., 1
  return 2.0 * s * sum + e * kLn2;
}

void portable_sincos_2pi(double u, double* s, double* c) {
  // Quadrant k and fraction r are exact in u's domain (scaling by 4 is exact);
  // the angle within the quadrant is folded to at most pi/4 for the polynomials.
  const double v = u * 4.0;
  int k = static_cast<int>(v);
  if (k > 3) k = 3;
  if (k < 0) k = 0;
  const double r = v - k;  // [0, 1)
  double sr, cr;           // sin/cos of r * pi/2
  if (r <= 0.5) {
    const double x = r * (kPi / 2.0);
    sr = sin_small_d(x);
    cr = cos_small_d(x);
  } else {
    const double y = (1.0 - r) * (kPi / 2.0);
    sr = cos_small_d(y);
    cr = sin_small_d(y);
  }
  switch (k) {  // rotate by k quarter turns
    case 0: *s = sr; *c = cr; break;
    case 1: *s = cr; *c = -sr; break;
    case 2: *s = -sr; *c = -cr; break;
    default: *s = -cr; *c = sr; break;
  }
}

void bits_fill(uint64_t seed, RngStream stream, uint32_t a, uint32_t b, uint32_t* out, size_t n) {
  uint32_t words[4];
  for (size_t j = 0; j < n; j += 4) {
    const Counter ctr{{static_cast<uint32_t>(stream), a, b, static_cast<uint32_t>(j / 4)}};
    philox4x32(seed, ctr, words);
    for (size_t k = 0; k < 4 && j + k < n; ++k) out[j + k] = words[k];
  }
}

void uniform_fill(uint64_t seed, RngStream stream, uint32_t a, uint32_t b, float* out, size_t n) {
  uint32_t words[4];
  for (size_t j = 0; j < n; j += 4) {
    const Counter ctr{{static_cast<uint32_t>(stream), a, b, static_cast<uint32_t>(j / 4)}};
    philox4x32(seed, ctr, words);
    for (size_t k = 0; k < 4 && j + k < n; ++k) out[j + k] = uniform_from_bits(words[k]);
  }
}

void gaussian_fill(uint64_t seed, RngStream stream, uint32_t a, uint32_t b, float* out, size_t n) {
  // One Philox call gives two Box-Muller pairs: four normals per counter.
  uint32_t words[4];
  for (size_t j = 0; j < n; j += 4) {
    const Counter ctr{{static_cast<uint32_t>(stream), a, b, static_cast<uint32_t>(j / 4)}};
    philox4x32(seed, ctr, words);
    double z[4];
    for (size_t p = 0; p < 2 && j + 2 * p < n; ++p) {  // a pair only if one of its normals is used
      // u1 in (0, 1] so log is finite; u2 in [0, 1). 32 bits each.
      const double u1 = (static_cast<double>(words[2 * p]) + 1.0) * (1.0 / 4294967296.0);
      const double u2 = static_cast<double>(words[2 * p + 1]) * (1.0 / 4294967296.0);
      double l = -2.0 * portable_log(u1);
      if (l < 0.0) l = 0.0;  // log(1) may round to a tiny positive value
      const double radius = math::sqrt_d(l);  // correctly rounded, as IEEE sqrt
      double s, c;
      portable_sincos_2pi(u2, &s, &c);
      z[2 * p] = radius * c;
      z[2 * p + 1] = radius * s;
    }
    for (size_t k = 0; k < 4 && j + k < n; ++k) out[j + k] = static_cast<float>(z[k]);
  }
}

}  // namespace md
