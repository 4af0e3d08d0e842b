// Little-endian fixed-width field access, independent of host byte order and
// alignment, for the weight and checkpoint formats.
#pragma once
#include <stdint.h>
#include <string.h>

namespace md {
namespace le {

inline uint32_t rd32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}
inline uint64_t rd64(const uint8_t* p) { return rd32(p) | (static_cast<uint64_t>(rd32(p + 4)) << 32); }
inline float rdf32(const uint8_t* p) {
  const uint32_t u = rd32(p);
  float f;
  memcpy(&f, &u, 4);
  return f;
}
inline double rdf64(const uint8_t* p) {
  const uint64_t u = rd64(p);
  double f;
  memcpy(&f, &u, 8);
  return f;
}
inline void wr32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline void wr64(uint8_t* p, uint64_t v) {
  wr32(p, static_cast<uint32_t>(v));
  wr32(p + 4, static_cast<uint32_t>(v >> 32));
}
inline void wrf32(uint8_t* p, float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  wr32(p, u);
}
inline void wrf64(uint8_t* p, double f) {
  uint64_t u;
  memcpy(&u, &f, 8);
  wr64(p, u);
}

}  // namespace le
}  // namespace md
