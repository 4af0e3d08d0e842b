// Per-ISA peak kernels for x86, included by peak_sse2.cpp, peak_avx2.cpp and
// peak_avx512.cpp, each with its PEAK_ISA and its own flags (bench/CMakeLists.txt).
#include <immintrin.h>

#include "peak.h"

#if PEAK_ISA == 512
#define V __m512
#define MADD(a, b, c) _mm512_fmadd_ps(a, b, c)
#define SET1 _mm512_set1_ps
#define LANES 16
#define STORE _mm512_storeu_ps
#define PEAK_NAME md_peak_avx512
#define PEAK_MANY_REGISTERS
#elif PEAK_ISA == 256
#define V __m256
#define MADD(a, b, c) _mm256_fmadd_ps(a, b, c)
#define SET1 _mm256_set1_ps
#define LANES 8
#define STORE _mm256_storeu_ps
#define PEAK_NAME md_peak_avx2
#else
#define V __m128
#define MADD(a, b, c) _mm_add_ps(_mm_mul_ps(a, b), c)
#define SET1 _mm_set1_ps
#define LANES 4
#define STORE _mm_storeu_ps
#define PEAK_NAME md_peak_sse2
#endif
#include "peak_impl.h"
