// Kernel variants against the reference (runtime/src/kernels).
//
// Every variant this build knows ("reference", "avx2", "avx512", "neon", "helium") runs
// every test; a variant not compiled for this target or not supported by this
// CPU is skipped with a message saying so (never passed silently).
//
//  * GEMMs at every (M, K, N) of {0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65}^3
//    (around the 4/8/16-float vector widths and the tile sizes) and at larger
//    shapes that cross the reduction chunks and column blocks, against the
//    reference: |got - ref| <= 1e-5 * (sum of |terms|). Operands sit against
//    PROT_NONE guard pages (after the end, or before the start), so a read or
//    write out of bounds crashes the test.
//  * Activations and their derivatives against double-precision libm (the
//    exact functions): |got - exact| <= max(2e-6 |exact|, 1e-6) over
//    [-30, 30] and at the thresholds; NaN in -> NaN out as the reference.
//  * Adam and EMA bit-identical to the reference.
//  * The selection API and MD_KERNELS.
#include <gtest/gtest.h>

#include <cfenv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
#define MD_TEST_GUARD_PAGES 1
#else
#define MD_TEST_GUARD_PAGES 0
#endif

#include "kernels/half.h"
#include "kernels/kernels.h"
#include "microdiffusion/kernels.h"
#include "microdiffusion/microdiffusion.h"

namespace {

using md::Activation;
using md::kernels::KernelTable;

const char* const kVariants[] = {"reference", "avx2", "avx512", "neon", "helium"};

// n elements with an inaccessible page right after the last one (or right
// before the first): reading or writing one element past the end faults.
enum class GuardSide { kEnd, kStart };
template <class T>
class GuardedArray {
 public:
  using Side = GuardSide;
  explicit GuardedArray(size_t n, Side side = Side::kEnd) : n_(n) {
#if MD_TEST_GUARD_PAGES
    page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t bytes = n * sizeof(T);
    const size_t data_pages = (bytes + page_ - 1) / page_;
    total_ = (data_pages + 2) * page_;
    void* m = mmap(nullptr, total_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) std::abort();
    base_ = static_cast<unsigned char*>(m);
    if (mprotect(base_, page_, PROT_NONE) != 0) std::abort();
    if (mprotect(base_ + (data_pages + 1) * page_, page_, PROT_NONE) != 0) std::abort();
    unsigned char* start = base_ + page_;
    ptr_ = reinterpret_cast<T*>(side == Side::kStart ? start : start + data_pages * page_ - bytes);
#else
    (void)side;
    storage_.resize(n + 1);
    ptr_ = storage_.data();
#endif
  }
  ~GuardedArray() {
#if MD_TEST_GUARD_PAGES
    munmap(base_, total_);
#endif
  }
  GuardedArray(const GuardedArray&) = delete;
  GuardedArray& operator=(const GuardedArray&) = delete;

  T* data() { return ptr_; }
  const T* data() const { return ptr_; }
  size_t size() const { return n_; }
  T& operator[](size_t i) { return ptr_[i]; }
  T operator[](size_t i) const { return ptr_[i]; }
  void fill(const std::vector<T>& v) {
    if (n_ > 0) std::memcpy(ptr_, v.data(), n_ * sizeof(T));
  }

 private:
  size_t n_;
  T* ptr_ = nullptr;
#if MD_TEST_GUARD_PAGES
  size_t page_ = 0, total_ = 0;
  unsigned char* base_ = nullptr;
#else
  std::vector<T> storage_;
#endif
};
using Guarded = GuardedArray<float>;

std::vector<float> random_vector(size_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

class KernelVariant : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    table_ = md::kernels::find_variant(GetParam());
    if (table_ == nullptr)
      GTEST_SKIP() << "kernel variant '" << GetParam()
                   << "' is not available here (not compiled for this target, or this CPU lacks it)";
  }
  const KernelTable& t() const { return *table_; }
  const KernelTable& ref() const { return md::kernels::kReferenceTable; }
  std::string name() const { return GetParam(); }

  const KernelTable* table_ = nullptr;
};

const int kGrid[] = {0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65};

struct Shape {
  int M, K, N;
};

// Larger shapes: the MLP's; reductions longer than the chunks (KC up to 512)
// and row counts above the row blocks (MC 128..256); several column blocks
// with tails; few rows (batches of 1-5 take wide column blocks of up to 384,
// and batches of 1-4 a rank-P update in gemm_tn_acc).
const Shape kLargeShapes[] = {{256, 96, 128}, {256, 128, 128}, {256, 128, 2}, {32, 128, 128}, {2000, 2, 128},
                              {67, 300, 130}, {13, 517, 515}, {3, 128, 128}, {1, 512, 512}, {5, 1, 700},
                              {130, 257, 67}, {1, 7, 1},       {2, 600, 97},  {4, 33, 400},   {600, 530, 40},
                              {5, 40, 401},  {2, 70, 400},   {520, 72, 150}, {300, 520, 200},
                              // 1.5 MiB of X and dY over one row block: AVX-512's gemm_tn_acc
                              // prefetches (a short last chunk, row and column tails)
                              {1800, 20, 200},
                              // narrow outputs (N < the vector width: dot products along K) with
                              // every column count of that path, row remainders and K tails
                              {37, 70, 3},   {9, 33, 4},    {21, 8, 2},    {11, 17, 4},   {2000, 128, 2}};

// Compares got with expected under |got - want| <= 1e-5 * bound[i] (+ a tiny
// absolute term for exact zeros); reports the first failure with the shape.
bool expect_close_gemm(const std::string& what, const float* got, const float* want, const std::vector<double>& bound,
                       size_t n, int cols) {
  for (size_t i = 0; i < n; ++i) {
    const double diff = std::fabs(static_cast<double>(got[i]) - want[i]);
    const double allowed = 1e-5 * bound[i] + 1e-30;
    if (!(diff <= allowed)) {
      ADD_FAILURE() << what << ": element (" << i / cols << ", " << i % cols << ") got " << got[i] << ", expected "
                    << want[i] << " (|diff| " << diff << " > " << allowed << ")";
      return false;
    }
  }
  return true;
}

