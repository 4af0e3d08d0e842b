// NEON variant (4 floats per vector): AArch64 (Advanced SIMD, always present),
// and 32-bit ARMv7-A built with NEON + VFPv4 (-mfpu=neon-vfpv4: vector fused
// multiply-add). Compiled on every target; empty unless the compiler targets
// one of those (MD_KERNELS_NEON, kernels.h). No C++ library headers: see simd.h.
#include "kernels/kernels.h"

#if MD_KERNELS_NEON
#include <arm_neon.h>
#include <math.h>
#include <string.h>

namespace md {
namespace kernels {
namespace {

struct Neon {
  using V = float32x4_t;
  using Mask = uint32x4_t;
  static constexpr int W = 4;
#if defined(__aarch64__)
  // 32 registers: 4 x 4 tile, 16 accumulators + 4 B vectors + 4 A values
  // (GCC multiplies by lane; a 6 x 4 tile spills).
  static constexpr int MR = 4, NR = 4, kAccumulators = 16, kVectorRegisters = 32;
  static constexpr bool kIeeeDivSqrt = true;
#else
  // ARMv7: 16 registers: 4 x 2 tile. Division by reciprocal estimate and two
  // Newton steps (about 1 ulp), so Adam keeps the scalar VFP loop.
  static constexpr int MR = 4, NR = 2, kAccumulators = 8, kVectorRegisters = 16;
  static constexpr bool kIeeeDivSqrt = false;
#endif
  // Chunks: packed B panel KC x NR*4 floats <= 16 KiB on the stack (small
  // stacks on embedded Linux), A blocks of 256 rows.
  static constexpr int KC = 256, MC = 256, KCT = 256, MCT = 256, KCN = KC;
  static constexpr int kPackRows = 16;   // pack B panels from this many rows
  static constexpr int kNtDotRows = 2;   // gemm_nt: dot products below 2 rows
  static constexpr bool kNtPanelCache = false;   // gemm_nt: W^T panels packed per row block
  static constexpr bool kTnPanelCache = false;   // gemm_tn_acc: dY panels packed per row block
  static constexpr bool kTnPrefetch = false;     // gemm_tn_acc: no software prefetch
  static constexpr bool kMaskedTail = false;  // column tails in scalar code
  static constexpr bool kWidenF16 = false, kWidenI8 = false;
  // Math activations 2 vectors at a time, interleaved: in-order cores (A53,
  // A55) need the overlap most. Correctness only under qemu, speed unmeasured.
  static constexpr int kMapWidth = 2;
  static constexpr bool kNarrowDots = true;
  static constexpr bool kPackTransposedA = false;  // not measured on hardware
  static constexpr int kNtTile[2] = {MR, NR}, kTnTile[2] = {MR, NR};  // gemm_nt, gemm_tn_acc: the same tile
  static constexpr bool kUnrollReduction = false;  // not measured on hardware
  static constexpr bool kFmaReadsMemory = false;
#if defined(__aarch64__)
  static constexpr bool kSumSquaresF64 = true;
  // Lane l of acc[j] is partial sum 2 j + l: 16 independent chains.
  static inline void sum_squares_chunks(const float* x, size_t chunks, double* part) {
    float64x2_t acc[16];
    for (int j = 0; j < 16; ++j) acc[j] = vld1q_f64(part + 2 * j);
    for (size_t c = 0; c < chunks; ++c, x += 32)
      for (int j = 0; j < 8; ++j) {
        const float32x4_t f = vld1q_f32(x + 4 * j);
        const float64x2_t lo = vcvt_f64_f32(vget_low_f32(f)), hi = vcvt_high_f64_f32(f);
        acc[2 * j] = vaddq_f64(acc[2 * j], vmulq_f64(lo, lo));
        acc[2 * j + 1] = vaddq_f64(acc[2 * j + 1], vmulq_f64(hi, hi));
      }
    for (int j = 0; j < 16; ++j) vst1q_f64(part + 2 * j, acc[j]);
  }
#else
  static constexpr bool kSumSquaresF64 = false;  // ARMv7 NEON has no double lanes
#endif

