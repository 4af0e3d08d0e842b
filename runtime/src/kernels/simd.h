// Generic SIMD kernels, written once against a small traits interface `S` and
// instantiated by each ISA's file (avx2.cpp, avx512.cpp, neon.cpp), which is
// compiled with that ISA's flags.
//
// Everything here is in an anonymous namespace on purpose: each including file
// gets its own private copy compiled for its own ISA. Nothing may be emitted
// as a shared (weak/inline) symbol, or the linker could let an AVX-512 copy
// stand in for the one another variant (or the reference) calls. For the same
// reason this header and the ISA files include no C++ library headers.
//
// The traits S provide (all static):
//   V, Mask                         vector of W floats, lane mask
//   W, MR, NR                       lanes; GEMM tile of MR rows x NR vectors
//   kAccumulators, kVectorRegisters vector registers for accumulators, in all
//   kFmaReadsMemory                 fma can take an operand from memory
//   KC, MC (KCT, MCT for X^T)       reduction chunk (B panel KC x NR*W floats,
//                                   packed on the stack), rows per block;
//   KCN                             gemm_nt's reduction chunk (<= KC)
//   kPackRows, kNtDotRows           pack B from this many rows; gemm_nt by
//                                   dot products below this many
//   kMaskedTail                     load_n/store_n are cheap (hardware masks):
//                                   GEMM column tails use them, else scalar
//   kIeeeDivSqrt                    div and sqrt are correctly rounded (Adam)
//   kNarrowDots                     gemm_bias with N < W columns by dot
//                                   products (narrow())
//   kUnrollReduction                the tiles' reduction loop unrolled 4x
//   kTnTile                         register tile {MR, NR} of gemm_tn_acc
//                                   (Retiled), if not MR x NR
//   kNtTile, kNtTileBelowRows       gemm_nt's register tile for fewer rows
//                                   than kNtTileBelowRows (only read where
//                                   kNtTile is not MR x NR)
//   kTnPanelCache                   gemm_tn_acc over several row blocks, given
//                                   scratch: a chunk's dY panels packed once
//                                   into it, row tiles outermost
//                                   (tn_panel_cache)
//   kTnPrefetch                     gemm_tn_acc over one row block with at
//                                   least kTnPrefetchMinBytes of X and dY:
//                                   the tiles prefetch the next chunk's rows
//                                   into L2, a line every kTnPrefetchSteps
//                                   steps (tn_prefetching)
//   kPackTransposedA                gemm_tn_acc copies X^T into the caller's
//                                   scratch (if given) from
//                                   kWeightGradPackMinWidth inputs on
//   kSumSquaresF64                  sum_squares_chunks(x, chunks, part)
//                                   exists: the double lanes of
//                                   sum_squares over whole 32-float chunks
//                                   (ISAs without double vectors leave it
//                                   to the scalar loop)
//   kWidenF16, kWidenI8             load_f16(p) / load_i8(p) exist: W halves
//                                   or int8 from p as floats (reduced-
//                                   precision weights); else widened one by one
//   kMapWidth                       the math activations (exp, log, tanh,
//                                   erf) and their derivatives take this many
//                                   vectors per iteration, interleaved
//                                   (Wide): the core overlaps their long
//                                   dependency chains
//   load, load_n(p, n), store, store_n(p, v, n)   n in [1, W): lanes >= n
//                                   are neither read nor written (load_n: 0)
//   set1, zero, add, sub, mul, div, fma(a, b, c) = a * b + c (fused), min,
//   max, abs, neg, sqrt, round (to nearest integer), exp2i (2^n for integral
//   n in [-126, 127]), gt, lt, isnan, select(m, a, b) = m ? a : b, hsum
//   kTranspose, transpose(dst, ldd, src, lds): dst[j][i] = src[i][j] for a
//                                   kTranspose x kTranspose block
#pragma once
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "activation_limits.h"
#include "kernels/half.h"
#include "kernels/kernels.h"

namespace md {
namespace math {
// scalar_math.h's (declared here alone: that header has inline functions,
// which an ISA file must not emit; see above).
void sincos_f(float a, float* s, float* c);
}  // namespace math
}  // namespace md

namespace md {
namespace kernels {
namespace {

// ---- GEMM ----------------------------------------------------------------------
//
// One engine for the three products: C (rows x cols) = or += A (rows x red) .
// B (red x cols) (+ bias on the first write), with
//   A(r, p) = A[r * lda + p]   (AT = false: X in gemm_bias, dY in gemm_nt), or
//   A(r, p) = A[p * lda + r]   (AT = true: X^T in gemm_tn_acc),
//   B(p, c) = B[p * ldb + c].
// Register tile: MR rows x NV vectors of C, updated with an outer product per
// p (NV loads of B, MR broadcasts of A). Around it (run()): reduction chunks
// of KC, row blocks of MC (the A block stays in L2), column blocks of NB =
// NR*W; each (chunk, column block) panel of B is packed contiguously on the
// stack and swept by every row tile of the block. Tuned with
// bench/gemm_table.py on Zen 4 (AVX-512: about 80-95% of the FMA peak at batch
// >= 256 and widths 96-512) and Zen 3 (AVX2), retuned on a Xeon: docs/PERFORMANCE.md.
// Small shapes take their own paths: few rows (a batch of 1-5: few_rows,
// wide column blocks), a batch of 1-4 in gemm_tn_acc (short_reduction, a
// rank-P update) and gemm_nt with 1-3 rows (nt_dot, dot products). Given
// scratch (model.h weight_grad_pack_floats), gemm_tn_acc with at least
// kWeightGradPackMinWidth inputs copies each X^T block into slivers of MR rows
// (pack_slivers), instead of reading one cache line per reduction step from
// rows of X a power-of-two stride apart.

enum class Init { kZeroOrBias, kAccumulate };

template <class S>
struct Gemm {
  using V = typename S::V;
  static constexpr int W = S::W;
  static constexpr int NB = S::NR * S::W;  // columns per full block

  template <int NV, bool TAIL>
  static inline V load_col(const float* p, int v, int tail) {
    return (TAIL && v == NV - 1) ? S::load_n(p, tail) : S::load(p);
  }

  // How the last vector of a column tail is read from B: masked (B is the
  // caller's matrix), or whole (B is a packed panel whose tail lanes are 0:
  // a masked load in the loop would make GCC keep the accumulators in memory,
  // since the masked-load builtin may read anything).
  enum BTail { kBMasked, kBPadded };

  // One reduction step of a tile: c += A(:, p) B(p, :). The NR-wide tiles
  // hold the step's NV B vectors and one broadcast; the wide few-row tiles
  // (few_rows: NV > NR and fewer rows than vectors) hold the MR broadcasts
  // and one B vector at a time instead, so MR x NV accumulators still fit
  // (holding all of B, GCC spilled accumulators: on a Xeon AVX-512's 1 x 24
  // ran 1.7x, its 2 x 12 and 3 x 8 1.14-1.17x, AVX2's 2 x 6 and 3 x 4
  // 1.3-1.6x faster this way). Same operations in the same order per sum.
  template <int MR, int NV, bool AT, bool BMASK>
  static inline __attribute__((always_inline)) void step(V (&c)[MR][NV], const float* A, size_t lda, const float* B,
                                                         int tail) {
    if constexpr (NV > S::NR && MR < NV) {
      V a[MR];
      for (int r = 0; r < MR; ++r) a[r] = S::set1(AT ? A[r] : A[r * lda]);
      for (int v = 0; v < NV; ++v) {
        const V b = load_col<NV, BMASK>(B + v * W, v, tail);
        for (int r = 0; r < MR; ++r) c[r][v] = S::fma(a[r], b, c[r][v]);
      }
    } else {
      V b[NV];
      for (int v = 0; v < NV; ++v) b[v] = load_col<NV, BMASK>(B + v * W, v, tail);
      for (int r = 0; r < MR; ++r) {
        const V a = S::set1(AT ? A[r] : A[r * lda]);
        for (int v = 0; v < NV; ++v) c[r][v] = S::fma(a, b[v], c[r][v]);
      }
    }
  }

  // Where the tiles of tn_prefetching stand in the next chunk's rows: first
  // X's bytes [x, x_end), then dY's [y, y_end). Integers: the cursors step a
  // line at a time and may end past the last byte, never to be read.
  struct Lookahead {
    uintptr_t x, x_end, y, y_end;
    bool live() const { return x < x_end || y < y_end; }
  };
  static constexpr int kLineBytes = 64;

