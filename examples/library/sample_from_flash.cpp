// Sampling from a weight file in place: the README's library example, plus a
// main() that reads weights/swissroll.mdw (firmware would use a const array).
#include <cstdio>
#include <vector>

#include "microdiffusion/microdiffusion.h"

constexpr md::ModelDesc kDesc = md::preset_default();  // what weights/swissroll.mdw holds
alignas(64) static unsigned char arena_bytes[md::sampling_arena_bytes(kDesc, 16)];

int sample_points(const unsigned char* mdw, size_t mdw_len, float* out /* 16 x 2 */) {
  md::LoadedWeights w;
  md::Status s = md::load_weights(mdw, mdw_len, &w);  // validates, binds in place
  if (!s.ok()) return -1;                              // s.message says why
  md::Arena arena(arena_bytes, sizeof(arena_bytes));
  md::Sampler sampler;
  s = sampler.init(w.model, w.schedule, w.meta.variance, /*batch=*/16, arena);
  if (!s.ok()) return -2;                              // kOutOfMemory: s.needed, s.available
  s = sampler.sample(/*seed=*/42, /*first index=*/0, /*n=*/16, out);
  return s.ok() ? 0 : -3;
}

int main(int argc, char** argv) {
  const char* path = argc > 1 ? argv[1] : "weights/swissroll.mdw";
  FILE* f = std::fopen(path, "rb");
  if (!f) return std::fprintf(stderr, "cannot open %s\n", path), 1;
  std::vector<float> storage(1 << 20);  // float-aligned buffer for the file bytes
  const size_t n = std::fread(storage.data(), 1, storage.size() * sizeof(float), f);
  std::fclose(f);
  float out[16 * 2];
  const int rc = sample_points(reinterpret_cast<const unsigned char*>(storage.data()), n, out);
  if (rc != 0) return std::fprintf(stderr, "sampling failed (%d)\n", rc), 1;
  for (int i = 0; i < 16; ++i) std::printf("%+.4f, %+.4f\n", out[2 * i], out[2 * i + 1]);
  return 0;
}
