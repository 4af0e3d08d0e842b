// Kernel and step benchmarks. Issue 3 extends this with the SIMD variants.
#include <benchmark/benchmark.h>

#include <vector>

#include "kernels/kernels.h"
#include "microdiffusion/microdiffusion.h"

static void BM_GemmBias(benchmark::State& state) {
  const int M = static_cast<int>(state.range(0)), K = static_cast<int>(state.range(1)), N = static_cast<int>(state.range(2));
  std::vector<float> X(static_cast<size_t>(M) * K, 0.5f), W(static_cast<size_t>(K) * N, 0.25f), b(N, 0.1f),
      Y(static_cast<size_t>(M) * N);
  for (auto _ : state) {
    md::kernels::gemm_bias(Y.data(), X.data(), W.data(), b.data(), M, K, N);
    benchmark::DoNotOptimize(Y.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * M * K * N, benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
}
BENCHMARK(BM_GemmBias)->Args({256, 128, 128})->Args({256, 96, 128})->Args({32, 128, 128});

static void BM_TrainStep(benchmark::State& state) {
  const bool tutorial = state.range(0) == 1;
  const uint32_t batch = static_cast<uint32_t>(state.range(1));
  const md::ModelDesc desc = tutorial ? md::preset_tutorial() : md::preset_default();
  md::TrainConfig cfg;
  cfg.batch = batch;
  std::vector<unsigned char> buf(md::training_arena_bytes(desc, batch));
  md::Arena arena(buf.data(), buf.size());
  md::Trainer trainer;
  if (!trainer.init(desc, md::linear_schedule(desc.T), cfg, arena).ok()) {
    state.SkipWithError("init failed");
    return;
  }
  trainer.init_parameters(1);
  std::vector<float> data(20000);
  md::make_dataset(md::Dataset::kSwissRoll, 1, 0, 10000, data.data());
  float loss;
  for (auto _ : state) benchmark::DoNotOptimize(trainer.step(data.data(), 10000, &loss));
}
BENCHMARK(BM_TrainStep)->ArgNames({"tutorial", "batch"})->Args({0, 256})->Args({1, 32})->Args({0, 32});

BENCHMARK_MAIN();
