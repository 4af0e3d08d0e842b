// A small thread pool for hosts that lends the runtime its parallel-for
// (microdiffusion/parallel.h). The caller's thread works too: a pool of N
// threads starts N - 1 workers. Workers spin briefly between jobs (the
// runtime hands out many short GEMMs per training step), then sleep.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "microdiffusion/parallel.h"

namespace md::tools {

class ThreadPool {
 public:
  explicit ThreadPool(unsigned threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  unsigned threads() const { return static_cast<unsigned>(workers_.size()) + 1; }
  // Calls task(ctx, i) for every i in [0, parts) across the pool and the
  // caller; returns when all have returned. One job at a time (one caller).
  void run(uint32_t parts, void (*task)(void*, uint32_t), void* ctx);
  // The hook to pass to md::set_parallel_for (valid while the pool lives).
  ParallelFor hook();

 private:
  void worker_loop();
  // Runs parts of job `gen` until none are left; returns how many it ran.
  uint32_t work(uint32_t gen);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint32_t> gen_{0};      // bumped once per job
  std::atomic<uint64_t> ticket_{0};   // (gen << 32) | next part to hand out
  std::atomic<uint32_t> done_{0};     // parts finished in the current job
  std::atomic<uint32_t> parts_{0};
  std::atomic<void (*)(void*, uint32_t)> task_{nullptr};
  std::atomic<void*> ctx_{nullptr};
  std::atomic<bool> stop_{false};
};

// Installs a pool of `threads` threads as the runtime's parallel-for for this
// object's lifetime (threads <= 1: none), and removes it afterwards.
class ScopedParallelism {
 public:
  explicit ScopedParallelism(unsigned threads);
  ~ScopedParallelism();
  ScopedParallelism(const ScopedParallelism&) = delete;
  ScopedParallelism& operator=(const ScopedParallelism&) = delete;

 private:
  std::unique_ptr<ThreadPool> pool_;
};

}  // namespace md::tools
