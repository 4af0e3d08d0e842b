// Kernel variant selection and the dispatching entry points of kernels.h.
//
// The active variant is one pointer to a constant table. It starts null and is
// set on first use to the "auto" choice; setting it is idempotent (every
// caller computes the same table), so a race between two first calls is
// harmless, and the pointer is read and written with relaxed atomics so the
// race is not undefined behaviour either. No function-local statics (the
// runtime is built with -fno-threadsafe-statics), no heap.
#include <string.h>

#include "kernels/kernels.h"
#include "microdiffusion/kernels.h"
#include "microdiffusion/parallel.h"

// MD_KERNELS is read only where there is an environment: not in freestanding
// builds, nor where the build says bare metal (CMake defines MD_BARE_METAL for
// CMAKE_SYSTEM_NAME Generic: newlib has a getenv, but no environment).
// The same builds leave out the split of elementwise kernels over the
// parallel-for (below): firmware installs none, and every byte of the
// sampling path counts there.
#if defined(MD_BARE_METAL) || (defined(__STDC_HOSTED__) && __STDC_HOSTED__ == 0)
#define MD_KERNELS_READ_ENV 0
#define MD_SPLIT_ELEMENTWISE 0
#else
#define MD_KERNELS_READ_ENV 1
#define MD_SPLIT_ELEMENTWISE 1
#include <stdlib.h>
#endif

#if defined(MD_KERNELS_HAVE_AVX2) || defined(MD_KERNELS_HAVE_AVX512)
#if !(defined(__x86_64__) || defined(__i386__))
#error "the AVX variants are for x86 targets"
#endif
#include <cpuid.h>
#endif

namespace md {
namespace kernels {
namespace {

constexpr const char* kVariantNames[] = {"reference", "avx2", "avx512", "neon", "helium"};
constexpr size_t kVariantCount = sizeof(kVariantNames) / sizeof(kVariantNames[0]);

#if defined(MD_KERNELS_HAVE_AVX2) || defined(MD_KERNELS_HAVE_AVX512)
struct X86Features {
  bool avx2_fma;  // AVX2 + FMA (+ F16C, for f16 weights), with the OS saving YMM state
  bool avx512;    // AVX-512F + DQ, with the OS saving ZMM and opmask state
};

X86Features x86_features() {
  X86Features f = {false, false};
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(1, 0, a, b, c, d);
  const bool osxsave = (c >> 27) & 1u, avx = (c >> 28) & 1u, fma = (c >> 12) & 1u, f16c = (c >> 29) & 1u;
  if (!osxsave || !avx) return f;
  unsigned xcr0_lo = 0, xcr0_hi = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0u));
  const bool ymm_state = (xcr0_lo & 0x6u) == 0x6u;     // SSE + AVX state
  const bool zmm_state = (xcr0_lo & 0xe6u) == 0xe6u;   // + opmask, ZMM_Hi256, Hi16_ZMM
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx2 = (b >> 5) & 1u, avx512f = (b >> 16) & 1u, avx512dq = (b >> 17) & 1u;
  f.avx2_fma = ymm_state && avx2 && fma && f16c;
  f.avx512 = f.avx2_fma && zmm_state && avx512f && avx512dq;
  return f;
}
#endif

// Whether variant `index` is compiled in and this CPU can run it. No table is
// referenced here: selecting a variant must not pull every variant's
// training kernels into an image that only samples.
bool runnable(size_t index) {
  switch (index) {
    case 0: return true;
#if defined(MD_KERNELS_HAVE_AVX2)
    case 1: return x86_features().avx2_fma;
#endif
#if defined(MD_KERNELS_HAVE_AVX512)
    case 2: return x86_features().avx512;
#endif
#if MD_KERNELS_NEON
    case 3: return true;
#endif
#if MD_KERNELS_HELIUM
    case 4: return true;  // the compiler targets MVE-F: every core it runs on has it
#endif
    default: return false;
  }
}

// The tables of variant `index` (runnable(index) must hold).
const KernelTable& full_table(size_t index) {
  switch (index) {
#if defined(MD_KERNELS_HAVE_AVX2)
    case 1: return kAvx2Table;
#endif
#if defined(MD_KERNELS_HAVE_AVX512)
    case 2: return kAvx512Table;
#endif
#if MD_KERNELS_NEON
    case 3: return kNeonTable;
#endif
#if MD_KERNELS_HELIUM
    case 4: return kHeliumTable;
#endif
    default: return kReferenceTable;
  }
}
const ForwardKernels& forward_table(size_t index) {
  switch (index) {
#if defined(MD_KERNELS_HAVE_AVX2)
    case 1: return kAvx2Forward;
#endif
#if defined(MD_KERNELS_HAVE_AVX512)
    case 2: return kAvx512Forward;
#endif
#if MD_KERNELS_NEON
    case 3: return kNeonForward;
#endif
#if MD_KERNELS_HELIUM
    case 4: return kHeliumForward;
#endif
    default: return kReferenceForward;
  }
}

// The index of variant `name` if runnable here, else kVariantCount.
size_t find_index(const char* name) {
  if (name == nullptr) return kVariantCount;
  for (size_t i = 0; i < kVariantCount; ++i)
    if (strcmp(name, kVariantNames[i]) == 0) return runnable(i) ? i : kVariantCount;
  return kVariantCount;
}

// Fastest first.
size_t best_available() {
  const size_t order[] = {2, 1, 3, 4, 0};
  for (size_t i : order)
    if (runnable(i)) return i;
  return 0;
}

size_t auto_choice() {
#if MD_KERNELS_READ_ENV
  const char* env = getenv("MD_KERNELS");
  if (env != nullptr && env[0] != '\0' && strcmp(env, "auto") != 0) {
    const size_t i = find_index(env);
    if (i < kVariantCount) return i;
    // Unknown or unavailable: fall through to the CPU's best (kernel_variant()
    // tells what was chosen).
  }
#endif
  return best_available();
}

// The active variant's index + 1; 0 until the first use selects one.
size_t g_active = 0;

inline void store_active(size_t index) { __atomic_store_n(&g_active, index + 1, __ATOMIC_RELAXED); }
size_t active_index() {
  const size_t a = __atomic_load_n(&g_active, __ATOMIC_RELAXED);
  if (a != 0) return a - 1;
  const size_t i = auto_choice();
  store_active(i);
  return i;
}

}  // namespace

