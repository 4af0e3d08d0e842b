// AVX-512 variant (AVX-512F + DQ, 16 floats per vector). Compiled with
// -mavx512f -mavx512dq -mavx2 -mfma (runtime/CMakeLists.txt); only ever called
// after dispatch.cpp has checked CPUID and XCR0, so the rest of the binary
// runs on any x86-64. No C++ library headers: see simd.h.
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 flags the deliberately undefined vectors inside its own intrinsics
// (_mm512_undefined_ps) once they are inlined here.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/x86_transpose.h"

namespace md {
namespace kernels {
namespace {

struct Avx512 {
  using V = __m512;
  using Mask = __mmask16;
  static constexpr int W = 16;
  // 6 x 4 tile: 24 accumulators + 4 B vectors + a broadcast of 32 registers.
  static constexpr int MR = 6, NR = 4, kAccumulators = 24;
  static constexpr int kVectorRegisters = 32;
  static constexpr bool kFmaReadsMemory = true;
  // Chunks (tuned on Zen 4 at the MLP's shapes, bench/): reduce over up to
  // 256 at once (packed B panel 256 x 64 floats = 64 KiB on the stack,
  // streamed from L2: fewer passes over C than an L1-sized panel) in row
  // blocks of up to 256 (A block 256 KiB). gemm_tn_acc's strided X^T in
  // chunks of 128 (on a Xeon, md_bench best of 5 interleaved: 1.01-1.08x
  // over 256 at batch 256-2000; the forward product measured no better with
  // KC 128 or 512, or MC 128 or 512). gemm_nt (KCN) in chunks of 128: see
  // kNtTile.
  static constexpr int KC = 256, MC = 256, KCT = 128, MCT = 256, KCN = 128;
  static constexpr int kPackRows = 16;   // pack B panels from this many rows
  static constexpr int kNtDotRows = 4;   // gemm_nt: dot products below 4 rows
  // gemm_nt over several row blocks, given scratch: each chunk's W^T panels
  // transposed once into it, not once per row block (md_bench on a Xeon, best
  // of 4 interleaved: 1.05x at 2000 x 256 x 256 and 2000 x 512 x 512).
  static constexpr bool kNtPanelCache = true;
  // gemm_tn_acc over several row blocks (more than 256 inputs), given
  // scratch: each chunk's dY panels packed once, row tiles outermost
  // (tn_panel_cache). One-process A/B on a Xeon (best of 5-7 interleaved
  // bursts) against packing per row block, batch 2000: 1.015-1.03x at
  // 512 x 512, 1.09-1.13x at 512 x 1024, 1.15-1.17x at 1024 x 1024,
  // 1.06-1.09x at 1024 x 256, 1.01-1.03x at 384 x 384 and 300 x 300, but
  // 0.95-0.99x at 300 x 600; at 512 x 512, batch 256-1024 0.99-1.05x.
  static constexpr bool kTnPanelCache = true;
  // gemm_tn_acc over one row block (up to 256 inputs) with at least 1.5 MiB
  // of X and dY: the tiles prefetch the next chunk's rows of X and dY into
  // L2, a line every 2 steps (tn_prefetching); otherwise those rows come
  // from L3 and the tiles wait for them. One-process A/B on a Xeon (2 MiB
  // L2; best of 7 interleaved bursts, 4 rounds): 1.02-1.06x at
  // 2000 x 128 x 128, 1.02-1.05x at 2000 x 256 x 256, 1.08-1.10x at batch
  // 4000; with less than 1.5 MiB, which stays in L2 from call to call, it
  // measured 0.97-1.01x.
  static constexpr bool kTnPrefetch = true;
  static constexpr int kTnPrefetchSteps = 2;
  static constexpr size_t kTnPrefetchMinBytes = size_t{3} << 19;
  static constexpr bool kMaskedTail = true, kIeeeDivSqrt = true;
  static constexpr bool kWidenF16 = false, kWidenI8 = false;
  // Math activations 4 vectors (64 floats) at a time. On a Xeon (act_fwd /
  // act_bwd, best of 5 interleaved) 2 ran at 0.91-0.98x of 4's speed, 6 at
  // 0.94-1.04x and 8 at 0.92-1.04x.
  static constexpr int kMapWidth = 4;
  static constexpr bool kNarrowDots = true;
  // X^T read in place: packing it measured 0.81-0.88x at 256 inputs and
  // 0.92-1.00x at 512 on a Xeon (interleaved best of 5).
  static constexpr bool kPackTransposedA = false;
  // gemm_nt: 6 x 4 tiles over chunks of 128 (its packed W^T panel 128 x 64
  // floats = 32 KiB, inside the 48 KiB L1 of a Xeon) from 64 rows on, and
  // 12 x 2 tiles below (batch 32). One-process A/B on a Xeon (best of 7
  // interleaved bursts) against 12 x 2 over chunks of 256: 1.04-1.07x at
  // widths 256-512 and batch 128-256, 1.03-1.04x at batch 2000, 1.05-1.11x at
  // 128 x 128 from batch 256, but 0.92x at batch 32 (0.99-1.03x at 64). At
  // batch 32, 12 x 2 over chunks of 128 ran 1.06-1.07x at widths 256-512.
  // gemm_tn_acc measured no steady gain from 12 x 2, 14 x 2, 8 x 3 or 4 x 6.
  static constexpr int kNtTile[2] = {12, 2}, kNtTileBelowRows = 64, kTnTile[2] = {MR, NR};
  // The tiles' reduction loop unrolled 4x (burst harness on a Xeon: forward
  // 1.11-1.17x, gemm_tn_acc 1.02-1.07x, gemm_nt 0.95-1.04x).
  static constexpr bool kUnrollReduction = true;
  static constexpr bool kSumSquaresF64 = true;
  // Lane l of acc[j] is partial sum 8 j + l: 4 independent chains.
  static inline void sum_squares_chunks(const float* x, size_t chunks, double* part) {
    __m512d acc[4];
    for (int j = 0; j < 4; ++j) acc[j] = _mm512_loadu_pd(part + 8 * j);
    for (size_t c = 0; c < chunks; ++c, x += 32)
      for (int j = 0; j < 4; ++j) {
        const __m512d v = _mm512_cvtps_pd(_mm256_loadu_ps(x + 8 * j));
        acc[j] = _mm512_add_pd(acc[j], _mm512_mul_pd(v, v));
      }
    for (int j = 0; j < 4; ++j) _mm512_storeu_pd(part + 8 * j, acc[j]);
  }

