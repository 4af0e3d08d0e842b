// The reference GEMMs over reduced-precision weight matrices (f16, int8 per
// output column), read in place from the weight file: each weight is widened
// as it is used, so no f32 copy of the matrix is ever made. The vector
// variants (simd.h) widen into their packed panels instead.
#include "kernels/half.h"
#include "kernels/kernels.h"

namespace md {
namespace kernels {

// Columns are taken kBlock at a time: each weight row segment is widened once
// into a small stack buffer and used by every row of X (the widening, not the
// multiply-add, would otherwise dominate).
constexpr int kBlock = 128;

void gemm_bias_f16_reference(float* Y, const float* X, const uint16_t* W, const float* b, int M, int K, int N) {
  float w[kBlock];
  for (int n0 = 0; n0 < N; n0 += kBlock) {
    const int nb = N - n0 < kBlock ? N - n0 : kBlock;
    for (int i = 0; i < M; ++i)
      for (int n = 0; n < nb; ++n) Y[static_cast<size_t>(i) * N + n0 + n] = b != nullptr ? b[n0 + n] : 0.0f;
    for (int k = 0; k < K; ++k) {
      const uint16_t* src = W + static_cast<size_t>(k) * N + n0;
      for (int n = 0; n < nb; ++n) w[n] = half_to_float(src[n]);
      for (int i = 0; i < M; ++i) {
        const float a = X[static_cast<size_t>(i) * K + k];
        float* y = Y + static_cast<size_t>(i) * N + n0;
        for (int n = 0; n < nb; ++n) y[n] += a * w[n];
      }
    }
  }
}

void gemm_bias_i8_reference(float* Y, const float* X, const int8_t* W, const float* scales, const float* b, int M,
                            int K, int N) {
  // sum_k x_k s_n q_kn = s_n sum_k x_k q_kn: the scale leaves the inner loop.
  float w[kBlock];
  for (int n0 = 0; n0 < N; n0 += kBlock) {
    const int nb = N - n0 < kBlock ? N - n0 : kBlock;
    for (int i = 0; i < M; ++i)
      for (int n = 0; n < nb; ++n) Y[static_cast<size_t>(i) * N + n0 + n] = 0.0f;
    for (int k = 0; k < K; ++k) {
      const int8_t* src = W + static_cast<size_t>(k) * N + n0;
      for (int n = 0; n < nb; ++n) w[n] = static_cast<float>(src[n]);
      for (int i = 0; i < M; ++i) {
        const float a = X[static_cast<size_t>(i) * K + k];
        float* y = Y + static_cast<size_t>(i) * N + n0;
        for (int n = 0; n < nb; ++n) y[n] += a * w[n];
      }
    }
    for (int i = 0; i < M; ++i) {
      float* y = Y + static_cast<size_t>(i) * N + n0;
      for (int n = 0; n < nb; ++n) y[n] = y[n] * scales[n0 + n] + (b != nullptr ? b[n0 + n] : 0.0f);
    }
  }
}

}  // namespace kernels
}  // namespace md
