#include "threads/thread_pool.h"

#include <memory>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MD_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__) || defined(__arm__)
#define MD_CPU_RELAX() __asm__ __volatile__("yield")
#else
#define MD_CPU_RELAX() ((void)0)
#endif

namespace md::tools {
namespace {
constexpr int kSpins = 20000;  // about 0.1-0.5 ms of polling before a worker sleeps
}

ThreadPool::ThreadPool(unsigned threads) {
  for (unsigned i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true);
    gen_.fetch_add(1);
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
}

uint32_t ThreadPool::work(uint32_t gen) {
  uint32_t ran = 0;
  uint64_t t = ticket_.load(std::memory_order_acquire);
  for (;;) {
    if (static_cast<uint32_t>(t >> 32) != gen) return ran;
    const uint32_t part = static_cast<uint32_t>(t);
    if (part >= parts_.load(std::memory_order_relaxed)) return ran;
    // Claim `part` only if the ticket still belongs to this job.
    if (!ticket_.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
    task_.load(std::memory_order_relaxed)(ctx_.load(std::memory_order_relaxed), part);
    done_.fetch_add(1, std::memory_order_acq_rel);
    ++ran;
    t = ticket_.load(std::memory_order_acquire);
  }
}

void ThreadPool::worker_loop() {
  // Job numbers start at 0 when the pool is built: a worker that starts late
  // (even after the destructor's last bump) still sees every change after it.
  uint32_t seen = 0;
  for (;;) {
    uint32_t g = seen;
    for (int i = 0; i < kSpins && (g = gen_.load(std::memory_order_acquire)) == seen; ++i) MD_CPU_RELAX();
    if (g == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return gen_.load(std::memory_order_acquire) != seen || stop_.load(); });
      g = gen_.load(std::memory_order_acquire);
    }
    seen = g;
    if (stop_.load()) return;
    work(g);
  }
}

void ThreadPool::run(uint32_t parts, void (*task)(void*, uint32_t), void* ctx) {
  if (workers_.empty() || parts <= 1) {
    for (uint32_t i = 0; i < parts; ++i) task(ctx, i);
    return;
  }
  // Close the previous job's ticket first: a worker still holding it could
  // otherwise claim a part of the new job with the old ticket between the
  // stores below (its part index would pass the new, larger part count).
  const uint32_t gen = gen_.load(std::memory_order_relaxed) + 1;
  ticket_.store((static_cast<uint64_t>(gen) << 32) | 0xFFFFFFFFu, std::memory_order_seq_cst);
  task_.store(task, std::memory_order_relaxed);
  ctx_.store(ctx, std::memory_order_relaxed);
  parts_.store(parts, std::memory_order_relaxed);
  done_.store(0, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ticket_.store(static_cast<uint64_t>(gen) << 32, std::memory_order_release);
    gen_.store(gen, std::memory_order_release);
  }
  wake_.notify_all();
  work(gen);
  while (done_.load(std::memory_order_acquire) < parts) MD_CPU_RELAX();
}

ParallelFor ThreadPool::hook() {
  ParallelFor p;
  p.run = [](void* pool, uint32_t parts, void (*task)(void*, uint32_t), void* ctx) {
    static_cast<ThreadPool*>(pool)->run(parts, task, ctx);
  };
  p.pool = this;
  p.workers = threads();
  return p;
}

ScopedParallelism::ScopedParallelism(unsigned threads) {
  if (threads <= 1) return;
  pool_ = std::make_unique<ThreadPool>(threads);
  const ParallelFor p = pool_->hook();
  set_parallel_for(&p);
}

ScopedParallelism::~ScopedParallelism() {
  if (pool_) set_parallel_for(nullptr);
}

}  // namespace md::tools