const KernelTable* find_variant(const char* name) {
  const size_t i = find_index(name);
  return i < kVariantCount ? &full_table(i) : nullptr;
}

const KernelTable& active_table() { return full_table(active_index()); }

const ForwardKernels* find_forward_variant(const char* name) {
  const size_t i = find_index(name);
  return i < kVariantCount ? &forward_table(i) : nullptr;
}

namespace {

// ---- Splitting GEMMs over the application's parallel-for (parallel.h) ------------
//
// Each part gets a disjoint range of output rows, whole blocks of kSplitRows,
// so every part takes the same code path as the whole product would and
// computes each output with the same operations: results do not depend on
// the number of workers. Products below kSplitMacs multiply-adds stay on the
// caller's thread (waking workers costs microseconds).

constexpr int kSplitRows = 16;
constexpr double kSplitMacs = 32768.0;
constexpr uint32_t kMaxParts = 64;

ParallelFor g_parallel;  // workers == 1: none installed

// How many parts of whole kSplitRows blocks `rows` rows make with a hook installed.
uint32_t row_parts(int rows) {
  const uint32_t blocks = static_cast<uint32_t>(rows / kSplitRows), workers = g_parallel.workers;
  return blocks < workers ? (blocks < 2 ? 1 : blocks) : workers;
}

// How many parts `rows` output rows of an M x K x N product split into (1: do not split).
uint32_t split_parts(int rows, int M, int K, int N) {
  const uint32_t workers = g_parallel.workers;
  if (workers <= 1 || g_parallel.run == nullptr) return 1;
  if (static_cast<double>(M) * K * N < kSplitMacs) return 1;
  return row_parts(rows);
}

// floor(blocks * i / n) for blocks >= 0 and i <= n <= kMaxParts, exactly, without
// a 64-bit product: with blocks = q n + r, blocks i / n = q i + r i / n and
// r i < n^2. (A 64-bit division would pull libgcc's __aeabi_ldivmod and
// __udivmoddi4, about 860 bytes, into every Cortex-M image.)
int split_point(int blocks, uint32_t i, uint32_t n) {
  const uint32_t b = static_cast<uint32_t>(blocks);
  return static_cast<int>(b / n * i + b % n * i / n);
}

// Rows [begin, end) of part i of n, in whole kSplitRows blocks (the last part takes the tail).
void part_rows(int rows, uint32_t i, uint32_t n, int* begin, int* end) {
  const int blocks = rows / kSplitRows;
  *begin = split_point(blocks, i, n) * kSplitRows;
  *end = i + 1 == n ? rows : split_point(blocks, i + 1, n) * kSplitRows;
}

struct GemmJob {
  const KernelTable* table;          // training products
  const ForwardKernels* forward;     // gemm_bias
  float* out;
  const float* a;
  const float* b;
  const float* bias;
  int M, K, N;
  uint32_t parts;
  float* pack = nullptr;  // gemm_tn_acc's scratch: part i takes rows [r0, r1) x kWeightGradPackRows;
                          // gemm_nt's: part i takes the i-th of `parts` equal slices
};

void gemm_bias_part(void* ctx, uint32_t i) {
  const GemmJob& j = *static_cast<const GemmJob*>(ctx);
  int r0, r1;
  part_rows(j.M, i, j.parts, &r0, &r1);
  j.forward->gemm_bias(j.out + static_cast<size_t>(r0) * j.N, j.a + static_cast<size_t>(r0) * j.K, j.b, j.bias, r1 - r0,
                     j.K, j.N);
}

void gemm_nt_part(void* ctx, uint32_t i) {  // dX (M, K) = dY (M, N) . W^T: M rows
  const GemmJob& j = *static_cast<const GemmJob*>(ctx);
  int r0, r1;
  part_rows(j.M, i, j.parts, &r0, &r1);
  const size_t slice = j.pack != nullptr ? weight_grad_pack_floats(static_cast<uint32_t>(j.K)) / j.parts : 0;
  j.table->gemm_nt(j.out + static_cast<size_t>(r0) * j.K, j.a + static_cast<size_t>(r0) * j.N, j.b, r1 - r0, j.N,
                   j.K, j.pack != nullptr ? j.pack + i * slice : nullptr, slice);
}

void gemm_tn_acc_part(void* ctx, uint32_t i) {  // dW (K, N) += X^T dY: K rows
  const GemmJob& j = *static_cast<const GemmJob*>(ctx);
  int r0, r1;
  part_rows(j.K, i, j.parts, &r0, &r1);
  float* pack = j.pack != nullptr ? j.pack + static_cast<size_t>(r0) * kWeightGradPackRows : nullptr;
  j.table->gemm_tn_acc(j.out, j.a, j.b, j.M, j.K, j.N, r0, r1, pack);
}

void run_parts(GemmJob* job, void (*part)(void*, uint32_t)) {
  g_parallel.run(g_parallel.pool, job->parts, part, job);
}

#if MD_SPLIT_ELEMENTWISE
// Activations (and their derivatives) over large arrays, split the same way
// into ranges of whole kSplitElems blocks: an activation is a quarter of a
// sampling step's time, and on one thread it would cap what the split GEMMs
// gain. Each element's result is the same whichever part computes it.
constexpr size_t kSplitElems = 1024;        // block: whole cache lines and vectors of every ISA
constexpr size_t kSplitMinElems = 16384;    // below this, waking workers costs more than it saves

struct MapJob {
  Activation act;
  float* out;
  const float* x;
  const float* dy;  // backward only; the residual h of activation_forward_residual
  size_t n;
  uint32_t parts;
  const ForwardKernels* forward;
  const KernelTable* table;
};

uint32_t map_parts(size_t n) {
  const uint32_t workers = g_parallel.workers;
  if (workers <= 1 || g_parallel.run == nullptr || n < kSplitMinElems) return 1;
  const size_t blocks = n / kSplitElems;
  return blocks < workers ? static_cast<uint32_t>(blocks) : workers;
}

// Elements [begin, end) of part i of `parts` over n, in whole kSplitElems
// blocks (the last part takes the tail).
void map_range(size_t n, uint32_t parts, uint32_t i, size_t* begin, size_t* end) {
  const size_t blocks = n / kSplitElems;
  *begin = blocks * i / parts * kSplitElems;
  *end = i + 1 == parts ? n : blocks * (i + 1) / parts * kSplitElems;
}

void activation_forward_part(void* ctx, uint32_t i) {
  const MapJob& j = *static_cast<const MapJob*>(ctx);
  size_t b, e;
  map_range(j.n, j.parts, i, &b, &e);
  j.forward->activation_forward(j.act, j.out + b, j.x + b, e - b);
}

void activation_residual_part(void* ctx, uint32_t i) {
  const MapJob& j = *static_cast<const MapJob*>(ctx);
  size_t b, e;
  map_range(j.n, j.parts, i, &b, &e);
  j.forward->activation_residual(j.act, j.out + b, j.x + b, j.dy + b, e - b);
}

void activation_backward_part(void* ctx, uint32_t i) {
  const MapJob& j = *static_cast<const MapJob*>(ctx);
  size_t b, e;
  map_range(j.n, j.parts, i, &b, &e);
  j.table->activation_backward(j.act, j.out + b, j.x + b, j.dy + b, e - b);
}

// The optimizer's updates, split the same way: Adam is a third of a
// tutorial-sized training step (a square root and two divisions per
// parameter), and every element's update is the same whichever part makes it.
struct AdamJob {
  const KernelTable* table;
  float* p;
  float* m;
  float* v;
  const float* grad;
  const AdamStep* step;
  size_t n;
  uint32_t parts;
};

void adam_update_part(void* ctx, uint32_t i) {
  const AdamJob& j = *static_cast<const AdamJob*>(ctx);
  size_t b, e;
  map_range(j.n, j.parts, i, &b, &e);
  j.table->adam_update(j.p + b, j.m + b, j.v + b, j.grad + b, e - b, *j.step);
}

struct EmaJob {
  const KernelTable* table;
  float* ema;
  const float* p;
  float d, one_minus_d;
  size_t n;
  uint32_t parts;
};

void ema_update_part(void* ctx, uint32_t i) {
  const EmaJob& j = *static_cast<const EmaJob*>(ctx);
  size_t b, e;
  map_range(j.n, j.parts, i, &b, &e);
  j.table->ema_update(j.ema + b, j.p + b, e - b, j.d, j.one_minus_d);
}

// GEMMs on f16 / int8 weights, split like the f32 ones by whole kSplitRows
// blocks of output rows (every part has at least 16 rows, so it takes the
// same path as the whole product). Hosted builds only, as the maps above:
// firmware installs no parallel-for.
struct StoredGemmJob {
  const ForwardKernels* forward;
  float* Y;
  const float* X;
  const uint16_t* half;  // f16 weights, or
  const int8_t* q;       // int8 weights and their column scales
  const float* scales;
  const float* b;
  int M, K, N;
  uint32_t parts;
};

void stored_gemm_part(void* ctx, uint32_t i) {
  const StoredGemmJob& j = *static_cast<const StoredGemmJob*>(ctx);
  int r0, r1;
  part_rows(j.M, i, j.parts, &r0, &r1);
  float* y = j.Y + static_cast<size_t>(r0) * j.N;
  const float* x = j.X + static_cast<size_t>(r0) * j.K;
  if (j.half != nullptr)
    j.forward->gemm_bias_f16(y, x, j.half, j.b, r1 - r0, j.K, j.N);
  else
    j.forward->gemm_bias_i8(y, x, j.q, j.scales, j.b, r1 - r0, j.K, j.N);
}

// The time gate's forward, split by whole kSplitRows blocks of rows (its
// backward adds rows that share a timestep into one table row: not split).
struct GateJob {
  const ForwardKernels* forward;
  float* y;
  const float* u;
  const float* G;
  const int32_t* t;
  int B, w;
  uint32_t parts;
};

uint32_t gate_parts(int B, int w) {
  const uint32_t workers = g_parallel.workers;
  if (workers <= 1 || g_parallel.run == nullptr || static_cast<size_t>(B) * w < kSplitMinElems) return 1;
  return row_parts(B);
}

void time_gate_part(void* ctx, uint32_t i) {
  const GateJob& j = *static_cast<const GateJob*>(ctx);
  int r0, r1;
  part_rows(j.B, i, j.parts, &r0, &r1);
  const size_t at = static_cast<size_t>(r0) * j.w;
  j.forward->time_gate(j.y + at, j.u + at, j.G, j.t + r0, r1 - r0, j.w);
}
#endif

}  // namespace

