// Arena: the one caller-provided buffer all working memory comes from.
//
// Sizes are planned before anything runs: a Plan lays out named buffers at
// 64-byte aligned offsets. The same constexpr plan answers "how many bytes"
// (for a static_assert in firmware) and places the buffers at run time, so
// the answer and the allocation cannot disagree.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "microdiffusion/status.h"

namespace md {

constexpr size_t kAlignment = 64;  // cache line; also the widest SIMD vector

constexpr size_t align_up(size_t n, size_t a = kAlignment) {
  return (n + a - 1) / a * a;
}

// A compile-time-capable bump allocator over offsets (no memory behind it).
struct Plan {
  size_t bytes = 0;
  constexpr size_t take(size_t n) {
    const size_t offset = align_up(bytes);
    bytes = offset + align_up(n);
    return offset;
  }
  template <class T>
  constexpr size_t take_array(size_t count) { return take(count * sizeof(T)); }
};

// Bytes a caller must provide for a plan when its buffer may start at any
// address: one extra alignment's worth lets the runtime align the base.
constexpr size_t arena_bytes_for(const Plan& plan) {
  return plan.bytes + kAlignment;
}

class Arena {
 public:
  constexpr Arena() = default;
  Arena(void* buffer, size_t bytes) : base_(static_cast<uint8_t*>(buffer)), capacity_(bytes) {}

  // Reserve `plan.bytes` at an aligned base; returns the base or an error
  // naming the bytes needed (including alignment slack) and available.
  Status reserve(const Plan& plan, uint8_t** base_out);

  // Bump-allocate `bytes` aligned to 64. Returns nullptr when the arena is too
  // small; status() then says how much was needed.
  void* allocate(size_t bytes);
  template <class T>
  T* allocate_array(size_t count) { return static_cast<T*>(allocate(count * sizeof(T))); }

  size_t used() const { return used_; }
  size_t capacity() const { return capacity_; }
  size_t high_water() const { return high_water_; }
  size_t mark() const { return used_; }
  void release_to(size_t mark) { if (mark <= used_) used_ = mark; }
  Status status() const { return status_; }

 private:
  uint8_t* base_ = nullptr;
  size_t capacity_ = 0;
  size_t used_ = 0;
  size_t high_water_ = 0;
  Status status_{};
};

}  // namespace md