  static inline V load(const float* p) { return vld1q_f32(p); }
  static inline V load_n(const float* p, int n) {
    float t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int i = 0; i < n; ++i) t[i] = p[i];
    return vld1q_f32(t);
  }
  static inline void store(float* p, V v) { vst1q_f32(p, v); }
  static inline void store_n(float* p, V v, int n) {
    float t[4];
    vst1q_f32(t, v);
    for (int i = 0; i < n; ++i) p[i] = t[i];
  }
  static inline V set1(float x) { return vdupq_n_f32(x); }
  static inline V zero() { return vdupq_n_f32(0.0f); }
  static inline V add(V a, V b) { return vaddq_f32(a, b); }
  static inline V sub(V a, V b) { return vsubq_f32(a, b); }
  static inline V mul(V a, V b) { return vmulq_f32(a, b); }
  static inline V fma(V a, V b, V c) { return vfmaq_f32(c, a, b); }
  static inline V min(V a, V b) { return vminq_f32(a, b); }
  static inline V max(V a, V b) { return vmaxq_f32(a, b); }
  static inline V abs(V a) { return vabsq_f32(a); }
  static inline V neg(V a) { return vnegq_f32(a); }
#if defined(__aarch64__)
  static inline V div(V a, V b) { return vdivq_f32(a, b); }
  static inline V sqrt(V a) { return vsqrtq_f32(a); }
  static inline V round(V a) { return vrndnq_f32(a); }
  static inline float hsum(V a) { return vaddvq_f32(a); }
#else
  static inline V div(V a, V b) {
    V r = vrecpeq_f32(b);
    r = vmulq_f32(vrecpsq_f32(b, r), r);
    r = vmulq_f32(vrecpsq_f32(b, r), r);
    return vmulq_f32(a, r);
  }
  static inline V sqrt(V a) { return a; }  // unused: kIeeeDivSqrt is false
  // Nearest integer for |a| < 2^22 (all exp needs): truncate a +- 0.5.
  static inline V round(V a) {
    const V h = vbslq_f32(vcltq_f32(a, vdupq_n_f32(0.0f)), vdupq_n_f32(-0.5f), vdupq_n_f32(0.5f));
    return vcvtq_f32_s32(vcvtq_s32_f32(vaddq_f32(a, h)));
  }
  static inline float hsum(V a) {
    const float32x2_t s = vadd_f32(vget_low_f32(a), vget_high_f32(a));
    return vget_lane_f32(vpadd_f32(s, s), 0);
  }
#endif
  static inline V exp2i(V n) {
    const int32x4_t e = vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127));
    return vreinterpretq_f32_s32(vshlq_n_s32(e, 23));
  }
  static inline Mask gt(V a, V b) { return vcgtq_f32(a, b); }
  static inline Mask lt(V a, V b) { return vcltq_f32(a, b); }
  static inline Mask isnan(V a) { return vmvnq_u32(vceqq_f32(a, a)); }
  static inline V select(Mask m, V a, V b) { return vbslq_f32(m, a, b); }

  // 4 x 4 transpose: vtrn pairs, then swap 64-bit halves.
  static constexpr int kTranspose = 4;
  static inline void transpose(float* dst, size_t ldd, const float* src, size_t lds) {
    const float32x4x2_t a = vtrnq_f32(vld1q_f32(src), vld1q_f32(src + lds));
    const float32x4x2_t b = vtrnq_f32(vld1q_f32(src + 2 * lds), vld1q_f32(src + 3 * lds));
    vst1q_f32(dst, vcombine_f32(vget_low_f32(a.val[0]), vget_low_f32(b.val[0])));
    vst1q_f32(dst + ldd, vcombine_f32(vget_low_f32(a.val[1]), vget_low_f32(b.val[1])));
    vst1q_f32(dst + 2 * ldd, vcombine_f32(vget_high_f32(a.val[0]), vget_high_f32(b.val[0])));
    vst1q_f32(dst + 3 * ldd, vcombine_f32(vget_high_f32(a.val[1]), vget_high_f32(b.val[1])));
  }
};

}  // namespace
}  // namespace kernels
}  // namespace md

#include "kernels/simd.h"

namespace md {
namespace kernels {
extern const KernelTable kNeonTable = make_table<Neon>("neon");
extern const ForwardKernels kNeonForward = make_forward<Neon>();
}  // namespace kernels
}  // namespace md
#endif  // MD_KERNELS_NEON