std::string shape_name(const std::string& variant, const char* kernel, int M, int K, int N, Guarded::Side side) {
  return "variant " + variant + " " + kernel + " M=" + std::to_string(M) + " K=" + std::to_string(K) +
         " N=" + std::to_string(N) + (side == Guarded::Side::kStart ? " (guard before)" : " (guard after)");
}

// One (M, K, N) of the three GEMMs against the reference.
void check_gemms(const KernelTable& t, const KernelTable& ref, const std::string& variant, int M, int K, int N,
                 std::mt19937& rng) {
  const Guarded::Side side = ((M + K + N) % 2 == 0) ? Guarded::Side::kEnd : Guarded::Side::kStart;
  const size_t MK = static_cast<size_t>(M) * K, KN = static_cast<size_t>(K) * N, MN = static_cast<size_t>(M) * N;
  const std::vector<float> x = random_vector(MK, rng), w = random_vector(KN, rng), b = random_vector(N, rng),
                           dy = random_vector(MN, rng), dw0 = random_vector(KN, rng);
  Guarded X(MK, side), Wm(KN, side), B(N, side), DY(MN, side);
  X.fill(x);
  Wm.fill(w);
  B.fill(b);
  DY.fill(dy);
  const float kSentinel = std::numeric_limits<float>::quiet_NaN();

  // gemm_bias (with a bias when N is odd-indexed in the grid, else null)
  {
    const bool with_bias = (M + N) % 3 != 0;
    Guarded Y(MN, side);
    std::vector<float> want(MN, kSentinel);
    for (size_t i = 0; i < MN; ++i) Y[i] = kSentinel;
    t.gemm_bias(Y.data(), X.data(), Wm.data(), with_bias ? B.data() : nullptr, M, K, N);
    ref.gemm_bias(want.data(), x.data(), w.data(), with_bias ? b.data() : nullptr, M, K, N);
    std::vector<double> bound(MN);
    for (int i = 0; i < M; ++i)
      for (int n = 0; n < N; ++n) {
        double s = with_bias ? std::fabs(b[n]) : 0.0;
        for (int k = 0; k < K; ++k) s += std::fabs(static_cast<double>(x[i * K + k]) * w[k * N + n]);
        bound[i * N + n] = s;
      }
    expect_close_gemm(shape_name(variant, "gemm_bias", M, K, N, side), Y.data(), want.data(), bound, MN, N);
  }
  // gemm_nt: dX (M, K) = dY (M, N) . W (K, N)^T
  {
    Guarded DX(MK, side);
    std::vector<float> want(MK, kSentinel);
    for (size_t i = 0; i < MK; ++i) DX[i] = kSentinel;
    t.gemm_nt(DX.data(), DY.data(), Wm.data(), M, N, K, nullptr, 0);
    ref.gemm_nt(want.data(), dy.data(), w.data(), M, N, K, nullptr, 0);
    std::vector<double> bound(MK);
    for (int i = 0; i < M; ++i)
      for (int k = 0; k < K; ++k) {
        double s = 0.0;
        for (int n = 0; n < N; ++n) s += std::fabs(static_cast<double>(dy[i * N + n]) * w[k * N + n]);
        bound[i * K + k] = s;
      }
    expect_close_gemm(shape_name(variant, "gemm_nt", M, K, N, side), DX.data(), want.data(), bound, MK, K);

    // With panel scratch (K x kWeightGradPackRows floats, what the trainer
    // gives from 256 inputs, against a guard page), and with too little to
    // use (16): the same bits. Only avx512 keeps W^T panels in it, when the
    // rows take several row blocks (certainly from 512 rows) and a chunk's
    // panels fit (128 x K rounded up to 64 columns: certainly from K = 64);
    // the others never.
    const size_t cache_floats = static_cast<size_t>(K) * md::kWeightGradPackRows;
    for (const size_t given : {cache_floats, size_t{16}}) {
      Guarded cached(MK, side), cache(given, Guarded::Side::kEnd);
      for (size_t i = 0; i < given; ++i) cache[i] = kSentinel;
      t.gemm_nt(cached.data(), DY.data(), Wm.data(), M, N, K, cache.data(), given);
      const std::string what = shape_name(variant, "gemm_nt with panel scratch", M, K, N, side) + " of " +
                               std::to_string(given) + " floats";
      EXPECT_EQ(0, std::memcmp(cached.data(), DX.data(), MK * sizeof(float)))
          << what << ": not the same bits as without";
      bool cache_written = false;
      for (size_t i = 0; i < given && !cache_written; ++i) cache_written = !std::isnan(cache[i]);
      if (given == cache_floats && variant == "avx512" && M >= 512 && K >= 64 && N > 0)
        EXPECT_TRUE(cache_written) << what << ": not used";
      else if (variant != "avx512" || given < cache_floats)
        EXPECT_FALSE(cache_written) << what << ": written";
    }
  }
  // gemm_tn_acc: dW (K, N) += X (M, K)^T . dY (M, N)
  {
    Guarded DW(KN, side);
    DW.fill(dw0);
    std::vector<float> want = dw0;
    t.gemm_tn_acc(DW.data(), X.data(), DY.data(), M, K, N, 0, K, nullptr);
    ref.gemm_tn_acc(want.data(), x.data(), dy.data(), M, K, N, 0, K, nullptr);
    std::vector<double> bound(KN);
    for (int k = 0; k < K; ++k)
      for (int n = 0; n < N; ++n) {
        double s = std::fabs(dw0[k * N + n]);
        for (int i = 0; i < M; ++i) s += std::fabs(static_cast<double>(x[i * K + k]) * dy[i * N + n]);
        bound[k * N + n] = s;
      }
    expect_close_gemm(shape_name(variant, "gemm_tn_acc", M, K, N, side), DW.data(), want.data(), bound, KN, N);

    // With packing scratch (exactly K x kWeightGradPackRows floats, against
    // a guard page): the same bits. Variants whose trait says so (avx2) copy
    // X^T into it from kWeightGradPackMinWidth inputs on (canary
    // overwritten); avx512 keeps a chunk's dY panels in it (its tiles 64
    // columns wide, chunks of 128) when the inputs take more than one row
    // block of 256 and the panels fit; the reference never writes it.
    const size_t pack_floats = static_cast<size_t>(K) * md::kWeightGradPackRows;
    Guarded packed(KN, side), pack(pack_floats, Guarded::Side::kEnd);
    packed.fill(dw0);
    for (size_t i = 0; i < pack_floats; ++i) pack[i] = kSentinel;
    t.gemm_tn_acc(packed.data(), X.data(), DY.data(), M, K, N, 0, K, pack.data());
    EXPECT_EQ(0, std::memcmp(packed.data(), DW.data(), KN * sizeof(float)))
        << shape_name(variant, "gemm_tn_acc with packing scratch", M, K, N, side) << ": not the same bits as without";
    bool pack_written = false;
    for (size_t i = 0; i < pack_floats && !pack_written; ++i) pack_written = !std::isnan(pack[i]);
    const bool may_pack = variant != "reference" && K >= static_cast<int>(md::kWeightGradPackMinWidth) && M > 4;
    if (pack_written || (variant == "avx2" && may_pack))
      EXPECT_EQ(may_pack, pack_written) << shape_name(variant, "gemm_tn_acc with packing scratch", M, K, N, side);
    if (variant == "avx512") {
      const bool caches = K > 256 && M > 4 && N > 0 && size_t{128} * ((N + 63) / 64 * 64) <= pack_floats;
      EXPECT_EQ(caches, pack_written) << shape_name(variant, "gemm_tn_acc with panel scratch", M, K, N, side);
    }
  }
}

