// A custom noise schedule: beta_1..beta_T given as a list (a file on the
// command line, e.g. diffusers' trained_betas). The tables are checked against
// the closed forms evaluated here in double; the list travels in the weight
// file (format 1.1, covered by the header CRC, bound in place), in
// checkpoints (a different list is refused on resume), and through the CLI.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "cli_util.h"
#include "microdiffusion/microdiffusion.h"

namespace {

// A list no built-in schedule produces: not monotone, steps of very different size.
std::vector<float> odd_betas(uint32_t T) {
  std::vector<float> b(T);
  for (uint32_t k = 0; k < T; ++k) b[k] = static_cast<float>(2e-3 + 0.09 * ((k * 7u) % 11u) / 11.0 + 0.3 * k / T);
  return b;
}

std::vector<unsigned char> aligned_bytes(size_t n, unsigned char** p) {
  std::vector<unsigned char> v(n + 64);
  *p = v.data() + (64 - reinterpret_cast<uintptr_t>(v.data()) % 64) % 64;
  return v;
}

TEST(CustomSchedule, TablesMatchTheClosedFormsInDouble) {
  const uint32_t T = 37;
  const std::vector<float> betas = odd_betas(T);
  const md::ScheduleDesc d = md::custom_schedule(betas.data(), T);
  ASSERT_TRUE(md::validate_schedule(d).ok());
  std::vector<float> storage(md::kScheduleTables * T);
  md::Schedule s;
  ASSERT_TRUE(md::build_schedule(d, storage.data(), &s).ok());
  double ab = 1.0;
  for (uint32_t k = 0; k < T; ++k) {
    const double beta = betas[k], ab_prev = ab;
    ab *= 1.0 - beta;
    const double rel = 2e-7;
    EXPECT_EQ(s.beta[k], betas[k]) << k;
    EXPECT_NEAR(s.alpha_bar[k], ab, rel * ab) << k;
    EXPECT_NEAR(s.sqrt_one_minus_alpha_bar[k], std::sqrt(1.0 - ab), rel) << k;
    const double tilde = beta * (1.0 - ab_prev) / (1.0 - ab);
    EXPECT_NEAR(s.posterior_variance[k], tilde, rel * tilde) << k;
    EXPECT_NEAR(s.posterior_mean_coef1[k], beta * std::sqrt(ab_prev) / (1.0 - ab), 1e-6) << k;
    EXPECT_NEAR(s.posterior_mean_coef2[k], (1.0 - ab_prev) * std::sqrt(1.0 - beta) / (1.0 - ab), 1e-6) << k;
    EXPECT_DOUBLE_EQ(md::schedule_beta(d, k), beta) << k;
  }
  EXPECT_NEAR(md::terminal_alpha_bar(d), ab, 1e-12);
  // Rescaled to zero terminal SNR like any other schedule.
  md::ScheduleDesc z = d;
  z.zero_terminal_snr = 1;
  ASSERT_TRUE(md::build_schedule(z, storage.data(), &s).ok());
  EXPECT_EQ(s.alpha_bar[T - 1], 0.0f);
  EXPECT_EQ(s.beta[0], betas[0]);
}

TEST(CustomSchedule, BadListsAreRefusedWithTheStep) {
  std::vector<float> betas = odd_betas(10);
  EXPECT_EQ(md::validate_schedule(md::custom_schedule(nullptr, 10)).code, md::StatusCode::kInvalidArgument);
  for (float bad : {0.0f, 1.0f, -0.1f, NAN, INFINITY}) {
    std::vector<float> b = betas;
    b[6] = bad;
    const md::Status s = md::validate_schedule(md::custom_schedule(b.data(), 10));
    EXPECT_EQ(s.code, md::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(s.needed, 7u) << "names step t = 7";
  }
}

TEST(CustomSchedule, SameScheduleComparesValuesNotPointers) {
  std::vector<float> a = odd_betas(12), b = a;
  EXPECT_TRUE(md::same_schedule(md::custom_schedule(a.data(), 12), md::custom_schedule(b.data(), 12)));
  b[11] = std::nextafter(b[11], 1.0f);
  EXPECT_FALSE(md::same_schedule(md::custom_schedule(a.data(), 12), md::custom_schedule(b.data(), 12)));
  EXPECT_FALSE(md::same_schedule(md::custom_schedule(a.data(), 12), md::linear_schedule(12)));
  EXPECT_TRUE(md::same_schedule(md::linear_schedule(12), md::linear_schedule(12)));
  EXPECT_FALSE(md::same_schedule(md::linear_schedule(12), md::cosine_schedule(12)));
}

TEST(CustomSchedule, WeightFileHoldsTheListUnderTheHeaderChecksum) {
  const uint32_t T = 30;
  const md::ModelDesc desc = md::preset_tutorial(2, T, 8);
  const std::vector<float> betas = odd_betas(T);
  const md::ScheduleDesc sched = md::custom_schedule(betas.data(), T);
  std::vector<float> params(md::param_layout(desc).total_floats, 0.01f);
  const size_t bytes = md::weights_file_bytes(desc, sched);
  EXPECT_EQ(bytes, md::weights_file_bytes(desc) + md::align_up(md::weights_header_bytes(desc, T)) -
                       md::weights_header_bytes(desc));
  EXPECT_GE(md::weights_header_bytes(desc, T), md::weights_header_bytes(desc) + 4 * T - 63);
  unsigned char* p;
  std::vector<unsigned char> file = aligned_bytes(bytes, &p);
  size_t n = 0;
  // The buffer must have room for the list.
  EXPECT_EQ(md::write_weights(desc, sched, md::WeightsMeta(), params.data(), p, md::weights_file_bytes(desc), &n).code,
            md::StatusCode::kOutOfMemory);
  ASSERT_TRUE(md::write_weights(desc, sched, md::WeightsMeta(), params.data(), p, bytes, &n).ok());
  ASSERT_EQ(n, bytes);
  md::LoadedWeights w;
  ASSERT_TRUE(md::load_weights(p, n, &w).ok());
  EXPECT_EQ(w.version_major, 1u);
  EXPECT_EQ(w.version_minor, 1u);
  EXPECT_EQ(w.schedule.kind, md::ScheduleKind::kCustom);
  EXPECT_EQ(w.schedule.T, T);
  // Bound in place: the list is read from the file's bytes, not copied.
  EXPECT_GE(reinterpret_cast<const unsigned char*>(w.schedule.betas), p);
  EXPECT_LT(reinterpret_cast<const unsigned char*>(w.schedule.betas), p + w.header_bytes);
  EXPECT_TRUE(md::same_schedule(w.schedule, sched));
  // The weights themselves start after the list.
  EXPECT_EQ(0, std::memcmp(p + w.header_bytes, params.data(), 16));
  // A flipped bit in the list fails the header checksum.
  const size_t beta_offset = static_cast<size_t>(reinterpret_cast<const unsigned char*>(w.schedule.betas) - p);
  p[beta_offset + 4 * 5 + 2] ^= 0x08;
  EXPECT_EQ(md::load_weights(p, n, &w).code, md::StatusCode::kChecksumMismatch);
  p[beta_offset + 4 * 5 + 2] ^= 0x08;
  ASSERT_TRUE(md::load_weights(p, n, &w).ok());
  // A header too short for the list it announces is refused before any read past it.
  unsigned char* q;
  std::vector<unsigned char> copy = aligned_bytes(n, &q);
  std::memcpy(q, p, n);
  const uint32_t huge_T = 90000;
  std::memcpy(q + 44, &huge_T, 4);
  EXPECT_EQ(md::load_weights(q, n, &w).code, md::StatusCode::kBadFormat);
}

TEST(CustomSchedule, SamplerAndCheckpointsUseTheList) {
  const uint32_t T = 16;
  const md::ModelDesc desc = md::preset_tutorial(2, T, 8);
  const std::vector<float> betas = odd_betas(T);
  const md::ScheduleDesc sched = md::custom_schedule(betas.data(), T);
  md::TrainConfig cfg;
  cfg.batch = 8;
  cfg.total_steps = 10;
  std::vector<unsigned char> buf(md::training_arena_bytes(desc, cfg.batch));
  md::Arena arena(buf.data(), buf.size());
  md::Trainer trainer;
  ASSERT_TRUE(trainer.init(desc, sched, cfg, arena).ok());
  trainer.init_parameters(1);
  std::vector<float> data(2 * 64);
  md::make_dataset(md::Dataset::kMoons, 1, 0, 64, data.data());
  float loss = 0.0f;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(trainer.step(data.data(), 64, &loss).ok());
  EXPECT_EQ(trainer.checkpoint_size(), md::checkpoint_bytes(desc, T));
  unsigned char* p;
  std::vector<unsigned char> ckpt = aligned_bytes(trainer.checkpoint_size(), &p);
  size_t n = 0;
  ASSERT_TRUE(trainer.write_checkpoint(md::WeightsMeta(), 5, p, trainer.checkpoint_size(), &n).ok());
  ASSERT_EQ(n, trainer.checkpoint_size());

  // Same list in another buffer: resumes.
  const std::vector<float> same = betas;
  std::vector<unsigned char> buf2(buf.size());
  md::Arena arena2(buf2.data(), buf2.size());
  md::Trainer resumed;
  ASSERT_TRUE(resumed.init(desc, md::custom_schedule(same.data(), T), cfg, arena2).ok());
  ASSERT_TRUE(resumed.restore_checkpoint(p, n, 5).ok());
  EXPECT_EQ(resumed.steps_done(), 3u);
  // One beta different: refused.
  std::vector<float> other = betas;
  other[3] *= 1.5f;
  md::Arena arena3(buf2.data(), buf2.size());
  md::Trainer refused;
  ASSERT_TRUE(refused.init(desc, md::custom_schedule(other.data(), T), cfg, arena3).ok());
  EXPECT_STREQ(refused.restore_checkpoint(p, n, 5).message, "checkpoint was made with a different noise schedule");

  // The sampler built from the checkpoint's weight file uses the file's list.
  md::LoadedWeights w;
  ASSERT_TRUE(md::load_weights(p, n, &w).ok());
  std::vector<unsigned char> sbuf(md::sampling_arena_bytes(desc, 4));
  md::Arena sarena(sbuf.data(), sbuf.size());
  md::Sampler sampler;
  ASSERT_TRUE(sampler.init(w.model, w.schedule, md::Variance::kFixedSmall, 4, sarena).ok());
  double ab = 1.0;
  for (uint32_t k = 0; k < T; ++k) {
    ab *= 1.0 - betas[k];
    EXPECT_NEAR(sampler.alpha_bar()[k], ab, 2e-7 * ab) << k;
  }
}

class CustomScheduleCli : public md_test::TempDirTest {
 protected:
  CustomScheduleCli() : TempDirTest("custom_schedule") {}
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir + "/" + name) << text;
    return dir + "/" + name;
  }
};