  // PREFETCH (tn_prefetching only): every kTnPrefetchSteps steps, the tile
  // also prefetches one line of the next chunk into L2 at `ahead`.
  template <int MR, int NV, bool TAIL, bool AT, bool BMASK = TAIL, bool PREFETCH = false>
  static inline void tile(float* C, size_t ldc, const float* A, size_t lda, const float* B, size_t ldb, int pn,
                          Init init, const float* bias, int tail, Lookahead* ahead = nullptr) {
    V c[MR][NV];
    if (init == Init::kAccumulate) {
      for (int r = 0; r < MR; ++r)
        for (int v = 0; v < NV; ++v) c[r][v] = load_col<NV, TAIL>(C + r * ldc + v * W, v, tail);
    } else if (bias != nullptr) {
      for (int v = 0; v < NV; ++v) {
        const V bv = load_col<NV, TAIL>(bias + v * W, v, tail);
        for (int r = 0; r < MR; ++r) c[r][v] = bv;
      }
    } else {
      for (int r = 0; r < MR; ++r)
        for (int v = 0; v < NV; ++v) c[r][v] = S::zero();
    }
    if constexpr (PREFETCH) {
      // A chunk's whole tiles then walk once through the next chunk's rows
      // of X and dY, if they take enough steps (on AVX-512, 128 x 128 takes
      // 1.3 times as many prefetches as the lines hold).
      static_assert(AT, "prefetching is gemm_tn_acc's");
      Lookahead a = *ahead;
      int p = 0;
      for (; p + S::kTnPrefetchSteps <= pn; p += S::kTnPrefetchSteps) {
#pragma GCC unroll 8
        for (int u = 0; u < S::kTnPrefetchSteps; ++u) {
          step<MR, NV, AT, BMASK>(c, A, lda, B, tail);
          A += lda;
          B += ldb;
        }
        if (a.x < a.x_end) {
          __builtin_prefetch(reinterpret_cast<const void*>(a.x), 0, 2);  // 2: into L2
          a.x += kLineBytes;
        } else if (a.y < a.y_end) {
          __builtin_prefetch(reinterpret_cast<const void*>(a.y), 0, 2);
          a.y += kLineBytes;
        }
      }
      for (; p < pn; ++p) {
        step<MR, NV, AT, BMASK>(c, A, lda, B, tail);
        A += lda;
        B += ldb;
      }
      *ahead = a;
    } else if constexpr (S::kUnrollReduction) {
      // Two copies of the loop: GCC 12 takes no template-dependent unroll count.
#pragma GCC unroll 4
      for (int p = 0; p < pn; ++p) {
        step<MR, NV, AT, BMASK>(c, A, lda, B, tail);
        A += AT ? lda : 1;
        B += ldb;
      }
    } else {
      for (int p = 0; p < pn; ++p) {
        step<MR, NV, AT, BMASK>(c, A, lda, B, tail);
        A += AT ? lda : 1;
        B += ldb;
      }
    }
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) {
        if (TAIL && v == NV - 1)
          S::store_n(C + r * ldc + v * W, c[r][v], tail);
        else
          S::store(C + r * ldc + v * W, c[r][v]);
      }
  }

  // The last rem (< MR) rows.
  template <int R, int NV, bool TAIL, bool AT, bool BMASK>
  static inline void rows_rem(int rem, float* C, size_t ldc, const float* A, size_t lda, const float* B,
                              size_t ldb, int pn, Init init, const float* bias, int tail) {
    if constexpr (R >= 1) {
      if (rem == R)
        tile<R, NV, TAIL, AT, BMASK>(C, ldc, A, lda, B, ldb, pn, init, bias, tail);
      else
        rows_rem<R - 1, NV, TAIL, AT, BMASK>(rem, C, ldc, A, lda, B, ldb, pn, init, bias, tail);
    }
  }

  // PREFETCH: the whole tiles prefetch at `ahead` as they go (tn_prefetching).
  template <int NV, bool TAIL, bool AT, bool BMASK = TAIL, bool PREFETCH = false>
  static void rows(float* C, size_t ldc, const float* A, size_t lda, const float* B, size_t ldb, int M, int pn,
                   Init init, const float* bias, int tail, Lookahead* ahead = nullptr) {
    int r = 0;
    for (; r + S::MR <= M; r += S::MR)
      tile<S::MR, NV, TAIL, AT, BMASK, PREFETCH>(C + r * ldc, ldc, A + (AT ? r : r * lda), lda, B, ldb, pn, init,
                                                 bias, tail, ahead);
    if (r < M)
      rows_rem<S::MR - 1, NV, TAIL, AT, BMASK>(M - r, C + r * ldc, ldc, A + (AT ? r : r * lda), lda, B, ldb, pn,
                                               init, bias, tail);
  }

  // Columns [0, nv * W + tail) with nv whole vectors (<= NR) then `tail`
  // masked lanes, picked at run time.
  template <int NV, bool AT>
  static void rows_nv(int nv, bool has_tail, BTail bt, float* C, size_t ldc, const float* A, size_t lda,
                      const float* B, size_t ldb, int M, int pn, Init init, const float* bias, int tail) {
    if constexpr (NV >= 1) {
      if (nv == NV) {
        if (!has_tail)
          rows<NV, false, AT>(C, ldc, A, lda, B, ldb, M, pn, init, bias, tail);
        else if (bt == kBPadded)
          rows<NV, true, AT, false>(C, ldc, A, lda, B, ldb, M, pn, init, bias, tail);
        else
          rows<NV, true, AT, true>(C, ldc, A, lda, B, ldb, M, pn, init, bias, tail);
      } else {
        rows_nv<NV - 1, AT>(nv, has_tail, bt, C, ldc, A, lda, B, ldb, M, pn, init, bias, tail);
      }
    }
  }

  // Scalar columns (tails of ISAs without cheap masks).
  template <bool AT>
  static void scalar_cols(float* C, size_t ldc, const float* A, size_t lda, const float* B, size_t ldb, int M,
                          int pn, int ncols, Init init, const float* bias) {
    for (int r = 0; r < M; ++r)
      for (int c = 0; c < ncols; ++c) {
        float s = init == Init::kAccumulate ? C[r * ldc + c] : (bias != nullptr ? bias[c] : 0.0f);
        for (int p = 0; p < pn; ++p) {
          const float a = AT ? A[p * lda + r] : A[r * lda + p];
          s += a * B[p * ldb + c];
        }
        C[r * ldc + c] = s;
      }
  }

  // One block of ncols <= NB columns, all M rows, pn reduction steps.
  template <bool AT>
  static void block(float* C, size_t ldc, const float* A, size_t lda, const float* B, size_t ldb, int M, int pn,
                    int ncols, Init init, const float* bias, BTail bt) {
    if (ncols == NB) {
      rows<S::NR, false, AT>(C, ldc, A, lda, B, ldb, M, pn, init, bias, 0);
      return;
    }
    const int nv = ncols / W, tail = ncols % W;
    if (S::kMaskedTail) {
      rows_nv<S::NR, AT>(nv + (tail != 0), tail != 0, bt, C, ldc, A, lda, B, ldb, M, pn, init, bias, tail);
    } else {
      if (nv > 0) rows_nv<S::NR, AT>(nv, false, bt, C, ldc, A, lda, B, ldb, M, pn, init, bias, 0);
      if (tail > 0)
        scalar_cols<AT>(C + nv * W, ldc, A, lda, B + nv * W, ldb, M, pn, tail, init,
                        bias != nullptr ? bias + nv * W : nullptr);
    }
  }

  static void fill_rows(float* C, size_t ldc, int M, int N, const float* bias) {
    for (int r = 0; r < M; ++r)
      for (int c = 0; c < N; ++c) C[r * ldc + c] = bias != nullptr ? bias[c] : 0.0f;
  }

  // Copies rows [0, pn) x columns [0, nc) of B into panel (row stride NB),
  // zeros up to the next whole vector:
  // the tile then streams one contiguous block instead of pn rows a
  // power-of-two stride apart (which share a few L1 sets and evict each other).
  static void pack_panel(float* panel, const float* B, size_t ldb, int pn, int nc) {
    if (nc == NB) {  // a fixed count: vector moves (GCC turns a run-time count into a memcpy call per row)
      for (int p = 0; p < pn; ++p, B += ldb)
        for (int v = 0; v < S::NR; ++v) S::store(panel + p * NB + v * W, S::load(B + v * W));
      return;
    }
    const int nv = nc / W, tail = nc % W;
    for (int p = 0; p < pn; ++p) {
      const float* src = B + static_cast<size_t>(p) * ldb;
      float* dst = panel + p * NB;
      for (int v = 0; v < nv; ++v) S::store(dst + v * W, S::load(src + v * W));
      if (tail) S::store(dst + nv * W, S::load_n(src + nv * W, tail));  // lanes past nc: 0
    }
  }

  // Rows per block: at most max_rows (an A block of MC x KC floats stays in L2
  // while every column block sweeps it), evened out over the blocks and
  // rounded up to whole tiles.
  static int rows_per_block(int M, int max_rows) {
    if (M <= max_rows) return M;
    const int blocks = (M + max_rows - 1) / max_rows;
    const int mc = (M + blocks - 1) / blocks;
    return (mc + S::MR - 1) / S::MR * S::MR;
  }

  // Few rows (M < MR, e.g. a batch of 1): column blocks as wide as the
  // accumulator registers allow (R x kAccumulators/R vectors), each streaming
  // the whole reduction, so every B row is read in long contiguous pieces and
  // there are enough independent FMA chains. The columns left over go
  // through the normal tiles.
  template <int R, bool AT>
  static void few_rows(float* C, size_t ldc, const float* A, size_t lda, const float* B, size_t ldb, int P, int N,
                       bool accumulate, const float* bias) {
    // x86 FMAs read B from memory: only the accumulators need registers.
    // NEON's need B in registers too: R x WV accumulators + WV + a broadcast.
    constexpr int WV = S::kFmaReadsMemory ? S::kAccumulators / R : (S::kVectorRegisters - 1) / (R + 1);
    const Init init = accumulate ? Init::kAccumulate : Init::kZeroOrBias;
    int c0 = 0;
    for (; c0 + WV * W <= N; c0 += WV * W)
      tile<R, WV, false, AT>(C + c0, ldc, A, lda, B + c0, ldb, P, init, bias ? bias + c0 : nullptr, 0);
    for (; c0 < N; c0 += NB) {
      const int nc = N - c0 < NB ? N - c0 : NB;
      block<AT>(C + c0, ldc, A, lda, B + c0, ldb, R, P, nc, init, bias ? bias + c0 : nullptr, kBMasked);
    }
  }

  template <int R, bool AT>
  static void few_rows_dispatch(int M, float* C, size_t ldc, const float* A, size_t lda, const float* B, size_t ldb,
                                int P, int N, bool accumulate, const float* bias) {
    if constexpr (R >= 1) {
      if (M == R)
        few_rows<R, AT>(C, ldc, A, lda, B, ldb, P, N, accumulate, bias);
      else
        few_rows_dispatch<R - 1, AT>(M, C, ldc, A, lda, B, ldb, P, N, accumulate, bias);
    }
  }

