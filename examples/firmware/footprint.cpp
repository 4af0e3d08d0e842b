// Footprint probe: the smallest useful sampling application, built once per
// model, weight precision and batch (examples/firmware/CMakeLists.txt) so that
// footprint_table.sh can measure each combination (FOOTPRINT.md):
//
//  * binds the weight file in flash with md::load_weights (in place), in a
//    function of its own: md::LoadedWeights (about 2 KB) lives on the stack
//    only until the sampler has copied the model out of it;
//  * samples one batch (seed 42) with an md::Sampler whose arena is exactly
//    md::sampling_arena_bytes(desc, batch), a static array in .bss, set up
//    by the DDPM-only Sampler::init (variance, no SamplerConfig), which links
//    no other sampler, spacing, clipping or zero-SNR code. The
//    sampler is constructed in .bss storage at run time: a plain global
//    md::Sampler would go to .data (its members have non-zero defaults), which
//    costs its size in flash as well as in RAM;
//  * prints sample 0, the arena, the stack high-water mark (the stack is
//    painted at reset, stack_usage.h) and the SysTick ticks per denoising
//    step, turned into instructions with a calibration loop of known length.
//
// The instruction counts mean something only under qemu-system-arm -icount
// shift=0, where the virtual clock (and SysTick) advances 1 ns per executed
// instruction; they are instructions, not cycles (an MVE instruction counts
// as one, memory timing is not modelled). SysTick is read at every step (the
// sampler's step observer), so a step may take up to 2^24 ticks.
//
// Build-time choices (compile definitions):
//   MD_FOOTPRINT_MODEL_DEFAULT=1  the `default` network (preset_default(2, 200, 128),
//                                 weights/swissroll.mdw); else the firmware's
//                                 tutorial network (preset_tutorial(2, 100, 32), model.mdw)
//   MD_FOOTPRINT_BATCH=N          the sampler's batch (default 1); N samples are drawn
// model_weights.h comes from `microdiffusion embed` of the f32, f16 or int8 file.
#include <stddef.h>
#include <stdint.h>

#include <new>

#include "microdiffusion/microdiffusion.h"
// Angle brackets: the build picks the directory (a quoted include would find
// the committed examples/firmware/model_weights.h next to this file first).
#include <model_weights.h>
#include "semihosting.h"
#include "stack_usage.h"

#ifndef MD_FIRMWARE_BOARD
#define MD_FIRMWARE_BOARD "unknown board"
#endif
#ifndef MD_FOOTPRINT_BATCH
#define MD_FOOTPRINT_BATCH 1
#endif

namespace {

#if defined(MD_FOOTPRINT_MODEL_DEFAULT) && MD_FOOTPRINT_MODEL_DEFAULT
constexpr md::ModelDesc kDesc = md::preset_default(/*D=*/2, /*T=*/200, /*hidden=*/128);
constexpr const char* kModelName = "default";
#else
constexpr md::ModelDesc kDesc = md::preset_tutorial(/*D=*/2, /*T=*/100, /*hidden=*/32);
constexpr const char* kModelName = "tutorial";
#endif
static_assert(md::parameter_count(kDesc) == md_model_parameters, "model_weights.h does not hold this network");

constexpr uint32_t kBatch = MD_FOOTPRINT_BATCH;
static_assert(kBatch >= 1, "batch must be at least 1");
constexpr uint64_t kSeed = 42;

alignas(64) uint8_t g_arena[md::sampling_arena_bytes(kDesc, kBatch)];
float g_samples[kBatch * kDesc.D];
alignas(md::Sampler) uint8_t g_sampler_storage[sizeof(md::Sampler)];

int failed(const char* what, const md::Status& s) {
  fw::Line().str("error: ").str(what).str(": ").str(s.message).str("\n").print();
  return 1;
}

// Binds the weights and initialises the sampler; LoadedWeights dies with this frame.
__attribute__((noinline)) md::Status bind_and_init(md::Sampler* sampler, md::Arena* arena) {
  md::LoadedWeights w;
  md::Status s = md::load_weights(md_model, md_model_len, &w);
  if (!s.ok()) return s;
  return sampler->init(w.model, w.schedule, w.meta.variance, kBatch, *arena);
}

// ---- SysTick: 24 bits, counting down at the processor clock ------------------------

volatile uint32_t* const kSystCsr = reinterpret_cast<volatile uint32_t*>(0xE000E010);
volatile uint32_t* const kSystRvr = reinterpret_cast<volatile uint32_t*>(0xE000E014);
volatile uint32_t* const kSystCvr = reinterpret_cast<volatile uint32_t*>(0xE000E018);
constexpr uint32_t kSystMask = 0xFFFFFFu;

void systick_start() {
  *kSystCsr = 0;
  *kSystRvr = kSystMask;
  *kSystCvr = 0;     // clears the count and COUNTFLAG; reloads on the next tick
  *kSystCsr = 0x5u;  // enable, processor clock, no interrupt
}

// Ticks per step, summed: the observer runs before the first step and after
// each one; the difference of two readings is taken modulo 2^24. It costs a
// few dozen instructions per step, which the counts include.
struct StepClock {
  uint32_t last = 0;
  uint32_t ticks = 0;  // 2^32 ticks: over 10^11 instructions
  uint32_t steps = 0;
  bool started = false;
};

void on_step(void* user, int32_t /*t*/, const float* /*x*/, uint32_t /*n*/, uint32_t /*first*/) {
  const uint32_t now = *kSystCvr;
  StepClock& c = *static_cast<StepClock*>(user);
  if (c.started) {
    c.ticks += (c.last - now) & kSystMask;
    ++c.steps;
  }
  c.last = now;
  c.started = true;
}

// round(num / den) for a 64-bit num and a nonzero 32-bit den, by shift and
// subtract: the ratios below in integers, without libgcc's 64-bit division
// (__aeabi_uldivmod) or soft-float double arithmetic in the image.
uint32_t div_round(uint64_t num, uint32_t den) {
  num += den / 2;
  uint64_t q = 0, r = 0;
  for (int b = 63; b >= 0; --b) {
    r = (r << 1) | ((num >> b) & 1u);
    if (r >= den) {
      r -= den;
      q |= 1ull << b;
    }
  }
  return static_cast<uint32_t>(q);
}

}  // namespace

