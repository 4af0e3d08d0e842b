// Float buffers for the benchmarks, aligned as the runtime's own are.
#pragma once
#include <stdint.h>

#include <new>
#include <random>
#include <vector>

#include "microdiffusion/arena.h"

namespace md::bench {

// Buffers aligned as the runtime's own are: everything it hands its kernels
// comes from an Arena or a weight file bound in place, both 64-byte aligned
// (md::kAlignment). A plain std::vector<float> is only 16-byte aligned, which
// puts every vector load and store of a 64-byte row across two cache lines
// (on a Xeon the AVX-512 GEMMs ran up to 9% slower on such buffers).
template <class T>
struct ArenaAligned {
  using value_type = T;
  ArenaAligned() = default;
  template <class U>
  ArenaAligned(const ArenaAligned<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{md::kAlignment})); }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t{md::kAlignment}); }
  template <class U>
  bool operator==(const ArenaAligned<U>&) const { return true; }
  template <class U>
  bool operator!=(const ArenaAligned<U>&) const { return false; }
};
using Floats = std::vector<float, ArenaAligned<float>>;

inline Floats random_vector(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  Floats v(n);
  for (float& x : v) x = u(rng);
  return v;
}

}  // namespace md::bench
