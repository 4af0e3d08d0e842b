// Status: every fallible runtime call returns one of these. No exceptions, no
// heap: the message is a static string and the numbers say what went wrong.
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace md {

enum class StatusCode : uint32_t {
  kOk = 0,
  kOutOfMemory,       // arena too small: needed / available are bytes
  kInvalidArgument,   // a parameter out of range: value / limit say which
  kBadFormat,         // a weight file that is not well formed
  kUnsupportedVersion,
  kChecksumMismatch,
  kTruncated,         // a buffer shorter than its contents claim
  kMisaligned,        // a buffer that must be 4-byte (tensors: 64-byte) aligned is not
  kNonFinite,         // a NaN or Inf where a finite number is required
};

struct Status {
  StatusCode code = StatusCode::kOk;
  const char* message = "ok";  // static string, never owned
  uint64_t needed = 0;         // bytes needed, or the offending value / index
  uint64_t available = 0;      // bytes available, or the limit

  constexpr bool ok() const { return code == StatusCode::kOk; }
  static constexpr Status Ok() { return Status{}; }
};

constexpr Status make_status(StatusCode code, const char* message,
                             uint64_t needed = 0, uint64_t available = 0) {
  return Status{code, message, needed, available};
}

const char* status_code_name(StatusCode code);

}  // namespace md

// Propagate a failed Status to the caller.
#define MD_RETURN_IF_ERROR(expr)          \
  do {                                    \
    const ::md::Status md_status_ = (expr); \
    if (!md_status_.ok()) return md_status_; \
  } while (0)
