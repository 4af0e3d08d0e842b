// Zip archives (PKWARE APPNOTE): the end-of-central-directory record (and its
// ZIP64 form), the central directory, local headers; stored and deflate members.
// torch.save writes stored members with data descriptors and padding in the
// local extra field; numpy writes ZIP64 extra fields (force_zip64). Sizes come
// from the central directory.
#include <algorithm>
#include <cstring>
#include <utility>
#include <set>
#include <string>
#include <vector>

#include "convert/convert.h"
#include "convert/internal.h"
#include "microdiffusion/weights.h"

namespace md::convert::detail {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50u;
constexpr uint32_t kCentralSig = 0x02014b50u;
constexpr uint32_t kEndSig = 0x06054b50u;
constexpr uint32_t kEnd64Sig = 0x06064b50u;
constexpr uint32_t kEnd64LocatorSig = 0x07064b50u;
constexpr size_t kEndBytes = 22, kCentralBytes = 46, kLocalBytes = 30;
constexpr uint64_t kMaxEntries = 1u << 20;

}  // namespace

bool is_zip(const uint8_t* data, size_t size) {
  return size >= 4 && data[0] == 'P' && data[1] == 'K' &&
         ((data[2] == 3 && data[3] == 4) || (data[2] == 5 && data[3] == 6));
}

std::string zip_list(const uint8_t* data, size_t size, std::vector<ZipEntry>* entries) {
  entries->clear();
  if (size < kEndBytes) return "zip: file too short for an end-of-central-directory record";
  // The end record is within the last 22 + 65535 bytes (the comment is at most 65535).
  size_t end = size - kEndBytes;
  const size_t lowest = size - kEndBytes > 65535 ? size - kEndBytes - 65535 : 0;
  bool found = false;
  for (size_t p = end + 1; p-- > lowest;) {
    if (rd32(data + p) == kEndSig && p + kEndBytes + rd16(data + p + 20) <= size) {
      end = p;
      found = true;
      break;
    }
  }
  if (!found) return "zip: no end-of-central-directory record (truncated or not a zip file)";
  const uint8_t* e = data + end;
  uint64_t count = rd16(e + 10);
  uint64_t cd_size = rd32(e + 12);
  uint64_t cd_offset = rd32(e + 16);
  if (rd16(e + 4) != 0 && rd16(e + 4) != 0xFFFF) return "zip: multi-disk archives are not supported";
  if (count == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_offset == 0xFFFFFFFFu) {
    // ZIP64: a locator right before the end record points at the ZIP64 end record.
    if (end < 20 || rd32(data + end - 20) != kEnd64LocatorSig) return "zip: ZIP64 end record locator missing";
    const uint64_t z = rd64(data + end - 20 + 8);
    if (z > size || size - z < 56 || rd32(data + z) != kEnd64Sig) return "zip: ZIP64 end record is missing or truncated";
    count = rd64(data + z + 32);
    cd_size = rd64(data + z + 40);
    cd_offset = rd64(data + z + 48);
  }
  if (cd_offset > size || cd_size > size - cd_offset) return "zip: central directory lies outside the file";
  if (count > kMaxEntries || count > cd_size / kCentralBytes)
    return "zip: central directory entry count (" + std::to_string(count) + ") does not fit its size";
  std::set<std::string> names;
  size_t p = static_cast<size_t>(cd_offset);
  const size_t cd_end = static_cast<size_t>(cd_offset + cd_size);
  for (uint64_t i = 0; i < count; ++i) {
    if (cd_end - p < kCentralBytes || rd32(data + p) != kCentralSig)
      return "zip: central directory entry " + std::to_string(i) + " is truncated or corrupt";
    const uint8_t* c = data + p;
    ZipEntry z;
    z.flags = rd16(c + 8);
    z.method = rd16(c + 10);
    z.crc = rd32(c + 16);
    z.csize = rd32(c + 20);
    z.usize = rd32(c + 24);
    const size_t name_len = rd16(c + 28), extra_len = rd16(c + 30), comment_len = rd16(c + 32);
    z.local_offset = rd32(c + 42);
    if (cd_end - p - kCentralBytes < name_len + extra_len + comment_len)
      return "zip: central directory entry " + std::to_string(i) + " is truncated";
    z.name.assign(reinterpret_cast<const char*>(c + kCentralBytes), name_len);
    // ZIP64 extended information: the 64-bit values, in order, for fields that are all ones.
    const uint8_t* x = c + kCentralBytes + name_len;
    size_t xp = 0;
    while (xp + 4 <= extra_len) {
      const uint16_t id = rd16(x + xp), len = rd16(x + xp + 2);
      if (xp + 4 + len > extra_len) return "zip: extra field of '" + printable(z.name) + "' is truncated";
      if (id == 0x0001) {
        const uint8_t* f = x + xp + 4;
        size_t fp = 0;
        auto take = [&](uint64_t* v) {
          if (*v != 0xFFFFFFFFu) return true;
          if (fp + 8 > len) return false;
          *v = rd64(f + fp);
          fp += 8;
          return true;
        };
        if (!take(&z.usize) || !take(&z.csize) || !take(&z.local_offset))
          return "zip: ZIP64 extra field of '" + printable(z.name) + "' is truncated";
      }
      xp += 4 + len;
    }
    if (z.flags & 1u) return "zip: member '" + printable(z.name) + "' is encrypted";
    if (z.method != 0 && z.method != 8)
      return "zip: member '" + printable(z.name) + "' uses compression method " + std::to_string(z.method) +
             " (only stored and deflate are supported)";
    if (!names.insert(z.name).second) return "zip: duplicate member '" + printable(z.name) + "'";
    entries->push_back(std::move(z));
    p += kCentralBytes + name_len + extra_len + comment_len;
  }
  // Members may not share or overlap their records: a small archive whose
  // entries all point at one deflated record would otherwise inflate it once
  // per entry (a 32 KB file asking for gigabytes).
  std::vector<std::pair<uint64_t, uint64_t>> spans;  // [local header, end of data)
  for (const ZipEntry& z : *entries) {
    if (z.local_offset > size || z.csize > size) return "zip: member '" + printable(z.name) + "' lies outside the file";
    spans.emplace_back(z.local_offset, z.local_offset + 30 + z.csize);  // 30: the fixed local header
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i)
    if (spans[i].first < spans[i - 1].second) return "zip: members overlap (their records share bytes)";
  return "";
}

