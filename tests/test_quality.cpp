// The quality bar: the default demo's model, trained with fixed seeds, and
// the shipped weights both reach ED <= 0.002 against fresh swiss-roll data.
// Slow (a full training run); named Quality so emulated runs can skip it.
#include <gtest/gtest.h>

#include <cstdio>
#include <vector>

#include "microdiffusion/microdiffusion.h"

namespace {

constexpr uint64_t kFreshDataSeed = 0x5EEDF00Dull;  // the CLI's reference draw
constexpr uint32_t kPoints = 2000;

double score(const md::Model& m, const md::ScheduleDesc& sched, md::Variance v, uint64_t seed) {
  std::vector<unsigned char> buf(md::sampling_arena_bytes(m.desc, 256));
  md::Arena arena(buf.data(), buf.size());
  md::Sampler sampler;
  EXPECT_TRUE(sampler.init(m, sched, v, 256, arena).ok());
  std::vector<float> samples(2 * kPoints), fresh(2 * kPoints);
  EXPECT_TRUE(sampler.sample(seed, 0, kPoints, samples.data()).ok());
  md::make_dataset(md::Dataset::kSwissRoll, kFreshDataSeed, 0, kPoints, fresh.data());
  return md::energy_distance(samples.data(), kPoints, fresh.data(), kPoints, 2);
}

TEST(Quality, DefaultDemoModelReachesTheEnergyDistanceBar) {
  // Exactly what `microdiffusion train --data swissroll` does (seed 0).
  const md::ModelDesc desc = md::preset_default();
  const md::ScheduleDesc sched = md::linear_schedule(desc.T);
  md::TrainConfig cfg;
  cfg.batch = 256;
  cfg.lr = 2e-3;
  cfg.decoupled_weight_decay = true;
  cfg.grad_clip_norm = 1.0;
  cfg.warmup_steps = 100;
  cfg.total_steps = 3000;
  cfg.ema_decay = 0.995;
  cfg.seed = 0;
  std::vector<unsigned char> buf(md::training_arena_bytes(desc, cfg.batch));
  md::Arena arena(buf.data(), buf.size());
  md::Trainer trainer;
  ASSERT_TRUE(trainer.init(desc, sched, cfg, arena).ok());
  trainer.init_parameters(0);
  std::vector<float> data(2 * 100000);
  md::make_dataset(md::Dataset::kSwissRoll, 0, 0, 100000, data.data());
  for (uint32_t i = 0; i < cfg.total_steps; ++i) {
    float loss;
    ASSERT_TRUE(trainer.step(data.data(), 100000, &loss).ok()) << "step " << i;
  }
  const double ed = score(trainer.model(true), sched, md::Variance::kFixedSmall, 0);
  std::printf("energy distance of the demo model: %.6f\n", ed);
  EXPECT_LE(ed, 0.002);
}

TEST(Quality, ShippedSwissRollWeightsReachTheBar) {
  std::FILE* f = std::fopen(MD_SOURCE_DIR "/weights/swissroll.mdw", "rb");
  ASSERT_NE(f, nullptr) << "weights/swissroll.mdw missing";
  std::vector<float> storage(1 << 20);
  const size_t n = std::fread(storage.data(), 1, storage.size() * sizeof(float), f);
  std::fclose(f);
  md::LoadedWeights w;
  const md::Status s = md::load_weights(storage.data(), n, &w);
  ASSERT_TRUE(s.ok()) << s.message;
  const double ed = score(w.model, w.schedule, w.meta.variance, 1);
  std::printf("energy distance of weights/swissroll.mdw: %.6f\n", ed);
  EXPECT_LE(ed, 0.002);
}

}  // namespace
