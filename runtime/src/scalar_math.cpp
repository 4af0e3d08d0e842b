// Scalar transcendentals for the sampling path (scalar_math.h). Built with
// -ffp-contract=off like rng.cpp: the noise generator's sin/cos polynomials
// live here, and its bits must not depend on whether the compiler fuses a*b+c.
#include "scalar_math.h"

#include <string.h>

#include "microdiffusion/rng.h"

namespace md {
namespace math {
namespace {

inline float bits_to_float(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
inline double bits_to_double(uint64_t u) {
  double d;
  memcpy(&d, &u, 8);
  return d;
}
constexpr double kInf = __builtin_inf();
constexpr double kPio2Hi = 1.57079632673412561417e+00;  // pi/2: 33 bits (k * hi exact for |k| < 2^20) ...
constexpr double kPio2Lo = 6.07710050650619224932e-11;  // ... and the rest

// Round to the nearest integer, halves away from zero (|v| < 2^31).
inline int32_t round_i(double v) { return static_cast<int32_t>(v < 0.0 ? v - 0.5 : v + 0.5); }

// v * 2^n for n in [-1074, 1024] (two steps where 2^n alone is not a normal double).
double scale2(double v, int32_t n) {
  if (n > 1023) return v * 2.0 * bits_to_double(static_cast<uint64_t>(n - 1 + 1023) << 52);
  if (n < -1022) return v * bits_to_double(static_cast<uint64_t>(n + 54 + 1023) << 52) * 0x1p-54;
  return v * bits_to_double(static_cast<uint64_t>(n + 1023) << 52);
}

}  // namespace

// sin(x) and cos(x) for |x| <= pi/4 by Taylor polynomials (error < 1e-16).
// Taylor coefficients, highest power first, evaluated by one Horner loop: the
// same operations in the same order as the nested form, in a third of the
// code on a soft-float target (each unrolled term is a call and a literal).
namespace {
constexpr double kSinTaylor[8] = {-1.0 / 1307674368000.0, 1.0 / 6227020800.0, -1.0 / 39916800, 1.0 / 362880,
                                  -1.0 / 5040, 1.0 / 120, -1.0 / 6, 1.0};
constexpr double kCosTaylor[9] = {1.0 / 20922789888000.0, -1.0 / 87178291200.0, 1.0 / 479001600.0, -1.0 / 3628800,
                                  1.0 / 40320, -1.0 / 720, 1.0 / 24, -0.5, 1.0};
double horner(const double* c, int n, double x2) {
  double p = c[0];
  for (int i = 1; i < n; ++i) p = c[i] + x2 * p;
  return p;
}
}  // namespace

double sin_small_d(double x) { return x * horner(kSinTaylor, 8, x * x); }
double cos_small_d(double x) { return horner(kCosTaylor, 9, x * x); }

// ---- float ---------------------------------------------------------------

// Cephes' expf (kernels/simd.h VMath::exp): n = round(x log2 e),
// r = x - n ln 2 in two parts (n * 0.693359375 is exact), e^r = 1 + r + r^2 P(r).
float exp_f(float x) {
  if (x != x) return x;
  if (x > 88.72283f) return static_cast<float>(kInf);
  if (x < -87.33654f) return 0.0f;
  const float t = x * 1.44269504088896341f;
  const int32_t n = static_cast<int32_t>(t < 0.0f ? t - 0.5f : t + 0.5f);  // [-126, 128]
  const float fn = static_cast<float>(n);
  float r = x - fn * 0.693359375f;
  r = r + fn * 2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * (r * r) + (r + 1.0f);
  if (n > 127) return y * 2.0f * bits_to_float(254u << 23);
  return y * bits_to_float(static_cast<uint32_t>(n + 127) << 23);
}

// 2 atanh(s), s = t / (2 + t) in [0, 1/3]; atanh(s) / s a polynomial in s^2.
float log1p01_f(float t) {
  const float s = t / (t + 2.0f);
  const float z = s * s;
  float y = 0.1407888918155454f;
  y = y * z + 0.13982578872598634f;
  y = y * z + 0.20012297615351874f;
  y = y * z + 0.33333160820688887f;
  y = y * z + 1.0000000038408794f;
  return (s + s) * y;
}

// x + x^3 P(x^2) below 0.625 (Cephes' tanhf), else sign(x) (1 - e) / (1 + e), e = exp(-2|x|).
float tanh_f(float x) {
  const float a = x < 0.0f ? -x : x;
  if (a < 0.625f) {
    const float z = x * x;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z + -5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z + -3.33332819422e-1f;
    return (p * z) * x + x;
  }
  const float e = exp_f(-2.0f * a);
  const float big = (1.0f - e) / (1.0f + e);
  return x < 0.0f ? -big : big;
}

// |z| < 1 (z = x / sqrt 2): 1/2 + erf(z) / 2 with erf(z) = z P(z^2); else
// erfc(|z|) = exp(-z^2) R(1/|z|) (clamped beyond |z| = 4), Phi = 1 - erfc/2 or erfc/2.
float phi_f(float x) {
  const float z = x * 0.7071067811865476f;
  const float a = z < 0.0f ? -z : z;
  const float z2 = z * z;
  if (a < 1.0f) {
    float p = 7.8758750626854883e-5f;
    p = p * z2 + -0.00080168642871658695f;
    p = p * z2 + 0.005189087423433974f;
    p = p * z2 + -0.026854212010626412f;
    p = p * z2 + 0.11283594715160218f;
    p = p * z2 + -0.37612626666720331f;
    p = p * z2 + 1.1283791658483509f;
    return (z * p) * 0.5f + 0.5f;
  }
  if (a != a) return x;
  const float t = a < 4.0f ? 1.0f / a : 0.25f;
  float q = 0.025032543186535637f;
  q = q * t + -0.14789844462513762f;
  q = q * t + 0.36086186040483293f;
  q = q * t + -0.42983374861601877f;
  q = q * t + 0.14547734763553956f;
  q = q * t + 0.2825897937336853f;
  q = q * t + -0.39485958794873936f;
  q = q * t + 0.024847521258800558f;
  q = q * t + 0.56121463798951681f;
  q = q * t + 0.00015165568581170204f;
  const float half_erfc = z2 > kGaussianTailSquare ? 0.0f : (exp_f(-z2) * q) * 0.5f;  // as the vector kernels
  return x < 0.0f ? half_erfc : 1.0f - half_erfc;
}

// a = k pi/2 + r, reduced in double (exact enough for |a| < 2^20 pi/2), then
// Cephes' sinf / cosf polynomials on r in [-pi/4, pi/4] and a quarter-turn rotation.
// From |a| = 1e9 on, where one float step is 64 radians and a carries no
// angle, the result is sin 0, cos 1 (k would overflow the reduction's int).
void sincos_f(float a, float* s, float* c) {
  if (a - a != 0.0f) {  // inf or NaN
    *s = *c = a - a;
    return;
  }
  if (!(a < 1e9f && a > -1e9f)) {
    *s = 0.0f;
    *c = 1.0f;
    return;
  }
  const double da = a;
  const int32_t k = round_i(da * 0.63661977236758134308);
  const double dk = k;
  const float r = static_cast<float>((da - dk * kPio2Hi) - dk * kPio2Lo);
  const float z = r * r;
  const float sr = ((-1.9515295891e-4f * z + 8.3321608736e-3f) * z - 1.6666654611e-1f) * z * r + r;
  const float cr = ((2.443315711809948e-5f * z - 1.388731625493765e-3f) * z + 4.166664568298827e-2f) * z * z -
                   0.5f * z + 1.0f;
  switch (static_cast<uint32_t>(k) & 3u) {
    case 0: *s = sr; *c = cr; break;
    case 1: *s = cr; *c = -sr; break;
    case 2: *s = -sr; *c = -cr; break;
    default: *s = -cr; *c = sr; break;
  }
}

// ---- double --------------------------------------------------------------

// n = round(x / ln 2), r = x - n ln 2 in two parts (|r| <= 0.35), e^r by its
// Taylor series to r^13 (remainder below 1e-17), times 2^n.
double exp_d(double x) {
  if (x != x) return x;
  if (x > 709.8) return kInf;
  if (x < -745.2) return 0.0;
  const int32_t n = round_i(x * 1.44269504088896338700);
  const double dn = n;
  const double r = (x - dn * 6.93147180369123816490e-01) - dn * 1.90821492927058770002e-10;
  double p = 1.0;
  for (int k = 13; k >= 1; --k) p = 1.0 + r * p / k;
  return scale2(p, n);
}

// |x| < 1/2: x (1 + x/2 (1 + x/3 (...))) to x^17 (remainder below 1e-20 relative); else e^x - 1.
double expm1_d(double x) {
  if (!(x > -0.5 && x < 0.5)) return x != x ? x : exp_d(x) - 1.0;
  double p = 1.0;
  for (int k = 17; k >= 2; --k) p = 1.0 + x * p / k;
  return x * p;
}

double log_d(double x) {
  if (!(x > 0.0)) return x == 0.0 ? -kInf : (x - x) / 0.0;  // log(0) = -inf; negative or NaN: NaN
  if (x == kInf) return x;
  return portable_log(x);
}

// Integer square root, bit for bit IEEE (no double arithmetic, so no
// soft-float calls on an FPU without double precision). x = m 2^E with m an
// integer in [2^52, 2^54) and E even; Q = sqrt(m 2^54) has 54 bits, the
// rounded result is Q / 2 rounded to nearest (Q's last bit is the round bit,
// and no square root lands exactly halfway). The first 27 bits, isqrt(m),
// start from a float square root (vsqrt.f32 where there is one) and are made
// exact with integer corrections; the other 27 come one at a time from the
// exact remainder (restoring digit-by-digit square root).
double sqrt_d_portable(double x) {
  if (!(x > 0.0) || x == kInf) return x == 0.0 || x == kInf ? x : (x - x) / 0.0;
  uint64_t bits;
  memcpy(&bits, &x, 8);
  int32_t e = static_cast<int32_t>(bits >> 52);  // x > 0: no sign bit
  uint64_t m = bits & ((1ull << 52) - 1);
  if (e == 0) {  // subnormal: normalise the mantissa
    e = 1;
    while (!(m >> 52)) {
      m <<= 1;
      --e;
    }
  } else {
    m |= 1ull << 52;
  }
  int32_t E = e - 1075;  // x = m 2^E, m in [2^52, 2^53)
  if (E & 1) {
    m <<= 1;
    --E;
  }
  // isqrt(m) < 2^27 from sqrt(m >> 22) 2^11, then corrected (the estimate is within about 16).
  uint64_t q = static_cast<uint32_t>(__builtin_sqrtf(static_cast<float>(static_cast<uint32_t>(m >> 22))) * 2048.0f);
  while (q * q > m) --q;
  while ((q + 1) * (q + 1) <= m) ++q;
  uint64_t r = m - q * q;  // < 2q + 1
  for (int i = 0; i < 27; ++i) {  // the remaining bits: radicand pairs of zeros
    r <<= 2;
    const uint64_t t = (q << 2) | 1u;
    q <<= 1;
    if (r >= t) {
      r -= t;
      q |= 1u;
    }
  }
  // q in [2^53, 2^54): mantissa (q >> 1) + round bit, a carry moving into the exponent.
  const uint64_t mant = (q >> 1) + (q & 1u);
  const uint64_t out = (static_cast<uint64_t>(E / 2 + 1048) << 52) + mant;
  return bits_to_double(out);
}

double sqrt_d(double x) {
#if defined(__x86_64__) || defined(__aarch64__) || (defined(__ARM_FP) && (__ARM_FP & 8)) || \
    (defined(__SSE2_MATH__) && defined(__i386__))
  return __builtin_sqrt(x);  // one instruction here
#else
  return sqrt_d_portable(x);
#endif
}

}  // namespace math
}  // namespace md