  // Short reductions (P <= 4: a batch of 1-4 in gemm_tn_acc): a rank-P
  // update, C row by row, each element read and written once.
  template <int P, bool AT>
  static void short_reduction(float* C, size_t ldc, const float* A, size_t lda, const float* B, size_t ldb, int M,
                              int N) {
    const int nv = N / W, tail = N % W;
    for (int r = 0; r < M; ++r) {
      V a[P];
      for (int p = 0; p < P; ++p)
        a[p] = S::set1(AT ? A[static_cast<size_t>(p) * lda + r] : A[static_cast<size_t>(r) * lda + p]);
      float* c = C + static_cast<size_t>(r) * ldc;
      for (int v = 0; v < nv; ++v) {
        V acc = S::load(c + v * W);
        for (int p = 0; p < P; ++p) acc = S::fma(a[p], S::load(B + static_cast<size_t>(p) * ldb + v * W), acc);
        S::store(c + v * W, acc);
      }
      if (tail) {
        V acc = S::load_n(c + nv * W, tail);
        for (int p = 0; p < P; ++p)
          acc = S::fma(a[p], S::load_n(B + static_cast<size_t>(p) * ldb + nv * W, tail), acc);
        S::store_n(c + nv * W, acc, tail);
      }
    }
  }

  // The driver: reduction chunks of KC, row blocks of MC, column blocks of
  // NB. TB: B is given transposed, B(p, c) = B[c * ldb + p] (gemm_nt's W),
  // and is always packed, transposing; otherwise B is packed (contiguous
  // panel) once enough rows reuse it.
  template <bool AT, bool TB>
  static void run(float* C, size_t ldc, const float* A, size_t lda, const float* B, size_t ldb, int M, int P, int N,
                  bool accumulate, const float* bias, float* apack = nullptr, float* bcache = nullptr,
                  size_t bcache_floats = 0) {
    if (M <= 0 || N <= 0) return;
    if (P <= 0) {
      if (!accumulate) fill_rows(C, ldc, M, N, bias);
      return;
    }
    if constexpr (AT) {
      if (accumulate && P <= 4) {
        switch (P) {
          case 1: short_reduction<1, AT>(C, ldc, A, lda, B, ldb, M, N); return;
          case 2: short_reduction<2, AT>(C, ldc, A, lda, B, ldb, M, N); return;
          case 3: short_reduction<3, AT>(C, ldc, A, lda, B, ldb, M, N); return;
          default: short_reduction<4, AT>(C, ldc, A, lda, B, ldb, M, N); return;
        }
      }
    }
    if constexpr (!TB) {
      if (M < S::MR && P > 4) {
        few_rows_dispatch<S::MR - 1, AT>(M, C, ldc, A, lda, B, ldb, P, N, accumulate, bias);
        return;
      }
    }
    const bool pack = TB || M >= S::kPackRows;
    // X^T (gemm_tn_acc) reads one cache line per reduction step, from rows a
    // power-of-two stride apart: it gets its own, smaller chunks.
    constexpr int kc = AT ? S::KCT : (TB ? S::KCN : S::KC);
    const int mc = rows_per_block(M, AT ? S::MCT : S::MC);
    static_assert(kc <= S::KC, "the panel holds KC rows");
    float panel[S::KC * NB];
    if constexpr (!TB && !AT) {
      if (S::kNarrowDots && !accumulate && N <= kNarrowMax && N < W && P >= W &&
          static_cast<size_t>(N) * P <= S::KC * NB) {
        narrow(C, ldc, A, lda, B, ldb, M, P, N, bias, panel);
        return;
      }
    }
    // A chunk's B panels for all the columns side by side (column block c0
    // at c0 * kc): what the panel caches below keep in the caller's scratch.
    const size_t chunk_panels = static_cast<size_t>(kc) * ((N + NB - 1) / NB * NB);
    if constexpr (AT && S::kTnPanelCache) {
      // apack: M x kWeightGradPackRows floats of scratch (kernels.h).
      if (apack != nullptr && accumulate && mc < M && chunk_panels <= static_cast<size_t>(M) * kWeightGradPackRows) {
        tn_panel_cache(C, ldc, A, lda, B, ldb, M, P, N, kc, apack);
        return;
      }
    }
    if constexpr (AT && S::kTnPrefetch) {
      // One row block whose rows of X are whole rows (not a thread's range
      // of them: it would fetch the other ranges' columns too).
      if (accumulate && mc == M && lda == static_cast<size_t>(M) &&
          static_cast<size_t>(P) * (M + N) * sizeof(float) >= S::kTnPrefetchMinBytes) {
        tn_prefetching(C, ldc, A, lda, B, ldb, M, P, N, kc, panel);
        return;
      }
    }
    if (!AT || !S::kPackTransposedA || lda < kWeightGradPackMinWidth) apack = nullptr;
    // TB over several row blocks: each chunk's W^T panels are transposed once,
    // side by side in bcache (column block c0 at c0 * kc), and reused by the
    // later row blocks, if the caller gave room for a chunk's full width.
    const bool cache_b = TB && S::kNtPanelCache && bcache != nullptr && mc < M && chunk_panels <= bcache_floats;
    sweep<AT>(C, ldc, A, lda, M, P, N, accumulate, bias, kc, mc, pack ? kBPadded : kBMasked, apack,
              [&](int p0, int pn, int m0, int c0, int nc, size_t* ldbb) -> const float* {
                if (TB) {
                  float* dst = cache_b ? bcache + static_cast<size_t>(c0) * kc : panel;
                  if (!cache_b || m0 == 0) pack_transposed(dst, B + static_cast<size_t>(c0) * ldb + p0, ldb, pn, nc);
                  return dst;
                }
                if (pack) {
                  pack_panel(panel, B + static_cast<size_t>(p0) * ldb + c0, ldb, pn, nc);
                  return panel;
                }
                *ldbb = ldb;
                return B + static_cast<size_t>(p0) * ldb + c0;
              });
  }

  // gemm_tn_acc over several row blocks, given scratch (kTnPanelCache): per
  // reduction chunk, the dY panels of all the columns are packed once into
  // the scratch, side by side (column block c0 at c0 * kc), and each row
  // tile then sweeps every column block before the next row tile starts.
  // sweep() packs each panel again for every row block, and its first
  // column block reads the new lines of X from L3 in one run of tiles; here
  // they come in a row tile at a time, spread over the chunk, and the panels
  // stream from L2. Same operations in the same order for every element.
  static void tn_panel_cache(float* C, size_t ldc, const float* A, size_t lda, const float* B, size_t ldb, int M,
                             int P, int N, int kc, float* cache) {
    for (int p0 = 0; p0 < P; p0 += kc) {
      const int pn = P - p0 < kc ? P - p0 : kc;
      for (int c0 = 0; c0 < N; c0 += NB)
        pack_panel(cache + static_cast<size_t>(c0) * kc, B + static_cast<size_t>(p0) * ldb + c0, ldb, pn,
                   N - c0 < NB ? N - c0 : NB);
      const float* Ap = A + static_cast<size_t>(p0) * lda;
      for (int r = 0; r < M; r += S::MR) {
        const int rows = M - r < S::MR ? M - r : S::MR;
        for (int c0 = 0; c0 < N; c0 += NB)
          block<true>(C + static_cast<size_t>(r) * ldc + c0, ldc, Ap + r, lda, cache + static_cast<size_t>(c0) * kc,
                      NB, rows, pn, N - c0 < NB ? N - c0 : NB, Init::kAccumulate, nullptr, kBPadded);
      }
    }
  }

  // gemm_tn_acc over one row block and operands too large to stay in L2
  // from call to call (kTnPrefetch): the loop of sweep(), whose whole tiles
  // also prefetch the next chunk's rows of X, then of dY, into L2, so that
  // they stream in while the multiply-adds run instead of arriving from L3
  // when first read (prefetching only X, or only dY, measured no better than
  // none). Same operations in the same order for every element.
  static void tn_prefetching(float* C, size_t ldc, const float* A, size_t lda, const float* B, size_t ldb, int M,
                             int P, int N, int kc, float* panel) {
    for (int p0 = 0; p0 < P; p0 += kc) {
      const int pn = P - p0 < kc ? P - p0 : kc;
      const int next = p0 + pn, next_end = P - next < kc ? P : next + kc;  // the next chunk's rows
      Lookahead ahead = {0, 0, 0, 0};
      if (next < P) {
        const uintptr_t a = reinterpret_cast<uintptr_t>(A), b = reinterpret_cast<uintptr_t>(B);
        ahead.x = a + sizeof(float) * next * lda;
        ahead.x_end = a + sizeof(float) * ((next_end - 1) * lda + M);
        ahead.y = b + sizeof(float) * next * ldb;
        ahead.y_end = b + sizeof(float) * ((next_end - 1) * ldb + N);
      }
      const float* Ap = A + static_cast<size_t>(p0) * lda;
      for (int c0 = 0; c0 < N; c0 += NB) {
        const int nc = N - c0 < NB ? N - c0 : NB;
        pack_panel(panel, B + static_cast<size_t>(p0) * ldb + c0, ldb, pn, nc);
        if (nc == NB && ahead.live())  // what block() runs for a whole column block, prefetching
          rows<S::NR, false, true, false, true>(C + c0, ldc, Ap, lda, panel, NB, M, pn, Init::kAccumulate, nullptr,
                                                0, &ahead);
        else
          block<true>(C + c0, ldc, Ap, lda, panel, NB, M, pn, nc, Init::kAccumulate, nullptr, kBPadded);
      }
    }
  }

