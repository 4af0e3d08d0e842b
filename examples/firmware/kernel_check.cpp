// Kernel self-test on the device: every SIMD kernel variant this image has
// (on the Cortex-M55: "helium") against the plain C++ "reference", with the
// tolerance model of tests/test_kernels.cpp (which cannot run bare metal):
//
//  * GEMMs (gemm_bias with and without bias, gemm_nt, gemm_tn_acc whole and
//    split into row ranges as the parallel split does) and colsum_acc at every
//    (M, K, N) of {0..9, 17, 33, 65}^3 and at larger shapes (the MLP's, and
//    ones crossing the reduction chunks and row blocks):
//    |got - reference| <= 1e-5 * (sum of |terms|). Every output is prefilled
//    with NaN (each must be written); every operand sits between NaN canaries
//    (a write past either end shows, and a read past the end that reached a
//    result would turn it into NaN).
//  * Activations and derivatives against double-precision libm (the exact
//    functions): |got - exact| <= max(2e-6 |exact|, 1e-6) over [-30, 30],
//    the thresholds and huge inputs; tails n = 0..65 with y aliasing x giving
//    the same bits; NaN in -> NaN out where the reference gives NaN.
//  * Adam (all three modes) and EMA bit for bit against the reference.
//  * The sampler: the firmware's 8 samples (seed 42, batch 8, T = 100) with
//    the variant and with the reference, within 1e-4 (compare_samples.sh's
//    bound for host vs firmware).
//
// Prints one line per check group and "kernel_check: ok ..." (exit 0), or
// FAIL lines and a nonzero exit. A variant this image does not have (helium
// on the Cortex-M4F / M7) is reported as not available and skipped.
//
// Built with -DMD_KERNEL_CHECK_TIMING=1 as kernel_timing.elf: no checks, just
// the sampler run with each variant timed by SysTick, and a calibration loop
// of known length. QEMU's SysTick follows its virtual clock, which counts
// executed instructions only under `-icount shift=0` (1 ns each; on
// mps3-an547 SysTick ticks at 32 MHz, one tick per 31.25 instructions); the
// image turns ticks into instructions per denoising step through the loop.
// That is no cycle model: QEMU counts every instruction, scalar or MVE, as
// one. Without -icount the figures follow the host's clock and mean nothing.
//   qemu-system-arm -M mps3-an547 -icount shift=0 -nographic
//       -semihosting-config enable=on,target=native -kernel kernel_timing.elf
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels/half.h"
#include "kernels/kernels.h"
#include "microdiffusion/microdiffusion.h"
#include "model_weights.h"
#include "semihosting.h"

#ifndef MD_FIRMWARE_BOARD
#define MD_FIRMWARE_BOARD "unknown board"
#endif
#ifndef MD_KERNEL_CHECK_TIMING
#define MD_KERNEL_CHECK_TIMING 0
#endif

