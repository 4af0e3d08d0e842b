// kernel_ab: one-process A/B of the GEMM kernels of a variant against the
// same variant's kernels from another revision, built by bench/kernel_ab.sh
// (which compiles that revision's kernels/<isa>.cpp with its table renamed to
// kBaselineTable and links it here beside this build's library).
//
//   kernel_ab ISA fwd|nt|tn BURSTS "M,K,N;M,K,N;..."
//
// For each layer shape (batch M, K inputs, N outputs) it times the product in
// alternating bursts, baseline then current, and keeps each side's best burst:
// separate processes, A then B, are not reliable enough on a VM whose speed
// drifts (docs/PERFORMANCE.md). It prints both speeds, their ratio (> 1: the
// current build is faster) and whether the two give identical bits; it exits
// with 1 if any shape's results differ.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "aligned_floats.h"
#include "kernels/kernels.h"
#include "microdiffusion/model.h"

namespace md {
namespace kernels {
extern const KernelTable kBaselineTable;
}  // namespace kernels
}  // namespace md

namespace {

using md::kernels::KernelTable;

using md::bench::Floats;
using md::bench::random_vector;

enum class Kind { kForward, kInputGrad, kWeightGrad };

struct Shape {
  int M, K, N;
};

bool parse_shapes(const char* text, std::vector<Shape>* out) {
  std::string s(text);
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t end = s.find(';', pos);
    if (end == std::string::npos) end = s.size();
    Shape sh{};
    char tail = 0;
    if (std::sscanf(s.substr(pos, end - pos).c_str(), "%d,%d,%d%c", &sh.M, &sh.K, &sh.N, &tail) != 3 || sh.M <= 0 ||
        sh.K <= 0 || sh.N <= 0 || sh.M > 100000 || sh.K > 8192 || sh.N > 8192)
      return false;
    out->push_back(sh);
    pos = end + 1;
  }
  return !out->empty();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: kernel_ab ISA fwd|nt|tn BURSTS \"M,K,N;...\" (run through bench/kernel_ab.sh)\n");
    return 2;
  }
  const KernelTable* current = md::kernels::find_variant(argv[1]);
  if (current == nullptr) {
    std::fprintf(stderr, "kernel_ab: variant '%s' is not available on this CPU\n", argv[1]);
    return 77;  // CTest's skip code
  }
  Kind kind;
  if (std::strcmp(argv[2], "fwd") == 0)
    kind = Kind::kForward;
  else if (std::strcmp(argv[2], "nt") == 0)
    kind = Kind::kInputGrad;
  else if (std::strcmp(argv[2], "tn") == 0)
    kind = Kind::kWeightGrad;
  else {
    std::fprintf(stderr, "kernel_ab: the product is fwd, nt or tn, not '%s'\n", argv[2]);
    return 2;
  }
  const int bursts = std::atoi(argv[3]);
  std::vector<Shape> shapes;
  if (bursts < 1 || bursts > 1000 || !parse_shapes(argv[4], &shapes)) {
    std::fprintf(stderr, "kernel_ab: BURSTS is 1-1000 and shapes are \"M,K,N;...\" with positive sizes\n");
    return 2;
  }
  const KernelTable* sides[2] = {&md::kernels::kBaselineTable, current};
  bool all_identical = true;
  for (const Shape& sh : shapes) {
    const int M = sh.M, K = sh.K, N = sh.N;
    const Floats X = random_vector(static_cast<size_t>(M) * K, 1), W = random_vector(static_cast<size_t>(K) * N, 2),
                 b = random_vector(N, 3), dY = random_vector(static_cast<size_t>(M) * N, 4);
    const size_t out_floats = kind == Kind::kForward    ? static_cast<size_t>(M) * N
                              : kind == Kind::kInputGrad ? static_cast<size_t>(M) * K
                                                         : static_cast<size_t>(K) * N;
    Floats out0 = random_vector(out_floats, 5), out1 = out0;  // the same start: gemm_tn_acc accumulates
    // The packing scratch a Trainer reserves for a layer of K inputs.
    Floats pack(md::weight_grad_pack_floats(static_cast<uint32_t>(K)));
    float* scratch = pack.empty() ? nullptr : pack.data();
    auto run = [&](const KernelTable* t, float* out) {
      switch (kind) {
        case Kind::kForward: t->gemm_bias(out, X.data(), W.data(), b.data(), M, K, N); break;
        case Kind::kInputGrad: t->gemm_nt(out, dY.data(), W.data(), M, N, K, scratch, pack.size()); break;
        case Kind::kWeightGrad: t->gemm_tn_acc(out, X.data(), dY.data(), M, K, N, 0, K, scratch); break;
      }
    };
    run(sides[0], out0.data());
    run(sides[1], out1.data());
    const bool identical = std::memcmp(out0.data(), out1.data(), out_floats * sizeof(float)) == 0;
    all_identical = all_identical && identical;

    // Calls per burst: about 0.1 s of the current kernels.
    auto t0 = std::chrono::steady_clock::now();
    run(current, out1.data());
    const double once = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const int calls = once > 0.1 ? 1 : static_cast<int>(0.1 / (once > 1e-7 ? once : 1e-7)) + 1;
    double best[2] = {1e30, 1e30};
    for (int r = 0; r < bursts; ++r)
      for (int s = 0; s < 2; ++s) {
        float* out = s == 0 ? out0.data() : out1.data();
        const auto start = std::chrono::steady_clock::now();
        for (int i = 0; i < calls; ++i) run(sides[s], out);
        const double per_call =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / calls;
        if (per_call < best[s]) best[s] = per_call;
      }
    const double gflop = 2.0 * M * K * N * 1e-9;
    std::printf("%s %s %d x %d x %d: baseline %.1f GFLOP/s, current %.1f GFLOP/s, current/baseline %.3fx, %s\n",
                argv[1], argv[2], M, K, N, gflop / best[0], gflop / best[1], best[0] / best[1],
                identical ? "identical bits" : "RESULTS DIFFER");
    std::fflush(stdout);
  }
  return all_identical ? 0 : 1;
}