  // The blocked loop of run() and run_widened(): reduction chunks of kc, row
  // blocks of mc, column blocks of NB. b_block(p0, pn, m0, c0, nc, &ldb)
  // gives the block of B (rows p0.., columns c0..) the tiles of the row block
  // from m0 read: a panel it packed (row stride NB, the default of ldb) or B
  // itself (setting ldb).
  // apack (AT only; null: A is read in place): scratch of mc x kc floats that
  // each A block is first copied into as slivers of MR rows (pack_slivers),
  // every tile then reading its own contiguous sliver. The tiles do the same
  // operations in the same order either way.
  template <bool AT, class BBlock>
  static void sweep(float* C, size_t ldc, const float* A, size_t lda, int M, int P, int N, bool accumulate,
                    const float* bias, int kc, int mc, BTail bt, float* apack, const BBlock& b_block) {
    for (int p0 = 0; p0 < P; p0 += kc) {
      const int pn = P - p0 < kc ? P - p0 : kc;
      const Init init = (accumulate || p0 > 0) ? Init::kAccumulate : Init::kZeroOrBias;
      for (int m0 = 0; m0 < M; m0 += mc) {
        const int mn = M - m0 < mc ? M - m0 : mc;
        const float* Ap = A + (AT ? static_cast<size_t>(p0) * lda + m0 : static_cast<size_t>(m0) * lda + p0);
        if (AT && apack != nullptr) pack_slivers(apack, Ap, lda, mn, pn);
        for (int c0 = 0; c0 < N; c0 += NB) {
          const int nc = N - c0 < NB ? N - c0 : NB;
          size_t ldbb = NB;
          const float* Bb = b_block(p0, pn, m0, c0, nc, &ldbb);
          float* Cb = C + static_cast<size_t>(m0) * ldc + c0;
          if (AT && apack != nullptr) {
            for (int r = 0; r < mn; r += S::MR) {
              const int rows = mn - r < S::MR ? mn - r : S::MR;
              block<true>(Cb + static_cast<size_t>(r) * ldc, ldc, apack + static_cast<size_t>(r) * pn, rows, Bb,
                          ldbb, rows, pn, nc, init, nullptr, bt);
            }
            continue;
          }
          block<AT>(Cb, ldc, Ap, lda, Bb, ldbb, mn, pn, nc, init,
                    (init == Init::kZeroOrBias && bias != nullptr) ? bias + c0 : nullptr, bt);
        }
      }
    }
  }

  // A^T block (A(r, p) = A[p * lda + r], r < mn, p < pn) into slivers of MR
  // rows (the last one the rem = mn mod MR rows left, if any): the sliver
  // from row r holds A(r + j, p) at dst[r pn + p rows + j], so a tile reads
  // its rows' floats consecutively per reduction step (AT with lda = rows),
  // and the whole takes mn x pn floats. The copy is mn x pn floats against
  // the block's mn x pn x N multiply-adds.
  //
  // Written in groups of kSliverGroup steps, sliver by sliver within a group:
  // each sliver's piece is one contiguous run, and the group's rows of A stay
  // in L1 from one sliver to the next. Written step by step across all
  // slivers instead, every step stored into mn / MR places a sliver apart
  // (kilobytes: the same few L1 sets), each store missing L1; on a Xeon that
  // made the copy cost AVX2's gemm_tn_acc 2-7% (one-process A/B, best of 5
  // interleaved bursts, batch 256-2000, widths 256-512). A step's MR floats
  // go as one whole vector whose W - MR lanes past them land on the next
  // steps of the same sliver, which are written after it; the last
  // kExactSteps steps of a sliver, past which lies the next sliver (already
  // written), and rows whose vector would read past the block's mn rows,
  // are copied float by float.
  static constexpr int kSliverGroup = 16;
  static constexpr int kExactSteps = (W - S::MR + S::MR - 1) / S::MR;
  static void pack_slivers(float* dst, const float* A, size_t lda, int mn, int pn) {
    static_assert(S::MR <= W, "a sliver row is one vector");
    const int full = mn - mn % S::MR, rem = mn - full;
    for (int g0 = 0; g0 < pn; g0 += kSliverGroup) {
      const int gn = pn - g0 < kSliverGroup ? pn - g0 : kSliverGroup;
      const int whole_end = pn - kExactSteps - g0;  // steps before this (group-relative) take whole vectors
      for (int r = 0; r < full; r += S::MR) {
        float* d = dst + static_cast<size_t>(r) * pn + static_cast<size_t>(g0) * S::MR;
        const float* src = A + static_cast<size_t>(g0) * lda + r;
        int p = 0;
        if (r + W <= mn)
          for (const int n = gn < whole_end ? gn : whole_end; p < n; ++p)
            S::store(d + p * S::MR, S::load(src + static_cast<size_t>(p) * lda));
        for (; p < gn; ++p)
          for (int j = 0; j < S::MR; ++j) d[p * S::MR + j] = src[static_cast<size_t>(p) * lda + j];
      }
    }
    float* d = dst + static_cast<size_t>(full) * pn;
    for (int p = 0; p < pn; ++p)
      for (int j = 0; j < rem; ++j) d[p * rem + j] = A[static_cast<size_t>(p) * lda + full + j];
  }

  // Weights stored in reduced precision (gemm_bias_f16 / _i8): the driver's
  // loop, with B always packed and widened to f32 as it is packed, so the
  // tiles are the f32 ones and each weight is widened once per row block
  // rather than once per row. `widen(panel, p0, pn, c0, nc)` writes the f32
  // weights (p0 + p, c0 + c) to panel[p * NB + c] for c < nc, then zeros up
  // to the next whole vector.
  template <class Widen>
  static void run_widened(float* C, const float* A, const Widen& widen, int M, int P, int N, const float* bias) {
    if (M <= 0 || N <= 0) return;
    if (P <= 0) {
      fill_rows(C, N, M, N, bias);
      return;
    }
    float panel[S::KC * NB];
    sweep<false>(C, N, A, P, M, P, N, false, bias, S::KC, rows_per_block(M, S::MC), kBPadded, nullptr,
                 [&](int p0, int pn, int, int c0, int nc, size_t*) -> const float* {
                   widen(panel, p0, pn, c0, nc);
                   return panel;
                 });
  }

  // The widening packers: f16, and int8 times its column's scale.
  struct WidenF16 {
    const uint16_t* weights;
    int N;
    void operator()(float* panel, int p0, int pn, int c0, int nc) const {
      for (int p = 0; p < pn; ++p) {
        const uint16_t* src = weights + static_cast<size_t>(p0 + p) * N + c0;
        float* dst = panel + p * NB;
        int c = 0;
        if constexpr (S::kWidenF16)
          for (; c + W <= nc; c += W) S::store(dst + c, S::load_f16(src + c));
        for (; c < nc; ++c) dst[c] = half_to_float(src[c]);
        for (; c % W != 0; ++c) dst[c] = 0.0f;
      }
    }
  };
  struct WidenI8 {
    const int8_t* weights;
    const float* scales;
    int N;
    void operator()(float* panel, int p0, int pn, int c0, int nc) const {
      for (int p = 0; p < pn; ++p) {
        const int8_t* src = weights + static_cast<size_t>(p0 + p) * N + c0;
        const float* s = scales + c0;
        float* dst = panel + p * NB;
        int c = 0;
        if constexpr (S::kWidenI8)
          for (; c + W <= nc; c += W) S::store(dst + c, S::mul(S::load(s + c), S::load_i8(src + c)));
        for (; c < nc; ++c) dst[c] = s[c] * static_cast<float>(src[c]);
        for (; c % W != 0; ++c) dst[c] = 0.0f;
      }
    }
  };

  // Narrow outputs (N < W columns, at most kNarrowMax: the output layer of a
  // model of 2-D data): a tile would keep only N of its W lanes busy, so
  // each output is instead a dot product along the reduction, whose
  // vectors are full. B is packed transposed (Bt[c][p], in `panel`, N x P
  // floats); rows go R = 8 / N at a time, sharing each Bt load.
  static constexpr int kNarrowMax = 4;

  static void narrow(float* C, size_t ldc, const float* A, size_t lda, const float* B, size_t ldb, int M, int P,
                     int N, const float* bias, float* panel) {
    for (int c = 0; c < N; ++c)
      for (int p = 0; p < P; ++p) panel[static_cast<size_t>(c) * P + p] = B[static_cast<size_t>(p) * ldb + c];
    switch (N) {
      case 1: narrow_rows<1>(C, ldc, A, lda, panel, M, P, bias); return;
      case 2: narrow_rows<2>(C, ldc, A, lda, panel, M, P, bias); return;
      case 3: narrow_rows<3>(C, ldc, A, lda, panel, M, P, bias); return;
      default: narrow_rows<4>(C, ldc, A, lda, panel, M, P, bias); return;
    }
  }

  template <int NC>
  static void narrow_rows(float* C, size_t ldc, const float* A, size_t lda, const float* Bt, int M, int P,
                          const float* bias) {
    constexpr int R = 8 / NC;
    int r = 0;
    for (; r + R <= M; r += R) narrow_tile<R, NC>(C + r * ldc, ldc, A + r * lda, lda, Bt, P, bias);
    for (; r < M; ++r) narrow_tile<1, NC>(C + r * ldc, ldc, A + r * lda, lda, Bt, P, bias);
  }

  template <int R, int NC>
  static inline void narrow_tile(float* C, size_t ldc, const float* A, size_t lda, const float* Bt, int P,
                                 const float* bias) {
    V acc[R][NC];
    for (int i = 0; i < R; ++i)
      for (int c = 0; c < NC; ++c) acc[i][c] = S::zero();
    int p = 0;
    for (; p + W <= P; p += W) {
      V b[NC];
      for (int c = 0; c < NC; ++c) b[c] = S::load(Bt + c * P + p);
      for (int i = 0; i < R; ++i) {
        const V a = S::load(A + i * lda + p);
        for (int c = 0; c < NC; ++c) acc[i][c] = S::fma(a, b[c], acc[i][c]);
      }
    }
    if (p < P) {  // masked lanes load as 0 on both sides
      const int n = P - p;
      V b[NC];
      for (int c = 0; c < NC; ++c) b[c] = S::load_n(Bt + c * P + p, n);
      for (int i = 0; i < R; ++i) {
        const V a = S::load_n(A + i * lda + p, n);
        for (int c = 0; c < NC; ++c) acc[i][c] = S::fma(a, b[c], acc[i][c]);
      }
    }
    for (int i = 0; i < R; ++i)
      for (int c = 0; c < NC; ++c) C[i * ldc + c] = (bias != nullptr ? bias[c] : 0.0f) + S::hsum(acc[i][c]);
  }