TEST_F(CustomScheduleCli, TrainInspectSampleFromABetaFile) {
  std::string list = "# beta_1 .. beta_20\n";
  for (int k = 0; k < 20; ++k) list += std::to_string(0.01 + 0.02 * k) + (k % 5 == 4 ? "\n" : ", ");
  const std::string betas = write("betas.txt", list);
  const std::string model = dir + "/m.mdw";
  md_test::CliResult r = md_test::run_cli("train --data moons --model tutorial --hidden 16 --betas " + betas +
                                          " --steps 20 --batch 16 --quiet --out " + model);
  ASSERT_EQ(r.code, 0) << r.out;
  r = md_test::run_cli("inspect " + model);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("schedule: custom (20 betas in the file) beta 0.01 -> 0.39"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("T=20"), std::string::npos) << r.out;
  r = md_test::run_cli("sample --model " + model + " --n 4 --seed 1 --sampler ddim --steps 5");
  EXPECT_EQ(r.code, 0) << r.out;

  // Errors: exit 2, the file and line named, nothing written.
  const std::string out2 = dir + "/m2.mdw";
  const std::string base = "train --data moons --model tutorial --hidden 16 --steps 2 --quiet --out " + out2;
  r = md_test::run_cli(base + " --betas " + write("bad.txt", "0.01 0.02\n0.03 1.5\n"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("line 2: beta 1.5 is not in (0, 1)"), std::string::npos) << r.out;
  r = md_test::run_cli(base + " --betas " + write("word.txt", "0.01 0.02 oops\n"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("'oops' is not a number"), std::string::npos) << r.out;
  r = md_test::run_cli(base + " --betas " + betas + " --T 30");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("differs from the 20 betas"), std::string::npos) << r.out;
  r = md_test::run_cli(base + " --schedule custom");
  EXPECT_EQ(r.code, 2);
  r = md_test::run_cli(base + " --betas " + write("empty.txt", "# nothing\n"));
  EXPECT_EQ(r.code, 2);
  EXPECT_FALSE(md_test::file_exists(out2));
}

}  // namespace