TEST_P(KernelVariant, GemmsMatchReferenceOnOddShapes) {
  std::mt19937 rng(1234);
  for (int M : kGrid)
    for (int K : kGrid)
      for (int N : kGrid) {
        check_gemms(t(), ref(), name(), M, K, N, rng);
        if (HasFailure()) return;  // the first failing shape says enough
      }
}

TEST_P(KernelVariant, GemmsMatchReferenceOnLargeShapes) {
  std::mt19937 rng(99);
  for (const Shape& s : kLargeShapes) {
    check_gemms(t(), ref(), name(), s.M, s.K, s.N, rng);
    if (HasFailure()) return;
  }
}

// gemm_bias on f16 and int8 weights (read in place): every variant, through
// its inference table, against the f32 product with the dequantized weights
// in double, |got - exact| <= 1e-5 * (sum of |terms|). The shapes cross the
// vector widths, the column blocks and the reduction chunks (512 on AVX2);
// the f16 weights include subnormals, zeros and the largest half, and the
// matrices end against a guard page, so widening past a row's end faults.
TEST_P(KernelVariant, ReducedPrecisionGemmsMatchTheDequantizedProduct) {
  const md::kernels::ForwardKernels* f = md::kernels::find_forward_variant(name().c_str());
  ASSERT_NE(f, nullptr);
  std::mt19937 rng(77);
  const int Ms[] = {1, 2, 7, 33}, Ks[] = {0, 1, 9, 130, 530}, Ns[] = {1, 3, 8, 15, 17, 33, 65};
  for (int M : Ms)
    for (int K : Ks)
      for (int N : Ns) {
        const size_t KN = static_cast<size_t>(K) * N, MN = static_cast<size_t>(M) * N;
        const std::vector<float> x = random_vector(static_cast<size_t>(M) * K, rng), b = random_vector(N, rng);
        std::vector<uint16_t> h(KN);
        std::vector<int8_t> q(KN);
        std::vector<float> scales = random_vector(N, rng, 0.001f, 0.05f);
        for (size_t i = 0; i < KN; ++i) {
          h[i] = md::kernels::float_to_half(std::normal_distribution<float>(0.0f, 0.5f)(rng));
          q[i] = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
        }
        const uint16_t specials[] = {0x0001, 0x83FF, 0x0000, 0x8000, 0x7BFF, 0xFBFF, 0x0400};
        for (size_t i = 0; i < KN && i < 7; ++i) h[(i * 7919) % KN] = specials[i];
        Guarded X(x.size()), B(N), S(N), Y(MN);
        GuardedArray<uint16_t> H(KN);
        GuardedArray<int8_t> Q(KN);
        X.fill(x);
        B.fill(b);
        S.fill(scales);
        H.fill(h);
        Q.fill(q);
        for (int kind = 0; kind < 2; ++kind) {
          const bool with_bias = (M + N + kind) % 2 == 0;
          for (size_t i = 0; i < MN; ++i) Y[i] = std::numeric_limits<float>::quiet_NaN();
          if (kind == 0)
            f->gemm_bias_f16(Y.data(), X.data(), H.data(), with_bias ? B.data() : nullptr, M, K, N);
          else
            f->gemm_bias_i8(Y.data(), X.data(), Q.data(), S.data(), with_bias ? B.data() : nullptr, M, K, N);
          std::vector<float> want(MN);
          std::vector<double> bound(MN);
          for (int i = 0; i < M; ++i)
            for (int n = 0; n < N; ++n) {
              double sum = with_bias ? b[n] : 0.0, mag = with_bias ? std::fabs(b[n]) : 0.0;
              for (int k = 0; k < K; ++k) {
                const size_t at = static_cast<size_t>(k) * N + n;
                const float w = kind == 0 ? md::kernels::half_to_float(h[at]) : scales[n] * static_cast<float>(q[at]);
                const double term = static_cast<double>(x[static_cast<size_t>(i) * K + k]) * w;
                sum += term;
                mag += std::fabs(term);
              }
              want[static_cast<size_t>(i) * N + n] = static_cast<float>(sum);
              bound[static_cast<size_t>(i) * N + n] = mag;
            }
          const std::string what = name() + (kind == 0 ? " gemm_bias_f16" : " gemm_bias_i8") +
                                   " M=" + std::to_string(M) + " K=" + std::to_string(K) + " N=" + std::to_string(N);
          if (!expect_close_gemm(what, Y.data(), want.data(), bound, MN, N)) return;
        }
      }
}

TEST_P(KernelVariant, ColsumMatchesReference) {
  std::mt19937 rng(7);
  for (int M : kGrid)
    for (int N : kGrid) {
      const Guarded::Side side = ((M + N) % 2 == 0) ? Guarded::Side::kEnd : Guarded::Side::kStart;
      const size_t MN = static_cast<size_t>(M) * N;
      const std::vector<float> dy = random_vector(MN, rng), db0 = random_vector(N, rng);
      Guarded DY(MN, side), DB(N, side);
      DY.fill(dy);
      DB.fill(db0);
      std::vector<float> want = db0;
      t().colsum_acc(DB.data(), DY.data(), M, N);
      ref().colsum_acc(want.data(), dy.data(), M, N);
      std::vector<double> bound(N);
      for (int n = 0; n < N; ++n) {
        double s = std::fabs(db0[n]);
        for (int i = 0; i < M; ++i) s += std::fabs(dy[i * N + n]);
        bound[n] = s;
      }
      if (!expect_close_gemm(shape_name(name(), "colsum_acc", M, 0, N, side), DB.data(), want.data(), bound, N, N))
        return;
    }
}