namespace {

using md::Activation;
using md::kernels::AdamStep;
using md::kernels::KernelTable;

// ---- Output -------------------------------------------------------------------

int g_failures = 0;
constexpr int kMaxReported = 8;  // FAIL lines printed per run (all are counted)

bool report_failure() { return ++g_failures <= kMaxReported; }

// ---- Deterministic inputs -------------------------------------------------------

struct Rng {
  uint32_t s;
  uint32_t next() {  // xorshift32
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    return s;
  }
  float uniform(float lo, float hi) { return lo + (hi - lo) * static_cast<float>(next() >> 8) * (1.0f / 16777216.0f); }
};

// ---- Memory: a bump allocator over one static pool, each block between canaries --

constexpr size_t kPoolFloats = 104 * 1024;  // 416 KiB of the 512 KiB DTCM
constexpr size_t kPad = 4;                  // canary floats on each side
constexpr uint32_t kCanary = 0x7FC0DEADu;   // a quiet NaN with a payload
constexpr int kMaxBlocks = 24;
alignas(16) float g_pool[kPoolFloats];
size_t g_used = 0;
struct Block {
  float* p;
  size_t n;
};
Block g_blocks[kMaxBlocks];
int g_nblocks = 0;
bool g_out_of_memory = false;

void set_canary(float* p) { memcpy(p, &kCanary, sizeof(float)); }
bool is_canary(const float* p) { return memcmp(p, &kCanary, sizeof(float)) == 0; }

void pool_reset() {
  g_used = 0;
  g_nblocks = 0;
}

// n floats (n may be 0); the start moves by whole floats only, so blocks take
// every 4-byte alignment modulo 16 as the sizes vary.
float* alloc(size_t n) {
  if (g_used + n + 2 * kPad > kPoolFloats || g_nblocks == kMaxBlocks) {
    g_out_of_memory = true;
    return nullptr;
  }
  float* p = g_pool + g_used + kPad;
  for (size_t i = 0; i < kPad; ++i) {
    set_canary(p - kPad + i);
    set_canary(p + n + i);
  }
  g_blocks[g_nblocks++] = Block{p, n};
  g_used += n + 2 * kPad;
  return p;
}

bool canaries_intact() {
  for (int b = 0; b < g_nblocks; ++b)
    for (size_t i = 0; i < kPad; ++i)
      if (!is_canary(g_blocks[b].p - kPad + i) || !is_canary(g_blocks[b].p + g_blocks[b].n + i)) return false;
  return true;
}

void fill_random(float* p, size_t n, Rng& rng, float lo = -1.0f, float hi = 1.0f) {
  for (size_t i = 0; i < n; ++i) p[i] = rng.uniform(lo, hi);
}
void fill_nan(float* p, size_t n) {
  const float nan = __builtin_nanf("");
  for (size_t i = 0; i < n; ++i) p[i] = nan;
}
void copy(float* d, const float* s, size_t n) {
  if (n) memcpy(d, s, n * sizeof(float));
}

// ---- GEMMs ------------------------------------------------------------------------

struct Worst {  // largest |diff| / allowed seen, as a fraction of the tolerance
  double frac = 0.0;
  void add(double f) {
    if (f > frac) frac = f;
  }
};
Worst g_gemm_worst;

const char* g_variant = "";

fw::Line& shape_line(fw::Line& l, const char* kernel, int M, int K, int N) {
  return l.str("FAIL: ").str(g_variant).str(" ").str(kernel).str(" M=").u32(M).str(" K=").u32(K).str(" N=").u32(N);
}

void shape_failure(const char* kernel, int M, int K, int N, const char* what) {
  if (!report_failure()) return;
  fw::Line l;
  shape_line(l, kernel, M, K, N).str(": ").str(what).str("\n").print();
}

void element_failure(const char* kernel, int M, int K, int N, size_t i, float got, float want) {
  if (!report_failure()) return;
  fw::Line l;
  shape_line(l, kernel, M, K, N).str(": element ").u32(static_cast<uint32_t>(i)).str(" got ").f32(got, 7);
  l.str(" want ").f32(want, 7).str("\n").print();
}

// got vs want under |got - want| <= 1e-5 * bound(i) + 1e-30.
template <class Want, class Bound>
bool close(const char* kernel, int M, int K, int N, const float* got, const Want* want, size_t n, Bound bound) {
  for (size_t i = 0; i < n; ++i) {
    const double diff = fabs(static_cast<double>(got[i]) - want[i]);
    const double allowed = 1e-5 * bound(i) + 1e-30;
    if (!(diff <= allowed)) {
      element_failure(kernel, M, K, N, i, got[i], static_cast<float>(want[i]));
      return false;
    }
    g_gemm_worst.add(diff / allowed);
  }
  return true;
}

// One (M, K, N) of the three GEMMs and colsum_acc against the reference.
bool check_gemms(const KernelTable& t, const KernelTable& ref, int M, int K, int N, Rng& rng) {
  pool_reset();
  const size_t MK = static_cast<size_t>(M) * K, KN = static_cast<size_t>(K) * N, MN = static_cast<size_t>(M) * N;
  float* x = alloc(MK);
  float* w = alloc(KN);
  float* b = alloc(N);
  float* dy = alloc(MN);
  float* dw0 = alloc(KN);
  const size_t sizes[] = {MK, KN, MN};  // outputs: dX (MK), dW (KN), Y (MN), db (N)
  size_t out = static_cast<size_t>(N);
  for (size_t n : sizes)
    if (n > out) out = n;
  float* got = alloc(out);
  float* want = alloc(out);
  if (g_out_of_memory) {
    shape_failure("(pool)", M, K, N, "shape does not fit the pool");
    return false;
  }
  fill_random(x, MK, rng);
  fill_random(w, KN, rng);
  fill_random(b, N, rng);
  fill_random(dy, MN, rng);
  fill_random(dw0, KN, rng);
  bool ok = true;

  // gemm_bias, with a bias unless (M + N) % 3 == 0
  {
    const float* bias = (M + N) % 3 != 0 ? b : nullptr;
    fill_nan(got, MN);
    fill_nan(want, MN);
    t.gemm_bias(got, x, w, bias, M, K, N);
    ref.gemm_bias(want, x, w, bias, M, K, N);
    ok &= close("gemm_bias", M, K, N, got, want, MN, [&](size_t i) {
      const size_t r = i / N, c = i % N;
      double s = bias ? fabs(bias[c]) : 0.0;
      for (int k = 0; k < K; ++k) s += fabs(static_cast<double>(x[r * K + k]) * w[k * N + c]);
      return s;
    });
  }
  // gemm_nt: dX (M, K) = dY (M, N) . W (K, N)^T
  {
    fill_nan(got, MK);
    fill_nan(want, MK);
    t.gemm_nt(got, dy, w, M, N, K, nullptr, 0);
    ref.gemm_nt(want, dy, w, M, N, K, nullptr, 0);
    ok &= close("gemm_nt", M, K, N, got, want, MK, [&](size_t i) {
      const size_t r = i / K, k = i % K;
      double s = 0.0;
      for (int n = 0; n < N; ++n) s += fabs(static_cast<double>(dy[r * N + n]) * w[k * N + n]);
      return s;
    });
  }
  // gemm_tn_acc: dW (K, N) += X (M, K)^T . dY (M, N); whole, then in row
  // ranges of 16 (as dispatch.cpp splits it over workers) with a short last one.
  auto tn_bound = [&](size_t i) {
    const size_t k = i / N, c = i % N;
    double s = fabs(dw0[i]);
    for (int r = 0; r < M; ++r) s += fabs(static_cast<double>(x[r * K + k]) * dy[r * N + c]);
    return s;
  };
  copy(want, dw0, KN);
  ref.gemm_tn_acc(want, x, dy, M, K, N, 0, K, nullptr);
  {
    copy(got, dw0, KN);
    t.gemm_tn_acc(got, x, dy, M, K, N, 0, K, nullptr);
    ok &= close("gemm_tn_acc", M, K, N, got, want, KN, tn_bound);
  }
  if (K > 16) {
    copy(got, dw0, KN);
    for (int k0 = 0; k0 < K; k0 += 16) t.gemm_tn_acc(got, x, dy, M, K, N, k0, k0 + 16 < K ? k0 + 16 : K, nullptr);
    ok &= close("gemm_tn_acc (row ranges)", M, K, N, got, want, KN, tn_bound);
  }
  // colsum_acc: db (N) += column sums of dY (M, N)
  {
    copy(got, b, N);
    copy(want, b, N);
    t.colsum_acc(got, dy, M, N);
    ref.colsum_acc(want, dy, M, N);
    ok &= close("colsum_acc", M, 0, N, got, want, N, [&](size_t c) {
      double s = fabs(b[c]);
      for (int r = 0; r < M; ++r) s += fabs(dy[static_cast<size_t>(r) * N + c]);
      return s;
    });
  }
  if (!canaries_intact()) {
    shape_failure("gemms", M, K, N, "wrote outside an operand (canary overwritten)");
    ok = false;
  }
  return ok;
}

const int kGrid[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 17, 33, 65};

struct Shape {
  int M, K, N;
};
// Shapes like the firmware MLP's at batch 8 (hidden width 32, 2-D data), a
// wider MLP (32 x 128 x 128), few rows (batches of 1-3: wide column
// blocks, rank-P updates), reductions longer than the chunks (KC = 128) and
// more rows than a row block (MC = 64).
const Shape kLargeShapes[] = {{8, 32, 32},   {8, 2, 32},   {8, 32, 2},   {8, 48, 32},  {32, 128, 128},
                              {1, 128, 128}, {3, 140, 45}, {2, 300, 21}, {70, 260, 9}, {200, 20, 33},
                              {130, 9, 70},  {5, 1, 301},  {64, 64, 64}, {1, 7, 1},    {17, 257, 19}};

bool check_all_gemms(const KernelTable& t, const KernelTable& ref) {
  g_gemm_worst = Worst{};
  Rng rng{1234};
  uint32_t shapes = 0;
  bool ok = true;
  for (int M : kGrid)
    for (int K : kGrid)
      for (int N : kGrid) {
        ok &= check_gemms(t, ref, M, K, N, rng);
        ++shapes;
      }
  for (const Shape& s : kLargeShapes) {
    ok &= check_gemms(t, ref, s.M, s.K, s.N, rng);
    ++shapes;
  }
  fw::Line l;
  l.str(g_variant).str(" gemms + colsum: ").u32(shapes).str(" shapes, worst ").f32(g_gemm_worst.frac * 100.0f, 2);
  l.str("% of tolerance: ").str(ok ? "ok" : "FAILED").str("\n").print();
  return ok;
}

// gemm_bias on f16 and int8 weights: the variant's inference kernels against
// the f32 product with the dequantized weights (in double), as the host test
// does; the weight matrices end at a block's canaries.
bool check_reduced_gemms(const char* name) {
  const md::kernels::ForwardKernels* f = md::kernels::find_forward_variant(name);
  if (f == nullptr) return false;
  g_gemm_worst = Worst{};
  Rng rng{77};
  const int Ms[] = {1, 2, 7, 16}, Ks[] = {0, 1, 9, 130}, Ns[] = {1, 3, 4, 8, 15, 17, 33};
  uint32_t shapes = 0;
  bool ok = true;
  for (int M : Ms)
    for (int K : Ks)
      for (int N : Ns)
        for (int kind = 0; kind < 2; ++kind) {
          pool_reset();
          const size_t KN = static_cast<size_t>(K) * N, MN = static_cast<size_t>(M) * N;
          float* x = alloc(static_cast<size_t>(M) * K);
          float* b = alloc(N);
          float* scales = alloc(N);
          // The weights as the file holds them, in blocks of whole floats.
          uint16_t* h = reinterpret_cast<uint16_t*>(alloc(kind == 0 ? (KN + 1) / 2 : 0));
          int8_t* q = reinterpret_cast<int8_t*>(alloc(kind == 1 ? (KN + 3) / 4 : 0));
          float* got = alloc(MN);
          double* want = reinterpret_cast<double*>(alloc(2 * MN + 1));
          double* mag = reinterpret_cast<double*>(alloc(2 * MN + 1));
          if (g_out_of_memory) {
            shape_failure("gemm_bias_f16/i8 (pool)", M, K, N, "shape does not fit the pool");
            return false;
          }
          want = reinterpret_cast<double*>((reinterpret_cast<uintptr_t>(want) + 7) & ~uintptr_t{7});
          mag = reinterpret_cast<double*>((reinterpret_cast<uintptr_t>(mag) + 7) & ~uintptr_t{7});
          fill_random(x, static_cast<size_t>(M) * K, rng);
          fill_random(b, N, rng);
          fill_random(scales, N, rng, 0.001f, 0.05f);
          for (size_t i = 0; i < KN; ++i) {
            if (kind == 0)
              h[i] = md::kernels::float_to_half(rng.uniform(-2.0f, 2.0f));
            else
              q[i] = static_cast<int8_t>(static_cast<int>(rng.next() % 255) - 127);
          }
          if (kind == 0 && KN > 2) h[KN / 2] = 0x0001, h[KN - 1] = 0x83FF;  // subnormals
          const bool with_bias = (M + N + kind) % 2 == 0;
          fill_nan(got, MN);
          if (kind == 0)
            f->gemm_bias_f16(got, x, h, with_bias ? b : nullptr, M, K, N);
          else
            f->gemm_bias_i8(got, x, q, scales, with_bias ? b : nullptr, M, K, N);
          for (int i = 0; i < M; ++i)
            for (int n = 0; n < N; ++n) {
              double sum = with_bias ? b[n] : 0.0, m = with_bias ? fabs(b[n]) : 0.0;
              for (int k = 0; k < K; ++k) {
                const size_t at = static_cast<size_t>(k) * N + n;
                const float w = kind == 0 ? md::kernels::half_to_float(h[at]) : scales[n] * static_cast<float>(q[at]);
                const double term = static_cast<double>(x[static_cast<size_t>(i) * K + k]) * w;
                sum += term;
                m += fabs(term);
              }
              want[static_cast<size_t>(i) * N + n] = sum;
              mag[static_cast<size_t>(i) * N + n] = m;
            }
          const char* kernel = kind == 0 ? "gemm_bias_f16" : "gemm_bias_i8";
          ok &= close(kernel, M, K, N, got, want, MN, [&](size_t i) { return mag[i]; });
          if (!canaries_intact()) {
            shape_failure(kernel, M, K, N, "wrote past its output");
            ok = false;
          }
          ++shapes;
        }
  fw::Line l;
  l.str(name).str(" gemm_bias on f16 / int8 weights: ").u32(shapes).str(" shapes, worst ");
  l.f32(g_gemm_worst.frac * 100.0f, 2).str("% of tolerance: ").str(ok ? "ok" : "FAILED").str("\n").print();
  return ok;
}

// ---- Activations --------------------------------------------------------------------

const Activation kActivations[] = {Activation::kIdentity, Activation::kReLU,     Activation::kSiLU,
                                   Activation::kGeluTanh, Activation::kGeluErf, Activation::kSoftplus,
                                   Activation::kTanh};

// The exact functions, in double (as tests/test_kernels.cpp).
double exact_value(Activation a, double x) {
  switch (a) {
    case Activation::kIdentity: return x;
    case Activation::kReLU: return x > 0.0 ? x : 0.0;
    case Activation::kSiLU: return x / (1.0 + exp(-x));
    case Activation::kGeluTanh: return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
    case Activation::kGeluErf: return 0.5 * x * erfc(-x * 0.7071067811865476);
    case Activation::kSoftplus: return x > 20.0 ? x : log1p(exp(x));
    case Activation::kTanh: return tanh(x);
  }
  return x;
}

double exact_derivative(Activation a, double x) {
  switch (a) {
    case Activation::kIdentity: return 1.0;
    case Activation::kReLU: return x > 0.0 ? 1.0 : 0.0;
    case Activation::kSiLU: {
      const double s = 1.0 / (1.0 + exp(-x));
      return s * (1.0 + x * (1.0 - s));
    }
    case Activation::kGeluTanh: {
      const double k = 0.7978845608028654, c = 0.044715;
      const double th = tanh(k * (x + c * x * x * x));
      return 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * k * (1.0 + 3.0 * c * x * x);
    }
    case Activation::kGeluErf:
      return 0.5 * erfc(-x * 0.7071067811865476) + x * 0.3989422804014327 * exp(-0.5 * x * x);
    case Activation::kSoftplus: return x > 20.0 ? 1.0 : 1.0 / (1.0 + exp(-x));
    case Activation::kTanh: {
      const double th = tanh(x);
      return 1.0 - th * th;
    }
  }
  return 1.0;
}

constexpr double kActRel = 2e-6, kActAbs = 1e-6;
double tolerance(double want) { return fmax(kActRel * fabs(want), kActAbs); }

const float kSpecials[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-7f, -1e-7f, 20.0f, 19.99999f, 20.00001f, -20.0f,
                           0.625f, -0.625f, 0.62499994f, 1.4142135f, -1.4142135f, 1.4142137f, -1.4142137f,
                           5.656854f, -5.656854f, 40.0f, -40.0f, 87.0f, -87.0f, 88.5f, -88.5f, 100.0f, -100.0f,
                           1e4f, -1e4f, 1e19f, -1e19f, 3e38f, -3e38f};  // the last six: huge inputs

void activation_failure(Activation a, const char* what, float x, float got, double want) {
  if (!report_failure()) return;
  fw::Line l;
  l.str("FAIL: ").str(g_variant).str(" ").str(md::activation_name(a)).str(" ").str(what).str(" at x=").f32(x, 6);
  l.str(" got ").f32(got, 9).str(" exact ").f32(static_cast<float>(want), 9).str("\n").print();
}

bool check_activations(const KernelTable& t, const KernelTable& ref) {
  constexpr int kSteps = 12000;  // [-30, 30] in steps of 0.005
  constexpr size_t kSpecialCount = sizeof(kSpecials) / sizeof(kSpecials[0]);
  constexpr size_t n = kSteps + 1 + kSpecialCount;
  bool ok = true;
  pool_reset();
  float* x = alloc(n);
  float* y = alloc(n);
  float* dy = alloc(n);
  float* dx = alloc(n);
  for (int i = 0; i <= kSteps; ++i) x[i] = static_cast<float>(i - kSteps / 2) * 0.005f;
  for (size_t i = 0; i < kSpecialCount; ++i) x[kSteps + 1 + i] = kSpecials[i];
  for (Activation a : kActivations) {
    for (size_t i = 0; i < n; ++i) dy[i] = 1.0f;
    t.activation_forward(a, y, x, n);
    t.activation_backward(a, dx, x, dy, n);
    double worst = 0.0;
    for (size_t i = 0; i < n; ++i) {
      const double want = exact_value(a, x[i]), dwant = exact_derivative(a, x[i]);
      if (!isfinite(want) || !isfinite(dwant)) continue;  // e.g. 3e38^3
      const double e1 = fabs(y[i] - want) / tolerance(want), e2 = fabs(dx[i] - dwant) / tolerance(dwant);
      if (!(e1 <= 1.0)) {
        activation_failure(a, "value", x[i], y[i], want);
        ok = false;
      }
      if (!(e2 <= 1.0)) {
        activation_failure(a, "derivative", x[i], dx[i], dwant);
        ok = false;
      }
      if (e1 > worst) worst = e1;
      if (e2 > worst) worst = e2;
    }
    fw::Line l;
    l.str(g_variant).str(" ").str(md::activation_name(a)).str(": ").u32(static_cast<uint32_t>(n));
    l.str(" inputs vs exact, worst ").f32(static_cast<float>(worst * 100.0), 1).str("% of tolerance\n").print();
  }
  if (!canaries_intact()) {
    if (report_failure()) fw::Line().str("FAIL: activations wrote outside their arrays\n").print();
    ok = false;
  }

  // Tails n = 0..65: exact within tolerance, in place bit for bit as out of
  // place, nothing written past n.
  Rng rng{5};
  for (Activation a : kActivations) {
    for (size_t m = 0; m <= 65; ++m) {
      pool_reset();
      float* xs = alloc(m);
      float* dys = alloc(m);
      float* ys = alloc(m);
      float* dxs = alloc(m);
      float* z = alloc(m);
      fill_random(xs, m, rng, -6.0f, 6.0f);
      fill_random(dys, m, rng);
      t.activation_forward(a, ys, xs, m);
      t.activation_backward(a, dxs, xs, dys, m);
      for (size_t i = 0; i < m; ++i) {
        const double want = exact_value(a, xs[i]);
        const double dwant = dys[i] * exact_derivative(a, xs[i]);
        if (!(fabs(ys[i] - want) <= tolerance(want))) {
          activation_failure(a, "value (tail)", xs[i], ys[i], want);
          ok = false;
        }
        if (!(fabs(dxs[i] - dwant) <= fmax(kActRel * fabs(dwant), kActAbs * fabs(dys[i])))) {
          activation_failure(a, "backward (tail)", xs[i], dxs[i], dwant);
          ok = false;
        }
      }
      copy(z, xs, m);
      t.activation_forward(a, z, z, m);
      if (m && memcmp(z, ys, m * sizeof(float)) != 0) {
        if (report_failure()) fw::Line().str("FAIL: ").str(md::activation_name(a)).str(" in-place forward\n").print();
        ok = false;
      }
      copy(z, dys, m);
      t.activation_backward(a, z, xs, z, m);
      if (m && memcmp(z, dxs, m * sizeof(float)) != 0) {
        if (report_failure()) fw::Line().str("FAIL: ").str(md::activation_name(a)).str(" in-place backward\n").print();
        ok = false;
      }
      if (!canaries_intact()) {
        if (report_failure())
          fw::Line().str("FAIL: ").str(md::activation_name(a)).str(" tail n=").u32(m).str(" wrote past n\n").print();
        ok = false;
      }
    }
    // NaN in -> NaN out exactly where the reference gives NaN.
    const float nan = __builtin_nanf("");
    const float xn[] = {nan, 1.0f, -1.0f, nan, 0.0f, 25.0f, -25.0f, nan, 3.0f, nan, nan,
                        nan, nan,  nan,   nan, nan,  nan,   nan,    2.0f};
    constexpr size_t nn = sizeof(xn) / sizeof(xn[0]);
    float yv[nn], yr[nn], ones[nn], dv[nn], dr[nn];
    for (size_t i = 0; i < nn; ++i) ones[i] = 1.0f;
    t.activation_forward(a, yv, xn, nn);
    ref.activation_forward(a, yr, xn, nn);
    t.activation_backward(a, dv, xn, ones, nn);
    ref.activation_backward(a, dr, xn, ones, nn);
    for (size_t i = 0; i < nn; ++i)
      if (isnan(yv[i]) != isnan(yr[i]) || isnan(dv[i]) != isnan(dr[i])) {
        if (report_failure())
          fw::Line().str("FAIL: ").str(md::activation_name(a)).str(" NaN pattern differs at ").u32(i).str("\n").print();
        ok = false;
      }
  }
  fw::Line().str(g_variant).str(" activation tails 0..65, in place, NaN: ").str(ok ? "ok" : "FAILED").str("\n").print();
  return ok;
}

// ---- Adam and EMA ---------------------------------------------------------------------

bool same_bits(const float* a, const float* b, size_t n) { return n == 0 || memcmp(a, b, n * sizeof(float)) == 0; }

bool check_adam_ema(const KernelTable& t, const KernelTable& ref) {
  Rng rng{11};
  const size_t sizes[] = {0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 1000};
  bool ok = true;
  uint32_t cases = 0;
  for (int mode = 0; mode < 3; ++mode) {
    AdamStep s{};
    s.b1 = 0.9f;
    s.b2 = 0.999f;
    s.one_minus_b1 = static_cast<float>(1.0 - 0.9);
    s.one_minus_b2 = static_cast<float>(1.0 - 0.999);
    s.step_size = 1e-3f / static_cast<float>(1.0 - pow(0.9, 3));
    s.bc2_sqrt = static_cast<float>(sqrt(1.0 - pow(0.999, 3)));
    s.eps = 1e-8f;
    s.weight_decay = mode == 0 ? 0.0f : 0.01f;
    s.decay = static_cast<float>(1.0 - 1e-3 * 0.01);
    s.decoupled = mode == 2;
    for (size_t n : sizes) {
      pool_reset();
      float* p = alloc(n);
      float* m = alloc(n);
      float* v = alloc(n);
      float* g = alloc(n);
      float* pr = alloc(n);
      float* mr = alloc(n);
      float* vr = alloc(n);
      float* e = alloc(n);
      float* er = alloc(n);
      fill_random(p, n, rng);
      fill_random(m, n, rng, -0.1f, 0.1f);
      fill_random(v, n, rng, 0.0f, 0.01f);
      fill_random(g, n, rng);
      copy(pr, p, n);
      copy(mr, m, n);
      copy(vr, v, n);
      t.adam_update(p, m, v, g, n, s);
      ref.adam_update(pr, mr, vr, g, n, s);
      if (!same_bits(p, pr, n) || !same_bits(m, mr, n) || !same_bits(v, vr, n)) {
        if (report_failure())
          fw::Line().str("FAIL: ").str(g_variant).str(" adam mode ").u32(mode).str(" n=").u32(n).str(" differs\n").print();
        ok = false;
      }
      fill_random(e, n, rng);
      copy(er, e, n);
      t.ema_update(e, p, n, 0.995f, static_cast<float>(1.0 - 0.995));
      ref.ema_update(er, pr, n, 0.995f, static_cast<float>(1.0 - 0.995));
      if (!same_bits(e, er, n)) {
        if (report_failure()) fw::Line().str("FAIL: ").str(g_variant).str(" ema n=").u32(n).str(" differs\n").print();
        ok = false;
      }
      if (!canaries_intact()) {
        if (report_failure()) fw::Line().str("FAIL: adam/ema n=").u32(n).str(" wrote past n\n").print();
        ok = false;
      }
      cases += 2;
    }
  }
  fw::Line l;
  l.str(g_variant).str(" adam (3 modes) + ema: ").u32(cases).str(" cases bit for bit: ").str(ok ? "ok" : "FAILED");
  l.str("\n").print();
  return ok;
}

// ---- The time gate -------------------------------------------------------------------

// Forward (also in place) and backward, bit for bit, at widths around the
// vector width, with timesteps that repeat so table rows accumulate.
bool check_time_gate(const KernelTable& t, const KernelTable& ref) {
  Rng rng{5};
  const int widths[] = {0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65};
  const int batches[] = {0, 1, 3, 17};
  constexpr int T = 5;
  bool ok = true;
  uint32_t cases = 0;
  for (int w : widths)
    for (int B : batches) {
      pool_reset();
      const size_t n = static_cast<size_t>(B) * w, tn = static_cast<size_t>(T) * w;
      int32_t ts[17];
      for (int b = 0; b < B; ++b) ts[b] = static_cast<int32_t>(rng.next() % T);
      float* u = alloc(n);
      float* g = alloc(tn);
      float* dy = alloc(n);
      float* y = alloc(n);
      float* yr = alloc(n);
      float* dg = alloc(tn);
      float* dgr = alloc(tn);
      fill_random(u, n, rng);
      fill_random(g, tn, rng);
      fill_random(dy, n, rng);
      fill_random(dg, tn, rng);
      copy(dgr, dg, tn);
      t.time_gate(y, u, g, ts, B, w);
      ref.time_gate(yr, u, g, ts, B, w);
      bool same = same_bits(y, yr, n);
      t.time_gate_backward(y, dg, dy, u, g, ts, B, w);
      ref.time_gate_backward(yr, dgr, dy, u, g, ts, B, w);
      same = same && same_bits(y, yr, n) && same_bits(dg, dgr, tn);
      copy(y, u, n);  // in place: y = y * G[t]
      t.time_gate(y, y, g, ts, B, w);
      ref.time_gate(yr, u, g, ts, B, w);
      same = same && same_bits(y, yr, n);
      if (!same) {
        if (report_failure())
          fw::Line().str("FAIL: ").str(g_variant).str(" time gate w=").u32(w).str(" B=").u32(B).str(" differs\n").print();
        ok = false;
      }
      if (!canaries_intact()) {
        if (report_failure()) fw::Line().str("FAIL: time gate w=").u32(w).str(" wrote past its rows\n").print();
        ok = false;
      }
      ++cases;
    }
  fw::Line l;
  l.str(g_variant).str(" time gate forward + backward: ").u32(cases).str(" shapes bit for bit: ").str(ok ? "ok" : "FAILED");
  l.str("\n").print();
  return ok;
}

// ---- The sampler with each variant ------------------------------------------------------

constexpr md::ModelDesc kDesc = md::preset_tutorial(/*D=*/2, /*T=*/100, /*hidden=*/32);
static_assert(md::parameter_count(kDesc) == md_model_parameters, "model_weights.h is not the firmware's model");
constexpr uint32_t kSamples = 8, kBatch = 8;
alignas(64) uint8_t g_arena[16 * 1024];
static_assert(sizeof(g_arena) >= md::sampling_arena_bytes(kDesc, kBatch), "arena too small for sampling");
md::Sampler g_sampler;

// SysTick as a counter: 24 bits, down from 0xFFFFFF at the processor clock.
volatile uint32_t* const kSystCsr = reinterpret_cast<volatile uint32_t*>(0xE000E010);
volatile uint32_t* const kSystRvr = reinterpret_cast<volatile uint32_t*>(0xE000E014);
volatile uint32_t* const kSystCvr = reinterpret_cast<volatile uint32_t*>(0xE000E018);
void systick_start() {
  *kSystCsr = 0;
  *kSystRvr = 0xFFFFFFu;
  *kSystCvr = 0;         // clears the count and COUNTFLAG; reloads on the next tick
  *kSystCsr = 0x5u;      // enable, processor clock, no interrupt
}
// Ticks since systick_start() (give or take one); g_systick_wrapped is set if
// the counter went past 0 (2^24 ticks or more: the figure is then wrong).
bool g_systick_wrapped = false;
uint32_t systick_elapsed() {
  const uint32_t now = *kSystCvr;
  if ((*kSystCsr >> 16) & 1u) g_systick_wrapped = true;  // COUNTFLAG: counted down to 0
  return 0xFFFFFFu - now;
}

// Samples with variant `name` into out; false (and a FAIL line) on error.
bool sample_with(const char* name, const md::LoadedWeights& w, float* out, uint32_t* ticks) {
  md::Status s = md::select_kernel_variant(name);
  if (s.ok()) {
    md::Arena arena(g_arena, sizeof(g_arena));
    s = g_sampler.init(w.model, w.schedule, w.meta.variance, kBatch, arena);
    if (s.ok()) {
      systick_start();
      s = g_sampler.sample(/*seed=*/42, 0, kSamples, out);
      *ticks = systick_elapsed();
    }
  }
  if (!s.ok() && report_failure())
    fw::Line().str("FAIL: sampling with ").str(name).str(": ").str(s.message).str("\n").print();
  return s.ok();
}

bool check_sampler(const char* variant, bool timing) {
  md::LoadedWeights w;
  md::Status s = md::load_weights(md_model, md_model_len, &w);
  if (!s.ok()) {
    if (report_failure()) fw::Line().str("FAIL: load_weights: ").str(s.message).str("\n").print();
    return false;
  }
  float got[kSamples * 2], want[kSamples * 2];
  uint32_t ticks_ref = 0, ticks_var = 0;
  if (!sample_with("reference", w, want, &ticks_ref) || !sample_with(variant, w, got, &ticks_var)) return false;
  md::select_kernel_variant("auto");
  double worst = 0.0;
  for (uint32_t i = 0; i < kSamples * 2; ++i) {
    const double d = fabs(static_cast<double>(got[i]) - want[i]);
    if (!(d <= worst)) worst = d;
  }
  const bool ok = worst <= 1e-4;  // as compare_samples.sh allows host vs firmware
  fw::Line l;
  l.str(variant).str(" sampler: ").u32(kSamples).str(" samples (seed 42, T=").u32(kDesc.T).str(") vs reference, max |diff| ");
  l.f32(static_cast<float>(worst), 9).str(": ").str(ok ? "ok" : "FAILED").str("\n").print();
  if (!ok) report_failure();
  if (timing) {
    // Calibration: a loop of a known instruction count (2 per iteration).
    constexpr uint32_t kLoopInstructions = 2000000;
    systick_start();
    uint32_t k = kLoopInstructions / 2;
    __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(k) : : "cc");
    const uint32_t ticks_loop = systick_elapsed();
    fw::Line c;
    c.str("SysTick ticks: ").u32(kLoopInstructions).str("-instruction loop ").u32(ticks_loop).str(", sampler (");
    c.u32(kDesc.T).str(" steps, batch ").u32(kBatch).str(") reference ").u32(ticks_ref).str(", ").str(variant);
    c.str(" ").u32(ticks_var).str("\n").print();
    // One sample() call runs T denoising steps; instructions only under -icount.
    auto per_step = [&](uint32_t ticks) {
      return static_cast<uint32_t>(static_cast<uint64_t>(ticks) * kLoopInstructions / (ticks_loop ? ticks_loop : 1) /
                                   kDesc.T);
    };
    fw::Line m;
    m.str("instructions per denoising step (valid under qemu -icount only): reference ").u32(per_step(ticks_ref));
    m.str(", ").str(variant).str(" ").u32(per_step(ticks_var)).str("\n").print();
    if (g_systick_wrapped) fw::Line().str("(SysTick wrapped: the figures above are wrong)\n").print();
  }
  return ok;
}

}  // namespace

