// Helium variant (Arm M-profile Vector Extension with floating point, MVE-F:
// 4 floats per 128-bit vector), for Armv8.1-M cores such as the Cortex-M55
// (-mcpu=cortex-m55 enables +mve.fp). Compiled on every target; empty unless
// the compiler targets MVE with floating point (MD_KERNELS_HELIUM, kernels.h).
// No C++ library headers: see simd.h.
//
// What MVE lacks next to NEON, and what stands in:
//  * no vector division or square root: division is a reciprocal (integer
//    seed, three Newton steps) times the dividend, about 1-2 ulp, and Adam
//    keeps the scalar (IEEE) FPU loop (kIeeeDivSqrt = false);
//  * no floating-point add-across: hsum adds the lanes in scalar registers;
//  * only 8 vector registers (Q0-Q7): a 2 x 2 tile (4 accumulators + 2 B
//    vectors + a broadcast) leaves one spare;
//  * predication instead of NEON's whole-vector-only loads: column tails and
//    the elementwise tails use tail predicates (VCTP) with zeroing loads and
//    predicated stores, which neither read nor write the lanes past n.
#include "kernels/kernels.h"

#if MD_KERNELS_HELIUM
#include <arm_mve.h>
#include <math.h>
#include <string.h>

namespace md {
namespace kernels {
namespace {

struct Helium {
  using V = float32x4_t;
  using Mask = mve_pred16_t;
  static constexpr int W = 4;
  // 8 registers: 2 x 2 tile, 4 accumulators + 2 B vectors + 1 broadcast
  // (GCC does not fold a broadcast into the vector-by-scalar VFMA, so the
  // broadcast takes a Q register; 4 x 2 or 3 x 2 spill).
  static constexpr int MR = 2, NR = 2, kAccumulators = 4, kVectorRegisters = 8;
  static constexpr bool kIeeeDivSqrt = false;
  // Chunks for small caches / TCM: packed B panel KC x NR*4 floats = 4 KiB
  // on the stack (the firmware's main stack is 16 KiB), A blocks of 64 rows
  // x 128 (32 KiB).
  static constexpr int KC = 128, MC = 64, KCT = 128, MCT = 64, KCN = KC;
  static constexpr int kPackRows = 16;   // pack B panels from this many rows
  static constexpr int kNtDotRows = 2;   // gemm_nt: dot products below 2 rows
  static constexpr bool kNtPanelCache = false;   // gemm_nt: W^T panels packed per row block
  static constexpr bool kTnPanelCache = false;   // gemm_tn_acc: dY panels packed per row block
  static constexpr bool kTnPrefetch = false;     // gemm_tn_acc: no software prefetch
  static constexpr bool kMaskedTail = true;  // tail predication is cheap
  // int8 weights by a widening load; f16 ones one by one (MVE's VCVTB/VCVTT
  // gave wrong values under QEMU's mps3-an547 in the kernel check: left
  // scalar until checked on silicon).
  static constexpr bool kWidenF16 = false, kWidenI8 = true;
  static inline V load_i8(const int8_t* p) { return vcvtq_f32_s32(vldrbq_s32(p)); }
  static constexpr int kMapWidth = 1;  // in-order, 8 vector registers: code size over overlap
  static constexpr bool kNarrowDots = false;  // 3 KB of code for 1% fewer instructions
  static constexpr bool kPackTransposedA = false;  // no scratch is reserved on Arm
  static constexpr int kNtTile[2] = {MR, NR}, kTnTile[2] = {MR, NR};  // gemm_nt, gemm_tn_acc: the same tile
  static constexpr bool kUnrollReduction = false;  // code size
  static constexpr bool kSumSquaresF64 = false;  // MVE has no double lanes
  static constexpr bool kFmaReadsMemory = false;

  static inline V load(const float* p) { return vldrwq_f32(p); }
  // Predicated-off lanes are not accessed (no fault past the end) and read 0.
  static inline V load_n(const float* p, int n) { return vldrwq_z_f32(p, vctp32q(static_cast<uint32_t>(n))); }
  static inline void store(float* p, V v) { vstrwq_f32(p, v); }
  static inline void store_n(float* p, V v, int n) { vstrwq_p_f32(p, v, vctp32q(static_cast<uint32_t>(n))); }
  static inline V set1(float x) { return vdupq_n_f32(x); }
  static inline V zero() { return vdupq_n_f32(0.0f); }
  static inline V add(V a, V b) { return vaddq_f32(a, b); }
  static inline V sub(V a, V b) { return vsubq_f32(a, b); }
  static inline V mul(V a, V b) { return vmulq_f32(a, b); }
  static inline V fma(V a, V b, V c) { return vfmaq_f32(c, a, b); }
  // IEEE minNum / maxNum (a NaN operand yields the other one); the kernels
  // put NaN inputs back at the end.
  static inline V min(V a, V b) { return vminnmq_f32(a, b); }
  static inline V max(V a, V b) { return vmaxnmq_f32(a, b); }
  static inline V abs(V a) { return vabsq_f32(a); }
  static inline V neg(V a) { return vnegq_f32(a); }