// ---- Activations ------------------------------------------------------------------

const Activation kActivations[] = {Activation::kIdentity, Activation::kReLU,     Activation::kSiLU,
                                   Activation::kGeluTanh, Activation::kGeluErf, Activation::kSoftplus,
                                   Activation::kTanh};

// The exact functions, in double.
double exact_value(Activation a, double x) {
  switch (a) {
    case Activation::kIdentity: return x;
    case Activation::kReLU: return x > 0.0 ? x : 0.0;
    case Activation::kSiLU: return x / (1.0 + std::exp(-x));
    case Activation::kGeluTanh:
      return 0.5 * x * (1.0 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
    case Activation::kGeluErf: return 0.5 * x * std::erfc(-x * 0.7071067811865476);
    case Activation::kSoftplus: return x > 20.0 ? x : std::log1p(std::exp(x));
    case Activation::kTanh: return std::tanh(x);
  }
  return x;
}

double exact_derivative(Activation a, double x) {
  switch (a) {
    case Activation::kIdentity: return 1.0;
    case Activation::kReLU: return x > 0.0 ? 1.0 : 0.0;
    case Activation::kSiLU: {
      const double s = 1.0 / (1.0 + std::exp(-x));
      return s * (1.0 + x * (1.0 - s));
    }
    case Activation::kGeluTanh: {
      const double k = 0.7978845608028654, c = 0.044715;
      const double th = std::tanh(k * (x + c * x * x * x));
      return 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * k * (1.0 + 3.0 * c * x * x);
    }
    case Activation::kGeluErf:
      return 0.5 * std::erfc(-x * 0.7071067811865476) + x * 0.3989422804014327 * std::exp(-0.5 * x * x);
    case Activation::kSoftplus: return x > 20.0 ? 1.0 : 1.0 / (1.0 + std::exp(-x));
    case Activation::kTanh: {
      const double th = std::tanh(x);
      return 1.0 - th * th;
    }
  }
  return 1.0;
}

// The stated accuracy of every variant (the reference, with float libm, too).
constexpr double kActRel = 2e-6, kActAbs = 1e-6;

// [-30, 30] in steps of 0.001, the thresholds and branch points (softplus's
// 20, the polynomial / exp switches at 0.625 and |x| = sqrt 2, exp's range)
// and, for the SIMD variants only, huge inputs (where the reference's float
// formulas overflow: x^3 -> inf makes its GELU derivatives NaN).
std::vector<float> activation_inputs(bool huge) {
  std::vector<float> x;
  for (int i = -30000; i <= 30000; ++i) x.push_back(static_cast<float>(i) * 0.001f);
  const float specials[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-7f, -1e-7f, 20.0f, 19.99999f, 20.00001f, -20.0f,
                            0.625f, -0.625f, 0.62499994f, 1.4142135f, -1.4142135f, 1.4142137f, -1.4142137f,
                            5.656854f, -5.656854f, 40.0f, -40.0f, 87.0f, -87.0f, 88.5f, -88.5f, 100.0f, -100.0f};
  for (float s : specials) x.push_back(s);
  if (huge)
    for (float s : {1e4f, -1e4f, 1e19f, -1e19f, 3e38f, -3e38f}) x.push_back(s);
  return x;
}

double tolerance(double want) { return std::fmax(kActRel * std::fabs(want), kActAbs); }

bool within(double got, double want) { return std::fabs(got - want) <= tolerance(want); }

struct ErrorStats {
  double max_abs = 0.0;   // largest |got - exact|
  double max_rel = 0.0;   // largest |got - exact| / |exact| where |exact| >= 0.01
  double max_frac = 0.0;  // largest |got - exact| / tolerance
  void add(double got, double want) {
    const double d = std::fabs(got - want);
    if (d > max_abs) max_abs = d;
    if (std::fabs(want) >= 0.01 && d / std::fabs(want) > max_rel) max_rel = d / std::fabs(want);
    if (d / tolerance(want) > max_frac) max_frac = d / tolerance(want);
  }
};

TEST_P(KernelVariant, ActivationsMatchExactFunctions) {
  const std::vector<float> x = activation_inputs(name() != "reference");
  const size_t n = x.size();
  for (Activation a : kActivations) {
    Guarded X(n), Y(n), DY(n), DX(n);
    X.fill(x);
    for (size_t i = 0; i < n; ++i) DY[i] = 1.0f;
    t().activation_forward(a, Y.data(), X.data(), n);
    t().activation_backward(a, DX.data(), X.data(), DY.data(), n);
    ErrorStats fwd, bwd;
    int bad = 0;
    for (size_t i = 0; i < n; ++i) {
      const double want = exact_value(a, x[i]), dwant = exact_derivative(a, x[i]);
      if (!std::isfinite(want) || !std::isfinite(dwant)) continue;  // e.g. 3e38^3
      fwd.add(Y[i], want);
      bwd.add(DX[i], dwant);
      if ((!within(Y[i], want) || !within(DX[i], dwant)) && bad++ < 5)
        ADD_FAILURE() << "variant " << name() << " " << md::activation_name(a) << " at x = " << x[i]
                      << ": value " << Y[i] << " (exact " << want << "), derivative " << DX[i] << " (exact "
                      << dwant << ")";
    }
    std::printf("[ accuracy ] %-9s %-9s value: abs %.1e rel %.1e (%3.0f%% of tol)  derivative: abs %.1e rel %.1e "
                "(%3.0f%% of tol)\n",
                name().c_str(), md::activation_name(a), fwd.max_abs, fwd.max_rel, 100.0 * fwd.max_frac, bwd.max_abs,
                bwd.max_rel, 100.0 * bwd.max_frac);
  }
}

// sin and cos of the sinusoidal embeddings: every variant within 2.5e-7
// absolute of double-precision libm (the vector path up to |a| = 8192, the
// scalar fallback beyond), at every length 0..65 (tails), in place (s
// aliasing a), and NaN / Inf giving NaN.
TEST_P(KernelVariant, SinCosMatchLibm) {
  std::mt19937 rng(11);
  std::vector<float> a;
  for (float v = -50.0f; v <= 50.0f; v += 0.0123f) a.push_back(v);
  for (float scale : {300.0f, 1000.0f, 8000.0f, 8192.0f, 1e5f, 1e6f}) {
    const std::vector<float> r = random_vector(4001, rng, -scale, scale);
    a.insert(a.end(), r.begin(), r.end());
  }
  for (int k = -2000; k <= 2000; ++k) a.push_back(static_cast<float>(k));        // timesteps
  for (int k = -5000; k <= 5000; k += 7) a.push_back(static_cast<float>(k * 1.5707963267948966));  // near k pi/2
  const size_t n = a.size();
  Guarded A(n), S(n), C(n);
  A.fill(a);
  t().sincos(A.data(), S.data(), C.data(), n);
  double worst = 0.0;
  int bad = 0;
  for (size_t i = 0; i < n; ++i) {
    const double es = std::sin(static_cast<double>(a[i])), ec = std::cos(static_cast<double>(a[i]));
    const double err = std::fmax(std::fabs(S[i] - es), std::fabs(C[i] - ec));
    worst = std::fmax(worst, err);
    if (err > 2.5e-7 && bad++ < 5)
      ADD_FAILURE() << name() << " sincos at a = " << a[i] << " (index " << i << "): sin " << S[i] << " (exact " << es
                    << "), cos " << C[i] << " (exact " << ec << ")";
  }
  std::printf("[ accuracy ] %-9s sincos: max abs error %.2e over %zu inputs up to |a| = 1e6 (tolerance 2.5e-7)\n",
              name().c_str(), worst, n);
  for (size_t len = 0; len <= 65; ++len) {
    const std::vector<float> x = random_vector(len, rng, -100.0f, 100.0f);
    const Guarded::Side side = len % 2 ? Guarded::Side::kStart : Guarded::Side::kEnd;
    Guarded X(len, side), Sx(len, side), Cx(len, side);
    X.fill(x);
    t().sincos(X.data(), Sx.data(), Cx.data(), len);
    t().sincos(X.data(), X.data(), Cx.data(), len);  // in place
    for (size_t i = 0; i < len; ++i) {
      ASSERT_NEAR(Sx[i], std::sin(static_cast<double>(x[i])), 2.5e-7) << name() << " len=" << len << " i=" << i;
      ASSERT_EQ(std::memcmp(&X[i], &Sx[i], sizeof(float)), 0) << name() << " in place, len=" << len << " i=" << i;
    }
  }
  const std::vector<float> special = {NAN, INFINITY, -INFINITY, 1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f};
  Guarded X(special.size()), Sx(special.size()), Cx(special.size());
  X.fill(special);
  t().sincos(X.data(), Sx.data(), Cx.data(), special.size());
  for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(std::isnan(Sx[i]) && std::isnan(Cx[i])) << name() << " " << special[i];
}

// Every length 0..65 (the vector tails, and from 48 floats on every ISA the
// loop that interleaves kMapWidth vectors), against the exact functions, in
// place, and bit for bit the value each element gets computed alone; NaN in
// gives NaN out where the reference's does, in both loops.
// Inputs of any size (a diverging sampler's hundreds) never underflow
// inside the activations: denormal intermediates cost a microcode assist per
// instruction on Intel cores (softplus below -42 once made sampling 2x
// slower). The cumulative underflow flag of the FP environment must stay clear.
TEST_P(KernelVariant, ActivationsOfLargeInputsDoNotUnderflow) {
#if defined(__arm__)
  if (name() == "neon")  // nothing to check: no denormal is ever computed
    GTEST_SKIP() << "ARMv7 Advanced SIMD flushes denormal results to zero in hardware (no assists), raising the "
                    "underflow flag as it does: not checked for neon on 32-bit Arm";
#endif
  std::vector<float> x;  // every 1/64 over [-128, 128] (the narrow bands near the limits), then far out
  for (int i = -128 * 64; i <= 128 * 64; ++i) x.push_back(static_cast<float>(i) / 64.0f);
  for (float v : {1e3f, 1e6f, 1e30f, 3e38f}) {
    x.push_back(v);
    x.push_back(-v);
  }
  const size_t n = x.size();
  const std::vector<float> dy(n, 1.0f);
  std::vector<float> y(n), dx(n);
  for (Activation a : kActivations) {
    std::feclearexcept(FE_ALL_EXCEPT);
    t().activation_forward(a, y.data(), x.data(), n);
    EXPECT_FALSE(std::fetestexcept(FE_UNDERFLOW)) << name() << " " << md::activation_name(a) << " forward";
    std::feclearexcept(FE_ALL_EXCEPT);
    t().activation_backward(a, dx.data(), x.data(), dy.data(), n);
    EXPECT_FALSE(std::fetestexcept(FE_UNDERFLOW)) << name() << " " << md::activation_name(a) << " backward";
  }
}

// A residual block's activation and skip connection in one pass: the same
// bits as the variant's activation_forward followed by y[i] += h[i], at every
// length around the vector widths and the wide maps, in place over x,
// with NaNs; through the variant's table (where it has the fused form) and
// through the dispatcher (which takes the two passes where it has not).
TEST_P(KernelVariant, ResidualActivationIsTheTwoPassesInOne) {
  const md::kernels::ForwardKernels* f = md::kernels::find_forward_variant(name().c_str());
  ASSERT_NE(f, nullptr);
  if (f->activation_residual == nullptr)
    std::printf("note: %s has no fused residual activation; checking the dispatcher's two passes\n", name().c_str());
  ASSERT_TRUE(md::select_kernel_variant(name().c_str()).ok());
  std::mt19937 rng(91);
  std::vector<size_t> lengths;
  for (size_t n = 0; n <= 130; ++n) lengths.push_back(n);
  lengths.push_back(1000);
  lengths.push_back(70001);  // above the dispatcher's split threshold
  for (Activation a : kActivations)
    for (size_t n : lengths) {
      std::vector<float> x = random_vector(n, rng, -8.0f, 8.0f), h = random_vector(n, rng, -3.0f, 3.0f);
      if (n > 3) x[n / 3] = std::numeric_limits<float>::quiet_NaN();
      const Guarded::Side side = n % 2 ? Guarded::Side::kStart : Guarded::Side::kEnd;
      Guarded X(n, side), H(n, side), want(n, side), got(n, side);
      X.fill(x);
      H.fill(h);
      f->activation_forward(a, want.data(), X.data(), n);
      for (size_t i = 0; i < n; ++i) want[i] += h[i];
      const auto check = [&](const float* y, const char* how) {
        for (size_t i = 0; i < n; ++i)
          ASSERT_EQ(std::memcmp(&y[i], &want[i], sizeof(float)), 0)
              << name() << " " << md::activation_name(a) << " " << how << " n=" << n << " i=" << i << " x=" << x[i]
              << " h=" << h[i] << ": got " << y[i] << ", want " << want[i];
      };
      if (f->activation_residual != nullptr) {
        f->activation_residual(a, got.data(), X.data(), H.data(), n);
        check(got.data(), "table");
      }
      md::kernels::activation_forward_residual(a, got.data(), X.data(), H.data(), n);
      check(got.data(), "dispatch");
      Guarded Z(n, side);
      Z.fill(x);
      md::kernels::activation_forward_residual(a, Z.data(), Z.data(), H.data(), n);
      check(Z.data(), "y aliasing x");
    }
  ASSERT_TRUE(md::select_kernel_variant("auto").ok());
}

TEST_P(KernelVariant, ActivationTailsAliasingAndNaN) {
  std::mt19937 rng(5);
  for (Activation a : kActivations) {
    for (size_t n = 0; n <= 65; ++n) {
      const std::vector<float> x = random_vector(n, rng, -6.0f, 6.0f), dy = random_vector(n, rng);
      const Guarded::Side side = n % 2 ? Guarded::Side::kStart : Guarded::Side::kEnd;
      Guarded X(n, side), Y(n, side), DY(n, side), DX(n, side);
      X.fill(x);
      DY.fill(dy);
      t().activation_forward(a, Y.data(), X.data(), n);
      t().activation_backward(a, DX.data(), X.data(), DY.data(), n);
      for (size_t i = 0; i < n; ++i) {
        ASSERT_TRUE(within(Y[i], exact_value(a, x[i])))
            << name() << " " << md::activation_name(a) << " n=" << n << " i=" << i << " got " << Y[i];
        const double dwant = dy[i] * exact_derivative(a, x[i]);
        ASSERT_LE(std::fabs(DX[i] - dwant), std::fmax(kActRel * std::fabs(dwant), kActAbs * std::fabs(dy[i])))
            << name() << " " << md::activation_name(a) << " backward n=" << n << " i=" << i;
      }
      // In place: y aliasing x, dx aliasing dy, same results.
      Guarded Z(n, side);
      Z.fill(x);
      t().activation_forward(a, Z.data(), Z.data(), n);
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(std::memcmp(&Z[i], &Y[i], sizeof(float)), 0) << "in-place forward";
      Z.fill(dy);
      t().activation_backward(a, Z.data(), X.data(), Z.data(), n);
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(std::memcmp(&Z[i], &DX[i], sizeof(float)), 0) << "in-place backward";
      // Position-independent: element i alone (the masked tail) gives the same bits.
      for (size_t i = 0; i < n; ++i) {
        float y1 = 0.0f, dx1 = 0.0f;
        t().activation_forward(a, &y1, &x[i], 1);
        t().activation_backward(a, &dx1, &x[i], &dy[i], 1);
        ASSERT_EQ(std::memcmp(&y1, &Y[i], sizeof(float)), 0)
            << name() << " " << md::activation_name(a) << " n=" << n << " i=" << i << ": " << Y[i] << " in the array, "
            << y1 << " alone";
        ASSERT_EQ(std::memcmp(&dx1, &DX[i], sizeof(float)), 0)
            << name() << " " << md::activation_name(a) << " backward n=" << n << " i=" << i;
      }
    }
    // NaN in -> NaN out exactly where the reference gives NaN (ReLU gives 0).
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const std::vector<float> pattern = {nan, 1.0f, -1.0f, nan, 0.0f, 25.0f, -25.0f, nan, 3.0f, nan, nan, nan, nan, nan,
                                        nan, nan, nan, nan, 2.0f};
    std::vector<float> x;
    for (int k = 0; k < 5; ++k) x.insert(x.end(), pattern.begin(), pattern.end());  // 95: both loops
    const size_t n = x.size();
    std::vector<float> y(n), yr(n), ones(n, 1.0f), dx(n), dxr(n);
    t().activation_forward(a, y.data(), x.data(), n);
    ref().activation_forward(a, yr.data(), x.data(), n);
    t().activation_backward(a, dx.data(), x.data(), ones.data(), n);
    ref().activation_backward(a, dxr.data(), x.data(), ones.data(), n);
    for (size_t i = 0; i < n; ++i) {
      EXPECT_EQ(std::isnan(y[i]), std::isnan(yr[i])) << name() << " " << md::activation_name(a) << " forward x=" << x[i];
      EXPECT_EQ(std::isnan(dx[i]), std::isnan(dxr[i]))
          << name() << " " << md::activation_name(a) << " backward x=" << x[i];
    }
  }
}

// ---- Adam and EMA ------------------------------------------------------------------

TEST_P(KernelVariant, AdamAndEmaAreBitIdenticalToReference) {
  std::mt19937 rng(11);
  const size_t sizes[] = {0, 1, 3, 4, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 1000};
  for (int mode = 0; mode < 3; ++mode) {
    md::kernels::AdamStep s{};
    s.b1 = 0.9f;
    s.b2 = 0.999f;
    s.one_minus_b1 = static_cast<float>(1.0 - 0.9);
    s.one_minus_b2 = static_cast<float>(1.0 - 0.999);
    s.step_size = 1e-3f / static_cast<float>(1.0 - std::pow(0.9, 3));
    s.bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(0.999, 3)));
    s.eps = 1e-8f;
    s.weight_decay = mode == 0 ? 0.0f : 0.01f;
    s.decay = static_cast<float>(1.0 - 1e-3 * 0.01);
    s.decoupled = mode == 2;
    for (size_t n : sizes) {
      const std::vector<float> p = random_vector(n, rng), m = random_vector(n, rng, -0.1f, 0.1f),
                               v = random_vector(n, rng, 0.0f, 0.01f), g = random_vector(n, rng);
      Guarded P(n), Mv(n), Vv(n), G(n), E(n);
      P.fill(p);
      Mv.fill(m);
      Vv.fill(v);
      G.fill(g);
      std::vector<float> pr = p, mr = m, vr = v;
      t().adam_update(P.data(), Mv.data(), Vv.data(), G.data(), n, s);
      ref().adam_update(pr.data(), mr.data(), vr.data(), g.data(), n, s);
      for (size_t i = 0; i < n; ++i) {
        ASSERT_EQ(std::memcmp(&P[i], &pr[i], 4), 0) << name() << " adam p, mode " << mode << " n=" << n << " i=" << i
                                                    << ": " << P[i] << " vs " << pr[i];
        ASSERT_EQ(std::memcmp(&Mv[i], &mr[i], 4), 0) << name() << " adam m, n=" << n << " i=" << i;
        ASSERT_EQ(std::memcmp(&Vv[i], &vr[i], 4), 0) << name() << " adam v, n=" << n << " i=" << i;
      }
      const std::vector<float> e = random_vector(n, rng);
      E.fill(e);
      std::vector<float> er = e;
      t().ema_update(E.data(), P.data(), n, 0.995f, static_cast<float>(1.0 - 0.995));
      ref().ema_update(er.data(), pr.data(), n, 0.995f, static_cast<float>(1.0 - 0.995));
      for (size_t i = 0; i < n; ++i)
        ASSERT_EQ(std::memcmp(&E[i], &er[i], 4), 0) << name() << " ema n=" << n << " i=" << i;
    }
  }
}

