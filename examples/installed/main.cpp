// A program outside the source tree, built against an installed microdiffusion
// (cmake --install): CMakeLists.txt finds it with find_package, Makefile with
// pkg-config. Loads a weight file (argv[1], e.g. weights/swissroll.mdw) and
// prints 8 samples, one "x, y" per line.
#include <cstdio>
#include <vector>

#include <microdiffusion/microdiffusion.h>

namespace {
constexpr int kSamples = 8;
constexpr md::ModelDesc kDesc = md::preset_default();  // what weights/swissroll.mdw holds
alignas(64) unsigned char arena_bytes[md::sampling_arena_bytes(kDesc, kSamples)];
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return std::fprintf(stderr, "usage: %s WEIGHTS.mdw\n", argv[0]), 2;
  FILE* f = std::fopen(argv[1], "rb");
  if (!f) return std::fprintf(stderr, "cannot open %s\n", argv[1]), 1;
  std::vector<float> storage(1 << 20);  // float-aligned buffer for the file bytes
  const size_t n = std::fread(storage.data(), 1, storage.size() * sizeof(float), f);
  const bool whole = std::feof(f) && !std::ferror(f);
  std::fclose(f);
  if (!whole) return std::fprintf(stderr, "cannot read %s (or larger than 4 MiB)\n", argv[1]), 1;

  md::LoadedWeights w;
  md::Status s = md::load_weights(reinterpret_cast<const unsigned char*>(storage.data()), n, &w);
  if (!s.ok()) return std::fprintf(stderr, "%s: %s\n", argv[1], s.message), 1;
  md::Arena arena(arena_bytes, sizeof(arena_bytes));
  md::Sampler sampler;
  s = sampler.init(w.model, w.schedule, w.meta.variance, kSamples, arena);
  if (!s.ok()) return std::fprintf(stderr, "sampler: %s\n", s.message), 1;
  float out[kSamples * 2];
  s = sampler.sample(/*seed=*/42, /*first index=*/0, kSamples, out);
  if (!s.ok()) return std::fprintf(stderr, "sample: %s\n", s.message), 1;
  for (int i = 0; i < kSamples; ++i) std::printf("%+.6f, %+.6f\n", out[2 * i], out[2 * i + 1]);
  return 0;
}