void gemm_bias(float* Y, const float* X, const float* W, const float* b, int M, int K, int N) {
  const ForwardKernels& f = forward_table(active_index());
  GemmJob job = {nullptr, &f, Y, X, W, b, M, K, N, split_parts(M, M, K, N)};
  if (job.parts <= 1) return f.gemm_bias(Y, X, W, b, M, K, N);
  run_parts(&job, gemm_bias_part);
}
void gemm_bias_f16(float* Y, const float* X, const uint16_t* W, const float* b, int M, int K, int N) {
  const ForwardKernels& f = forward_table(active_index());
#if MD_SPLIT_ELEMENTWISE
  StoredGemmJob job = {&f, Y, X, W, nullptr, nullptr, b, M, K, N, split_parts(M, M, K, N)};
  if (job.parts > 1) return g_parallel.run(g_parallel.pool, job.parts, stored_gemm_part, &job);
#endif
  f.gemm_bias_f16(Y, X, W, b, M, K, N);
}
void gemm_bias_i8(float* Y, const float* X, const int8_t* W, const float* scales, const float* b, int M, int K,
                  int N) {
  const ForwardKernels& f = forward_table(active_index());
#if MD_SPLIT_ELEMENTWISE
  StoredGemmJob job = {&f, Y, X, nullptr, W, scales, b, M, K, N, split_parts(M, M, K, N)};
  if (job.parts > 1) return g_parallel.run(g_parallel.pool, job.parts, stored_gemm_part, &job);
#endif
  f.gemm_bias_i8(Y, X, W, scales, b, M, K, N);
}
void gemm_nt(float* dX, const float* dY, const float* W, int M, int N, int K, float* pack) {
  const KernelTable& t = active_table();
  GemmJob job = {&t, nullptr, dX, dY, W, nullptr, M, K, N, split_parts(M, M, K, N), pack};
  if (job.parts <= 1)
    return t.gemm_nt(dX, dY, W, M, N, K, pack, pack != nullptr ? weight_grad_pack_floats(static_cast<uint32_t>(K)) : 0);
  run_parts(&job, gemm_nt_part);
}
void gemm_tn_acc(float* dW, const float* X, const float* dY, int M, int K, int N, float* pack) {
  const KernelTable& t = active_table();
  GemmJob job = {&t, nullptr, dW, X, dY, nullptr, M, K, N, split_parts(K, M, K, N), pack};
  if (job.parts <= 1) return t.gemm_tn_acc(dW, X, dY, M, K, N, 0, K, pack);
  run_parts(&job, gemm_tn_acc_part);
}
void colsum_acc(float* db, const float* dY, int M, int N) { active_table().colsum_acc(db, dY, M, N); }
void activation_forward(Activation a, float* y, const float* x, size_t n) {
  const ForwardKernels& f = forward_table(active_index());
#if MD_SPLIT_ELEMENTWISE
  MapJob job = {a, y, x, nullptr, n, map_parts(n), &f, nullptr};
  if (job.parts > 1) return g_parallel.run(g_parallel.pool, job.parts, activation_forward_part, &job);
#endif
  f.activation_forward(a, y, x, n);
}
void activation_forward_residual(Activation a, float* y, const float* x, const float* h, size_t n) {
#if MD_SPLIT_ELEMENTWISE
  const ForwardKernels& f = forward_table(active_index());
  if (f.activation_residual != nullptr) {
    MapJob job = {a, y, x, h, n, map_parts(n), &f, nullptr};
    if (job.parts > 1) return g_parallel.run(g_parallel.pool, job.parts, activation_residual_part, &job);
    return f.activation_residual(a, y, x, h, n);
  }
#endif
  // The two passes (the same bits): variants without the fused form, and
  // firmware whatever the variant (neither of its variants, reference and
  // helium, has it, and every byte of the sampling path counts there).
  activation_forward(a, y, x, n);
  for (size_t i = 0; i < n; ++i) y[i] += h[i];
}
void sincos(const float* a, float* s, float* c, size_t n) { forward_table(active_index()).sincos(a, s, c, n); }
void time_gate(float* y, const float* u, const float* G, const int32_t* t, int B, int w) {
  const ForwardKernels& f = forward_table(active_index());
#if MD_SPLIT_ELEMENTWISE
  GateJob job = {&f, y, u, G, t, B, w, gate_parts(B, w)};
  if (job.parts > 1) return g_parallel.run(g_parallel.pool, job.parts, time_gate_part, &job);
#endif
  f.time_gate(y, u, G, t, B, w);
}
void time_gate_backward(float* dz, float* dG, const float* dy, const float* u, const float* G, const int32_t* t,
                        int B, int w) {
  active_table().time_gate_backward(dz, dG, dy, u, G, t, B, w);
}
void activation_backward(Activation a, float* dx, const float* x, const float* dy, size_t n) {
  const KernelTable& t = active_table();
#if MD_SPLIT_ELEMENTWISE
  MapJob job = {a, dx, x, dy, n, map_parts(n), nullptr, &t};
  if (job.parts > 1) return g_parallel.run(g_parallel.pool, job.parts, activation_backward_part, &job);
#endif
  t.activation_backward(a, dx, x, dy, n);
}
void adam_update(float* p, float* m, float* v, const float* grad, size_t n, const AdamStep& s) {
  const KernelTable& t = active_table();
#if MD_SPLIT_ELEMENTWISE
  AdamJob job = {&t, p, m, v, grad, &s, n, map_parts(n)};
  if (job.parts > 1) return g_parallel.run(g_parallel.pool, job.parts, adam_update_part, &job);
#endif
  t.adam_update(p, m, v, grad, n, s);
}
double sum_squares(const float* x, size_t n) { return active_table().sum_squares(x, n); }
void ema_update(float* ema, const float* p, size_t n, float d, float one_minus_d) {
  const KernelTable& t = active_table();
#if MD_SPLIT_ELEMENTWISE
  EmaJob job = {&t, ema, p, d, one_minus_d, n, map_parts(n)};
  if (job.parts > 1) return g_parallel.run(g_parallel.pool, job.parts, ema_update_part, &job);
#endif
  t.ema_update(ema, p, n, d, one_minus_d);
}

}  // namespace kernels

