// Which implementation of the compute kernels (GEMMs, activations, Adam/EMA)
// the runtime uses. Every build has the plain C++ "reference" variant; x86-64
// builds add "avx2" (AVX2 + FMA + F16C) and "avx512" (AVX-512F/DQ), picked by CPUID
// at run time so one binary runs on any x86-64; AArch64 builds and ARMv7
// builds with NEON + VFPv4 add "neon"; Armv8.1-M builds with Helium (MVE with
// floating point, e.g. -mcpu=cortex-m55) add "helium". All variants compute
// the same functions (GEMMs and activations to within float rounding of the
// reference, Adam and EMA bit for bit; helium's Adam is the scalar FPU loop,
// MVE having no vector division or square root).
//
// The first kernel call selects "auto": the variant named by the environment
// variable MD_KERNELS if it is set and available (hosted builds only; bare-
// metal builds never read the environment), else the fastest variant this CPU
// runs (avx512 > avx2 > reference on x86, neon on ARM, helium on Armv8.1-M
// with MVE).
//
// The selection is one pointer, set once: select a variant before starting
// threads that run the model, not while they run.
//
// Stack: the SIMD GEMMs pack panels of B on the stack: up to 64 KiB (avx512),
// 32 KiB (avx2), 16 KiB (neon), 4 KiB (helium; about 4.6 KiB per call in
// all). The reference uses none.
#pragma once
#include <stddef.h>

#include "microdiffusion/status.h"

namespace md {

// Name of the active variant ("reference", "avx2", "avx512", "neon" or "helium"),
// selecting "auto" first if nothing was selected yet.
const char* kernel_variant();

// True if `name` is compiled into this build and this CPU can run it. "auto"
// is always available.
bool kernel_variant_available(const char* name);

// Use the variant `name` from now on, or "auto" (see above). Fails with
// kInvalidArgument, and leaves the selection as it was, if the name is unknown
// or the variant is not available.
Status select_kernel_variant(const char* name);

// The names every build knows, available or not, for listing: index 0 ..
// kernel_variant_count() - 1; null past the end.
size_t kernel_variant_count();
const char* kernel_variant_name(size_t index);

}  // namespace md
