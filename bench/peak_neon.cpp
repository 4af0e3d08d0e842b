// Peak kernel for ARM NEON builds (bench/CMakeLists.txt adds it on ARM).
#include "peak.h"
#if defined(__ARM_NEON) && (defined(__aarch64__) || defined(__ARM_FEATURE_FMA))
#include <arm_neon.h>
#define V float32x4_t
#define MADD(a, b, c) vfmaq_f32(c, a, b)
#define SET1 vdupq_n_f32
#define LANES 4
#define STORE vst1q_f32
#define PEAK_NAME md_peak_neon
#if defined(__aarch64__)
#define PEAK_MANY_REGISTERS
#endif
#include "peak_impl.h"
#else
uint64_t md_peak_neon(int, uint64_t, float*) { return 0; }
#endif
