// Plain C++ reference kernels. Written so compilers vectorise the inner loops
// (contiguous, no aliasing); the SIMD variants are checked against these.
// Compiled with -ffp-contract=off (runtime/CMakeLists.txt) so Adam and EMA
// round the same way on every target and in every variant.
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "scalar_math.h"

namespace md {
namespace kernels {
namespace ref {

void gemm_bias(float* __restrict Y, const float* __restrict X, const float* __restrict W,
               const float* __restrict b, int M, int K, int N) {
  // Four rows at a time so each row of W is loaded once per four outputs.
  int i = 0;
  for (; i + 4 <= M; i += 4) {
    float* y0 = Y + (size_t)i * N;
    float* y1 = y0 + N;
    float* y2 = y1 + N;
    float* y3 = y2 + N;
    for (int n = 0; n < N; ++n) {
      const float bias = b ? b[n] : 0.0f;
      y0[n] = bias; y1[n] = bias; y2[n] = bias; y3[n] = bias;
    }
    const float* x0 = X + (size_t)i * K;
    for (int k = 0; k < K; ++k) {
      const float a0 = x0[k], a1 = x0[K + k], a2 = x0[2 * K + k], a3 = x0[3 * K + k];
      const float* w = W + (size_t)k * N;
      for (int n = 0; n < N; ++n) {
        const float wn = w[n];
        y0[n] += a0 * wn;
        y1[n] += a1 * wn;
        y2[n] += a2 * wn;
        y3[n] += a3 * wn;
      }
    }
  }
  for (; i < M; ++i) {
    float* y = Y + (size_t)i * N;
    for (int n = 0; n < N; ++n) y[n] = b ? b[n] : 0.0f;
    const float* x = X + (size_t)i * K;
    for (int k = 0; k < K; ++k) {
      const float a = x[k];
      const float* w = W + (size_t)k * N;
      for (int n = 0; n < N; ++n) y[n] += a * w[n];
    }
  }
}

void gemm_nt(float* __restrict dX, const float* __restrict dY, const float* __restrict W,
             int M, int N, int K, float*, size_t) {
  for (int i = 0; i < M; ++i) {
    const float* dy = dY + (size_t)i * N;
    float* dx = dX + (size_t)i * K;
    for (int k = 0; k < K; ++k) {
      const float* w = W + (size_t)k * N;
      float acc = 0.0f;
      for (int n = 0; n < N; ++n) acc += dy[n] * w[n];
      dx[k] = acc;
    }
  }
}

void gemm_tn_acc(float* __restrict dW, const float* __restrict X, const float* __restrict dY,
                 int M, int K, int N, int k_begin, int k_end, float* /*pack: X^T is read in place*/) {
  for (int i = 0; i < M; ++i) {
    const float* x = X + (size_t)i * K;
    const float* dy = dY + (size_t)i * N;
    for (int k = k_begin; k < k_end; ++k) {
      const float a = x[k];
      if (a == 0.0f) continue;  // ReLU-sparse inputs; exact either way
      float* dw = dW + (size_t)k * N;
      for (int n = 0; n < N; ++n) dw[n] += a * dy[n];
    }
  }
}

void colsum_acc(float* __restrict db, const float* __restrict dY, int M, int N) {
  for (int i = 0; i < M; ++i) {
    const float* dy = dY + (size_t)i * N;
    for (int n = 0; n < N; ++n) db[n] += dy[n];
  }
}

}  // namespace ref

namespace {
constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCubic = 0.044715f;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;
inline float sigmoid(float x) { return 1.0f / (1.0f + math::exp_f(-x)); }
}  // namespace

float activation_value(Activation a, float x) {
  switch (a) {
    case Activation::kIdentity: return x;
    case Activation::kReLU: return x > 0.0f ? x : 0.0f;
    // x / (1 + e^-x), not x * sigmoid(x): sigmoid alone underflows first.
    case Activation::kSiLU: return x / (1.0f + math::exp_f(-x));
    case Activation::kGeluTanh:
      // 0.5 x (1 + tanh(u)) = x sigmoid(2u): no cancellation in 1 + tanh for negative x.
      return x / (1.0f + math::exp_f(-2.0f * kSqrt2OverPi * (x + kGeluCubic * x * x * x)));
    case Activation::kGeluErf: return x * math::phi_f(x);  // 0.5 x (1 + erf(x / sqrt 2))
    case Activation::kSoftplus: {  // log(1 + e^x) = max(x, 0) + log1p(e^-|x|)
      // (e^-|x| floored at e^-41 as in the vector kernels: no denormals)
      const float minus_abs = x > 0.0f ? -x : x < math::kSoftplusExpFloor ? math::kSoftplusExpFloor : x;
      return x > math::kSoftplusLinearAbove ? x : (x > 0.0f ? x : 0.0f) + math::log1p01_f(math::exp_f(minus_abs));
    }
    case Activation::kTanh: return math::tanh_f(x);
  }
  return x;
}

float activation_derivative(Activation a, float x) {
  switch (a) {
    case Activation::kIdentity: return 1.0f;
    case Activation::kReLU: return x > 0.0f ? 1.0f : 0.0f;
    // The vector kernels' limits (simd.h VMath::derivative): beyond them the
    // derivatives are 0 or 1 to within 1e-17, and the formulas would
    // underflow into denormals.
    case Activation::kSiLU: {
      // (The limit is also where sigmoid underflows.)
      if (x > math::kSiLUSaturation || x < -math::kSiLUSaturation) return x > 0.0f ? 1.0f : 0.0f;
      const float s = sigmoid(x);
      return s * (1.0f + x * (1.0f - s));
    }
    case Activation::kGeluTanh: {
      // s + x s (1 - s) d(2u)/dx with s = sigmoid(2u), 1 - s = e s, e = exp(-2u).
      if (x > math::kGeluTanhSaturation || x < -math::kGeluTanhSaturation) return x > 0.0f ? 1.0f : 0.0f;
      const float u2 = 2.0f * kSqrt2OverPi * (x + kGeluCubic * x * x * x);
      const float e = math::exp_f(-u2);
      const float sg = 1.0f / (1.0f + e);
      const float du2 = 2.0f * kSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * x * x);
      return sg + x * (e * sg * sg) * du2;
    }
    case Activation::kGeluErf: {
      const float h = 0.5f * x * x;
      return math::phi_f(x) + (h > math::kGaussianTailSquare ? 0.0f : x * kInvSqrt2Pi * math::exp_f(-h));
    }
    case Activation::kSoftplus:
      return x > math::kSoftplusLinearAbove ? 1.0f : sigmoid(x < math::kSigmoidFloor ? math::kSigmoidFloor : x);
    case Activation::kTanh: {
      const float th = math::tanh_f(x);
      return 1.0f - th * th;
    }
  }
  return 1.0f;
}

namespace ref {

void activation_forward(Activation a, float* y, const float* x, size_t n) {
  if (a == Activation::kIdentity) {
    if (y != x) memcpy(y, x, n * sizeof(float));  // aliasing means y == x: no memmove (libc, 256 bytes on an M4F)
    return;
  }
  for (size_t i = 0; i < n; ++i) y[i] = activation_value(a, x[i]);
}

void activation_backward(Activation a, float* dx, const float* x, const float* dy, size_t n) {
  for (size_t i = 0; i < n; ++i) dx[i] = dy[i] * activation_derivative(a, x[i]);
}

void adam_update(float* __restrict p, float* __restrict m, float* __restrict v, const float* __restrict grad,
                 size_t n, const AdamStep& s) {
  adam_update_scalar(p, m, v, grad, 0, n, s);
}

void sincos(const float* a, float* s, float* c, size_t n) {
  for (size_t i = 0; i < n; ++i) math::sincos_f(a[i], &s[i], &c[i]);
}

void ema_update(float* __restrict ema, const float* __restrict p, size_t n, float d, float one_minus_d) {
  for (size_t i = 0; i < n; ++i) ema[i] = d * ema[i] + one_minus_d * p[i];
}

double sum_squares(const float* x, size_t n) {
  double part[kSumSquaresLanes] = {};
  return sum_squares_scalar(part, x, 0, n);
}

void time_gate(float* y, const float* u, const float* G, const int32_t* t, int B, int w) {
  for (int b = 0; b < B; ++b) {
    const float* g = G + static_cast<size_t>(t[b]) * w;
    const size_t row = static_cast<size_t>(b) * w;
    for (int i = 0; i < w; ++i) y[row + i] = u[row + i] * g[i];
  }
}

void time_gate_backward(float* dz, float* dG, const float* dy, const float* u, const float* G, const int32_t* t,
                        int B, int w) {
  for (int b = 0; b < B; ++b) {
    const size_t row = static_cast<size_t>(b) * w, at = static_cast<size_t>(t[b]) * w;
    time_gate_backward_scalar(dz + row, dG + at, dy + row, u + row, G + at, 0, w);
  }
}

}  // namespace ref

extern const KernelTable kReferenceTable = {
    "reference",          ref::gemm_bias,           ref::gemm_nt,     ref::gemm_tn_acc, ref::colsum_acc,
    ref::activation_forward, ref::activation_backward, ref::adam_update, ref::ema_update, ref::sincos,
    ref::time_gate,       ref::time_gate_backward,     ref::sum_squares,
};
// No fused residual activation (null): the reference is the two passes.
extern const ForwardKernels kReferenceForward = {ref::gemm_bias,         gemm_bias_f16_reference,
                                                 gemm_bias_i8_reference, ref::activation_forward,
                                                 nullptr,                ref::sincos,
                                                 ref::time_gate};

}  // namespace kernels
}  // namespace md