  // 1 / b for 2^-125 <= |b| <= 2^126 (relative error about 1e-7), 0 beyond
  // 2^126 (the quotient would be below the normal range) and for +-inf.
  // Seed: the exponent negated by integer subtraction (relative error at
  // most 5.1%), then Newton's r (2 - b r): 2.6e-3, 6.5e-6, float rounding.
  static inline V recip(V b) {
    const V a = vabsq_f32(b);
    V r = vreinterpretq_f32_s32(vsubq_s32(vdupq_n_s32(0x7EF311C7), vreinterpretq_s32_f32(a)));
    const V two = vdupq_n_f32(2.0f);
    r = vmulq_f32(r, vfmsq_f32(two, a, r));
    r = vmulq_f32(r, vfmsq_f32(two, a, r));
    r = vmulq_f32(r, vfmsq_f32(two, a, r));
    r = vpselq_f32(vdupq_n_f32(0.0f), r, vcmpgtq_f32(a, vdupq_n_f32(8.507059e37f)));  // 2^126
    return vpselq_f32(vnegq_f32(r), r, vcmpgtq_f32(vdupq_n_f32(0.0f), b));
  }
  // Within about 2 ulp for the divisors simd.h uses (1 + e^y, t + 2,
  // max(|z|, 1): all >= 1 or +inf), not correctly rounded.
  static inline V div(V a, V b) { return vmulq_f32(a, recip(b)); }
  static inline V sqrt(V a) { return a; }  // unused: kIeeeDivSqrt is false
  static inline V round(V a) { return vrndnq_f32(a); }  // VRINTN: to nearest, ties to even
  static inline V exp2i(V n) {
    const int32x4_t e = vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127));
    return vreinterpretq_f32_s32(vshlq_n_s32(e, 23));
  }
  // MVE's VCMP LT / LE are true for unordered operands (the A32 condition
  // codes), GT / GE are not: a < b is taken as b > a so NaN compares false
  // either way, as in the other variants.
  static inline Mask gt(V a, V b) { return vcmpgtq_f32(a, b); }
  static inline Mask lt(V a, V b) { return vcmpgtq_f32(b, a); }
  static inline Mask isnan(V a) { return vcmpneq_f32(a, a); }  // NE: unordered too
  static inline V select(Mask m, V a, V b) { return vpselq_f32(a, b, m); }
  static inline float hsum(V a) {
    return (vgetq_lane_f32(a, 0) + vgetq_lane_f32(a, 1)) + (vgetq_lane_f32(a, 2) + vgetq_lane_f32(a, 3));
  }

  // 4 x 4 transpose: four row loads, then VST40..VST43 write them
  // interleaved, which is the transposed block when the destination rows
  // are contiguous (ldd == 4); otherwise through a buffer.
  static constexpr int kTranspose = 4;
  static inline void transpose(float* dst, size_t ldd, const float* src, size_t lds) {
    float32x4x4_t rows;
    rows.val[0] = vldrwq_f32(src);
    rows.val[1] = vldrwq_f32(src + lds);
    rows.val[2] = vldrwq_f32(src + 2 * lds);
    rows.val[3] = vldrwq_f32(src + 3 * lds);
    if (ldd == 4) {
      vst4q_f32(dst, rows);
      return;
    }
    float t[16];
    vst4q_f32(t, rows);
    for (int j = 0; j < 4; ++j) vstrwq_f32(dst + j * ldd, vldrwq_f32(t + 4 * j));
  }
};

}  // namespace
}  // namespace kernels
}  // namespace md

#include "kernels/simd.h"

namespace md {
namespace kernels {
extern const KernelTable kHeliumTable = make_table<Helium>("helium");
// No fused residual activation: two passes cost little next to the
// products, and the sampling image stays smaller.
extern const ForwardKernels kHeliumForward = make_forward<Helium, false>();
}  // namespace kernels
}  // namespace md
#endif  // MD_KERNELS_HELIUM
