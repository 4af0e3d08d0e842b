// Portable counter-based random numbers (Philox4x32-10, Salmon et al. 2011).
//
// Every random number is a pure function of (seed, counter), so noise does not
// depend on batch size, call order, platform or compiler. Gaussians use
// Box-Muller with the runtime's own log/sin/cos built from IEEE +,-,*,/ and
// sqrt in double (compiled without FMA contraction), which are exactly rounded
// everywhere; the C library's transcendentals are not.
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace md {

struct Counter {
  uint32_t c[4];
};

// Four independent uniform 32-bit words for (seed, counter).
void philox4x32(uint64_t seed, const Counter& counter, uint32_t out[4]);

// Streams separate the uses of one seed so they never share counters.
enum class RngStream : uint32_t {
  kSampleInit = 1,   // x_T for a sample
  kSampleStep = 2,   // z at a sampling step
  kTrainTime = 3,    // t for a training example
  kTrainNoise = 4,   // epsilon for a training example
  kTrainIndex = 5,   // which data row a training example uses
  kInit = 6,         // parameter initialisation
  kDataset = 7,      // built-in datasets
  kTrainLabel = 8,   // label dropout for classifier-free guidance
  kBound = 9,        // x_t draws of the likelihood bound
};

// Uniform float in [0, 1) with 24 random bits.
inline float uniform_from_bits(uint32_t bits) {
  return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f);
}
// Uniform integer in [0, n), n > 0 (multiply-shift: deterministic, bias < n/2^32).
inline uint32_t bounded_from_bits(uint32_t bits, uint32_t n) {
  return static_cast<uint32_t>((static_cast<uint64_t>(bits) * n) >> 32);
}

// out[j] = the j-th standard normal of the sequence (seed, stream, a, b).
// Element j depends only on j, never on n: filling 3 then 4 values gives the
// same first 3 values as filling 4.
void gaussian_fill(uint64_t seed, RngStream stream, uint32_t a, uint32_t b, float* out, size_t n);
// Uniform [0, 1) floats of the sequence (seed, stream, a, b).
void uniform_fill(uint64_t seed, RngStream stream, uint32_t a, uint32_t b, float* out, size_t n);
// 32-bit words of the sequence (seed, stream, a, b).
void bits_fill(uint64_t seed, RngStream stream, uint32_t a, uint32_t b, uint32_t* out, size_t n);

// Portable transcendental functions used by the generator (max error a few
// ulp of double; identical results on every IEEE-754 platform).
double portable_log(double x);                      // x > 0
void portable_sincos_2pi(double u, double* s, double* c);  // sin/cos of 2*pi*u, u in [0,1)

}  // namespace md
