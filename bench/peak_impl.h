// Included by peak_<isa>.cpp with V, MADD(a, b, c) = a * b + c, SET1, LANES,
// STORE and PEAK_NAME defined. Chains are template arguments so each count is
// a fully unrolled loop with its accumulators in registers.
template <int C>
static uint64_t peak_chains(uint64_t iters, float* sink) {
  // Opaque constants: the compiler must not fold the chains (1 is a fixed
  // point of x * 0.9999999f + 1e-7f in float).
  volatile float one = 1.0f, mul = 0.9999999f, add = 1e-7f;
  V acc[C];
  for (int j = 0; j < C; ++j) acc[j] = SET1(one + 0.001f * j);
  const V m = SET1(mul), c = SET1(add);
  for (uint64_t i = 0; i < iters; ++i) {
    // Fully unrolled at every count: GCC 12 leaves 24 chains a loop, which
    // keeps the accumulators in memory (24 chains then measured 77 GFLOP/s
    // against 216 for 16 on AVX-512).
#pragma GCC unroll 32
    for (int j = 0; j < C; ++j) acc[j] = MADD(acc[j], m, c);
  }
  V s = acc[0];
  for (int j = 1; j < C; ++j) s = MADD(acc[j], SET1(1.0f), s);
  STORE(sink, s);
  return iters * C * LANES * 2ull;
}

uint64_t PEAK_NAME(int chains, uint64_t iters, float* sink) {
  switch (chains) {
    case 4: return peak_chains<4>(iters, sink);
    case 8: return peak_chains<8>(iters, sink);
    case 10: return peak_chains<10>(iters, sink);
    case 12: return peak_chains<12>(iters, sink);
#ifdef PEAK_MANY_REGISTERS
    case 16: return peak_chains<16>(iters, sink);
    case 24: return peak_chains<24>(iters, sink);
#endif
    default: return 0;
  }
}
