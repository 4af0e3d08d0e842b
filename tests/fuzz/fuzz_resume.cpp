// libFuzzer target: md::Trainer::restore_checkpoint on arbitrary bytes (what
// `microdiffusion train --resume FILE` reads), for one fixed tiny trainer.
// A checkpoint it accepts must leave a trainer that steps without a crash
// (a non-finite restored state gives an error status, not a crash), and
// stepping after a refused one must not crash either.
//
// The seed (corpus/resume/) is a real checkpoint of exactly this trainer,
// written by this program when run with MD_FUZZ_WRITE_SEED=DIR:
//   MD_FUZZ_WRITE_SEED=tests/fuzz/corpus/resume build/fuzz/fuzz_resume -runs=0
// Build and run: .ci/fuzz.sh (docs/BAD_INPUT.md).
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "microdiffusion/microdiffusion.h"
#include "fuzz_check.h"

namespace {

constexpr uint32_t kDataCrc = 7;
constexpr uint32_t kRows = 64;

const md::ModelDesc kDesc = md::preset_tutorial(2, 4, 4);

md::TrainConfig config() {
  md::TrainConfig c;
  c.batch = 8;
  c.seed = 3;
  c.warmup_steps = 2;
  c.total_steps = 20;
  return c;
}

struct Fixture {
  std::vector<unsigned char> arena_bytes = std::vector<unsigned char>(md::training_arena_bytes(kDesc, 8) + 64);
  std::vector<float> data = std::vector<float>(2 * kRows);
  Fixture() { md::make_dataset(md::Dataset::kMoons, 3, 0, kRows, data.data()); }
  // A fresh trainer for every input: restore may have written part of the state.
  bool init(md::Trainer* t, md::Arena* a) {
    *a = md::Arena(arena_bytes.data(), arena_bytes.size());
    if (!t->init(kDesc, md::linear_schedule(4), config(), *a).ok()) return false;
    t->init_parameters(3);
    return true;
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

void write_seed(const char* dir) {
  md::Arena arena;
  md::Trainer t;
  FUZZ_CHECK(fixture().init(&t, &arena));
  float loss = 0.0f;
  for (int i = 0; i < 3; ++i) FUZZ_CHECK(t.step(fixture().data.data(), kRows, &loss).ok());
  std::vector<unsigned char> bytes(t.checkpoint_size());
  size_t n = 0;
  FUZZ_CHECK(t.write_checkpoint(md::WeightsMeta(), kDataCrc, bytes.data(), bytes.size(), &n).ok());
  const std::string path = std::string(dir) + "/tutorial_h4_T4_step3.ckpt";
  std::FILE* f = std::fopen(path.c_str(), "wb");
  FUZZ_CHECK(f != nullptr && std::fwrite(bytes.data(), 1, n, f) == n && std::fclose(f) == 0);
  std::fprintf(stderr, "fuzz_resume: wrote %s (%zu bytes)\n", path.c_str(), n);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("MD_FUZZ_WRITE_SEED")) write_seed(dir);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The CLI reads files into 64-byte aligned buffers; so does this.
  static std::vector<unsigned char> buffer;
  buffer.assign(size + 64, 0);
  unsigned char* p = buffer.data() + (64 - reinterpret_cast<uintptr_t>(buffer.data()) % 64) % 64;
  if (size) memcpy(p, data, size);

  md::Arena arena;
  md::Trainer t;
  FUZZ_CHECK(fixture().init(&t, &arena));
  const md::Status s = t.restore_checkpoint(p, size, kDataCrc);
  if (s.ok())
    FUZZ_CHECK(t.steps_done() < (1ull << 63));
  else
    FUZZ_CHECK(s.message != nullptr && s.message[0] != 0);
  // Any status, no crash: after an accepted restore, and after a refused one
  // (the CLI exits, but a library caller that steps on anyway must not crash,
  // whatever part of the state the refused restore had written).
  float loss = 0.0f;
  (void)t.step(fixture().data.data(), kRows, &loss);
  return 0;
}
