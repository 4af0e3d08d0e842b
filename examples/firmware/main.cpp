// microdiffusion on a Cortex-M: sample from a model kept in flash, then train
// it for a few steps on the device. No heap (the link refuses malloc), no
// exceptions, no printf: the runtime works in static arenas sized at compile
// time, and results go out over semihosting.
//
// The weights are model.mdw, turned into a const array by
//   microdiffusion embed model.mdw --out model_weights.h --name md_model
#include <stddef.h>
#include <stdint.h>

#include "microdiffusion/microdiffusion.h"
#include "model_weights.h"
#include "semihosting.h"

#ifndef MD_FIRMWARE_BOARD
#define MD_FIRMWARE_BOARD "unknown board"
#endif

namespace {

// The model the firmware is built for: the CLI's `--model tutorial --hidden 32`
// (T = 100). The arena sizes below are computed from this at compile time, and
// main() checks that the weight file in flash describes the same network.
constexpr md::ModelDesc kDesc = md::preset_tutorial(/*D=*/2, /*T=*/100, /*hidden=*/32);
static_assert(md::parameter_count(kDesc) == md_model_parameters,
              "model_weights.h does not hold a tutorial model with hidden 32 and T 100");

constexpr uint64_t kSampleSeed = 42;  // host check: microdiffusion sample --n 8 --seed 42
constexpr uint32_t kSamples = 8;
constexpr uint32_t kSampleBatch = 8;

constexpr uint32_t kTrainBatch = 8;
constexpr uint32_t kTrainSteps = 5;
constexpr uint32_t kTrainPoints = 256;

// One arena, used by the sampler and then by the trainer: a fixed RAM budget
// that the compiler checks against what the runtime will ask for.
#ifdef MD_FIRMWARE_SAMPLE_ONLY
constexpr size_t kArenaBytes = 12 * 1024;
#else
constexpr size_t kArenaBytes = 320 * 1024;  // training needs ~250 KiB at batch 8
static_assert(kArenaBytes >= md::training_arena_bytes(kDesc, kTrainBatch),
              "arena too small for training at this batch");
#endif
alignas(64) uint8_t g_arena[kArenaBytes];
static_assert(sizeof(g_arena) >= md::sampling_arena_bytes(kDesc, kSampleBatch),
              "arena too small for sampling at this batch");
// The figure `microdiffusion embed` wrote into the header (batch 1), for code
// that cannot evaluate md::sampling_arena_bytes itself (C, other build systems).
static_assert(sizeof(g_arena) >= md_model_sampling_arena_bytes_batch1, "arena too small for the model");

float g_samples[kSamples * 2];
md::Sampler g_sampler;
#ifndef MD_FIRMWARE_SAMPLE_ONLY
float g_train_data[kTrainPoints * 2];
md::Trainer g_trainer;
#endif

bool same_network(const md::ModelDesc& a, const md::ModelDesc& b) {
  if (a.D != b.D || a.T != b.T || a.n_layers != b.n_layers) return false;
  for (uint32_t l = 0; l < a.n_layers; ++l) {
    const md::LayerDesc& x = a.layers[l];
    const md::LayerDesc& y = b.layers[l];
    if (x.kind != y.kind || x.in != y.in || x.out != y.out || x.act != y.act || x.x_raw != y.x_raw ||
        x.x_sin_dim != y.x_sin_dim || x.t_sin_dim != y.t_sin_dim || x.x_scale != y.x_scale)
      return false;
  }
  return true;
}

int failed(const char* what, const md::Status& s) {
  fw::Line l;
  l.str("error: ").str(what).str(": ").str(md::status_code_name(s.code)).str(": ").str(s.message);
  l.str(" (").u32(static_cast<uint32_t>(s.needed)).str(", ").u32(static_cast<uint32_t>(s.available)).str(")\n");
  l.print();
  return 1;
}

}  // namespace