  // dX (M, K) = dY (M, N) . W (K, N)^T: the driver with B = W^T (packed
  // transposed), or dot products for very few rows (where packing would cost
  // as much as the product).
  static void nt(float* dX, const float* dY, const float* Wm, int M, int N, int K, float* cache,
                 size_t cache_floats) {
    if (M > 0 && K > 0 && N > 0 && M < S::kNtDotRows) {
      nt_dot(dX, dY, Wm, M, N, K);
      return;
    }
    run<false, true>(dX, K, dY, N, Wm, N, M, N, K, false, nullptr, nullptr, cache, cache_floats);
  }

  // panel[p][c] = W[c][p] for p < pn, c < nc (W's rows N apart): T x T
  // blocks through registers (S::transpose), the edges one by one; zeros up
  // to the next whole vector.
  static void pack_transposed(float* panel, const float* Wm, size_t N, int pn, int nc) {
    constexpr int T = S::kTranspose;
    int c = 0;
    for (; c + T <= nc; c += T) {
      int p = 0;
      for (; p + T <= pn; p += T) S::transpose(panel + p * NB + c, NB, Wm + c * N + p, N);
      for (; p < pn; ++p)
        for (int j = 0; j < T; ++j) panel[p * NB + c + j] = Wm[(c + j) * N + p];
    }
    for (; c < nc; ++c)
      for (int p = 0; p < pn; ++p) panel[p * NB + c] = Wm[c * N + p];
    for (; c % W != 0; ++c)  // zeros up to the next whole vector
      for (int p = 0; p < pn; ++p) panel[p * NB + c] = 0.0f;
  }

  static float dot(const float* a, const float* b, int n) {
    V s0 = S::zero(), s1 = S::zero();
    int i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
      s0 = S::fma(S::load(a + i), S::load(b + i), s0);
      s1 = S::fma(S::load(a + i + W), S::load(b + i + W), s1);
    }
    for (; i + W <= n; i += W) s0 = S::fma(S::load(a + i), S::load(b + i), s0);
    if (i < n) s1 = S::fma(S::load_n(a + i, n - i), S::load_n(b + i, n - i), s1);
    return S::hsum(S::add(s0, s1));
  }

  static void nt_dot(float* dX, const float* dY, const float* Wt, int M, int N, int K) {
    for (int i = 0; i < M; ++i)
      for (int k = 0; k < K; ++k)
        dX[static_cast<size_t>(i) * K + k] = dot(dY + static_cast<size_t>(i) * N, Wt + static_cast<size_t>(k) * N, N);
  }
};

template <class S>
void simd_gemm_bias(float* Y, const float* X, const float* Wm, const float* b, int M, int K, int N) {
  Gemm<S>::template run<false, false>(Y, N, X, K, Wm, N, M, K, N, false, b);
}

// Where the ISA widens one weight at a time, a batch of 1-3 rows takes the
// reference's loop instead: it widens each weight once and uses it straight
// away, where a panel adds a store and a load per weight for too few rows
// to share them (f16 on the Cortex-M55 at batch 1: 15% more instructions
// through the panel).
constexpr int kWidenedPanelRows = 4;

template <class S>
void simd_gemm_bias_f16(float* Y, const float* X, const uint16_t* Wm, const float* b, int M, int K, int N) {
  if (!S::kWidenF16 && M < kWidenedPanelRows) return gemm_bias_f16_reference(Y, X, Wm, b, M, K, N);
  Gemm<S>::run_widened(Y, X, typename Gemm<S>::WidenF16{Wm, N}, M, K, N, b);
}

template <class S>
void simd_gemm_bias_i8(float* Y, const float* X, const int8_t* Wm, const float* scales, const float* b, int M, int K,
                       int N) {
  if (!S::kWidenI8 && M < kWidenedPanelRows) return gemm_bias_i8_reference(Y, X, Wm, scales, b, M, K, N);
  Gemm<S>::run_widened(Y, X, typename Gemm<S>::WidenI8{Wm, scales, N}, M, K, N, b);
}

// The traits S with another register tile (MR x NR), for one of the
// products; S itself where the tile is the same (no second instantiation).
template <class S, int MR_, int NR_>
struct Retiled : S {
  static constexpr int MR = MR_, NR = NR_, kAccumulators = MR_ * NR_;
};
template <bool kSame, class A, class B>
struct PickTraits {
  using T = A;
};
template <class A, class B>
struct PickTraits<false, A, B> {
  using T = B;
};
template <class S, int MR_, int NR_>
using TiledAs = typename PickTraits<MR_ == S::MR && NR_ == S::NR, S, Retiled<S, MR_, NR_>>::T;

template <class S>
void simd_gemm_nt(float* dX, const float* dY, const float* Wm, int M, int N, int K, float* cache,
                  size_t cache_floats) {
  if constexpr (S::kNtTile[0] != S::MR || S::kNtTile[1] != S::NR) {
    if (M < S::kNtTileBelowRows)
      return Gemm<Retiled<S, S::kNtTile[0], S::kNtTile[1]>>::nt(dX, dY, Wm, M, N, K, cache, cache_floats);
  }
  Gemm<S>::nt(dX, dY, Wm, M, N, K, cache, cache_floats);
}

template <class S>
void simd_gemm_tn_acc(float* dW, const float* X, const float* dY, int M, int K, int N, int k_begin, int k_end,
                      float* pack) {
  static_assert(S::KCT <= static_cast<int>(kWeightGradPackRows), "a packed block is rows x KCT floats");
  Gemm<TiledAs<S, S::kTnTile[0], S::kTnTile[1]>>::template run<true, false>(
      dW + static_cast<size_t>(k_begin) * N, N, X + k_begin, K, dY, N, k_end - k_begin, M, N, true, nullptr, pack);
}

template <class S>
void simd_colsum_acc(float* db, const float* dY, int M, int N) {
  using V = typename S::V;
  constexpr int W = S::W;
  if (M <= 0 || N <= 0) return;
  int c = 0;
  for (; c + 2 * W <= N; c += 2 * W) {
    V a0 = S::load(db + c), a1 = S::load(db + c + W), b0 = S::zero(), b1 = S::zero();
    int i = 0;
    for (; i + 2 <= M; i += 2) {
      const float* r0 = dY + static_cast<size_t>(i) * N + c;
      a0 = S::add(a0, S::load(r0));
      a1 = S::add(a1, S::load(r0 + W));
      b0 = S::add(b0, S::load(r0 + N));
      b1 = S::add(b1, S::load(r0 + N + W));
    }
    if (i < M) {
      const float* r0 = dY + static_cast<size_t>(i) * N + c;
      a0 = S::add(a0, S::load(r0));
      a1 = S::add(a1, S::load(r0 + W));
    }
    S::store(db + c, S::add(a0, b0));
    S::store(db + c + W, S::add(a1, b1));
  }
  for (; c < N; c += W) {
    const int n = N - c < W ? N - c : W;
    V a = n == W ? S::load(db + c) : S::load_n(db + c, n);
    for (int i = 0; i < M; ++i) {
      const float* r0 = dY + static_cast<size_t>(i) * N + c;
      a = S::add(a, n == W ? S::load(r0) : S::load_n(r0, n));
    }
    if (n == W)
      S::store(db + c, a);
    else
      S::store_n(db + c, a, n);
  }
}

// ---- Elementwise math ---------------------------------------------------------
//
// Accuracy (tests/test_kernels.cpp measures it against double-precision libm
// for every variant): exp about 2 ulp over the range used; the activations
// and derivatives within max(2e-6 relative, 1e-6 absolute) of the exact
// function over [-30, 30], with the same threshold (softplus: x above 20)
// and NaN propagation as the reference. No input makes them underflow into
// denormals, whose microcode assists made a diverging sampler 2x slower on
// Intel cores: values that would are clamped (tested through the FP
// environment's underflow flag over [-128, 128] and far beyond).

template <class S>
struct VMath {
  using V = typename S::V;

  // e^x: Cephes' expf. n = round(x log2 e), r = x - n ln 2 in two parts,
  // e^r = 1 + r + r^2 P(r), times 2^n through the exponent bits. Overflows to
  // +inf above 88.72 (n = 128 makes the 2^n bits +inf); 0 below -87.34
  // (instead of a denormal); a NaN comes out as some number (the activations
  // put NaN back).
  static inline V exp(V x) {
    const V lo = S::set1(-87.33654f);
    const V y = exp_in_range(S::min(S::max(x, lo), S::set1(88.72283f)));
    return S::select(S::lt(x, lo), S::zero(), y);
  }

  // e^x for x <= 0 (softplus' e^-|x|): no upper clamp, and below -41 e^-41
  // (1.6e-18, which vanishes in any sum): log1p01's s^2 would underflow into
  // denormals further down, which cost a microcode assist per instruction on
  // Intel cores (softplus of a diverging sampler's inputs ran 2x slower).
  static inline V exp_nonpositive(V x) { return exp_in_range(S::max(x, S::set1(math::kSoftplusExpFloor))); }

  // The core of both, for x in [-87.34, 88.72].
  static inline V exp_in_range(V x) {
    const V n = S::round(S::mul(x, S::set1(1.44269504088896341f)));
    V r = S::fma(n, S::set1(-0.693359375f), x);
    r = S::fma(n, S::set1(2.12194440e-4f), r);
    V y = S::set1(1.9875691500e-4f);
    y = S::fma(y, r, S::set1(1.3981999507e-3f));
    y = S::fma(y, r, S::set1(8.3334519073e-3f));
    y = S::fma(y, r, S::set1(4.1665795894e-2f));
    y = S::fma(y, r, S::set1(1.6666665459e-1f));
    y = S::fma(y, r, S::set1(5.0000001201e-1f));
    y = S::fma(y, S::mul(r, r), S::add(r, S::set1(1.0f)));
    return S::mul(y, S::exp2i(n));
  }

