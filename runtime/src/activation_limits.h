// Where the activations stop evaluating their formulas, shared by the scalar
// forms (scalar_math.cpp, kernels/reference.cpp) and the vector kernels
// (kernels/simd.h VMath), so that every variant takes the same limits. Past
// them the exact values are 0 or 1 (or x) to within 1e-17, and the formulas
// would meet inf * 0 or underflow into denormals, which cost a microcode
// assist per instruction on Intel cores. Constants only: an ISA file may
// include this (see simd.h).
#pragma once

namespace md {
namespace math {

constexpr float kSoftplusLinearAbove = 20.0f;  // softplus(x) = x, its derivative 1, above (PyTorch)
constexpr float kSoftplusExpFloor = -41.0f;    // softplus' e^-|x| floored at e^-41 = 1.6e-18
constexpr float kSigmoidFloor = -40.0f;        // softplus' derivative sigmoid(x) at x >= -40 (4e-18)
constexpr float kSiLUSaturation = 40.0f;       // SiLU' is the step (0 or 1) beyond |x| = 40
constexpr float kGeluTanhSaturation = 9.0f;    // GELU-tanh' is the step beyond |x| = 9
constexpr float kGaussianTailSquare = 60.0f;   // exp(-s) counts as 0 past s = 60 (9e-27): Phi, phi

}  // namespace math
}  // namespace md
