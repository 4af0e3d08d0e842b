// Minimal, dependency-free PNG writer (8-bit RGB, stored/uncompressed deflate).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace md::tools {

// Standard CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), compatible
// with zlib's crc32(): pass the previous result as `crc` to continue a
// running checksum (start with 0).
uint32_t png_crc32(const uint8_t* data, size_t n, uint32_t crc = 0);

// Adler-32 as used by the zlib container (starts at 1).
uint32_t adler32(const uint8_t* data, size_t n);

// Encodes a tightly packed, row-major, top-down RGB888 image (width*height*3
// bytes) as a PNG: IHDR (bit depth 8, color type 2), IDAT chunk(s) holding a
// zlib stream (header 0x78 0x01) of stored deflate blocks (<= 65535 bytes
// each, filter type 0 on every scanline), then IEND.
// Returns an empty vector if rgb is null or width/height are not positive.
std::vector<uint8_t> encode_png_rgb(const uint8_t* rgb, int width, int height);

// Writes `bytes` to `path + ".tmp.<pid>"`, fflush + fsync, fclose, then
// rename()s it over `path`. On any failure the temporary file is removed,
// `*error` (if non-null) receives a message naming the path and strerror(),
// and false is returned; `path` is never left half-written.
bool write_file_atomic(const std::string& path, const std::vector<uint8_t>& bytes,
                       std::string* error);

}  // namespace md::tools
