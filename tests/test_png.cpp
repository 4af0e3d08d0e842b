// Tests for tools/plot/png.{h,cpp}: checksums, PNG structure (validated by an
// independent minimal decoder below) and write_file_atomic failure handling.
#include "plot/png.h"
#include "plot/plot.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

namespace {

using md::tools::adler32;
using md::tools::encode_png_rgb;
using md::tools::png_crc32;
using md::tools::write_file_atomic;

// ---- Independent reference implementations (deliberately table-free). ----

uint32_t bitwise_crc32(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

uint32_t naive_adler32(const uint8_t* p, size_t n) {
  uint32_t a = 1, b = 0;
  for (size_t i = 0; i < n; ++i) {
    a = (a + p[i]) % 65521;
    b = (b + a) % 65521;
  }
  return (b << 16) | a;
}

uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}

std::vector<uint8_t> expected_raw(const std::vector<uint8_t>& rgb, int w, int h) {
  std::vector<uint8_t> raw;
  for (int y = 0; y < h; ++y) {
    raw.push_back(0);
    raw.insert(raw.end(), rgb.begin() + y * w * 3, rgb.begin() + (y + 1) * w * 3);
  }
  return raw;
}

struct Decoded {
  int w = 0, h = 0;
  std::vector<uint8_t> rgb;
  int stored_blocks = 0;
  int idat_chunks = 0;
};

// Minimal decoder for exactly what encode_png_rgb produces: 8-bit RGB,
// stored deflate blocks, filter type 0. Uses ADD_FAILURE for diagnostics and
// returns false on the first structural error.
bool decode_png(const std::vector<uint8_t>& png, Decoded* out) {
  static const uint8_t kSig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (png.size() < 8 || std::memcmp(png.data(), kSig, 8) != 0) {
    ADD_FAILURE() << "bad signature";
    return false;
  }
  std::vector<uint8_t> z;
  bool seen_ihdr = false, seen_iend = false;
  size_t pos = 8;
  while (pos < png.size()) {
    if (png.size() - pos < 12) {
      ADD_FAILURE() << "truncated chunk at " << pos;
      return false;
    }
    const uint32_t len = be32(&png[pos]);
    if (len > png.size() - pos - 12) {
      ADD_FAILURE() << "chunk length overruns file at " << pos;
      return false;
    }
    const std::string type(reinterpret_cast<const char*>(&png[pos + 4]), 4);
    const uint8_t* data = &png[pos + 8];
    const uint32_t crc = be32(&png[pos + 8 + len]);
    if (crc != bitwise_crc32(&png[pos + 4], len + 4)) {
      ADD_FAILURE() << "CRC mismatch in chunk " << type;
      return false;
    }
    if (!seen_ihdr && type != "IHDR") {
      ADD_FAILURE() << "first chunk is " << type;
      return false;
    }
    if (type == "IHDR") {
      if (len != 13) {
        ADD_FAILURE() << "IHDR length " << len;
        return false;
      }
      out->w = static_cast<int>(be32(data));
      out->h = static_cast<int>(be32(data + 4));
      EXPECT_EQ(data[8], 8) << "bit depth";
      EXPECT_EQ(data[9], 2) << "color type";
      EXPECT_EQ(data[10], 0);
      EXPECT_EQ(data[11], 0);
      EXPECT_EQ(data[12], 0);
      seen_ihdr = true;
    } else if (type == "IDAT") {
      z.insert(z.end(), data, data + len);
      ++out->idat_chunks;
    } else if (type == "IEND") {
      EXPECT_EQ(len, 0u);
      seen_iend = true;
      pos += 12 + len;
      break;
    } else {
      ADD_FAILURE() << "unexpected chunk " << type;
      return false;
    }
    pos += 12 + len;
  }
  if (!seen_iend || pos != png.size()) {
    ADD_FAILURE() << "missing IEND or trailing bytes";
    return false;
  }

  // zlib container.
  if (z.size() < 6 || z[0] != 0x78 || z[1] != 0x01 || ((z[0] << 8) | z[1]) % 31 != 0) {
    ADD_FAILURE() << "bad zlib header";
    return false;
  }
  std::vector<uint8_t> raw;
  size_t zp = 2;
  for (;;) {
    if (z.size() - zp < 5) {
      ADD_FAILURE() << "truncated stored block header";
      return false;
    }
    const uint8_t hdr = z[zp];
    if ((hdr & 0x06) != 0 || (hdr & 0xF8) != 0) {
      ADD_FAILURE() << "not a stored block / nonzero padding: " << int(hdr);
      return false;
    }
    const uint16_t blen = uint16_t(z[zp + 1] | (z[zp + 2] << 8));
    const uint16_t nlen = uint16_t(z[zp + 3] | (z[zp + 4] << 8));
    if (uint16_t(~blen) != nlen) {
      ADD_FAILURE() << "LEN/NLEN mismatch";
      return false;
    }
    zp += 5;
    if (z.size() - zp < blen) {
      ADD_FAILURE() << "stored block overruns stream";
      return false;
    }
    raw.insert(raw.end(), z.begin() + zp, z.begin() + zp + blen);
    zp += blen;
    ++out->stored_blocks;
    if (hdr & 1) break;
  }
  if (z.size() - zp != 4) {
    ADD_FAILURE() << "expected exactly 4 trailing Adler-32 bytes, got " << z.size() - zp;
    return false;
  }
  if (be32(&z[zp]) != naive_adler32(raw.data(), raw.size())) {
    ADD_FAILURE() << "Adler-32 mismatch";
    return false;
  }

  // Unfilter (only filter type 0 is expected).
  const size_t stride = size_t(out->w) * 3 + 1;
  if (raw.size() != stride * size_t(out->h)) {
    ADD_FAILURE() << "raw size " << raw.size() << " != " << stride * out->h;
    return false;
  }
  out->rgb.clear();
  for (int y = 0; y < out->h; ++y) {
    if (raw[y * stride] != 0) {
      ADD_FAILURE() << "row " << y << " filter " << int(raw[y * stride]);
      return false;
    }
    out->rgb.insert(out->rgb.end(), raw.begin() + y * stride + 1, raw.begin() + (y + 1) * stride);
  }
  return true;
}

std::vector<uint8_t> pattern_image(int w, int h) {
  std::vector<uint8_t> rgb(size_t(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &rgb[(size_t(y) * w + x) * 3];
      p[0] = uint8_t(x * 7 + y);
      p[1] = uint8_t(y * 13 + 5);
      p[2] = uint8_t((x ^ y) * 3);
    }
  return rgb;
}

// ---- Checksums ----

TEST(Png, Crc32CheckValue) {
  const char* s = "123456789";
  EXPECT_EQ(png_crc32(reinterpret_cast<const uint8_t*>(s), 9), 0xCBF43926u);
  EXPECT_EQ(png_crc32(nullptr, 0), 0u);
}

TEST(Png, Crc32Incremental) {
  const char* s = "123456789";
  const auto* p = reinterpret_cast<const uint8_t*>(s);
  EXPECT_EQ(png_crc32(p + 4, 5, png_crc32(p, 4)), 0xCBF43926u);
  const std::vector<uint8_t> img = pattern_image(40, 30);
  EXPECT_EQ(png_crc32(img.data(), img.size()), bitwise_crc32(img.data(), img.size()));
}

TEST(Png, Adler32CheckValue) {
  const char* s = "Wikipedia";
  EXPECT_EQ(adler32(reinterpret_cast<const uint8_t*>(s), 9), 0x11E60398u);
  EXPECT_EQ(adler32(nullptr, 0), 1u);
  // Long run of 0xFF exercises the deferred-modulo chunking.
  const std::vector<uint8_t> big(100000, 0xFF);
  EXPECT_EQ(adler32(big.data(), big.size()), naive_adler32(big.data(), big.size()));
}

// ---- Encoding ----

TEST(Png, Encode3x2RoundTrip) {
  const std::vector<uint8_t> rgb = {255, 0,   0,   0,  255, 0,  0,  0,  255,  //
                                    0,   0,   0,   128, 128, 128, 255, 255, 255};
  const std::vector<uint8_t> png = encode_png_rgb(rgb.data(), 3, 2);
  ASSERT_FALSE(png.empty());
  Decoded d;
  ASSERT_TRUE(decode_png(png, &d));
  EXPECT_EQ(d.w, 3);
  EXPECT_EQ(d.h, 2);
  EXPECT_EQ(d.stored_blocks, 1);
  EXPECT_EQ(d.rgb, rgb);
}

TEST(Png, Encode300x300MultipleStoredBlocks) {
  const int w = 300, h = 300;  // 300 * (900 + 1) = 270300 raw bytes
  const std::vector<uint8_t> rgb = pattern_image(w, h);
  const std::vector<uint8_t> png = encode_png_rgb(rgb.data(), w, h);
  Decoded d;
  ASSERT_TRUE(decode_png(png, &d));
  EXPECT_EQ(d.w, w);
  EXPECT_EQ(d.h, h);
  EXPECT_EQ(d.stored_blocks, 5);  // ceil(270300 / 65535)
  EXPECT_EQ(d.rgb, rgb);
}

TEST(Png, ExactBlockBoundary) {
  // 21845 * 3 = 65535 pixel bytes per row, stride 65536; two rows = 131072
  // raw bytes -> blocks of 65535, 65535 and 2 bytes.
  const int w = 21845, h = 2;
  const std::vector<uint8_t> rgb = pattern_image(w, h);
  Decoded d;
  ASSERT_TRUE(decode_png(encode_png_rgb(rgb.data(), w, h), &d));
  EXPECT_EQ(d.stored_blocks, 3);
  EXPECT_EQ(d.rgb, rgb);
}

TEST(Png, RejectsInvalidInput) {
  const uint8_t px[3] = {1, 2, 3};
  EXPECT_TRUE(encode_png_rgb(nullptr, 1, 1).empty());
  EXPECT_TRUE(encode_png_rgb(px, 0, 1).empty());
  EXPECT_TRUE(encode_png_rgb(px, 1, -1).empty());
  EXPECT_FALSE(encode_png_rgb(px, 1, 1).empty());
}

// Cross-check with an independent decoder (python's zlib) when available.
TEST(Png, PythonZlibDecodes) {
  if (::access("/usr/bin/python3", X_OK) != 0)
    GTEST_SKIP() << "/usr/bin/python3 not found; skipping python zlib cross-check";
  const int w = 300, h = 300;
  const std::vector<uint8_t> rgb = pattern_image(w, h);
  const std::vector<uint8_t> png = encode_png_rgb(rgb.data(), w, h);
  const std::string path =
      ::testing::TempDir() + "md_png_python_" + std::to_string(::getpid()) + ".png";
  std::string err;
  ASSERT_TRUE(write_file_atomic(path, png, &err)) << err;

  const std::string script =
      "import sys,struct,zlib\n"
      "b=open(sys.argv[1],'rb').read()\n"
      "assert b[:8]==b'\\x89PNG\\r\\n\\x1a\\n'\n"
      "p=8;z=b''\n"
      "while p<len(b):\n"
      "  n,=struct.unpack('>I',b[p:p+4]);t=b[p+4:p+8];d=b[p+8:p+8+n]\n"
      "  assert struct.unpack('>I',b[p+8+n:p+12+n])[0]==zlib.crc32(t+d)\n"
      "  if t==b'IDAT': z+=d\n"
      "  p+=12+n\n"
      "r=zlib.decompress(z)\n"
      "print(len(r), zlib.crc32(r))\n";
  const std::string script_path = path + ".py";
  {
    FILE* f = std::fopen(script_path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(script.c_str(), f);
    std::fclose(f);
  }
  const std::string cmd = "/usr/bin/python3 '" + script_path + "' '" + path + "' 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buf[256];
  while (std::fgets(buf, sizeof(buf), pipe) != nullptr) output += buf;
  const int status = ::pclose(pipe);
  std::remove(path.c_str());
  std::remove(script_path.c_str());
  ASSERT_EQ(status, 0) << output;

  const std::vector<uint8_t> raw = expected_raw(rgb, w, h);
  const std::string expected = std::to_string(raw.size()) + " " +
                               std::to_string(bitwise_crc32(raw.data(), raw.size())) + "\n";
  EXPECT_EQ(output, expected);
}

// ---- write_file_atomic ----

bool path_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

TEST(Png, WriteFileAtomicRoundTrip) {
  const std::string path =
      ::testing::TempDir() + "md_png_atomic_" + std::to_string(::getpid()) + ".bin";
  const std::vector<uint8_t> bytes = {1, 2, 3, 4, 5};
  std::string err;
  ASSERT_TRUE(write_file_atomic(path, bytes, &err)) << err;
  // Overwrite in place with different content.
  const std::vector<uint8_t> bytes2 = {9, 8, 7};
  ASSERT_TRUE(write_file_atomic(path, bytes2, &err)) << err;
  FILE* f = std::fopen(path.c_str(), "rb");
  ASSERT_NE(f, nullptr);
  std::vector<uint8_t> got(16);
  got.resize(std::fread(got.data(), 1, got.size(), f));
  std::fclose(f);
  EXPECT_EQ(got, bytes2);
  EXPECT_FALSE(path_exists(path + ".tmp." + std::to_string(::getpid())));
  std::remove(path.c_str());
}

TEST(Png, WriteFileAtomicFailsCleanlyInMissingDirectory) {
  const std::string dir =
      ::testing::TempDir() + "md_png_no_such_dir_" + std::to_string(::getpid());
  ASSERT_FALSE(path_exists(dir));
  const std::string path = dir + "/out.png";
  std::string err;
  EXPECT_FALSE(write_file_atomic(path, {1, 2, 3}, &err));
  EXPECT_NE(err.find(path), std::string::npos) << err;
  EXPECT_NE(err.find(std::strerror(ENOENT)), std::string::npos) << err;
  EXPECT_FALSE(path_exists(path));
  EXPECT_FALSE(path_exists(path + ".tmp." + std::to_string(::getpid())));
  EXPECT_FALSE(path_exists(dir));
  // A null error pointer is allowed.
  EXPECT_FALSE(write_file_atomic(path, {1}, nullptr));
}

// ---- plot helpers (smoke tests) ----

TEST(Plot, FitViewSkipsNonFiniteAndNeverDegenerate) {
  const float nan = std::nanf(""), inf = INFINITY;
  const float pts[] = {1.0f, 2.0f, 0.0f, nan, 3.0f, -1.0f, inf, 5.0f, 2.0f, 2.0f, 9.0f};
  // Rows (x, y, z): (1, 2, 0) (nan, 3, -1) (inf, 5, 2). Non-finite values are
  // skipped per coordinate; the single finite x is widened to a nonzero range.
  const md::tools::View v = md::tools::fit_view(pts, 3, 3, 0.0f);
  EXPECT_LT(v.xmin, 1.0f);
  EXPECT_GT(v.xmax, 1.0f);
  EXPECT_EQ(v.ymin, 2.0f);
  EXPECT_EQ(v.ymax, 5.0f);
  const md::tools::View v1 = md::tools::fit_view(pts, 2, 1, 0.1f);  // dim 1: y = 0
  EXPECT_LT(v1.ymin, 0.0f);
  EXPECT_GT(v1.ymax, 0.0f);
  const md::tools::View v0 = md::tools::fit_view(nullptr, 0, 2, 0.1f);
  EXPECT_LT(v0.xmin, v0.xmax);
  EXPECT_LT(v0.ymin, v0.ymax);
}

TEST(Plot, ScatterAndStripProduceEncodableCanvases) {
  const float a[] = {0, 0, 1, 1, -1, 0.5f};
  const float b[] = {0.5f, 0.5f};
  const md::tools::View v = md::tools::fit_view(a, 3, 2, 0.1f);
  const md::tools::Canvas c = md::tools::scatter(v, 64, 48, a, 3, b, 1, 2);
  ASSERT_EQ(c.rgb.size(), size_t(64 * 48 * 3));
  Decoded d;
  ASSERT_TRUE(decode_png(encode_png_rgb(c.rgb.data(), c.w, c.h), &d));
  EXPECT_EQ(d.rgb, c.rgb);

  const std::vector<std::vector<float>> frames = {{0, 0, 1, 1}, {2, 2}, {}};
  const md::tools::Canvas s = md::tools::trajectory_strip(frames, 2, 50, {"t=999", "t=0"});
  EXPECT_EQ(s.w, 3 * 50 + 2);
  EXPECT_EQ(s.h, 50);
  EXPECT_EQ(s.rgb.size(), size_t(s.w) * s.h * 3);
}

}  // namespace