  // log(1 + t) for t in [e^-41, 1]: 2 atanh(s) with s = t / (2 + t) in
  // [0, 1/3], atanh(s) / s a polynomial in s^2 (Chebyshev fit, error 4e-9).
  static inline V log1p01(V t) {
    const V s = S::div(t, S::add(t, S::set1(2.0f)));
    const V z = S::mul(s, s);
    V y = S::set1(0.1407888918155454f);
    y = S::fma(y, z, S::set1(0.13982578872598634f));
    y = S::fma(y, z, S::set1(0.20012297615351874f));
    y = S::fma(y, z, S::set1(0.33333160820688887f));
    y = S::fma(y, z, S::set1(1.0000000038408794f));
    return S::mul(S::add(s, s), y);
  }

  // tanh: x + x^3 P(x^2) below 0.625 (Cephes' tanhf), else
  // sign(x) (1 - e) / (1 + e) with e = exp(-2|x|) <= 0.29.
  static inline V tanh(V x) {
    const V a = S::abs(x);
    const V z = S::mul(x, x);
    V p = S::set1(-5.70498872745e-3f);
    p = S::fma(p, z, S::set1(2.06390887954e-2f));
    p = S::fma(p, z, S::set1(-5.37397155531e-2f));
    p = S::fma(p, z, S::set1(1.33314422036e-1f));
    p = S::fma(p, z, S::set1(-3.33332819422e-1f));
    const V small = S::fma(S::mul(p, z), x, x);
    const V e = exp(S::mul(a, S::set1(-2.0f)));
    V big = S::div(S::sub(S::set1(1.0f), e), S::add(S::set1(1.0f), e));
    big = S::select(S::lt(x, S::zero()), S::neg(big), big);
    return S::select(S::lt(a, S::set1(0.625f)), small, big);
  }

  // Phi(x) = (1 + erf(x / sqrt 2)) / 2, accurate in the lower tail too:
  // |z| < 1: 1/2 + erf(z) / 2, erf(z) = z P(z^2) (Chebyshev fit, 1.2e-9);
  // else erfc(|z|) = exp(-z^2) R(1/|z|) (Chebyshev fit on 1/|z| in [1/4, 1],
  // 4.7e-9; clamped beyond |z| = 4, where erfc < 2e-8) and
  // Phi = 1 - erfc / 2 or erfc / 2 by the sign of x.
  static inline V phi_cdf(V x) {
    const V z = S::mul(x, S::set1(0.7071067811865476f));
    const V a = S::abs(z);
    const V z2 = S::mul(z, z);
    V p = S::set1(7.8758750626854883e-5f);
    p = S::fma(p, z2, S::set1(-0.00080168642871658695f));
    p = S::fma(p, z2, S::set1(0.005189087423433974f));
    p = S::fma(p, z2, S::set1(-0.026854212010626412f));
    p = S::fma(p, z2, S::set1(0.11283594715160218f));
    p = S::fma(p, z2, S::set1(-0.37612626666720331f));
    p = S::fma(p, z2, S::set1(1.1283791658483509f));
    const V half = S::set1(0.5f);
    const V small = S::fma(S::mul(z, p), half, half);
    // 1/|z| clamped to [1/4, 1] (dividing by |z| itself would underflow past 8.5e37)
    const V t = S::div(S::set1(1.0f), S::min(S::max(a, S::set1(1.0f)), S::set1(4.0f)));
    V q = S::set1(0.025032543186535637f);
    q = S::fma(q, t, S::set1(-0.14789844462513762f));
    q = S::fma(q, t, S::set1(0.36086186040483293f));
    q = S::fma(q, t, S::set1(-0.42983374861601877f));
    q = S::fma(q, t, S::set1(0.14547734763553956f));
    q = S::fma(q, t, S::set1(0.2825897937336853f));
    q = S::fma(q, t, S::set1(-0.39485958794873936f));
    q = S::fma(q, t, S::set1(0.024847521258800558f));
    q = S::fma(q, t, S::set1(0.56121463798951681f));
    q = S::fma(q, t, S::set1(0.00015165568581170204f));
    // Beyond z^2 = 60 (|x| > 10.95) erfc / 2 < 1e-27 is 0: exp(-z^2) q there
    // would underflow into denormals (see log1p01).
    const V half_erfc = S::select(S::gt(z2, S::set1(math::kGaussianTailSquare)), S::zero(),
                                  S::mul(S::mul(exp(S::neg(S::min(z2, S::set1(math::kGaussianTailSquare)))), q), half));
    const V big = S::select(S::lt(x, S::zero()), half_erfc, S::sub(S::set1(1.0f), half_erfc));
    return S::select(S::lt(a, S::set1(1.0f)), small, big);
  }

  // Forward activations (not identity / ReLU, which need no math).
  template <Activation A>
  static inline V value(V x) {
    if constexpr (A == Activation::kSiLU) {
      const V e = exp(S::neg(x));
      return S::div(x, S::add(S::set1(1.0f), e));
    } else if constexpr (A == Activation::kGeluTanh) {
      // 0.5 x (1 + tanh(u)) = x sigmoid(2u), 2u = x (c2 + c3 x^2):
      // no cancellation in 1 + tanh for negative x.
      const V u2 = S::mul(x, S::fma(S::set1(0.0713548162726f), S::mul(x, x), S::set1(1.5957691216057308f)));
      const V e = exp(S::neg(u2));
      return S::div(x, S::add(S::set1(1.0f), e));
    } else if constexpr (A == Activation::kGeluErf) {
      return S::mul(x, phi_cdf(x));
    } else if constexpr (A == Activation::kSoftplus) {
      // log(1 + e^x) = max(x, 0) + log1p(e^-|x|); x itself above 20 (PyTorch).
      const V l = log1p01(exp_nonpositive(S::neg(S::abs(x))));
      const V y = S::add(S::max(x, S::zero()), l);
      return S::select(S::gt(x, S::set1(math::kSoftplusLinearAbove)), x, y);
    } else {
      static_assert(A == Activation::kTanh, "math activations only");
      return tanh(x);
    }
  }

