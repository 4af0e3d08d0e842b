// Arm semihosting: the debugger (here QEMU, -semihosting-config enable=on)
// services `bkpt 0xAB` with r0 = operation, r1 = argument. Two operations are
// enough for this firmware: print a string, and exit with a status.
#pragma once
#include <stdint.h>

namespace fw {

// SYS_WRITE0: print a NUL-terminated string on the host's stdout.
void write0(const char* s);
// SYS_EXIT (status 0) / SYS_EXIT_EXTENDED (any status): QEMU exits with it.
[[noreturn]] void exit(int status);

// Minimal formatting into a caller's buffer -- no printf, so nothing pulls in
// newlib's dtoa (which allocates with malloc).
struct Line {
  char buf[160];
  unsigned n = 0;
  Line& str(const char* s);
  Line& u32(uint32_t v);
  Line& hex32(uint32_t v);  // 0x%08x
  // Fixed point with `decimals` digits (at most 9), e.g. -1.234567890; nan/inf spelled out.
  Line& f32(float v, int decimals = 9);
  Line& f32_bits(float v);  // the float's IEEE-754 bits, 0x%08x
  void print();             // write0(buf) and start over
};

}  // namespace fw