std::string zip_read(const uint8_t* data, size_t size, const ZipEntry& e, Checkpoint* owner, const uint8_t** out,
                     size_t* out_size) {
  const std::string who = "zip member '" + printable(e.name) + "'";
  if (e.local_offset > size || size - e.local_offset < kLocalBytes || rd32(data + e.local_offset) != kLocalSig)
    return who + ": local header is missing or truncated";
  const uint8_t* l = data + e.local_offset;
  const uint64_t start = e.local_offset + kLocalBytes + rd16(l + 26) + rd16(l + 28);
  if (start > size || e.csize > size - start) return who + ": data lies outside the file (truncated?)";
  const uint8_t* src = data + start;
  if (e.method == 0) {
    if (e.csize != e.usize) return who + ": stored member's sizes disagree";
    *out = src;
    *out_size = static_cast<size_t>(e.usize);
  } else {
    // Deflate expands at most ~1032:1; refuse absurd size claims before allocating.
    if (e.usize > e.csize * 1040 + 1024 || e.usize > (1ull << 34))
      return who + ": uncompressed size " + std::to_string(e.usize) + " is implausible for " +
             std::to_string(e.csize) + " compressed bytes";
    auto buf = std::make_unique<std::vector<uint8_t>>();
    buf->reserve(static_cast<size_t>(e.usize < (64u << 20) ? e.usize : (64u << 20)));
    const std::string err = inflate_raw(src, static_cast<size_t>(e.csize), static_cast<size_t>(e.usize), buf.get());
    if (!err.empty()) return who + ": " + err;
    if (buf->size() != e.usize)
      return who + ": inflated to " + std::to_string(buf->size()) + " bytes, expected " + std::to_string(e.usize);
    if (buf->empty()) buf->reserve(1);
    *out = buf->data();
    *out_size = buf->size();
    owner->buffers.push_back(std::move(buf));
  }
  const uint32_t crc = md::crc32(*out, *out_size);
  if (crc != e.crc) return who + ": CRC-32 mismatch (corrupt file)";
  return "";
}

}  // namespace md::convert::detail
