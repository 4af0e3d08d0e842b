// Helpers shared by the readers (not part of the public API).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "convert/convert.h"

namespace md::convert::detail {

inline uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
inline uint32_t rd32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}
inline uint64_t rd64(const uint8_t* p) { return rd32(p) | (static_cast<uint64_t>(rd32(p + 4)) << 32); }

// Largest element count of a tensor (and of a storage) the readers accept.
constexpr uint64_t kMaxElements = 1ull << 34;
constexpr size_t kMaxDims = 16;

// Checks a strided view against its storage: every addressed element inside
// [0, storage_elems), the element count not above the storage's (so views never
// multiply memory), no overflow. "" if fine.
std::string check_view(const std::string& name, const std::vector<int64_t>& shape,
                       const std::vector<int64_t>& strides, uint64_t offset, uint64_t storage_elems);
std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape);

// Printable form of an untrusted name (control bytes escaped, length capped).
std::string printable(const std::string& s, size_t max_len = 200);

// ---- zip -----------------------------------------------------------------------
struct ZipEntry {
  std::string name;
  uint16_t flags = 0;
  uint16_t method = 0;
  uint32_t crc = 0;
  uint64_t csize = 0, usize = 0, local_offset = 0;
};
bool is_zip(const uint8_t* data, size_t size);
// Lists the central directory.
std::string zip_list(const uint8_t* data, size_t size, std::vector<ZipEntry>* entries);
// The member's bytes: a pointer into `data` (stored) or into a new buffer owned
// by `owner` (deflate). The CRC-32 is checked.
std::string zip_read(const uint8_t* data, size_t size, const ZipEntry& e, Checkpoint* owner, const uint8_t** out,
                     size_t* out_size);

// ---- in-place readers (the data already lives in a Checkpoint buffer) ------------
std::string parse_npy(const uint8_t* data, size_t size, const std::string& name, Checkpoint* out);
std::string parse_npz(const uint8_t* data, size_t size, Checkpoint* out);
std::string parse_safetensors(const uint8_t* data, size_t size, Checkpoint* out);
std::string parse_pytorch(const uint8_t* data, size_t size, Checkpoint* out);

}  // namespace md::convert::detail