const char* kernel_variant() { return kernels::kVariantNames[kernels::active_index()]; }

bool kernel_variant_available(const char* name) {
  if (name != nullptr && strcmp(name, "auto") == 0) return true;
  return kernels::find_index(name) < kernels::kVariantCount;
}

Status select_kernel_variant(const char* name) {
  if (name == nullptr) return make_status(StatusCode::kInvalidArgument, "kernel variant name is null");
  if (strcmp(name, "auto") == 0) {
    kernels::store_active(kernels::auto_choice());
    return Status::Ok();
  }
  bool known = false;
  for (size_t i = 0; i < kernels::kVariantCount; ++i) known = known || strcmp(name, kernels::kVariantNames[i]) == 0;
  if (!known)
    return make_status(StatusCode::kInvalidArgument,
                       "unknown kernel variant (known: reference, avx2, avx512, neon, helium, auto)");
  const size_t i = kernels::find_index(name);
  if (i >= kernels::kVariantCount)
    return make_status(StatusCode::kInvalidArgument, "kernel variant not available in this build or on this CPU");
  kernels::store_active(i);
  return Status::Ok();
}

size_t kernel_variant_count() { return kernels::kVariantCount; }

const char* kernel_variant_name(size_t index) {
  return index < kernels::kVariantCount ? kernels::kVariantNames[index] : nullptr;
}

Status set_parallel_for(const ParallelFor* p) {
  if (p == nullptr || p->workers <= 1) {
    kernels::g_parallel = ParallelFor{};
    return Status::Ok();
  }
  if (p->run == nullptr) return make_status(StatusCode::kInvalidArgument, "parallel-for hook has no run function");
  if (p->workers > kernels::kMaxParts)
    return make_status(StatusCode::kInvalidArgument, "parallel-for hook: at most 64 workers", p->workers,
                       kernels::kMaxParts);
  kernels::g_parallel = *p;
  return Status::Ok();
}

uint32_t parallel_workers() { return kernels::g_parallel.workers; }

}  // namespace md