// ---- Sum of squares (the gradient norm) --------------------------------------------------

// Every variant bit for bit against the order kernels.h states (element i into
// partial sum i mod 32, then a pairwise tree), written out here; and that
// order within the recursive-summation bound of a long double sum (each
// chain adds about n/32 terms, plus 5 levels of the tree, each within 2^-53).
TEST_P(KernelVariant, SumSquaresFollowsItsStatedOrder) {
  std::mt19937 rng(17);
  const size_t sizes[] = {0, 1, 7, 8, 31, 32, 33, 63, 64, 65, 1000, 72066};
  for (size_t n : sizes) {
    Guarded X(n);
    X.fill(random_vector(n, rng, -3.0f, 3.0f));
    double part[32] = {};
    long double exact = 0;
    for (size_t i = 0; i < n; ++i) {
      part[i % 32] += static_cast<double>(X[i]) * X[i];
      exact += static_cast<long double>(X[i]) * X[i];
    }
    for (size_t width = 16; width >= 1; width /= 2)
      for (size_t l = 0; l < width; ++l) part[l] = part[2 * l] + part[2 * l + 1];
    const double got = t().sum_squares(X.data(), n);
    ASSERT_EQ(std::memcmp(&got, &part[0], 8), 0) << name() << " n=" << n << ": " << got << " vs " << part[0];
    const long double bound = (n / 32 + 6) * 0x1p-53L * exact;
    EXPECT_LE(std::fabs(static_cast<long double>(got) - exact), bound) << name() << " n=" << n;
  }
}

