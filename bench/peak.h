// Peak FP32 throughput kernels for bench_kernels.cpp: `chains` independent
// dependency chains of vector multiply-adds, each ISA in its own file built
// with that ISA's flags (bench/CMakeLists.txt). Each returns the FLOPs done
// (2 per lane per multiply-add) and stores its result in *sink.
#pragma once
#include <stdint.h>

uint64_t md_peak_sse2(int chains, uint64_t iters, float* sink);    // mulps + addps (what the reference gets)
uint64_t md_peak_avx2(int chains, uint64_t iters, float* sink);    // vfmadd ymm
uint64_t md_peak_avx512(int chains, uint64_t iters, float* sink);  // vfmadd zmm
uint64_t md_peak_neon(int chains, uint64_t iters, float* sink);    // vfmaq_f32
