// Compute kernels behind the layers. Every kernel has one plain reference
// implementation (reference.cpp); SIMD variants plug in beside it and are
// checked against it. Matrices are row-major; sizes come last.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "microdiffusion/model.h"

namespace md {
namespace kernels {

// Y (M, N) = X (M, K) . W (K, N) + b (N); b may be null.
void gemm_bias(float* Y, const float* X, const float* W, const float* b, int M, int K, int N);
// dX (M, K) = dY (M, N) . W (K, N)^T
void gemm_nt(float* dX, const float* dY, const float* W, int M, int N, int K);
// dW (K, N) += X (M, K)^T . dY (M, N)
void gemm_tn_acc(float* dW, const float* X, const float* dY, int M, int K, int N);
// db (N) += sum over rows of dY (M, N)
void colsum_acc(float* db, const float* dY, int M, int N);

// y = act(x), elementwise; y may alias x.
void activation_forward(Activation a, float* y, const float* x, size_t n);
// dx = dy * act'(x); dx may alias dy.
void activation_backward(Activation a, float* dx, const float* x, const float* dy, size_t n);

// Scalar forms, shared by all variants and by tests.
float activation_value(Activation a, float x);
float activation_derivative(Activation a, float x);

}  // namespace kernels
}  // namespace md
