// Kernel and step benchmarks, per kernel variant.
//
//   peak/<isa>/chains:C        independent multiply-add chains: the FP32 peak
//                              of one core for that ISA (GFLOP/s)
//   gemm_bias|gemm_nt|gemm_tn_acc/<variant>/M:../K:../N:..
//                              a Linear layer with K inputs, N outputs and
//                              batch M: forward, input gradient, weight
//                              gradient. GFLOP/s and %peak (of the best
//                              measured peak of the variant's ISA; the
//                              reference is compiled for baseline x86-64, so
//                              its ISA is SSE2 mul + add)
//   act_fwd|act_bwd/<variant>/<activation>   elements per second
//   adam_ema/<variant>         the optimizer update of the default model
//   train_step/<variant>/<model>/batch:B
//                              whole training steps (minibatch, forward,
//                              backward, Adam, EMA) of the default and tutorial
//                              models at batch 1, 32, 256; <variant> is "auto"
//                              (the label says which it picked) or "reference"
//   sample_step/<variant>/<model>/batch:B
//                              reverse DDPM steps through md::Sampler: a whole
//                              sampling of B points over kSampleSteps respaced
//                              steps per iteration; the counter "step" is the
//                              time per step
//   forward/<variant>/...      the default model's forward at the sampler's batch
//
// Speed targets live here, never in tests. Run e.g.
//   build/simd/bench/md_bench --benchmark_filter='gemm_.*/(avx512|avx2)/M:256'
#include <benchmark/benchmark.h>

#include <time.h>

#include <algorithm>
#include <cstdio>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "microdiffusion/kernels.h"
#include "aligned_floats.h"
#include "microdiffusion/microdiffusion.h"
#include "peak.h"

namespace {

using md::bench::Floats;
using md::bench::random_vector;

using md::kernels::KernelTable;
using PeakFn = uint64_t (*)(int, uint64_t, float*);

struct Isa {
  const char* name;
  const char* variant;  // the kernel variant whose %peak this ISA's peak is
  PeakFn fn;
  std::vector<int> chains;
  double best_gflops = 0.0;
};

std::vector<Isa> isas() {
  std::vector<Isa> v;
#if defined(MD_BENCH_X86)
  v.push_back({"sse2", "reference", md_peak_sse2, {4, 8, 12}});
  if (md::kernel_variant_available("avx2")) v.push_back({"avx2", "avx2", md_peak_avx2, {4, 8, 10, 12}});
  if (md::kernel_variant_available("avx512"))
    v.push_back({"avx512", "avx512", md_peak_avx512, {4, 8, 12, 16, 24}});
#else
  if (md::kernel_variant_available("neon")) {
    v.push_back({"neon", "neon", md_peak_neon, {4, 8, 12}});
    v.push_back({"neon", "reference", md_peak_neon, {4, 8, 12}});
  }
#endif
  return v;
}

// This thread's CPU time: what Google Benchmark's rates divide by, so the
// %peak of the GEMMs compares like with like on a busy machine.
double thread_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// GFLOP/s of one chain count: best of 5 runs of about 20 ms.
double quick_peak(PeakFn fn, int chains) {
  float sink[16];
  double best = 0.0;
  uint64_t iters = 1 << 16;
  for (int rep = 0; rep < 5; ++rep) {
    const double t0 = thread_seconds();
    const uint64_t flops = fn(chains, iters, sink);
    const double s = thread_seconds() - t0;
    if (s < 0.01) {
      iters *= 4;
      --rep;
      continue;
    }
    best = std::max(best, flops / s * 1e-9);
  }
  benchmark::DoNotOptimize(sink);
  return best;
}

void BM_Peak(benchmark::State& state, PeakFn fn, int chains) {
  float sink[16];
  double flops = 0.0;
  for (auto _ : state) flops += static_cast<double>(fn(chains, 1 << 14, sink));
  benchmark::DoNotOptimize(sink);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsRate);
}

enum class Gemm { kForward, kInputGrad, kWeightGrad };