// ---- The time gate ----------------------------------------------------------------------

// Forward and backward against the formula (each product of two floats is
// exact in double, so rounding it once gives the float product), and every
// variant bit for bit against the reference, at widths around the vector
// width, with timesteps that repeat (the backward's table rows accumulate).
TEST_P(KernelVariant, TimeGateMatchesFormulaBitForBit) {
  std::mt19937 rng(5);
  const int batches[] = {0, 1, 3, 17, 40};
  constexpr int T = 5;
  for (int w : kGrid)
    for (int B : batches) {
      const size_t n = static_cast<size_t>(B) * w, tn = static_cast<size_t>(T) * w;
      std::vector<int32_t> ts(B);
      for (int32_t& x : ts) x = static_cast<int32_t>(rng() % T);
      const std::vector<float> u = random_vector(n, rng, -2.0f, 2.0f), g = random_vector(tn, rng),
                               dy = random_vector(n, rng), dg0 = random_vector(tn, rng);
      for (int pass = 0; pass < 2; ++pass) {  // pass 1: y written over u, dz over dy
        Guarded U(n), Y(n), G(tn), DY(n), DZ(n), DG(tn);
        U.fill(u);
        G.fill(g);
        DY.fill(dy);
        DG.fill(dg0);
        float* y = pass ? U.data() : Y.data();
        float* dz = pass ? DY.data() : DZ.data();
        t().time_gate(y, U.data(), G.data(), ts.data(), B, w);
        t().time_gate_backward(dz, DG.data(), DY.data(), u.data(), G.data(), ts.data(), B, w);
        std::vector<float> yr(n), dzr(n), dgr = dg0;
        ref().time_gate(yr.data(), u.data(), g.data(), ts.data(), B, w);
        ref().time_gate_backward(dzr.data(), dgr.data(), dy.data(), u.data(), g.data(), ts.data(), B, w);
        std::vector<float> dg_formula = dg0;
        for (int b = 0; b < B; ++b)
          for (int i = 0; i < w; ++i) {
            const size_t k = static_cast<size_t>(b) * w + i, at = static_cast<size_t>(ts[b]) * w + i;
            const float yf = static_cast<float>(static_cast<double>(u[k]) * g[at]);
            const float dzf = static_cast<float>(static_cast<double>(dy[k]) * g[at]);
            // (volatile: no fused multiply-add here, where -ffp-contract is the compiler's default)
            const volatile float dgu = static_cast<float>(static_cast<double>(dy[k]) * u[k]);
            dg_formula[at] += dgu;
            ASSERT_EQ(std::memcmp(&yr[k], &yf, 4), 0) << "reference gate b=" << b << " i=" << i;
            ASSERT_EQ(std::memcmp(&dzr[k], &dzf, 4), 0) << "reference gate backward b=" << b << " i=" << i;
            ASSERT_EQ(std::memcmp(&y[k], &yr[k], 4), 0)
                << name() << " gate w=" << w << " B=" << B << " pass " << pass << " b=" << b << " i=" << i << ": u "
                << u[k] << " g " << g[at] << ": " << y[k] << " vs " << yr[k];
            ASSERT_EQ(std::memcmp(&dz[k], &dzr[k], 4), 0)
                << name() << " gate backward dz w=" << w << " B=" << B << " pass " << pass << " b=" << b << " i=" << i;
          }
        for (size_t k = 0; k < tn; ++k) {
          ASSERT_EQ(std::memcmp(&dgr[k], &dg_formula[k], 4), 0) << "reference gate backward dG k=" << k;
          ASSERT_EQ(std::memcmp(&DG[k], &dgr[k], 4), 0)
              << name() << " gate backward dG w=" << w << " B=" << B << " pass " << pass << " k=" << k << ": " << DG[k]
              << " vs " << dgr[k];
        }
      }
    }
}

