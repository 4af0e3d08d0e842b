#include "semihosting.h"

#include <string.h>

namespace fw {
namespace {

constexpr uint32_t kSysWrite0 = 0x04;
constexpr uint32_t kSysExit = 0x18;
constexpr uint32_t kSysExitExtended = 0x20;
constexpr uint32_t kAdpStoppedApplicationExit = 0x20026;

uint32_t semihost(uint32_t op, const void* arg) {
  register uint32_t r0 __asm__("r0") = op;
  register const void* r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

}  // namespace

void write0(const char* s) { semihost(kSysWrite0, s); }

void exit(int status) {
  if (status == 0) {
    // The 32-bit SYS_EXIT takes the reason code itself; ApplicationExit is status 0.
    semihost(kSysExit, reinterpret_cast<const void*>(kAdpStoppedApplicationExit));
  } else {
    const uint32_t block[2] = {kAdpStoppedApplicationExit, static_cast<uint32_t>(status)};
    semihost(kSysExitExtended, block);
  }
  for (;;) __asm__ volatile("wfi");  // no debugger listening: park here
}

Line& Line::str(const char* s) {
  while (*s && n + 1 < sizeof(buf)) buf[n++] = *s++;
  buf[n] = 0;
  return *this;
}

Line& Line::u32(uint32_t v) {
  char tmp[11];
  int k = 0;
  do {
    tmp[k++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  char out[11];
  for (int i = 0; i < k; ++i) out[i] = tmp[k - 1 - i];
  out[k] = 0;
  return str(out);
}

Line& Line::hex32(uint32_t v) {
  char out[11] = "0x";
  for (int i = 0; i < 8; ++i) out[2 + i] = "0123456789abcdef"[(v >> (28 - 4 * i)) & 0xF];
  out[10] = 0;
  return str(out);
}

Line& Line::f32_bits(float v) {
  uint32_t bits;
  memcpy(&bits, &v, sizeof(bits));
  return hex32(bits);
}

Line& Line::f32(float v, int decimals) {
  uint32_t bits;
  memcpy(&bits, &v, sizeof(bits));
  const bool negative = bits >> 31;
  if ((bits & 0x7F800000u) == 0x7F800000u) return str((bits & 0x7FFFFFu) ? "nan" : negative ? "-inf" : "inf");
  if (decimals < 0) decimals = 0;
  if (decimals > 9) decimals = 9;
  // |v| in double is exact; split into integer part and a rounded fraction.
  const double a = negative ? -static_cast<double>(v) : static_cast<double>(v);
  if (a >= 4294967295.0) return str(negative ? "-big" : "big");
  uint32_t scale = 1;
  for (int i = 0; i < decimals; ++i) scale *= 10;
  uint32_t ip = static_cast<uint32_t>(a);
  double frac = (a - ip) * scale + 0.5;
  uint32_t fp = static_cast<uint32_t>(frac);
  if (fp >= scale) {  // rounding carried into the integer part
    fp -= scale;
    ++ip;
  }
  if (negative) str("-");
  u32(ip);
  if (decimals > 0) {
    char digits[10];
    for (int i = decimals - 1; i >= 0; --i) {
      digits[i] = static_cast<char>('0' + fp % 10);
      fp /= 10;
    }
    digits[decimals] = 0;
    str(".").str(digits);
  }
  return *this;
}

void Line::print() {
  write0(buf);
  n = 0;
  buf[0] = 0;
}

}  // namespace fw
