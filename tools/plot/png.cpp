#include "plot/png.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include <fcntl.h>
#include <unistd.h>

namespace md::tools {
namespace {

constexpr std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? (0xEDB88320u ^ (c >> 1)) : (c >> 1);
    t[i] = c;
  }
  return t;
}

constexpr std::array<uint32_t, 256> kCrcTable = make_crc_table();
static_assert(kCrcTable[1] == 0x77073096u, "CRC table");

void put_u32be(std::vector<uint8_t>& out, uint32_t v) {
  out.push_back(static_cast<uint8_t>(v >> 24));
  out.push_back(static_cast<uint8_t>(v >> 16));
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}

// Appends one chunk: length, type, data, CRC over type+data.
void put_chunk(std::vector<uint8_t>& out, const char type[4], const uint8_t* data, size_t n) {
  put_u32be(out, static_cast<uint32_t>(n));
  const size_t type_pos = out.size();
  out.insert(out.end(), type, type + 4);
  if (n > 0) out.insert(out.end(), data, data + n);
  put_u32be(out, png_crc32(out.data() + type_pos, n + 4));
}

// Max payload of one IDAT chunk. The zlib stream may span several IDATs.
constexpr size_t kMaxIdat = size_t{1} << 18;
constexpr size_t kMaxStored = 65535;

}  // namespace

uint32_t png_crc32(const uint8_t* data, size_t n, uint32_t crc) {
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = kCrcTable[(crc ^ data[i]) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

uint32_t adler32(const uint8_t* data, size_t n) {
  constexpr uint32_t kMod = 65521;
  constexpr size_t kNMax = 5552;  // largest n with no uint32 overflow
  uint32_t a = 1, b = 0;
  while (n > 0) {
    const size_t len = n < kNMax ? n : kNMax;
    for (size_t i = 0; i < len; ++i) {
      a += data[i];
      b += a;
    }
    a %= kMod;
    b %= kMod;
    data += len;
    n -= len;
  }
  return (b << 16) | a;
}

std::vector<uint8_t> encode_png_rgb(const uint8_t* rgb, int width, int height) {
  if (rgb == nullptr || width <= 0 || height <= 0) return {};
  const size_t w = static_cast<size_t>(width), h = static_cast<size_t>(height);
  const size_t row_bytes = w * 3;
  const size_t stride = row_bytes + 1;  // filter byte + pixels
  if (h > std::numeric_limits<size_t>::max() / 2 / stride) return {};

  // Raw (filtered) scanlines.
  std::vector<uint8_t> raw(stride * h);
  for (size_t y = 0; y < h; ++y) {
    raw[y * stride] = 0;  // filter type None
    std::memcpy(&raw[y * stride + 1], rgb + y * row_bytes, row_bytes);
  }

  // zlib stream of stored deflate blocks.
  const size_t nblocks = (raw.size() + kMaxStored - 1) / kMaxStored;
  std::vector<uint8_t> z;
  z.reserve(2 + raw.size() + nblocks * 5 + 4);
  z.push_back(0x78);
  z.push_back(0x01);
  for (size_t off = 0; off < raw.size();) {
    const size_t len = std::min(kMaxStored, raw.size() - off);
    const bool last = off + len == raw.size();
    z.push_back(last ? 0x01 : 0x00);  // BFINAL, BTYPE=00, pad to byte
    const uint16_t l = static_cast<uint16_t>(len), nl = static_cast<uint16_t>(~l);
    z.push_back(static_cast<uint8_t>(l & 0xFF));
    z.push_back(static_cast<uint8_t>(l >> 8));
    z.push_back(static_cast<uint8_t>(nl & 0xFF));
    z.push_back(static_cast<uint8_t>(nl >> 8));
    z.insert(z.end(), raw.begin() + static_cast<std::ptrdiff_t>(off),
             raw.begin() + static_cast<std::ptrdiff_t>(off + len));
    off += len;
  }
  put_u32be(z, adler32(raw.data(), raw.size()));

  std::vector<uint8_t> out;
  out.reserve(8 + 25 + z.size() + (z.size() / kMaxIdat + 1) * 12 + 12);
  static const uint8_t kSig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  out.insert(out.end(), kSig, kSig + 8);

  std::vector<uint8_t> ihdr;
  put_u32be(ihdr, static_cast<uint32_t>(width));
  put_u32be(ihdr, static_cast<uint32_t>(height));
  ihdr.push_back(8);  // bit depth
  ihdr.push_back(2);  // color type: truecolor RGB
  ihdr.push_back(0);  // compression: deflate
  ihdr.push_back(0);  // filter method 0
  ihdr.push_back(0);  // no interlace
  put_chunk(out, "IHDR", ihdr.data(), ihdr.size());

  for (size_t off = 0; off < z.size(); off += kMaxIdat)
    put_chunk(out, "IDAT", z.data() + off, std::min(kMaxIdat, z.size() - off));
  put_chunk(out, "IEND", nullptr, 0);
  return out;
}

bool write_file_atomic(const std::string& path, const std::vector<uint8_t>& bytes,
                       std::string* error) {
  const std::string tmp = path + ".tmp." + std::to_string(static_cast<long>(::getpid()));
  // Message format: "write_file_atomic: <what> '<file>' (writing '<path>'): <strerror>".
  auto fail = [&](const char* what, int err, bool remove_tmp) {
    if (remove_tmp) std::remove(tmp.c_str());
    if (err == 0) err = EIO;  // e.g. short fwrite without errno
    if (error != nullptr) {
      *error = std::string("write_file_atomic: ") + what + " '" + tmp + "' (writing '" + path +
               "'): " + std::strerror(err);
    }
    return false;
  };

  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) return fail("cannot create", errno, false);

  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) {
    const int err = errno;
    std::fclose(f);
    return fail("write failed on", err, true);
  }
  if (std::fflush(f) != 0) {
    const int err = errno;
    std::fclose(f);
    return fail("fflush failed on", err, true);
  }
  if (::fsync(::fileno(f)) != 0) {
    const int err = errno;
    std::fclose(f);
    return fail("fsync failed on", err, true);
  }
  if (std::fclose(f) != 0) return fail("fclose failed on", errno, true);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return fail("cannot rename", errno, true);

  // Best effort: persist the directory entry too. Failure here does not undo
  // the (already complete) rename, so it is not reported.
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
  return true;
}

}  // namespace md::tools