// ---- Whole training steps ------------------------------------------------------------

// A few training steps of both presets with this variant stay within float
// rounding of the reference's.
TEST_P(KernelVariant, TrainingStepsMatchReference) {
  for (int preset = 0; preset < 2; ++preset) {
    const md::ModelDesc desc = preset == 0 ? md::preset_default() : md::preset_tutorial();
    md::TrainConfig cfg;
    cfg.batch = 64;
    std::vector<std::vector<float>> params(2);
    std::vector<float> losses(2);
    const char* names[2] = {"reference", GetParam()};
    for (int run = 0; run < 2; ++run) {
      ASSERT_TRUE(md::select_kernel_variant(names[run]).ok());
      std::vector<unsigned char> buf(md::training_arena_bytes(desc, cfg.batch));
      md::Arena arena(buf.data(), buf.size());
      md::Trainer trainer;
      ASSERT_TRUE(trainer.init(desc, md::linear_schedule(desc.T), cfg, arena).ok());
      trainer.init_parameters(3);
      std::vector<float> data(2 * 4000);
      md::make_dataset(md::Dataset::kSwissRoll, 1, 0, 4000, data.data());
      for (int step = 0; step < 10; ++step) ASSERT_TRUE(trainer.step(data.data(), 4000, &losses[run]).ok());
      const size_t count = md::param_layout(desc).total_floats;
      params[run].assign(trainer.params(), trainer.params() + count);
    }
    ASSERT_TRUE(md::select_kernel_variant("auto").ok());
    EXPECT_NEAR(losses[1], losses[0], 1e-4 * std::fabs(losses[0])) << name() << " preset " << preset;
    // Adam normalises each update to about lr = 1e-3 per step; rounding of
    // the gradients moves parameters by far less.
    double worst = 0.0;
    for (size_t i = 0; i < params[0].size(); ++i) {
      // (not std::fmax: GCC 12 for aarch64 crashes vectorising that reduction)
      const double d = std::fabs(static_cast<double>(params[1][i]) - params[0][i]);
      if (d > worst) worst = d;
    }
    EXPECT_LT(worst, 1e-4) << name() << " preset " << preset << ": largest parameter difference";
  }
}