int main() {
  const char* const kProgram = MD_KERNEL_CHECK_TIMING ? "kernel_timing" : "kernel_check";
  fw::Line().str(kProgram).str(" on " MD_FIRMWARE_BOARD "\n").print();
  const KernelTable* ref = md::kernels::find_variant("reference");
  if (ref == nullptr) {
    fw::Line().str("FAIL: no reference kernels\n").print();
    return 1;
  }
  int checked = 0;
  fw::Line names;
  for (size_t v = 0; v < md::kernel_variant_count(); ++v) {
    const char* name = md::kernel_variant_name(v);
    if (strcmp(name, "reference") == 0) continue;
    const KernelTable* t = md::kernels::find_variant(name);
    if (t == nullptr) {
      fw::Line().str(name).str(" not available in this build: skipped\n").print();
      continue;
    }
    g_variant = name;
    fw::Line().str(name).str(": checking against the reference\n").print();
    if (!MD_KERNEL_CHECK_TIMING) {
      check_all_gemms(*t, *ref);
      check_activations(*t, *ref);
      check_adam_ema(*t, *ref);
      check_time_gate(*t, *ref);
      check_reduced_gemms(name);
    }
    check_sampler(name, /*timing=*/MD_KERNEL_CHECK_TIMING);
    names.str(checked ? ", " : "").str(name);
    ++checked;
  }
  if (g_failures > 0) {
    fw::Line().str(kProgram).str(": FAILED (").u32(static_cast<uint32_t>(g_failures)).str(" failures)\n").print();
    return 1;
  }
  fw::Line l;
  l.str(kProgram).str(": ok, ").u32(static_cast<uint32_t>(checked)).str(" variant(s) checked");
  if (checked) l.str(": ").str(names.buf);
  l.str("\n").print();
  return 0;
}
