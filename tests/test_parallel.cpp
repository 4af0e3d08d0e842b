// The parallel-for hook (microdiffusion/parallel.h): the split GEMMs compute
// exactly what the whole ones do, so training and sampling give the same bits
// with any number of workers; and the hook is checked when installed.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/half.h"
#include "kernels/kernels.h"
#include "microdiffusion/microdiffusion.h"
#include "threads/thread_pool.h"

namespace {

std::vector<float> random_vector(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

// A hook that runs the parts on the caller's thread in reverse order and
// counts them: any dependence between parts, or on their order, shows.
struct ReverseOrder {
  uint32_t calls = 0, parts = 0;
  static void run(void* self, uint32_t n, void (*task)(void*, uint32_t), void* ctx) {
    auto* r = static_cast<ReverseOrder*>(self);
    ++r->calls;
    r->parts += n;
    for (uint32_t i = n; i-- > 0;) task(ctx, i);
  }
  md::ParallelFor hook(uint32_t workers) {
    md::ParallelFor h;
    h.run = run;
    h.pool = this;
    h.workers = workers;
    return h;
  }
};

// Trains a few steps of `desc` at `batch` and samples; returns parameters then samples.
std::vector<float> train_and_sample(const md::ModelDesc& desc, uint32_t batch) {
  md::TrainConfig cfg;
  cfg.batch = batch;
  cfg.seed = 3;
  std::vector<unsigned char> buf(md::training_arena_bytes(desc, batch));
  md::Arena arena(buf.data(), buf.size());
  md::Trainer trainer;
  EXPECT_TRUE(trainer.init(desc, md::linear_schedule(desc.T), cfg, arena).ok());
  trainer.init_parameters(3);
  std::vector<float> data(2 * 1000);
  md::make_dataset(md::Dataset::kSwissRoll, 3, 0, 1000, data.data());
  float loss;
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(trainer.step(data.data(), 1000, &loss).ok());
  const uint32_t P = trainer.param_floats();
  std::vector<float> out(trainer.params(), trainer.params() + P);

  const md::Model model = md::bind_model(desc, trainer.ema());
  std::vector<unsigned char> sbuf(md::sampling_arena_bytes(desc, batch));
  md::Arena sarena(sbuf.data(), sbuf.size());
  md::Sampler sampler;
  md::SamplerConfig sc;
  EXPECT_TRUE(sampler.init(model, md::linear_schedule(desc.T), sc, batch, sarena).ok());
  std::vector<float> x(static_cast<size_t>(batch) * desc.D);
  EXPECT_TRUE(sampler.sample(11, 0, batch, x.data()).ok());
  out.insert(out.end(), x.begin(), x.end());
  return out;
}

TEST(Parallel, WeightGradientRowRangesComposeExactly) {
  // K = 300: wide enough that the vector variants pack X^T, each range into
  // its own slice of the scratch (rows [k0, k1) x kWeightGradPackRows).
  // M = 1500: 2 MB of X and dY, so AVX-512's whole product prefetches
  // (tn_prefetching) and its ranges do not.
  struct Case {
    int M, K, N;
  };
  for (const Case c : {Case{67, 45, 37}, Case{67, 300, 37}, Case{1500, 45, 300}}) {
    const int M = c.M, K = c.K, N = c.N;
    const std::vector<float> X = random_vector(M * K, 1), dY = random_vector(M * N, 2), dW0 = random_vector(K * N, 3);
    std::vector<float> pack(static_cast<size_t>(K) * md::kWeightGradPackRows);
    for (size_t v = 0; v < md::kernel_variant_count(); ++v) {
      const md::kernels::KernelTable* t = md::kernels::find_variant(md::kernel_variant_name(v));
      if (t == nullptr) {
        std::printf("variant %s: not available here, not checked\n", md::kernel_variant_name(v));
        continue;
      }
      SCOPED_TRACE(std::string(t->name) + " M=" + std::to_string(M) + " K=" + std::to_string(K));
      std::vector<float> whole = dW0, parts = dW0, packed_parts = dW0;
      t->gemm_tn_acc(whole.data(), X.data(), dY.data(), M, K, N, 0, K, nullptr);
      const int cuts[] = {0, 16, 17, 40, K - 11 > 40 ? K - 11 : 40, K};  // K = 45: one range is empty
      for (int i = 0; i + 1 < 6; ++i) {
        const int k0 = cuts[i], k1 = cuts[i + 1];
        t->gemm_tn_acc(parts.data(), X.data(), dY.data(), M, K, N, k0, k1, nullptr);
        t->gemm_tn_acc(packed_parts.data(), X.data(), dY.data(), M, K, N, k0, k1,
                       pack.data() + static_cast<size_t>(k0) * md::kWeightGradPackRows);
      }
      EXPECT_EQ(0, std::memcmp(whole.data(), parts.data(), sizeof(float) * whole.size()));
      EXPECT_EQ(0, std::memcmp(whole.data(), packed_parts.data(), sizeof(float) * whole.size()));
    }
  }
}

// Through the dispatcher with a hook: each part packs into its own slice.
TEST(Parallel, PackedWeightGradientSplitsGiveTheSameBits) {
  const int M = 300, K = 512, N = 96;
  const std::vector<float> X = random_vector(M * K, 1), dY = random_vector(M * N, 2), dW0 = random_vector(K * N, 3);
  std::vector<float> pack(static_cast<size_t>(K) * md::kWeightGradPackRows);
  std::vector<float> serial = dW0;
  md::kernels::gemm_tn_acc(serial.data(), X.data(), dY.data(), M, K, N, nullptr);
  ReverseOrder reverse;
  for (uint32_t workers : {2u, 3u, 7u}) {
    const md::ParallelFor hook = reverse.hook(workers);
    ASSERT_TRUE(md::set_parallel_for(&hook).ok());
    std::vector<float> split = dW0;
    const uint32_t before = reverse.parts;
    md::kernels::gemm_tn_acc(split.data(), X.data(), dY.data(), M, K, N, pack.data());
    EXPECT_EQ(reverse.parts - before, workers) << "split into one part per worker";
    EXPECT_EQ(0, std::memcmp(split.data(), serial.data(), sizeof(float) * serial.size())) << workers << " workers";
  }
  ASSERT_TRUE(md::set_parallel_for(nullptr).ok());
}

// gemm_nt through the dispatcher with a hook: each part of the rows gets its
// own slice of the scratch (at 2 workers big enough for avx512's W^T panel
// cache, at 3 and 7 not).
TEST(Parallel, InputGradientSplitsWithScratchGiveTheSameBits) {
  const int M = 1100, K = 512, N = 200;
  const std::vector<float> dY = random_vector(M * N, 1), W = random_vector(K * N, 2);
  std::vector<float> pack(md::weight_grad_pack_floats(static_cast<uint32_t>(K)));
  std::vector<float> serial(static_cast<size_t>(M) * K), serial_packed(serial.size());
  md::kernels::gemm_nt(serial.data(), dY.data(), W.data(), M, N, K);
  md::kernels::gemm_nt(serial_packed.data(), dY.data(), W.data(), M, N, K, pack.empty() ? nullptr : pack.data());
  EXPECT_EQ(0, std::memcmp(serial_packed.data(), serial.data(), sizeof(float) * serial.size()));
  ReverseOrder reverse;
  for (uint32_t workers : {2u, 3u, 7u}) {
    const md::ParallelFor hook = reverse.hook(workers);
    ASSERT_TRUE(md::set_parallel_for(&hook).ok());
    std::vector<float> split(serial.size());
    const uint32_t before = reverse.parts;
    md::kernels::gemm_nt(split.data(), dY.data(), W.data(), M, N, K, pack.empty() ? nullptr : pack.data());
    EXPECT_EQ(reverse.parts - before, workers) << "split into one part per worker";
    EXPECT_EQ(0, std::memcmp(split.data(), serial.data(), sizeof(float) * serial.size())) << workers << " workers";
  }
  ASSERT_TRUE(md::set_parallel_for(nullptr).ok());
}

TEST(Parallel, AnyNumberOfWorkersGivesTheSameBits) {
  const md::ModelDesc desc = md::preset_default(2, 20);  // T = 20: quick under emulation too
  const std::vector<float> serial = train_and_sample(desc, 256);

  ReverseOrder reverse;
  for (uint32_t workers : {2u, 3u, 7u}) {
    const md::ParallelFor hook = reverse.hook(workers);
    ASSERT_TRUE(md::set_parallel_for(&hook).ok());
    EXPECT_EQ(md::parallel_workers(), workers);
    const std::vector<float> split = train_and_sample(desc, 256);
    ASSERT_EQ(split.size(), serial.size());
    EXPECT_EQ(0, std::memcmp(split.data(), serial.data(), sizeof(float) * serial.size())) << workers << " workers";
  }
  ASSERT_TRUE(md::set_parallel_for(nullptr).ok());
  EXPECT_GT(reverse.calls, 0u) << "nothing was split: the test proves nothing";
  EXPECT_GT(reverse.parts, reverse.calls);

  {
    const md::tools::ScopedParallelism threads(2);
    EXPECT_EQ(md::parallel_workers(), 2u);
    const std::vector<float> pooled = train_and_sample(desc, 256);
    EXPECT_EQ(0, std::memcmp(pooled.data(), serial.data(), sizeof(float) * serial.size())) << "2 threads";
  }
  EXPECT_EQ(md::parallel_workers(), 1u);
}

// Hosted builds split large activations (forward and backward) into ranges:
// every element computed once, the same bits as unsplit, for an n that is no
// multiple of the split block.
TEST(Parallel, ActivationsSplitIntoRangesThatCoverEveryElementOnce) {
  const size_t n = 3 * 16384 + 77;
  std::vector<float> x = random_vector(n, 4), dy = random_vector(n, 5);
  for (float& v : x) v *= 6.0f;
  std::vector<float> y0(n), dx0(n);
  md::kernels::activation_forward(md::Activation::kSoftplus, y0.data(), x.data(), n);
  md::kernels::activation_backward(md::Activation::kGeluTanh, dx0.data(), x.data(), dy.data(), n);

  ReverseOrder reverse;
  for (uint32_t workers : {2u, 3u, 7u}) {
    const md::ParallelFor hook = reverse.hook(workers);
    ASSERT_TRUE(md::set_parallel_for(&hook).ok());
    std::vector<float> y(n, -1.0f), dx(n, -1.0f);
    const uint32_t before = reverse.parts;
    md::kernels::activation_forward(md::Activation::kSoftplus, y.data(), x.data(), n);
    md::kernels::activation_backward(md::Activation::kGeluTanh, dx.data(), x.data(), dy.data(), n);
    EXPECT_EQ(reverse.parts - before, 2 * workers) << "each call split into one part per worker";
    EXPECT_EQ(0, std::memcmp(y.data(), y0.data(), sizeof(float) * n)) << workers << " workers";
    EXPECT_EQ(0, std::memcmp(dx.data(), dx0.data(), sizeof(float) * n)) << workers << " workers";
  }
  ASSERT_TRUE(md::set_parallel_for(nullptr).ok());
}

// Hosted builds split Adam and the EMA the same way: each parameter updated
// once, with the same bits as unsplit (AdamW with decay, and plain Adam with
// an L2 term, over an n that is no multiple of the split block).
TEST(Parallel, OptimizerUpdatesSplitIntoRangesThatCoverEveryElementOnce) {
  const size_t n = 2 * 16384 + 1000 + 3;
  const std::vector<float> p0 = random_vector(n, 8), grad = random_vector(n, 9);
  std::vector<float> m0 = random_vector(n, 10), v0 = random_vector(n, 11), e0 = random_vector(n, 12);
  for (float& v : v0) v = v * v;
  for (bool decoupled : {true, false}) {
    const md::kernels::AdamStep s{0.9f, 0.999f, 0.1f, 0.001f, 1e-3f, 0.03f, 1e-8f, 0.01f, 0.99999f, decoupled};
    std::vector<float> p1 = p0, m1 = m0, v1 = v0, e1 = e0;
    md::kernels::adam_update(p1.data(), m1.data(), v1.data(), grad.data(), n, s);
    md::kernels::ema_update(e1.data(), p1.data(), n, 0.995f, 0.005f);
    ASSERT_NE(0, std::memcmp(p1.data(), p0.data(), sizeof(float) * n)) << "the update moves the parameters";

    ReverseOrder reverse;
    for (uint32_t workers : {2u, 3u, 7u}) {
      const md::ParallelFor hook = reverse.hook(workers);
      ASSERT_TRUE(md::set_parallel_for(&hook).ok());
      std::vector<float> p = p0, m = m0, v = v0, e = e0;
      const uint32_t before = reverse.parts;
      md::kernels::adam_update(p.data(), m.data(), v.data(), grad.data(), n, s);
      md::kernels::ema_update(e.data(), p.data(), n, 0.995f, 0.005f);
      EXPECT_EQ(reverse.parts - before, 2 * workers) << "each call split into one part per worker";
      EXPECT_EQ(0, std::memcmp(p.data(), p1.data(), sizeof(float) * n)) << workers << " workers";
      EXPECT_EQ(0, std::memcmp(m.data(), m1.data(), sizeof(float) * n)) << workers << " workers";
      EXPECT_EQ(0, std::memcmp(v.data(), v1.data(), sizeof(float) * n)) << workers << " workers";
      EXPECT_EQ(0, std::memcmp(e.data(), e1.data(), sizeof(float) * n)) << workers << " workers";
    }
    ASSERT_TRUE(md::set_parallel_for(nullptr).ok());
  }
}

// GEMMs on f16 and int8 weights split by whole 16-row blocks of their
// output (the last part takes the 5-row tail) with the same bits as unsplit.
TEST(Parallel, StoredWeightGemmsSplitIntoRowBlocksThatCoverEveryRowOnce) {
  const int M = 7 * 16 + 5, K = 130, N = 33;
  const std::vector<float> x = random_vector(static_cast<size_t>(M) * K, 13), b = random_vector(N, 14);
  const std::vector<float> w = random_vector(static_cast<size_t>(K) * N, 15), scales = random_vector(N, 16);
  std::vector<uint16_t> h(w.size());
  std::vector<int8_t> q(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    h[i] = md::kernels::float_to_half(w[i]);
    q[i] = static_cast<int8_t>(w[i] * 127.0f);
  }
  const size_t MN = static_cast<size_t>(M) * N;
  std::vector<float> y16(MN), y8(MN);
  md::kernels::gemm_bias_f16(y16.data(), x.data(), h.data(), b.data(), M, K, N);
  md::kernels::gemm_bias_i8(y8.data(), x.data(), q.data(), scales.data(), b.data(), M, K, N);

  ReverseOrder reverse;
  for (uint32_t workers : {2u, 3u, 7u}) {
    const md::ParallelFor hook = reverse.hook(workers);
    ASSERT_TRUE(md::set_parallel_for(&hook).ok());
    std::vector<float> a(MN, -1.0f), c(MN, -1.0f);
    const uint32_t before = reverse.parts;
    md::kernels::gemm_bias_f16(a.data(), x.data(), h.data(), b.data(), M, K, N);
    md::kernels::gemm_bias_i8(c.data(), x.data(), q.data(), scales.data(), b.data(), M, K, N);
    EXPECT_EQ(reverse.parts - before, 2 * workers) << "each product split into one part per worker";
    EXPECT_EQ(0, std::memcmp(a.data(), y16.data(), sizeof(float) * MN)) << workers << " workers (f16)";
    EXPECT_EQ(0, std::memcmp(c.data(), y8.data(), sizeof(float) * MN)) << workers << " workers (int8)";
  }
  ASSERT_TRUE(md::set_parallel_for(nullptr).ok());
}

// The time gate's forward splits by whole 16-row blocks (the last part takes
// the 5-row tail), each row gated by its own timestep's table row.
TEST(Parallel, TimeGateSplitsIntoRowBlocksThatCoverEveryRowOnce) {
  const int B = 7 * 16 + 5, w = 160, T = 9;
  const size_t n = static_cast<size_t>(B) * w;
  const std::vector<float> u = random_vector(n, 6), G = random_vector(static_cast<size_t>(T) * w, 7);
  std::vector<int32_t> t(B);
  for (int b = 0; b < B; ++b) t[b] = (b * 5 + 3) % T;
  std::vector<float> y0(n);
  md::kernels::time_gate(y0.data(), u.data(), G.data(), t.data(), B, w);

  ReverseOrder reverse;
  for (uint32_t workers : {2u, 3u, 7u}) {
    const md::ParallelFor hook = reverse.hook(workers);
    ASSERT_TRUE(md::set_parallel_for(&hook).ok());
    std::vector<float> y(n, -1.0f);
    const uint32_t before = reverse.parts;
    md::kernels::time_gate(y.data(), u.data(), G.data(), t.data(), B, w);
    EXPECT_EQ(reverse.parts - before, workers) << "one part per worker";
    EXPECT_EQ(0, std::memcmp(y.data(), y0.data(), sizeof(float) * n)) << workers << " workers";
  }
  ASSERT_TRUE(md::set_parallel_for(nullptr).ok());
}

TEST(Parallel, SmallProductsStayOnTheCallersThread) {
  ReverseOrder reverse;
  const md::ParallelFor hook = reverse.hook(4);
  ASSERT_TRUE(md::set_parallel_for(&hook).ok());
  train_and_sample(md::preset_tutorial(2, 20, 16), 8);  // 8 x 16 x 16: too small to split
  ASSERT_TRUE(md::set_parallel_for(nullptr).ok());
  EXPECT_EQ(reverse.calls, 0u);
}

TEST(Parallel, HookIsCheckedWhenInstalled) {
  md::ParallelFor hook;
  hook.workers = 2;
  EXPECT_EQ(md::set_parallel_for(&hook).code, md::StatusCode::kInvalidArgument);  // no run function
  hook.run = ReverseOrder::run;
  hook.workers = 65;
  EXPECT_EQ(md::set_parallel_for(&hook).code, md::StatusCode::kInvalidArgument);
  EXPECT_EQ(md::parallel_workers(), 1u);
  hook.workers = 1;  // one worker: the same as none
  EXPECT_TRUE(md::set_parallel_for(&hook).ok());
  EXPECT_EQ(md::parallel_workers(), 1u);
}

TEST(Parallel, PoolRunsEveryPartOnce) {
  md::tools::ThreadPool pool(3);
  std::vector<int> hits(1000, 0);
  for (int round = 0; round < 200; ++round) {
    const uint32_t parts = 1 + round % 50;
    pool.run(parts, [](void* ctx, uint32_t i) { ++(*static_cast<std::vector<int>*>(ctx))[i]; }, &hits);
    for (uint32_t i = 0; i < parts; ++i) ASSERT_EQ(hits[i], 1) << "round " << round << " part " << i;
    std::fill(hits.begin(), hits.end(), 0);
  }
}

}  // namespace