INSTANTIATE_TEST_SUITE_P(Kernels, KernelVariant, ::testing::ValuesIn(kVariants),
                         [](const ::testing::TestParamInfo<const char*>& info) { return std::string(info.param); });

// ---- Selection API ---------------------------------------------------------------------

TEST(KernelSelection, NamesAvailabilityAndSelection) {
  ASSERT_EQ(md::kernel_variant_count(), 5u);
  for (size_t i = 0; i < md::kernel_variant_count(); ++i) {
    ASSERT_NE(md::kernel_variant_name(i), nullptr);
    EXPECT_STREQ(md::kernel_variant_name(i), kVariants[i]);
  }
  EXPECT_EQ(md::kernel_variant_name(5), nullptr);
  EXPECT_TRUE(md::kernel_variant_available("reference"));
  EXPECT_TRUE(md::kernel_variant_available("auto"));
  EXPECT_FALSE(md::kernel_variant_available("sse9"));
  EXPECT_FALSE(md::kernel_variant_available(nullptr));

  ASSERT_TRUE(md::select_kernel_variant("auto").ok());
  const std::string automatic = md::kernel_variant();
  std::printf("[ kernels  ] auto selects '%s'; available:", automatic.c_str());
  for (const char* v : kVariants)
    if (md::kernel_variant_available(v)) std::printf(" %s", v);
  std::printf("\n");

  const md::Status bad = md::select_kernel_variant("sse9");
  EXPECT_EQ(bad.code, md::StatusCode::kInvalidArgument);
  EXPECT_EQ(md::kernel_variant(), automatic) << "a failed selection must not change the variant";
  for (const char* v : kVariants) {
    const md::Status st = md::select_kernel_variant(v);
    if (md::kernel_variant_available(v)) {
      EXPECT_TRUE(st.ok()) << v;
      EXPECT_STREQ(md::kernel_variant(), v);
    } else {
      EXPECT_EQ(st.code, md::StatusCode::kInvalidArgument) << v;
    }
  }
  ASSERT_TRUE(md::select_kernel_variant("auto").ok());
  EXPECT_EQ(md::kernel_variant(), automatic);
}

TEST(KernelSelection, EnvironmentVariableChoosesAuto) {
#if defined(_WIN32)
  GTEST_SKIP() << "setenv is POSIX";
#else
  const char* old = std::getenv("MD_KERNELS");
  const std::string saved = old ? old : "";
  setenv("MD_KERNELS", "reference", 1);
  ASSERT_TRUE(md::select_kernel_variant("auto").ok());
  EXPECT_STREQ(md::kernel_variant(), "reference");
  // Unknown names fall back to the CPU's best.
  setenv("MD_KERNELS", "no-such-variant", 1);
  unsetenv("MD_KERNELS");
  ASSERT_TRUE(md::select_kernel_variant("auto").ok());
  const std::string best = md::kernel_variant();
  setenv("MD_KERNELS", "no-such-variant", 1);
  ASSERT_TRUE(md::select_kernel_variant("auto").ok());
  EXPECT_EQ(md::kernel_variant(), best);
  if (old)
    setenv("MD_KERNELS", saved.c_str(), 1);
  else
    unsetenv("MD_KERNELS");
  ASSERT_TRUE(md::select_kernel_variant("auto").ok());
#endif
}

}  // namespace
