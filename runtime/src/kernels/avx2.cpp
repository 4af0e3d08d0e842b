// AVX2 + FMA variant (8 floats per vector). Compiled with -mavx2 -mfma
// (runtime/CMakeLists.txt); only ever called after dispatch.cpp has checked
// CPUID and XCR0, so the rest of the binary runs on any x86-64. No C++ library
// headers: see simd.h.
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/x86_transpose.h"

namespace md {
namespace kernels {
namespace {

// Lane masks for the first n lanes: 8 - n words into this table.
alignas(32) constexpr int32_t kFirstLanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

struct Avx2 {
  using V = __m256;
  using Mask = __m256;
  static constexpr int W = 8;
  // 6 x 2 tile: 12 accumulators + 2 B vectors + a broadcast of 16 registers.
  static constexpr int MR = 6, NR = 2, kAccumulators = 12;
  static constexpr int kVectorRegisters = 16;
  static constexpr bool kFmaReadsMemory = true;
  // Chunks, tuned on Zen 3 (bench/gemm_table.py, best of interleaved runs):
  // forward and gemm_nt reduce over up to 512 at once (packed B panel 512 x 16
  // floats = 32 KiB on the stack, streamed from L2) in row blocks of up to
  // 256; gemm_tn_acc's strided X^T takes chunks of 256 x 256 (from 128 x 256:
  // 7-18% faster at batch 256 and 2000, widths 128-512).
  static constexpr int KC = 512, MC = 256, KCT = 256, MCT = 256, KCN = KC;
  static constexpr int kPackRows = 16;   // pack B panels from this many rows
  static constexpr int kNtDotRows = 4;   // gemm_nt: dot products below 4 rows
  static constexpr bool kNtPanelCache = false;   // gemm_nt: W^T panels packed per row block
  static constexpr bool kTnPanelCache = false;   // gemm_tn_acc: dY panels packed per row block
  static constexpr bool kTnPrefetch = false;     // gemm_tn_acc: no software prefetch
  static constexpr bool kMaskedTail = true, kIeeeDivSqrt = true;
  static constexpr bool kWidenF16 = true, kWidenI8 = true;  // F16C: dispatch.cpp checks it with AVX2
  static inline V load_f16(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static inline V load_i8(const int8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  // Math activations 6 vectors at a time (Zen 3, act_fwd / act_bwd best of
  // 5 interleaved: 1.06-1.49x over one pair at a time; 4: 1.10-1.37x).
  static constexpr int kMapWidth = 6;
  static constexpr bool kNarrowDots = true;
  // gemm_tn_acc copies X^T into the caller's scratch from 256 inputs on
  // (Zen 3 and a Xeon with AVX-512, interleaved best of 5: 1.16-1.21x at
  // 512 inputs, 0.97-1.04x at 256).
  static constexpr bool kPackTransposedA = true;
  static constexpr int kNtTile[2] = {MR, NR}, kTnTile[2] = {MR, NR};  // gemm_nt, gemm_tn_acc: the same tile
  // The tiles' reduction loop unrolled 4x (burst harness on a Xeon: forward
  // 0.99-1.08x, gemm_nt 0.98-1.05x, gemm_tn_acc 1.04-1.12x; Zen 3 unmeasured).
  static constexpr bool kUnrollReduction = true;
  static constexpr bool kSumSquaresF64 = true;
  // Lane l of acc[j] is partial sum 4 j + l: 8 independent chains.
  static inline void sum_squares_chunks(const float* x, size_t chunks, double* part) {
    __m256d acc[8];
    for (int j = 0; j < 8; ++j) acc[j] = _mm256_loadu_pd(part + 4 * j);
    for (size_t c = 0; c < chunks; ++c, x += 32)
      for (int j = 0; j < 8; ++j) {
        const __m256d v = _mm256_cvtps_pd(_mm_loadu_ps(x + 4 * j));
        acc[j] = _mm256_add_pd(acc[j], _mm256_mul_pd(v, v));
      }
    for (int j = 0; j < 8; ++j) _mm256_storeu_pd(part + 4 * j, acc[j]);
  }

  static inline __m256i first(int n) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kFirstLanes + 8 - n));
  }
  static inline V load(const float* p) { return _mm256_loadu_ps(p); }
  static inline V load_n(const float* p, int n) { return _mm256_maskload_ps(p, first(n)); }
  static inline void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static inline void store_n(float* p, V v, int n) { _mm256_maskstore_ps(p, first(n), v); }
  static inline V set1(float x) { return _mm256_set1_ps(x); }
  static inline V zero() { return _mm256_setzero_ps(); }
  static inline V add(V a, V b) { return _mm256_add_ps(a, b); }
  static inline V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static inline V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static inline V div(V a, V b) { return _mm256_div_ps(a, b); }
  static inline V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static inline V min(V a, V b) { return _mm256_min_ps(a, b); }
  static inline V max(V a, V b) { return _mm256_max_ps(a, b); }
  static inline V sqrt(V a) { return _mm256_sqrt_ps(a); }
  static inline V abs(V a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  static inline V neg(V a) { return _mm256_xor_ps(a, _mm256_set1_ps(-0.0f)); }
  static inline V round(V a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static inline V exp2i(V n) {
    const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
  }
  static inline Mask gt(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static inline Mask lt(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static inline Mask isnan(V a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
  static inline V select(Mask m, V a, V b) { return _mm256_blendv_ps(b, a, m); }
  static inline float hsum(V a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
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
extern const KernelTable kAvx2Table = make_table<Avx2>("avx2");
extern const ForwardKernels kAvx2Forward = make_forward<Avx2>();
}  // namespace kernels
}  // namespace md
