// Crash-safe training: checkpoints restore bit for bit, a SIGKILLed run
// resumes to the same bytes, SIGINT saves and exits cleanly, and a NaN stops
// training with the step named and the last checkpoint untouched.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli_util.h"
#include "microdiffusion/microdiffusion.h"

namespace {

using md_test::file_exists;
using md_test::slurp;

struct TrainRun {
  md::ModelDesc desc = md::preset_default(2, 30, 16, 8, 2);
  md::TrainConfig cfg;
  std::vector<unsigned char> arena_buf;
  md::Arena arena;
  md::Trainer trainer;
  std::vector<float> data = std::vector<float>(2 * 500);
  TrainRun() {
    cfg.batch = 32;
    cfg.seed = 9;
    cfg.warmup_steps = 5;
    cfg.total_steps = 60;
    cfg.grad_clip_norm = 1.0;
    arena_buf.resize(md::training_arena_bytes(desc, cfg.batch));
    arena = md::Arena(arena_buf.data(), arena_buf.size());
    EXPECT_TRUE(trainer.init(desc, md::linear_schedule(30), cfg, arena).ok());
    trainer.init_parameters(9);
    md::make_dataset(md::Dataset::kCircles, 9, 0, 500, data.data());
  }
  void steps(int n) {
    float loss;
    for (int i = 0; i < n; ++i) ASSERT_TRUE(trainer.step(data.data(), 500, &loss).ok());
  }
};

TEST(Checkpoint, RestoreContinuesBitForBit) {
  TrainRun a;
  a.steps(60);
  TrainRun b;
  b.steps(25);
  std::vector<unsigned char> ckpt(md::checkpoint_bytes(b.desc));
  size_t n = 0;
  ASSERT_TRUE(b.trainer.write_checkpoint(md::WeightsMeta{}, 7, ckpt.data(), ckpt.size(), &n).ok());
  TrainRun c;  // a fresh process would start here
  md::Status s = c.trainer.restore_checkpoint(ckpt.data(), n, 7);
  ASSERT_TRUE(s.ok()) << s.message;
  EXPECT_EQ(c.trainer.steps_done(), 25u);
  c.steps(35);
  const uint32_t P = a.trainer.param_floats();
  EXPECT_EQ(0, std::memcmp(a.trainer.params(), c.trainer.params(), 4 * P));
  EXPECT_EQ(0, std::memcmp(a.trainer.ema(), c.trainer.ema(), 4 * P));
  EXPECT_EQ(0, std::memcmp(a.trainer.adam_v(), c.trainer.adam_v(), 4 * P));
}

TEST(Checkpoint, RefusesOtherDataSettingsAndCorruption) {
  TrainRun b;
  b.steps(3);
  std::vector<unsigned char> ckpt(md::checkpoint_bytes(b.desc));
  size_t n = 0;
  ASSERT_TRUE(b.trainer.write_checkpoint(md::WeightsMeta{}, 7, ckpt.data(), ckpt.size(), &n).ok());
  TrainRun c;
  EXPECT_STREQ(c.trainer.restore_checkpoint(ckpt.data(), n, 8).message, "checkpoint was made with different training data");
  TrainRun d;
  d.cfg.lr = 5e-4;
  md::Arena arena(d.arena_buf.data(), d.arena_buf.size());
  md::Trainer t;
  ASSERT_TRUE(t.init(d.desc, md::linear_schedule(30), d.cfg, arena).ok());
  EXPECT_STREQ(t.restore_checkpoint(ckpt.data(), n, 7).message, "checkpoint was made with a different --lr");
  ckpt[n - 5] ^= 1;  // an EMA bit
  EXPECT_EQ(c.trainer.restore_checkpoint(ckpt.data(), n, 7).code, md::StatusCode::kChecksumMismatch);
  EXPECT_EQ(c.trainer.restore_checkpoint(ckpt.data(), n - 100, 7).code, md::StatusCode::kTruncated);
  // A plain weight file is not a checkpoint.
  std::vector<unsigned char> w(md::checkpoint_bytes(b.desc));
  ASSERT_TRUE(md::write_weights(b.desc, md::linear_schedule(30), md::WeightsMeta{}, b.trainer.params(), w.data(), w.size(), &n).ok());
  EXPECT_EQ(c.trainer.restore_checkpoint(w.data(), w.size(), 7).code, md::StatusCode::kBadFormat);
}

class CliTraining : public md_test::TempDirTest {
 protected:
  CliTraining() : TempDirTest("ckpt") {}
  // Starts the CLI in the background; returns its pid.
  pid_t spawn(const std::string& args) {
    const pid_t pid = fork();
    if (pid == 0) {
      const std::string cmd = std::string("exec ") + MD_CLI_PATH + " " + args + " >" + dir + "/log 2>&1";
      execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    return pid;
  }
  int run(const std::string& args) {
    int status = 0;
    waitpid(spawn(args), &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  // Waits until `path` exists (the first checkpoint), up to a minute.
  bool wait_for(const std::string& path) {
    for (int i = 0; i < 6000 && !file_exists(path); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return file_exists(path);
  }
};

// About 1 s natively: long enough that a kill lands mid-run even on a busy machine.
const char kArgs[] = "train --data moons --model tutorial --hidden 32 --T 50 --steps 20000 --batch 64 --seed 4 --quiet ";

TEST_F(CliTraining, KilledRunResumesToTheSameBytes) {
  ASSERT_EQ(run(std::string(kArgs) + "--out " + dir + "/whole.mdw"), 0);
  const pid_t pid = spawn(std::string(kArgs) + "--checkpoint-every 1000 --out " + dir + "/cut.mdw");
  ASSERT_TRUE(wait_for(dir + "/cut.mdw.ckpt"));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // between checkpoints
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the run finished before it could be killed; make it longer";
  EXPECT_FALSE(file_exists(dir + "/cut.mdw")) << "no output before training completes";
  ASSERT_EQ(run(std::string(kArgs) + "--checkpoint-every 1000 --out " + dir + "/cut.mdw --resume " + dir +
                "/cut.mdw.ckpt"), 0)
      << slurp(dir + "/log");
  EXPECT_NE(slurp(dir + "/log").find("resumed at step"), std::string::npos);
  const std::string a = slurp(dir + "/whole.mdw"), b = slurp(dir + "/cut.mdw");
  ASSERT_FALSE(a.empty());
  EXPECT_TRUE(a == b) << "resumed output differs from the uninterrupted run";
}

TEST_F(CliTraining, SigintSavesACheckpointAndExitsCleanly) {
  // A run long enough (about 2 s natively) that SIGINT lands mid-training. The
  // first periodic checkpoint shows the CLI is training, so its handler is in
  // place; a fixed delay raced the handler under emulation and lost to SIMD speed.
  const std::string args = "train --data moons --model tutorial --hidden 32 --T 50 --steps 40000 --batch 64 --seed 4 "
                           "--quiet --checkpoint-every 200 --checkpoint " + dir + "/c.ckpt ";
  const pid_t pid = spawn(args + "--out " + dir + "/o.mdw");
  ASSERT_TRUE(wait_for(dir + "/c.ckpt"));
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  ASSERT_EQ(WEXITSTATUS(status), 130) << slurp(dir + "/log");
  EXPECT_NE(slurp(dir + "/log").find("interrupted at step"), std::string::npos) << slurp(dir + "/log");
  EXPECT_TRUE(file_exists(dir + "/c.ckpt"));
  EXPECT_FALSE(file_exists(dir + "/o.mdw"));
  EXPECT_EQ(run(args + "--resume " + dir + "/c.ckpt --out " + dir + "/o.mdw"), 0) << slurp(dir + "/log");
  EXPECT_NE(slurp(dir + "/log").find("resumed at step"), std::string::npos) << slurp(dir + "/log");
  EXPECT_TRUE(file_exists(dir + "/o.mdw"));
}

TEST_F(CliTraining, NonFiniteLossStopsWithTheStepNamedAndNoOutput) {
  // Points near float's limit: their squares overflow inside the network.
  {
    std::ofstream f(dir + "/huge.csv");
    for (int i = 0; i < 50; ++i) f << (i % 2 ? "1e37" : "-1e37") << "," << "1e37\n";
  }
  const int code = run("train --model tutorial --data " + dir + "/huge.csv --steps 50 --batch 8 --T 10 --hidden 8 --quiet --out " + dir +
                       "/o.mdw");
  EXPECT_EQ(code, 1);
  const std::string log = slurp(dir + "/log");
  EXPECT_NE(log.find("training stopped at step 1"), std::string::npos) << log;
  EXPECT_NE(log.find("NaN or Inf"), std::string::npos) << log;
  EXPECT_FALSE(file_exists(dir + "/o.mdw"));
}

}  // namespace
