// Compute kernels behind the layers. Every kernel has one plain reference
// implementation (reference.cpp); SIMD variants (avx2.cpp, avx512.cpp,
// neon.cpp, helium.cpp, all built from the templates in simd.h) plug in beside
// it and are checked against it (tests/test_kernels.cpp; helium, which only
// bare-metal Armv8.1-M builds have, by examples/firmware/kernel_check.cpp
// under QEMU). Matrices are row-major; sizes come last.
//
// The free functions below dispatch through the active variant's table
// (dispatch.cpp): chosen at first use from what this build was compiled for
// and, on x86, what CPUID reports; MD_KERNELS (hosted builds) or
// md::select_kernel_variant (microdiffusion/kernels.h) override the choice.
#pragma once
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "microdiffusion/model.h"

namespace md {
namespace kernels {

// Y (M, N) = X (M, K) . W (K, N) + b (N); b may be null.
void gemm_bias(float* Y, const float* X, const float* W, const float* b, int M, int K, int N);
// dX (M, K) = dY (M, N) . W (K, N)^T. `pack`: null, or
// weight_grad_pack_floats(K) floats of scratch (the same as gemm_tn_acc's)
// that a variant may keep a chunk's transposed W panels in across row blocks;
// bit-identical either way.
void gemm_nt(float* dX, const float* dY, const float* W, int M, int N, int K, float* pack = nullptr);
// dW (K, N) += X (M, K)^T . dY (M, N). `pack`: null, or K * kWeightGradPackRows
// floats of scratch (model.h: weight_grad_pack_floats) that the vector
// variants copy X^T into when K >= kWeightGradPackMinWidth (avx2), or keep a
// reduction chunk's dY panels in when K > 256 (avx512); bit-identical either
// way.
void gemm_tn_acc(float* dW, const float* X, const float* dY, int M, int K, int N, float* pack = nullptr);
// Y = X . W + b with W stored in reduced precision and read in place: f16,
// or int8 with a scale per output column (w = scales[n] * q). The vector
// variants widen W (int8: times its scale) into the packed panels of their
// f32 GEMM; the reference (quantized.cpp) widens a row segment at a time and
// scales each int8 column's sum once. Both agree with the f32 product on the
// dequantized weights within float rounding.
void gemm_bias_f16(float* Y, const float* X, const uint16_t* W, const float* b, int M, int K, int N);
void gemm_bias_i8(float* Y, const float* X, const int8_t* W, const float* scales, const float* b, int M, int K, int N);
void gemm_bias_f16_reference(float* Y, const float* X, const uint16_t* W, const float* b, int M, int K, int N);
void gemm_bias_i8_reference(float* Y, const float* X, const int8_t* W, const float* scales, const float* b, int M,
                            int K, int N);
// db (N) += sum over rows of dY (M, N)
void colsum_acc(float* db, const float* dY, int M, int N);

// y = act(x), elementwise; y may alias x (be x itself: no partial overlap).
void activation_forward(Activation a, float* y, const float* x, size_t n);
// y = f(x) + h (a residual block): the same values as activation_forward and
// then y[i] += h[i], in one pass where the variant has it; y may alias x (not h).
void activation_forward_residual(Activation a, float* y, const float* x, const float* h, size_t n);
// dx = dy * act'(x); dx may alias dy.
void activation_backward(Activation a, float* dx, const float* x, const float* dy, size_t n);

// Adam / AdamW step over a flat block (torch.optim.Adam's single-tensor path,
// same formula and operation order, every variant bit-identical to the
// reference: IEEE sqrt and division, no fused multiply-adds):
//   g = grad (+ wd * p for Adam with weight decay; p *= decay for AdamW)
//   m = m * b1 + (1 - b1) * g
//   v = v * b2 + (1 - b2) * g * g
//   p -= step_size * (m / (sqrt(v) / bc2_sqrt + eps))
struct AdamStep {
  float b1, b2, one_minus_b1, one_minus_b2;
  float step_size;  // lr / (1 - b1^t)
  float bc2_sqrt;   // sqrt(1 - b2^t)
  float eps;
  float weight_decay;  // Adam's L2 term (used when !decoupled)
  float decay;         // AdamW's 1 - lr * weight_decay (used when decoupled)
  bool decoupled;
};
void adam_update(float* p, float* m, float* v, const float* grad, size_t n, const AdamStep& s);
// The update above for elements [i, n), one at a time: the reference, and the
// tail of every vector variant (compiled with -ffp-contract=off everywhere).
// Static, as the scalar forms below: each ISA file compiles its own copy
// with its own flags, and an out-of-line copy of a plain inline function is a
// shared symbol the linker could satisfy with the AVX-512 one.
static inline void adam_update_scalar(float* p, float* m, float* v, const float* grad, size_t i, size_t n,
                                      const AdamStep& s) {
  for (; i < n; ++i) {
    float g = grad[i];
    if (s.decoupled) {
      p[i] *= s.decay;
    } else if (s.weight_decay != 0.0f) {
      g += s.weight_decay * p[i];
    }
    m[i] = m[i] * s.b1 + s.one_minus_b1 * g;
    v[i] = v[i] * s.b2 + s.one_minus_b2 * g * g;
    const float denom = sqrtf(v[i]) / s.bc2_sqrt + s.eps;
    p[i] -= s.step_size * (m[i] / denom);
  }
}
// The sum of x[i]^2 in double (the trainer's gradient norm), bit-identical
// across variants: element i adds to partial sum i mod 32 (each product of
// two floats is exact in double, so fused or not it rounds once), and the 32
// partial sums combine in the fixed tree of sum_squares_scalar. 32 chains
// instead of one keep the adds' latency off the critical path.
double sum_squares(const float* x, size_t n);
constexpr size_t kSumSquaresLanes = 32;
// Elements [i, n) into part[] (i a multiple of kSumSquaresLanes), then the
// tree: the reference, and what every vector variant leaves.
static inline double sum_squares_scalar(double* part, const float* x, size_t i, size_t n) {
  for (size_t l = 0; i + l < n; ++l) part[l % kSumSquaresLanes] += static_cast<double>(x[i + l]) * x[i + l];
  for (size_t width = kSumSquaresLanes / 2; width >= 1; width /= 2)
    for (size_t l = 0; l < width; ++l) part[l] = part[2 * l] + part[2 * l + 1];
  return part[0];
}
// ema = d * ema + one_minus_d * p (bit-identical across variants)
void ema_update(float* ema, const float* p, size_t n, float d, float one_minus_d);

// s[i] = sin(a[i]), c[i] = cos(a[i]) (the sinusoidal embeddings); s may alias a.
void sincos(const float* a, float* s, float* c, size_t n);

// The time gate, row by row with G the (T, w) table: y (B, w) = u * G[t[b]].
// y may alias u. The timesteps are the caller's to check (t[b] < T).
void time_gate(float* y, const float* u, const float* G, const int32_t* t, int B, int w);
// Its backward: dG[t[b]] += dy * u, then dz = dy * G[t[b]], rows in order (rows
// sharing a timestep add to dG in row order). dz may alias dy.
void time_gate_backward(float* dz, float* dG, const float* dy, const float* u, const float* G, const int32_t* t,
                        int B, int w);
// One row of that backward from column i on: the reference, and the tail of
// every vector variant.
static inline void time_gate_backward_scalar(float* dz, float* dG, const float* dy, const float* u, const float* G,
                                             int i, int w) {
  for (; i < w; ++i) {
    dG[i] += dy[i] * u[i];
    dz[i] = dy[i] * G[i];
  }
}

// Scalar forms, shared by all variants and by tests.
float activation_value(Activation a, float x);
float activation_derivative(Activation a, float x);

// ---- Variants ----------------------------------------------------------------

struct KernelTable {
  const char* name;
  void (*gemm_bias)(float* Y, const float* X, const float* W, const float* b, int M, int K, int N);
  // cache: null, or cache_floats floats of scratch (AVX-512 keeps a chunk's
  // packed W^T panels there when the rows take several row blocks).
  void (*gemm_nt)(float* dX, const float* dY, const float* W, int M, int N, int K, float* cache,
                  size_t cache_floats);
  // Rows [k_begin, k_end) of dW only (the parallel split cuts dW's rows);
  // pack: null, or (k_end - k_begin) * kWeightGradPackRows floats.
  void (*gemm_tn_acc)(float* dW, const float* X, const float* dY, int M, int K, int N, int k_begin, int k_end,
                      float* pack);
  void (*colsum_acc)(float* db, const float* dY, int M, int N);
  void (*activation_forward)(Activation a, float* y, const float* x, size_t n);
  void (*activation_backward)(Activation a, float* dx, const float* x, const float* dy, size_t n);
  void (*adam_update)(float* p, float* m, float* v, const float* grad, size_t n, const AdamStep& s);
  void (*ema_update)(float* ema, const float* p, size_t n, float d, float one_minus_d);
  void (*sincos)(const float* a, float* s, float* c, size_t n);
  void (*time_gate)(float* y, const float* u, const float* G, const int32_t* t, int B, int w);
  void (*time_gate_backward)(float* dz, float* dG, const float* dy, const float* u, const float* G,
                             const int32_t* t, int B, int w);
  double (*sum_squares)(const float* x, size_t n);
};

// The kernels inference needs, once more per variant: the sampler's
// entry points (gemm_bias, activation_forward) dispatch through these, so an
// image that only samples does not link a variant's training kernels
// (KernelTable points at all of them).
struct ForwardKernels {
  void (*gemm_bias)(float* Y, const float* X, const float* W, const float* b, int M, int K, int N);
  void (*gemm_bias_f16)(float* Y, const float* X, const uint16_t* W, const float* b, int M, int K, int N);
  void (*gemm_bias_i8)(float* Y, const float* X, const int8_t* W, const float* scales, const float* b, int M, int K,
                       int N);
  void (*activation_forward)(Activation a, float* y, const float* x, size_t n);
  // y = f(x) + h in one pass; null: activation_forward, then the addition.
  void (*activation_residual)(Activation a, float* y, const float* x, const float* h, size_t n);
  void (*sincos)(const float* a, float* s, float* c, size_t n);
  void (*time_gate)(float* y, const float* u, const float* G, const int32_t* t, int B, int w);
};

// One table per variant. Only the ones compiled into this build are defined:
// dispatch.cpp references avx2/avx512 when CMake compiled them
// (MD_KERNELS_HAVE_AVX2/AVX512), neon when MD_KERNELS_NEON is 1 and helium
// when MD_KERNELS_HELIUM is 1.
extern const KernelTable kReferenceTable;
extern const KernelTable kAvx2Table;
extern const KernelTable kAvx512Table;
extern const KernelTable kNeonTable;
extern const KernelTable kHeliumTable;
extern const ForwardKernels kReferenceForward;
extern const ForwardKernels kAvx2Forward;
extern const ForwardKernels kAvx512Forward;
extern const ForwardKernels kNeonForward;
extern const ForwardKernels kHeliumForward;
#if defined(__ARM_NEON) && (defined(__aarch64__) || defined(__ARM_FEATURE_FMA))
#define MD_KERNELS_NEON 1  // AArch64, or ARMv7 with NEON and VFPv4 (vfma)
#else
#define MD_KERNELS_NEON 0
#endif
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 2)
#define MD_KERNELS_HELIUM 1  // Armv8.1-M with MVE floating point (e.g. -mcpu=cortex-m55)
#else
#define MD_KERNELS_HELIUM 0
#endif

// The table called `name` ("reference", "avx2", "avx512", "neon", "helium") if
// it is compiled in and this CPU can run it, else null. "auto" is not a table
// name.
const KernelTable* find_variant(const char* name);
// The inference kernels of variant `name`, under the same conditions.
const ForwardKernels* find_forward_variant(const char* name);
// The active table (selecting one on first use).
const KernelTable& active_table();

}  // namespace kernels
}  // namespace md
