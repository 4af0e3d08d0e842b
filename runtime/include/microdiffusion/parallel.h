// A parallel-for the application may lend the runtime. The runtime itself
// never starts threads and stays allocation-free: with a hook installed, the
// large matrix products (every GEMM of the forward and backward passes with
// enough rows and work; on f16 / int8 weights in hosted builds only) and, in
// hosted builds, the activations of large
// arrays (forward and derivative, from 16K elements), the time gate's
// forward (from 16K elements, by rows) and the Adam and EMA updates (from
// 16K parameters) are cut into `workers` disjoint parts, and
// run(pool, parts, task, ctx) must call task(ctx, i) once for every i in
// [0, parts), on any threads, and return only when all calls have returned.
// Firmware installs none; everything then runs on the caller's thread.
//
// The cuts fall on whole row blocks and each part computes its outputs with
// the same operations in the same order, so results are bit-identical for any
// number of workers (tests/test_parallel.cpp).
//
// The hook is process-wide, like the kernel variant: install it before
// starting work and do not change it while kernels run. The CLI supplies one
// built on std::thread (tools/threads, `--threads N`).
#pragma once
#include <stdint.h>

#include "microdiffusion/status.h"

namespace md {

struct ParallelFor {
  void (*run)(void* pool, uint32_t parts, void (*task)(void* ctx, uint32_t part), void* ctx) = nullptr;
  void* pool = nullptr;
  uint32_t workers = 1;  // parts to cut work into (at most 64)
};

// Installs a copy of *p; null (or workers <= 1) goes back to the caller's thread.
Status set_parallel_for(const ParallelFor* p);
// The installed hook's workers (1 when none).
uint32_t parallel_workers();

}  // namespace md
