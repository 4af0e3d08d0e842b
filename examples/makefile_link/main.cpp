// A program built against libmicrodiffusion.a with a plain Makefile: train a
// small denoiser on the two-moons data in a static arena, then draw a few
// samples. Everything the runtime needs comes from the two static buffers.
#include <stdio.h>

#include "microdiffusion/microdiffusion.h"

namespace {

constexpr md::ModelDesc kDesc = md::preset_tutorial(/*D=*/2, /*T=*/100, /*hidden=*/64);
constexpr uint32_t kBatch = 128;
constexpr uint32_t kPoints = 4096;
constexpr uint32_t kSamples = 5;

alignas(64) unsigned char g_train_arena[md::training_arena_bytes(kDesc, kBatch)];
alignas(64) unsigned char g_sample_arena[md::sampling_arena_bytes(kDesc, kSamples)];
float g_data[kPoints * 2];
md::Trainer g_trainer;

int fail(const char* what, const md::Status& s) {
  fprintf(stderr, "%s: %s (%s)\n", what, s.message, md::status_code_name(s.code));
  return 1;
}

}  // namespace

int main() {
  md::make_dataset(md::Dataset::kMoons, /*seed=*/0, 0, kPoints, g_data);
  const md::ScheduleDesc schedule = md::linear_schedule(kDesc.T);

  md::Arena train_arena(g_train_arena, sizeof(g_train_arena));
  md::TrainConfig cfg;
  cfg.batch = kBatch;
  cfg.lr = 2e-3;
  cfg.total_steps = 2000;
  cfg.warmup_steps = 100;
  cfg.grad_clip_norm = 1.0;
  md::Status s = g_trainer.init(kDesc, schedule, cfg, train_arena);
  if (!s.ok()) return fail("Trainer::init", s);
  g_trainer.init_parameters(/*seed=*/0);
  float loss = 0.0f;
  for (uint32_t step = 1; step <= cfg.total_steps; ++step) {
    s = g_trainer.step(g_data, kPoints, &loss);
    if (!s.ok()) return fail("Trainer::step", s);
    if (step % 500 == 0) printf("step %3u  loss %.4f\n", step, static_cast<double>(loss));
  }

  md::Arena sample_arena(g_sample_arena, sizeof(g_sample_arena));
  md::Sampler sampler;
  s = sampler.init(g_trainer.model(/*use_ema=*/true), schedule, md::Variance::kFixedSmall, kSamples, sample_arena);
  if (!s.ok()) return fail("Sampler::init", s);
  float out[kSamples * 2];
  s = sampler.sample(/*seed=*/1, 0, kSamples, out);
  if (!s.ok()) return fail("Sampler::sample", s);
  for (uint32_t i = 0; i < kSamples; ++i)
    printf("sample %u: %+.4f, %+.4f\n", i, static_cast<double>(out[2 * i]), static_cast<double>(out[2 * i + 1]));
  printf("arenas: training %zu bytes, sampling %zu bytes (static, sized at compile time)\n",
         sizeof(g_train_arena), sizeof(g_sample_arena));
  return 0;
}