// A Linear layer with K inputs, N outputs, batch M.
void BM_Gemm(benchmark::State& state, const KernelTable* t, Gemm kind, int M, int K, int N, double peak) {
  const Floats X = random_vector(static_cast<size_t>(M) * K, 1), W = random_vector(static_cast<size_t>(K) * N, 2),
               b = random_vector(N, 3), dY = random_vector(static_cast<size_t>(M) * N, 4);
  Floats Y(static_cast<size_t>(M) * N), dX(static_cast<size_t>(M) * K), dW(static_cast<size_t>(K) * N);
  // Both backward products get the packing scratch a Trainer reserves for a layer of K inputs.
  Floats pack_buffer(md::weight_grad_pack_floats(static_cast<uint32_t>(K)));
  float* pack = pack_buffer.empty() ? nullptr : pack_buffer.data();
  for (auto _ : state) {
    switch (kind) {
      case Gemm::kForward: t->gemm_bias(Y.data(), X.data(), W.data(), b.data(), M, K, N); break;
      case Gemm::kInputGrad: t->gemm_nt(dX.data(), dY.data(), W.data(), M, N, K, pack, pack_buffer.size()); break;
      case Gemm::kWeightGrad: t->gemm_tn_acc(dW.data(), X.data(), dY.data(), M, K, N, 0, K, pack); break;
    }
    benchmark::ClobberMemory();
  }
  const double gflop = 2.0 * M * K * N * 1e-9;
  state.counters["GFLOP/s"] = benchmark::Counter(gflop, benchmark::Counter::kIsIterationInvariantRate);
  if (peak > 0.0)
    state.counters["%peak"] = benchmark::Counter(gflop * 100.0 / peak, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Activation(benchmark::State& state, const KernelTable* t, md::Activation a, bool backward) {
  const size_t n = 256 * 128;
  Floats x = random_vector(n, 5), dy = random_vector(n, 6), y(n);
  for (float& v : x) v *= 4.0f;
  for (auto _ : state) {
    if (backward)
      t->activation_backward(a, y.data(), x.data(), dy.data(), n);
    else
      t->activation_forward(a, y.data(), x.data(), n);
    benchmark::ClobberMemory();
  }
  state.counters["Melem/s"] = benchmark::Counter(n * 1e-6, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_AdamEma(benchmark::State& state, const KernelTable* t) {
  const size_t P = md::param_layout(md::preset_default()).total_floats;
  Floats p = random_vector(P, 7), m(P, 0.0f), v(P, 0.0f), g = random_vector(P, 8), ema = p;
  md::kernels::AdamStep s{0.9f, 0.999f, 0.1f, 0.001f, 1e-3f, 0.05f, 1e-8f, 0.0f, 1.0f, false};
  for (auto _ : state) {
    t->adam_update(p.data(), m.data(), v.data(), g.data(), P, s);
    t->ema_update(ema.data(), p.data(), P, 0.995f, 0.005f);
    benchmark::ClobberMemory();
  }
  state.counters["Mparam/s"] = benchmark::Counter(P * 1e-6, benchmark::Counter::kIsIterationInvariantRate);
}

// The time gate of the tutorial model's layers: 2000 rows (its sampling
// batch) of 128, each gated by one of T = 100 table rows; forward or backward.
void BM_TimeGate(benchmark::State& state, const KernelTable* t, bool backward) {
  constexpr int B = 2000, w = 128, T = 100;
  const size_t n = static_cast<size_t>(B) * w;
  Floats u = random_vector(n, 9), dy = random_vector(n, 10), y(n);
  Floats G = random_vector(static_cast<size_t>(T) * w, 11), dG(static_cast<size_t>(T) * w, 0.0f);
  std::vector<int32_t> ts(B);
  for (int b = 0; b < B; ++b) ts[b] = (b * 37) % T;
  for (auto _ : state) {
    if (backward)
      t->time_gate_backward(y.data(), dG.data(), dy.data(), u.data(), G.data(), ts.data(), B, w);
    else
      t->time_gate(y.data(), u.data(), G.data(), ts.data(), B, w);
    benchmark::ClobberMemory();
  }
  state.counters["Melem/s"] = benchmark::Counter(n * 1e-6, benchmark::Counter::kIsIterationInvariantRate);
}

// The models the step benchmarks run, at their presets' T.
struct StepModel {
  const char* name;
  md::ModelDesc desc;
};
const StepModel kStepModels[] = {{"default", md::preset_default()}, {"tutorial", md::preset_tutorial()}};

void BM_TrainStep(benchmark::State& state, const char* variant, const md::ModelDesc& desc, uint32_t batch) {
  if (!md::select_kernel_variant(variant).ok()) {
    state.SkipWithError("variant not available");
    return;
  }
  state.SetLabel(md::kernel_variant());
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
  Floats data(20000);
  md::make_dataset(md::Dataset::kSwissRoll, 1, 0, 10000, data.data());
  float loss;
  for (auto _ : state) benchmark::DoNotOptimize(trainer.step(data.data(), 10000, &loss));
  md::select_kernel_variant("auto");
}

// Sampler has no single-step entry point: each iteration draws `batch`
// points (one sampler batch) over kSampleSteps respaced DDPM steps, and the
// "step" counter divides the time by the steps. The last step adds no noise;
// the initial noise is one draw per point: both are small against a forward.
constexpr uint32_t kSampleSteps = 20;

void BM_SampleStep(benchmark::State& state, const char* variant, const md::ModelDesc& desc, uint32_t batch) {
  if (!md::select_kernel_variant(variant).ok()) {
    state.SkipWithError("variant not available");
    return;
  }
  state.SetLabel(md::kernel_variant());
  const Floats params = random_vector(md::param_layout(desc).total_floats, 11);
  const md::Model model = md::bind_model(desc, params.data());
  md::SamplerConfig cfg;
  cfg.steps = kSampleSteps;
  std::vector<unsigned char> buf(md::sampling_arena_bytes(desc, batch));
  md::Arena arena(buf.data(), buf.size());
  md::Sampler sampler;
  if (!sampler.init(model, md::linear_schedule(desc.T), cfg, batch, arena).ok()) {
    state.SkipWithError("init failed");
    return;
  }
  Floats out(static_cast<size_t>(batch) * desc.D);
  for (auto _ : state) {
    benchmark::DoNotOptimize(sampler.sample(1, 0, batch, out.data()));
    benchmark::ClobberMemory();
  }
  state.counters["step"] = benchmark::Counter(sampler.steps(), benchmark::Counter::kIsIterationInvariantRate |
                                                                   benchmark::Counter::kInvert);
  md::select_kernel_variant("auto");
}

// The default model's forward at the sampler's batch of 2000 rows.
void BM_Forward(benchmark::State& state, const char* variant, uint32_t batch) {
  if (!md::select_kernel_variant(variant).ok()) {
    state.SkipWithError("variant not available");
    return;
  }
  const md::ModelDesc desc = md::preset_default();
  const Floats params = random_vector(md::param_layout(desc).total_floats, 9);
  const md::Model model = md::bind_model(desc, params.data());
  const Floats x = random_vector(static_cast<size_t>(batch) * desc.D, 10);
  std::vector<int32_t> t(batch);
  for (uint32_t i = 0; i < batch; ++i) t[i] = static_cast<int32_t>(i % desc.T);
  Floats out(static_cast<size_t>(batch) * desc.D), scratch(md::forward_scratch_floats(desc, batch));
  for (auto _ : state) {
    md::model_forward(model, x.data(), t.data(), batch, out.data(), scratch.data());
    benchmark::ClobberMemory();
  }
  md::select_kernel_variant("auto");
}

std::string dims(int M, int K, int N) {
  return "/M:" + std::to_string(M) + "/K:" + std::to_string(K) + "/N:" + std::to_string(N);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  // Peaks: registered as benchmarks, and measured once now for %peak.
  std::vector<Isa> peaks = isas();
  for (Isa& isa : peaks) {
    for (int c : isa.chains) {
      isa.best_gflops = std::max(isa.best_gflops, quick_peak(isa.fn, c));
      if (std::string(isa.variant) == isa.name || std::string(isa.name) == "sse2")
        benchmark::RegisterBenchmark(("peak/" + std::string(isa.name) + "/chains:" + std::to_string(c)).c_str(),
                                     BM_Peak, isa.fn, c);
    }
    std::fprintf(stderr, "measured peak %-7s (for %-9s): %.1f GFLOP/s\n", isa.name, isa.variant, isa.best_gflops);
  }
  auto peak_of = [&](const char* variant) {
    for (const Isa& isa : peaks)
      if (std::string(isa.variant) == variant) return isa.best_gflops;
    return 0.0;
  };

  struct LayerShape {
    int K, N;
  };
  const LayerShape shapes[] = {{2, 128}, {96, 128}, {128, 128}, {128, 2}, {256, 256}, {512, 512}};
  const int batches[] = {1, 32, 256, 2000};
  const char* const variants[] = {"reference", "avx2", "avx512", "neon", "helium"};
  const struct {
    const char* name;
    Gemm kind;
  } kinds[] = {{"gemm_bias", Gemm::kForward}, {"gemm_nt", Gemm::kInputGrad}, {"gemm_tn_acc", Gemm::kWeightGrad}};

  for (const auto& k : kinds)
    for (const char* v : variants) {
      const KernelTable* t = md::kernels::find_variant(v);
      if (t == nullptr) continue;
      for (int M : batches)
        for (const LayerShape& s : shapes)
          benchmark::RegisterBenchmark((std::string(k.name) + "/" + v + dims(M, s.K, s.N)).c_str(), BM_Gemm, t,
                                       k.kind, M, s.K, s.N, peak_of(v));
    }
  const md::Activation acts[] = {md::Activation::kGeluTanh, md::Activation::kGeluErf, md::Activation::kSiLU,
                                 md::Activation::kSoftplus, md::Activation::kTanh, md::Activation::kReLU};
  for (const char* v : variants) {
    const KernelTable* t = md::kernels::find_variant(v);
    if (t == nullptr) continue;
    for (md::Activation a : acts) {
      benchmark::RegisterBenchmark((std::string("act_fwd/") + v + "/" + md::activation_name(a)).c_str(),
                                   BM_Activation, t, a, false);
      benchmark::RegisterBenchmark((std::string("act_bwd/") + v + "/" + md::activation_name(a)).c_str(),
                                   BM_Activation, t, a, true);
    }
    benchmark::RegisterBenchmark((std::string("adam_ema/") + v).c_str(), BM_AdamEma, t);
    benchmark::RegisterBenchmark((std::string("time_gate_fwd/") + v).c_str(), BM_TimeGate, t, false);
    benchmark::RegisterBenchmark((std::string("time_gate_bwd/") + v).c_str(), BM_TimeGate, t, true);
  }
  // Whole steps: the best variant and the reference.
  const struct {
    const char* name;
    void (*fn)(benchmark::State&, const char*, const md::ModelDesc&, uint32_t);
  } steps[] = {{"train_step", BM_TrainStep}, {"sample_step", BM_SampleStep}};
  const uint32_t step_batches[] = {1, 32, 256};
  for (const auto& st : steps)
    for (const char* v : {"auto", "reference"})
      for (const StepModel& m : kStepModels)
        for (uint32_t b : step_batches)
          benchmark::RegisterBenchmark(
              (std::string(st.name) + "/" + v + "/" + m.name + "/batch:" + std::to_string(b)).c_str(), st.fn, v,
              m.desc, b)
              ->Unit(benchmark::kMicrosecond);
  for (const char* v : variants) {
    if (!md::kernel_variant_available(v)) continue;
    benchmark::RegisterBenchmark((std::string("forward/") + v + "/default/batch:2000").c_str(), BM_Forward, v,
                                 2000u)
        ->Unit(benchmark::kMicrosecond);
  }

  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