  static inline Mask first(int n) { return static_cast<Mask>((1u << n) - 1u); }
  static inline V load(const float* p) { return _mm512_loadu_ps(p); }
  static inline V load_n(const float* p, int n) { return _mm512_maskz_loadu_ps(first(n), p); }
  static inline void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static inline void store_n(float* p, V v, int n) { _mm512_mask_storeu_ps(p, first(n), v); }
  static inline V set1(float x) { return _mm512_set1_ps(x); }
  static inline V zero() { return _mm512_setzero_ps(); }
  static inline V add(V a, V b) { return _mm512_add_ps(a, b); }
  static inline V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static inline V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static inline V div(V a, V b) { return _mm512_div_ps(a, b); }
  static inline V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static inline V min(V a, V b) { return _mm512_min_ps(a, b); }
  static inline V max(V a, V b) { return _mm512_max_ps(a, b); }
  static inline V sqrt(V a) { return _mm512_sqrt_ps(a); }
  static inline V abs(V a) { return _mm512_abs_ps(a); }
  static inline V neg(V a) { return _mm512_xor_ps(a, _mm512_set1_ps(-0.0f)); }
  static inline V round(V a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static inline V exp2i(V n) {
    const __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
  }
  static inline Mask gt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static inline Mask lt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static inline Mask isnan(V a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
  static inline V select(Mask m, V a, V b) { return _mm512_mask_blend_ps(m, b, a); }
  static inline float hsum(V a) { return _mm512_reduce_add_ps(a); }

  // 8 x 8 transpose in YMM registers (kernels/x86_transpose.h).
  static constexpr int kTranspose = 8;
  static inline void transpose(float* dst, size_t ldd, const float* src, size_t lds) {
    transpose8x8_avx(dst, ldd, src, lds);
  }
};

}  // namespace
}  // namespace kernels
}  // namespace md

#include "kernels/simd.h"

namespace md {
namespace kernels {
extern const KernelTable kAvx512Table = make_table<Avx512>("avx512");
extern const ForwardKernels kAvx512Forward = make_forward<Avx512>();
}  // namespace kernels
}  // namespace md