int main() {
  fw::Line l;
  l.str("footprint on " MD_FIRMWARE_BOARD ": ").str(kModelName).str(" model, batch ").u32(kBatch).str(", kernels ");
  l.str(md::kernel_variant()).str("\n").print();

  md::Sampler* sampler = new (g_sampler_storage) md::Sampler;  // placement: no heap
  md::Arena arena(g_arena, sizeof(g_arena));
  md::Status s = bind_and_init(sampler, &arena);
  if (!s.ok()) return failed("binding the weights and initialising the sampler", s);

  StepClock clock;
  systick_start();
  s = sampler->sample(kSeed, 0, kBatch, g_samples, on_step, &clock);
  if (!s.ok()) return failed("Sampler::sample", s);

  // Calibration: a loop of a known instruction count (2 per iteration).
  constexpr uint32_t kLoopInstructions = 2000000;
  systick_start();
  uint32_t k = kLoopInstructions / 2;
  __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(k) : : "cc");
  const uint32_t ticks_loop = kSystMask - *kSystCvr;
  const uint32_t used_stack = fw::stack_used_bytes();
  if (used_stack == 0 || used_stack >= fw::stack_size_bytes()) {  // no paint found, or none left
    fw::Line().str("error: stack high-water mark ").u32(used_stack).str(": no paint found, or none left\n").print();
    return 1;
  }

  l.str("sample 0: ").f32(g_samples[0]).str(", ").f32(g_samples[1]);
  l.str(" [").f32_bits(g_samples[0]).str(" ").f32_bits(g_samples[1]).str("]\n").print();
  l.str("arena: ").u32(static_cast<uint32_t>(sizeof(g_arena))).str(" bytes (md::sampling_arena_bytes), ");
  l.u32(static_cast<uint32_t>(arena.high_water())).str(" used\n").print();
  l.str("objects: md::Sampler ").u32(sizeof(md::Sampler)).str(" bytes, md::LoadedWeights ");
  l.u32(sizeof(md::LoadedWeights)).str(" bytes\n").print();
  l.str("stack: ").u32(used_stack).str(" of ").u32(fw::stack_size_bytes()).str(" bytes used (high-water mark)\n");
  l.print();
  const uint32_t steps = clock.steps ? clock.steps : 1;
  // ticks * 2e6 < 2^53 and ticks_loop * steps < 2^32 (about 2e6 ticks times at most 2^11 steps).
  const uint32_t per_step =
      ticks_loop ? div_round(static_cast<uint64_t>(clock.ticks) * kLoopInstructions, ticks_loop * steps) : 0;
  l.str("systick: ").u32(clock.steps).str(" steps, ").u32(div_round(clock.ticks, steps));
  l.str(" ticks per step; ").u32(kLoopInstructions).str("-instruction loop ").u32(ticks_loop).str(" ticks\n").print();
  l.str("instructions per denoising step (valid under qemu -icount shift=0 only): ");
  l.u32(per_step).str("\n").print();
  l.str("footprint: ok\n").print();
  return 0;
}
