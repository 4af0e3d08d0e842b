// The runtime's own scalar transcendentals, used on the sampling path (the
// schedule, the samplers, the activations and the embeddings) instead of the
// C library's, so that a firmware image that samples links no libm at all
// (newlib's double exp/log/expm1/cos/sqrt and float erf/tanh/log1p/sin/cos
// are about 17 KB on a Cortex-M4F). Portable C++, no tables; every function
// here is checked against the host's libm over wide ranges by
// tests/test_scalar_math.cpp, which prints the worst error it finds.
//
// Accuracy (measured by that test):
//   float:  exp_f within 2 ulp; tanh_f within 2.4e-7 absolute or 4 ulp;
//           log1p01_f within 3e-7 relative; phi_f (the normal CDF) within
//           2e-6 relative above x = -5.6 and 2e-8 absolute below (its tail
//           is clamped, as the vector kernels'); sincos_f within 4 units of
//           2^-24 for |a| up to 1e6 (the reduction is done in double; from
//           |a| = 1e9 on, where a float carries no angle, sin 0 and cos 1);
//   double: exp_d, expm1_d within 4e-16 relative, log_d within 5e-16;
//           sqrt_d correctly rounded (bit for bit IEEE sqrt on every input
//           the test tries). The double sin/cos is the generator's
//           portable_sincos_2pi (microdiffusion/rng.h).
// The float forms follow the vector kernels' (kernels/simd.h VMath): the same
// polynomials, one lane at a time.
#pragma once
#include <stdint.h>

#include "activation_limits.h"

namespace md {
namespace math {

// ---- float ---------------------------------------------------------------

float exp_f(float x);         // e^x; NaN in, NaN out; +inf above 88.72, 0 below -87.34
float tanh_f(float x);
float log1p01_f(float t);     // log(1 + t) for t in [0, 1]
float phi_f(float x);         // (1 + erf(x / sqrt 2)) / 2, accurate in the lower tail
void sincos_f(float a, float* s, float* c);

// ---- double --------------------------------------------------------------

double exp_d(double x);
double expm1_d(double x);
double log_d(double x);       // x > 0
double sqrt_d(double x);      // correctly rounded: the instruction where there is one, else:
double sqrt_d_portable(double x);
double sin_small_d(double x);  // |x| <= pi/4, error < 1e-16 (also the noise generator's)
double cos_small_d(double x);

inline float clamp_f(float v, float lo, float hi) { return v > lo ? (v < hi ? v : hi) : lo; }  // NaN -> lo
inline double fabs_d(double v) { return v < 0.0 ? -v : v; }

}  // namespace math
}  // namespace md
