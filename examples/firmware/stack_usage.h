// Stack high-water mark by painting: the reset handler (startup.cpp) fills the
// main stack below its own frame with a pattern before anything else runs;
// stack_used_bytes() finds the deepest word that no longer holds it. That is
// the most stack any code has written since reset (a frame's slots that were
// reserved but never written do not count; no interrupts run here, so no
// exception frames are missed).
#pragma once
#include <stdint.h>

namespace fw {

uint32_t stack_used_bytes();  // from the top of the stack down to the deepest written word
uint32_t stack_size_bytes();  // the linker script's STACK_SIZE

}  // namespace fw
