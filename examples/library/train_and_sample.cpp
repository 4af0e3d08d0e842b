// The library API end to end: train the tutorial model on the swiss roll in a
// fixed arena, then sample from the EMA weights in another. No heap in the
// runtime; this example's std::vector buffers stand in for static arrays.
#include <cstdio>
#include <vector>

#include "microdiffusion/microdiffusion.h"

int main() {
  constexpr md::ModelDesc desc = md::preset_tutorial(/*D=*/2, /*T=*/100, /*hidden=*/64);
  constexpr uint32_t kBatch = 128;
  static unsigned char train_arena[md::training_arena_bytes(desc, kBatch)];  // sized at compile time

  std::vector<float> data(2 * 10000);
  md::make_dataset(md::Dataset::kSwissRoll, /*seed=*/1, 0, 10000, data.data());

  md::Arena arena(train_arena, sizeof(train_arena));
  md::TrainConfig config;
  config.batch = kBatch;
  config.lr = 2e-3;
  md::Trainer trainer;
  md::Status s = trainer.init(desc, md::linear_schedule(desc.T), config, arena);
  if (!s.ok()) return std::fprintf(stderr, "init: %s\n", s.message), 1;
  trainer.init_parameters(/*seed=*/1);
  float loss = 0;
  for (int step = 0; step < 2000 && s.ok(); ++step) s = trainer.step(data.data(), 10000, &loss);
  if (!s.ok()) return std::fprintf(stderr, "train: %s\n", s.message), 1;
  std::printf("final loss %.4f\n", loss);

  static unsigned char sample_arena[md::sampling_arena_bytes(desc, 64)];
  md::Arena sarena(sample_arena, sizeof(sample_arena));
  md::Sampler sampler;
  s = sampler.init(trainer.model(/*use_ema=*/true), md::linear_schedule(desc.T), md::Variance::kFixedSmall, 64, sarena);
  float samples[8 * 2];
  if (s.ok()) s = sampler.sample(/*seed=*/7, /*first=*/0, /*n=*/8, samples);
  if (!s.ok()) return std::fprintf(stderr, "sample: %s\n", s.message), 1;
  for (int i = 0; i < 8; ++i) std::printf("%+.4f, %+.4f\n", samples[2 * i], samples[2 * i + 1]);
  return 0;
}
