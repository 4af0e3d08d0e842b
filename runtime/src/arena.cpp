#include "microdiffusion/arena.h"

namespace md {

void* Arena::allocate(size_t bytes) {
  const uintptr_t start = reinterpret_cast<uintptr_t>(base_) + used_;
  const size_t pad = (kAlignment - start % kAlignment) % kAlignment;
  const size_t need = used_ + pad + bytes;
  if (base_ == nullptr || need < used_ || need > capacity_) {
    status_ = make_status(StatusCode::kOutOfMemory, "arena too small", need, capacity_);
    return nullptr;
  }
  void* p = base_ + used_ + pad;
  used_ = need;
  if (used_ > high_water_) high_water_ = used_;
  return p;
}

Status Arena::reserve(const Plan& plan, uint8_t** base_out) {
  void* p = allocate(plan.bytes);
  if (p == nullptr) {
    // Report the size the caller can provide up front (with alignment slack).
    const uint64_t before = used_;
    return make_status(StatusCode::kOutOfMemory, "arena too small",
                       before + arena_bytes_for(plan), capacity_);
  }
  *base_out = static_cast<uint8_t*>(p);
  return Status::Ok();
}

const char* status_code_name(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kOutOfMemory: return "out of memory";
    case StatusCode::kInvalidArgument: return "invalid argument";
    case StatusCode::kBadFormat: return "bad format";
    case StatusCode::kUnsupportedVersion: return "unsupported version";
    case StatusCode::kChecksumMismatch: return "checksum mismatch";
    case StatusCode::kTruncated: return "truncated";
    case StatusCode::kMisaligned: return "misaligned";
    case StatusCode::kNonFinite: return "non-finite value";
  }
  return "unknown";
}

}  // namespace md