int main() {
  fw::Line l;
  l.str("microdiffusion firmware on " MD_FIRMWARE_BOARD "\n").print();

  // Bind the weights in place: validated (CRCs, sizes, finite values), not copied.
  md::LoadedWeights w;
  md::Status s = md::load_weights(md_model, md_model_len, &w);
  if (!s.ok()) return failed("load_weights", s);
  if (!same_network(w.model.desc, kDesc)) {
    l.str("error: the weight file's network is not the one this firmware was built for\n").print();
    return 1;
  }
  l.str("model: D=").u32(w.model.desc.D).str(" T=").u32(w.model.desc.T).str(", ").u32(w.model.desc.n_layers);
  l.str(" layers, ").u32(md::parameter_count(w.model.desc)).str(" parameters, ").u32(md_model_len);
  l.str(" bytes in flash at ").hex32(static_cast<uint32_t>(reinterpret_cast<uintptr_t>(md_model))).str("\n").print();
  // The compute kernels "auto" picks: helium on the Cortex-M55, else reference.
  l.str("kernels: ").str(md::kernel_variant()).str("\n").print();

  {
    md::Arena arena(g_arena, sizeof(g_arena));
    s = g_sampler.init(w.model, w.schedule, w.meta.variance, kSampleBatch, arena);
    if (!s.ok()) return failed("Sampler::init", s);
    s = g_sampler.sample(kSampleSeed, 0, kSamples, g_samples);
    if (!s.ok()) return failed("Sampler::sample", s);
    l.str("sampling: ").u32(kSamples).str(" points, seed ").u32(static_cast<uint32_t>(kSampleSeed));
    l.str(", batch ").u32(kSampleBatch).str(", arena ").u32(static_cast<uint32_t>(arena.high_water()));
    l.str(" of ").u32(static_cast<uint32_t>(sizeof(g_arena))).str(" bytes\n").print();
    for (uint32_t i = 0; i < kSamples; ++i) {
      // "sample I: X, Y [bits X, bits Y]" -- compared with the host by compare_samples.sh.
      l.str("sample ").u32(i).str(": ").f32(g_samples[2 * i]).str(", ").f32(g_samples[2 * i + 1]);
      l.str(" [").f32_bits(g_samples[2 * i]).str(" ").f32_bits(g_samples[2 * i + 1]).str("]\n").print();
    }
  }

#ifndef MD_FIRMWARE_SAMPLE_ONLY
  {
    // Fine-tune the flash weights on fresh swiss-roll points: forward pass with
    // a tape, backward pass, Adam and the EMA, all inside the same static arena.
    md::Arena arena(g_arena, sizeof(g_arena));
    md::TrainConfig cfg;
    cfg.batch = kTrainBatch;
    cfg.lr = 1e-3;
    cfg.seed = 7;
    s = g_trainer.init(kDesc, w.schedule, cfg, arena);
    if (!s.ok()) return failed("Trainer::init", s);
    // The file's tensors follow its header in param_layout order: the flat block.
    s = g_trainer.set_parameters(w.model.tensors[0], g_trainer.param_floats());
    if (!s.ok()) return failed("Trainer::set_parameters", s);
    md::make_dataset(md::Dataset::kSwissRoll, /*seed=*/1, 0, kTrainPoints, g_train_data);
    l.str("training: batch ").u32(kTrainBatch).str(", ").u32(g_trainer.param_floats());
    l.str(" parameter floats, arena ").u32(static_cast<uint32_t>(arena.high_water())).str(" of ");
    l.str("").u32(static_cast<uint32_t>(sizeof(g_arena))).str(" bytes\n").print();
    for (uint32_t step = 1; step <= kTrainSteps; ++step) {
      float loss = 0.0f;
      s = g_trainer.step(g_train_data, kTrainPoints, &loss);
      if (!s.ok()) return failed("Trainer::step", s);
      l.str("train step ").u32(step).str(": loss ").f32(loss).str(" grad norm ").f32(g_trainer.last_grad_norm());
      l.str(" [").f32_bits(loss).str("]\n").print();
    }
  }
#endif

  l.str("firmware: ok\n").print();
  return 0;
}
