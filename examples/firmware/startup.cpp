// Cortex-M startup: the vector table, the reset handler (FPU on, stack painted,
// .data copied from flash, .bss zeroed, static constructors run, main called)
// and fault handlers that report over semihosting. Symbols come from
// boards/sections.ld.
#include <stdint.h>
#include <string.h>

#include "semihosting.h"
#include "stack_usage.h"

extern "C" {
extern uint32_t __stack_bottom, __stack_top;
extern uint32_t __data_load, __data_start, __data_end;
extern uint32_t __bss_start, __bss_end;
typedef void (*InitFn)();
extern InitFn __init_array_start[], __init_array_end[];

int main();
void Reset_Handler();
void md_fw_start();
}

namespace {

constexpr uint32_t kStackPaint = 0xA5C3A5C3u;  // what unused stack words hold (stack_usage.h)

[[noreturn]] void fault(const char* what) {
  // The faulting context is on the active stack; CFSR/HFSR say why.
  volatile uint32_t* const cfsr = reinterpret_cast<uint32_t*>(0xE000ED28);
  volatile uint32_t* const hfsr = reinterpret_cast<uint32_t*>(0xE000ED2C);
  fw::Line l;
  l.str("FAULT: ").str(what).str(" CFSR=").hex32(*cfsr).str(" HFSR=").hex32(*hfsr).str("\n").print();
  fw::exit(3);
}

void nmi() { fault("NMI"); }
void hard_fault() { fault("HardFault"); }
void mem_manage() { fault("MemManage"); }
void bus_fault() { fault("BusFault"); }
void usage_fault() { fault("UsageFault"); }
void secure_fault() { fault("SecureFault"); }
void unexpected() { fault("unexpected exception"); }

}  // namespace

// Entries 0..15 are the architecture's; no device interrupts are used.
using Vector = void (*)();
__attribute__((section(".vectors"), used)) const Vector g_vectors[16] = {
    reinterpret_cast<Vector>(&__stack_top),  // initial main stack pointer
    Reset_Handler,
    nmi,
    hard_fault,
    mem_manage,
    bus_fault,
    usage_fault,
    secure_fault,  // Armv8-M Mainline; reserved on Armv7-M
    nullptr, nullptr, nullptr,
    unexpected,  // SVCall
    unexpected,  // DebugMonitor
    nullptr,
    unexpected,  // PendSV
    unexpected,  // SysTick
};

// Naked: nothing may touch a floating-point register before CPACR grants
// access to CP10/CP11 (the FPU, and on Armv8.1-M also MVE/Helium).
extern "C" __attribute__((naked, noreturn)) void Reset_Handler() {
  __asm__ volatile(
      "ldr r0, =0xE000ED88\n"  // CPACR
      "ldr r1, [r0]\n"
      "orr r1, r1, #(0xF << 20)\n"  // CP10, CP11: full access
      "str r1, [r0]\n"
      "dsb\n"
      "isb\n"
      "ldr r0, =__stack_top\n"
      "mov sp, r0\n"
      "b md_fw_start\n");
}

extern "C" __attribute__((noreturn, used)) void md_fw_start() {
  // Word copies through volatile pointers, so the compiler cannot turn these
  // loops into calls that might assume an initialised C library. First the
  // stack below this frame gets the paint that fw::stack_used_bytes() looks for.
  uint32_t* sp;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  for (volatile uint32_t* p = &__stack_bottom; p < sp;) *p++ = kStackPaint;
  const uint32_t* src = &__data_load;
  for (volatile uint32_t* dst = &__data_start; dst < &__data_end;) *dst++ = *src++;
  for (volatile uint32_t* dst = &__bss_start; dst < &__bss_end;) *dst++ = 0;
  for (InitFn* f = __init_array_start; f < __init_array_end; ++f) (*f)();
  fw::exit(main());
}

namespace fw {

uint32_t stack_used_bytes() {
  const volatile uint32_t* p = &__stack_bottom;
  while (p < &__stack_top && *p == kStackPaint) ++p;
  return static_cast<uint32_t>(&__stack_top - p) * sizeof(uint32_t);
}

uint32_t stack_size_bytes() { return static_cast<uint32_t>(&__stack_top - &__stack_bottom) * sizeof(uint32_t); }

}  // namespace fw