  // Derivatives.
  template <Activation A>
  static inline V derivative(V x) {
    const V one = S::set1(1.0f);
    // Beyond |x| = 40 (SiLU) or 9 (GELU) the derivatives are 0 or 1 to
    // within 1e-17, and the formulas would meet inf * 0; far below, they
    // would also underflow into denormals (see exp_nonpositive), so they run
    // on x clamped from below where the step replaces them anyway.
    const V ax = S::abs(x);
    const V step = S::select(S::gt(x, S::zero()), one, S::zero());
    if constexpr (A == Activation::kSiLU) {
      // s (1 + x (1 - s)), 1 - s = e s with e = exp(-x).
      const V xc = S::max(x, S::set1(-80.0f));
      const V e = exp(S::neg(xc));
      const V s = S::div(one, S::add(one, e));
      return S::select(S::gt(ax, S::set1(math::kSiLUSaturation)), step, S::mul(s, S::fma(xc, S::mul(e, s), one)));
    } else if constexpr (A == Activation::kGeluTanh) {
      // s + x s (1 - s) d(2u)/dx with s = sigmoid(2u), s (1 - s) = (e s) s.
      x = S::max(x, S::set1(-math::kGeluTanhSaturation));
      const V x2 = S::mul(x, x);
      const V u2 = S::mul(x, S::fma(S::set1(0.0713548162726f), x2, S::set1(1.5957691216057308f)));
      const V du2 = S::fma(S::set1(3.0f * 0.0713548162726f), x2, S::set1(1.5957691216057308f));
      const V e = exp(S::neg(u2));
      const V s = S::div(one, S::add(one, e));
      return S::select(S::gt(ax, S::set1(math::kGeluTanhSaturation)), step, S::fma(S::mul(x, S::mul(S::mul(e, s), s)), du2, s));
    } else if constexpr (A == Activation::kGeluErf) {
      // Phi(x) + x phi(x), phi 0 past the tail square as in phi_cdf.
      const V h = S::mul(S::mul(x, x), S::set1(0.5f));
      const V pdf = S::mul(exp(S::neg(S::min(h, S::set1(math::kGaussianTailSquare)))), S::set1(0.3989422804014327f));
      return S::fma(x, S::select(S::gt(h, S::set1(math::kGaussianTailSquare)), S::zero(), pdf), phi_cdf(x));
    } else if constexpr (A == Activation::kSoftplus) {
      // sigmoid(x), below -40 sigmoid(-40) = 4e-18 (no denormals)
      const V s = S::div(one, S::add(one, exp(S::neg(S::max(x, S::set1(math::kSigmoidFloor))))));
      return S::select(S::gt(x, S::set1(math::kSoftplusLinearAbove)), one, s);
    } else {
      static_assert(A == Activation::kTanh, "math activations only");
      const V t = tanh(x);
      return S::sub(one, S::mul(t, t));
    }
  }
};

// K vectors of S as one: every operation applied to each in turn, so a
// formula written once (VMath) runs on K independent inputs with their
// instructions interleaved in program order. The long dependency chains of
// exp / log / tanh then overlap inside the core's scheduler window, where one
// input at a time would fill it with instructions waiting on each other.
template <class S, int K>
struct Wide {
  struct V { typename S::V v[K]; };
  struct Mask { typename S::Mask m[K]; };
#define MD_WIDE1(name)                                      \
  static inline V name(V a) {                               \
    V r;                                                    \
    for (int k = 0; k < K; ++k) r.v[k] = S::name(a.v[k]);   \
    return r;                                               \
  }
#define MD_WIDE2(name)                                             \
  static inline V name(V a, V b) {                                 \
    V r;                                                           \
    for (int k = 0; k < K; ++k) r.v[k] = S::name(a.v[k], b.v[k]);  \
    return r;                                                      \
  }
#define MD_WIDE_CMP(name)                                          \
  static inline Mask name(V a, V b) {                              \
    Mask r;                                                        \
    for (int k = 0; k < K; ++k) r.m[k] = S::name(a.v[k], b.v[k]);  \
    return r;                                                      \
  }
  MD_WIDE1(abs) MD_WIDE1(neg) MD_WIDE1(round) MD_WIDE1(exp2i) MD_WIDE1(sqrt)
  MD_WIDE2(add) MD_WIDE2(sub) MD_WIDE2(mul) MD_WIDE2(div) MD_WIDE2(min) MD_WIDE2(max)
  MD_WIDE_CMP(gt) MD_WIDE_CMP(lt)
#undef MD_WIDE1
#undef MD_WIDE2
#undef MD_WIDE_CMP
  static inline V set1(float x) {
    V r;
    for (int k = 0; k < K; ++k) r.v[k] = S::set1(x);
    return r;
  }
  static inline V zero() { return set1(0.0f); }
  static inline V fma(V a, V b, V c) {
    V r;
    for (int k = 0; k < K; ++k) r.v[k] = S::fma(a.v[k], b.v[k], c.v[k]);
    return r;
  }
  static inline Mask isnan(V a) {
    Mask r;
    for (int k = 0; k < K; ++k) r.m[k] = S::isnan(a.v[k]);
    return r;
  }
  static inline V select(Mask m, V a, V b) {
    V r;
    for (int k = 0; k < K; ++k) r.v[k] = S::select(m.m[k], a.v[k], b.v[k]);
    return r;
  }
};

// y[i] = f(x[i]); y may alias x.
template <class S, class F>
inline void map1(float* y, const float* x, size_t n, F f) {
  constexpr size_t W = S::W;
  size_t i = 0;
  for (; i + W <= n; i += W) S::store(y + i, f(S::load(x + i)));
  if (i < n) {
    const int r = static_cast<int>(n - i);
    S::store_n(y + i, f(S::load_n(x + i, r)), r);
  }
}

// y[i] = f(x[i]) + h[i] (a residual block's skip connection, added in the
// same pass); y may alias x. Not a flag of map1: Helium calls map1's
// instances out of line, and an extra argument there costs code.
template <class S, class F>
inline void map1_residual(float* y, const float* x, const float* h, size_t n, F f) {
  constexpr size_t W = S::W;
  size_t i = 0;
  for (; i + W <= n; i += W) S::store(y + i, S::add(f(S::load(x + i)), S::load(h + i)));
  if (i < n) {
    const int r = static_cast<int>(n - i);
    S::store_n(y + i, S::add(f(S::load_n(x + i, r)), S::load_n(h + i, r)), r);
  }
}

// dx[i] = dy[i] * d(x[i]); dx may alias dy.
template <class S, class F>
inline void map2(float* dx, const float* x, const float* dy, size_t n, F d) {
  constexpr size_t W = S::W;
  size_t i = 0;
  for (; i + W <= n; i += W) S::store(dx + i, S::mul(S::load(dy + i), d(S::load(x + i))));
  if (i < n) {
    const int r = static_cast<int>(n - i);
    S::store_n(dx + i, S::mul(S::load_n(dy + i, r), d(S::load_n(x + i, r))), r);
  }
}

// f(x) of the math activations (their derivatives times dy), NaN in NaN
// out, over T = S (one vector) or Wide<S, K> (K vectors at once).
template <class T, Activation A>
inline typename T::V forward_value(typename T::V v) {
  return T::select(T::isnan(v), v, VMath<T>::template value<A>(v));
}
template <class T, Activation A>
inline typename T::V derivative_value(typename T::V v) {
  return T::select(T::isnan(v), v, VMath<T>::template derivative<A>(v));
}
template <class T, Activation A>
inline typename T::V backward_value(typename T::V v, typename T::V dy) {
  return T::mul(dy, derivative_value<T, A>(v));
}

// The maps of the math activations: kMapWidth vectors per iteration through
// Wide, then one at a time. Flattened: Wide's values must stay in registers,
// which needs every call inlined (GCC's limits otherwise leave them in
// memory, 2-3x slower).
// H: plus h[i] (as map1_residual).
template <class S, Activation A, bool H = false>
__attribute__((flatten)) inline void forward_math(float* y, const float* x, size_t n, const float* h = nullptr) {
  constexpr size_t W = S::W;
  size_t i = 0;
  if constexpr (S::kMapWidth > 1) {
    constexpr int K = S::kMapWidth;
    using SW = Wide<S, K>;
    for (; i + K * W <= n; i += K * W) {
      typename SW::V v;
      for (int k = 0; k < K; ++k) v.v[k] = S::load(x + i + k * W);
      v = forward_value<SW, A>(v);
      for (int k = 0; k < K; ++k) S::store(y + i + k * W, H ? S::add(v.v[k], S::load(h + i + k * W)) : v.v[k]);
    }
  }
  const auto f = [](typename S::V v) { return forward_value<S, A>(v); };
  if constexpr (H)
    map1_residual<S>(y + i, x + i, h + i, n - i, f);
  else
    map1<S>(y + i, x + i, n - i, f);
}

template <class S, Activation A>
__attribute__((flatten)) inline void backward_math(float* dx, const float* x, const float* dy, size_t n) {
  constexpr size_t W = S::W;
  size_t i = 0;
  if constexpr (S::kMapWidth > 1) {
    constexpr int K = S::kMapWidth;
    using SW = Wide<S, K>;
    for (; i + K * W <= n; i += K * W) {
      typename SW::V v, d;
      for (int k = 0; k < K; ++k) {
        v.v[k] = S::load(x + i + k * W);
        d.v[k] = S::load(dy + i + k * W);
      }
      d = backward_value<SW, A>(v, d);
      for (int k = 0; k < K; ++k) S::store(dx + i + k * W, d.v[k]);
    }
  }
  map2<S>(dx + i, x + i, dy + i, n - i, [](typename S::V v) { return derivative_value<S, A>(v); });  // times dy
}

// Helium (kMapWidth 1) takes the one-vector maps unflattened: flattening
// them made its activations 3.4 KB larger for nothing.
template <class S, Activation A>
inline void forward_math_any(float* y, const float* x, size_t n) {
  if constexpr (S::kMapWidth > 1)
    forward_math<S, A>(y, x, n);
  else
    map1<S>(y, x, n, [](typename S::V v) { return forward_value<S, A>(v); });
}
template <class S, Activation A>
inline void backward_math_any(float* dx, const float* x, const float* dy, size_t n) {
  if constexpr (S::kMapWidth > 1)
    backward_math<S, A>(dx, x, dy, n);
  else
    map2<S>(dx, x, dy, n, [](typename S::V v) { return derivative_value<S, A>(v); });
}

template <class S>
void simd_activation_forward(Activation a, float* y, const float* x, size_t n) {
  using V = typename S::V;
  switch (a) {
    case Activation::kIdentity:
      if (y != x) memcpy(y, x, n * sizeof(float));  // aliasing means y == x
      return;
    case Activation::kReLU:  // x > 0 ? x : 0, as the reference (NaN -> 0, -0 -> +0)
      map1<S>(y, x, n, [](V v) { return S::select(S::gt(v, S::zero()), v, S::zero()); });
      return;
    case Activation::kSiLU: forward_math_any<S, Activation::kSiLU>(y, x, n); return;
    case Activation::kGeluTanh: forward_math_any<S, Activation::kGeluTanh>(y, x, n); return;
    case Activation::kGeluErf: forward_math_any<S, Activation::kGeluErf>(y, x, n); return;
    case Activation::kSoftplus: forward_math_any<S, Activation::kSoftplus>(y, x, n); return;
    case Activation::kTanh: forward_math_any<S, Activation::kTanh>(y, x, n); return;
  }
  for (size_t i = 0; i < n; ++i) y[i] = activation_value(a, x[i]);
}

// y = f(x) + h: a residual block's activation and skip connection in one
// pass (the same two roundings as the two passes). Helium leaves it to them
// (null entry, dispatch.cpp): the firmware image stays smaller.
template <class S>
void simd_activation_residual(Activation a, float* y, const float* x, const float* h, size_t n) {
  using V = typename S::V;
  switch (a) {
    case Activation::kIdentity: map1_residual<S>(y, x, h, n, [](V v) { return v; }); return;
    case Activation::kReLU:
      map1_residual<S>(y, x, h, n, [](V v) { return S::select(S::gt(v, S::zero()), v, S::zero()); });
      return;
    case Activation::kSiLU: forward_math<S, Activation::kSiLU, true>(y, x, n, h); return;
    case Activation::kGeluTanh: forward_math<S, Activation::kGeluTanh, true>(y, x, n, h); return;
    case Activation::kGeluErf: forward_math<S, Activation::kGeluErf, true>(y, x, n, h); return;
    case Activation::kSoftplus: forward_math<S, Activation::kSoftplus, true>(y, x, n, h); return;
    case Activation::kTanh: forward_math<S, Activation::kTanh, true>(y, x, n, h); return;
  }
  for (size_t i = 0; i < n; ++i) y[i] = activation_value(a, x[i]) + h[i];
}

template <class S>
void simd_activation_backward(Activation a, float* dx, const float* x, const float* dy, size_t n) {
  using V = typename S::V;
  switch (a) {
    case Activation::kIdentity:  // dy * 1
      map2<S>(dx, x, dy, n, [](V) { return S::set1(1.0f); });
      return;
    case Activation::kReLU:  // dy * (x > 0 ? 1 : 0), as the reference
      map2<S>(dx, x, dy, n, [](V v) { return S::select(S::gt(v, S::zero()), S::set1(1.0f), S::zero()); });
      return;
    case Activation::kSiLU: backward_math_any<S, Activation::kSiLU>(dx, x, dy, n); return;
    case Activation::kGeluTanh: backward_math_any<S, Activation::kGeluTanh>(dx, x, dy, n); return;
    case Activation::kGeluErf: backward_math_any<S, Activation::kGeluErf>(dx, x, dy, n); return;
    case Activation::kSoftplus: backward_math_any<S, Activation::kSoftplus>(dx, x, dy, n); return;
    case Activation::kTanh: backward_math_any<S, Activation::kTanh>(dx, x, dy, n); return;
  }
  for (size_t i = 0; i < n; ++i) dx[i] = dy[i] * activation_derivative(a, x[i]);
}

// ---- Adam and EMA -----------------------------------------------------------------
//
// The reference's formula, operation for operation (the ISA files are built
// with -ffp-contract=off, and these use no fma), so every lane rounds as the
// scalar loop does. ISAs without IEEE vector div/sqrt use the scalar loop.


template <class S>
void simd_adam_update(float* p, float* m, float* v, const float* grad, size_t n, const AdamStep& s) {
  using V = typename S::V;
  constexpr size_t W = S::W;
  size_t i = 0;
  if constexpr (S::kIeeeDivSqrt) {
    const V b1 = S::set1(s.b1), b2 = S::set1(s.b2), omb1 = S::set1(s.one_minus_b1), omb2 = S::set1(s.one_minus_b2);
    const V step = S::set1(s.step_size), bc2 = S::set1(s.bc2_sqrt), eps = S::set1(s.eps);
    const V wd = S::set1(s.weight_decay), decay = S::set1(s.decay);
    const bool l2 = !s.decoupled && s.weight_decay != 0.0f;
    for (; i + W <= n; i += W) {
      V g = S::load(grad + i), pv = S::load(p + i);
      if (s.decoupled)
        pv = S::mul(pv, decay);
      else if (l2)
        g = S::add(g, S::mul(wd, pv));
      const V mv = S::add(S::mul(S::load(m + i), b1), S::mul(omb1, g));
      const V vv = S::add(S::mul(S::load(v + i), b2), S::mul(S::mul(omb2, g), g));
      const V denom = S::add(S::div(S::sqrt(vv), bc2), eps);
      pv = S::sub(pv, S::mul(step, S::div(mv, denom)));
      S::store(m + i, mv);
      S::store(v + i, vv);
      S::store(p + i, pv);
    }
  }
  adam_update_scalar(p, m, v, grad, i, n, s);
}

template <class S>
void simd_ema_update(float* ema, const float* p, size_t n, float d, float one_minus_d) {
  using V = typename S::V;
  constexpr size_t W = S::W;
  const V dv = S::set1(d), ov = S::set1(one_minus_d);
  size_t i = 0;
  for (; i + W <= n; i += W) S::store(ema + i, S::add(S::mul(dv, S::load(ema + i)), S::mul(ov, S::load(p + i))));
  for (; i < n; ++i) ema[i] = d * ema[i] + one_minus_d * p[i];
}

// ---- sin and cos (the sinusoidal embeddings) ------------------------------------
//
// a = k pi/2 + r with k = round(a 2/pi) and r by a three-part Cody-Waite
// reduction with fused multiply-adds (accurate while k < 2^13, so |a| <=
// 8192 here), then the same Cephes polynomials on [-pi/4, pi/4] as
// math::sincos_f and the quarter-turn rotation, with the quadrant k mod 4
// computed in float (no integer lanes needed). A vector holding a larger
// |a|, or an infinity, goes to math::sincos_f lane by lane (which reduces in
// double). Within 2.5e-7 absolute of sin and cos (tests/test_kernels.cpp).
template <class S>
inline void sincos_vec(typename S::V a, typename S::V* sv, typename S::V* cv) {
  using V = typename S::V;
  const V k = S::round(S::mul(a, S::set1(0.636619772367581343f)));
  V r = S::fma(S::neg(k), S::set1(1.57079637050628662109375f), a);
  r = S::fma(S::neg(k), S::set1(-4.37113900018624283e-8f), r);
  r = S::fma(S::neg(k), S::set1(-1.71512451000596640e-15f), r);
  const V z = S::mul(r, r);
  const V sr = S::fma(S::mul(S::mul(S::fma(S::fma(S::set1(-1.9515295891e-4f), z, S::set1(8.3321608736e-3f)), z,
                                           S::set1(-1.6666654611e-1f)), z), r), S::set1(1.0f), r);
  const V cpoly = S::fma(S::fma(S::set1(2.443315711809948e-5f), z, S::set1(-1.388731625493765e-3f)), z,
                         S::set1(4.166664568298827e-2f));
  const V cr = S::add(S::sub(S::mul(S::mul(cpoly, z), z), S::mul(S::set1(0.5f), z)), S::set1(1.0f));
  // q = k mod 4 = 2 h + odd: h = floor(q / 2), odd = q - 2 h, each 0 or 1. The
  // fractions of k/4 and q/2 are multiples of 1/4, so rounding after the
  // offsets -3/8 and -1/4 never meets a tie and gives the floor.
  const V q = S::sub(k, S::mul(S::set1(4.0f), S::round(S::sub(S::mul(k, S::set1(0.25f)), S::set1(0.375f)))));
  const V h = S::round(S::sub(S::mul(q, S::set1(0.5f)), S::set1(0.25f)));
  const V odd = S::sub(q, S::add(h, h));
  const auto swap = S::gt(odd, S::set1(0.5f));
  const V one = S::set1(1.0f), two = S::set1(2.0f);
  *sv = S::mul(S::select(swap, cr, sr), S::sub(one, S::mul(two, h)));                  // + + - - for q = 0..3
  *cv = S::mul(S::select(swap, sr, cr), S::sub(one, S::mul(two, S::abs(S::sub(odd, h)))));  // + - - +
}

// s[i] = sin(a[i]), c[i] = cos(a[i]); s may alias a.
template <class S>
void simd_sincos(const float* a, float* s, float* c, size_t n) {
  using V = typename S::V;
  constexpr size_t W = S::W;
  const V limit = S::set1(8192.0f);
  size_t i = 0;
  for (; i + W <= n; i += W) {
    const V av = S::load(a + i);
    if (S::hsum(S::select(S::gt(S::abs(av), limit), S::set1(1.0f), S::zero())) > 0.0f) {
      for (size_t j = i; j < i + W; ++j) math::sincos_f(a[j], &s[j], &c[j]);
      continue;
    }
    V sv, cv;
    sincos_vec<S>(av, &sv, &cv);
    S::store(s + i, sv);
    S::store(c + i, cv);
  }
  for (; i < n; ++i) math::sincos_f(a[i], &s[i], &c[i]);
}

// ---- The time gate ------------------------------------------------------------------
//
// Products only, each rounded once, and the backward's sum as a separate add
// (no fma): bit-identical to the reference.
template <class S>
void simd_time_gate(float* y, const float* u, const float* G, const int32_t* t, int B, int w) {
  constexpr int W = S::W;
  for (int b = 0; b < B; ++b) {
    const float* g = G + static_cast<size_t>(t[b]) * w;
    const size_t row = static_cast<size_t>(b) * w;
    int i = 0;
    for (; i + W <= w; i += W) S::store(y + row + i, S::mul(S::load(u + row + i), S::load(g + i)));
    if (i < w) S::store_n(y + row + i, S::mul(S::load_n(u + row + i, w - i), S::load_n(g + i, w - i)), w - i);
  }
}

template <class S>
void simd_time_gate_backward(float* dz, float* dG, const float* dy, const float* u, const float* G, const int32_t* t,
                             int B, int w) {
  constexpr int W = S::W;
  for (int b = 0; b < B; ++b) {
    const size_t row = static_cast<size_t>(b) * w, at = static_cast<size_t>(t[b]) * w;
    int i = 0;
    for (; i + W <= w; i += W) {
      const typename S::V d = S::load(dy + row + i);
      S::store(dG + at + i, S::add(S::load(dG + at + i), S::mul(d, S::load(u + row + i))));
      S::store(dz + row + i, S::mul(d, S::load(G + at + i)));
    }
    time_gate_backward_scalar(dz + row, dG + at, dy + row, u + row, G + at, i, w);
  }
}

// ---- Sum of squares (the gradient norm) ---------------------------------------------
template <class S>
double simd_sum_squares(const float* x, size_t n) {
  double part[kSumSquaresLanes] = {};
  size_t i = 0;
  if constexpr (S::kSumSquaresF64) {
    const size_t chunks = n / kSumSquaresLanes;
    S::sum_squares_chunks(x, chunks, part);
    i = chunks * kSumSquaresLanes;
  }
  return sum_squares_scalar(part, x, i, n);
}

template <class S>
constexpr KernelTable make_table(const char* name) {
  return KernelTable{name,
                     simd_gemm_bias<S>,
                     simd_gemm_nt<S>,
                     simd_gemm_tn_acc<S>,
                     simd_colsum_acc<S>,
                     simd_activation_forward<S>,
                     simd_activation_backward<S>,
                     simd_adam_update<S>,
                     simd_ema_update<S>,
                     simd_sincos<S>,
                     simd_time_gate<S>,
                     simd_time_gate_backward<S>,
                     simd_sum_squares<S>};
}

template <class S, bool kFusedResidual = true>
constexpr ForwardKernels make_forward() {
  void (*residual)(Activation, float*, const float*, const float*, size_t) = nullptr;
  if constexpr (kFusedResidual) residual = simd_activation_residual<S>;
  return ForwardKernels{simd_gemm_bias<S>,          simd_gemm_bias_f16<S>, simd_gemm_bias_i8<S>,
                        simd_activation_forward<S>, residual,              simd_sincos<S>,
                        simd_time_gate<S>};
}

}  // namespace
}  // namespace kernels
}  // namespace md
