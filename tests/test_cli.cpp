// The command line end to end: train -> sample -> inspect, and the errors a
// user gets for bad arguments and bad files (nonzero exit, no partial output).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "cli_util.h"
#include "microdiffusion/microdiffusion.h"

namespace {

using md_test::CliResult;
using md_test::file_exists;
using md_test::run_cli;
using md_test::slurp;

class Cli : public md_test::TempDirTest {
 protected:
  Cli() : TempDirTest("cli") {}
};

TEST_F(Cli, TrainSampleInspectRoundTrip) {
  const std::string model = dir + "/m.mdw";
  CliResult r = run_cli("train --data moons --model tutorial --hidden 16 --T 20 --steps 30 --batch 16 --quiet --out " + model);
  ASSERT_EQ(r.code, 0) << r.out;
  ASSERT_TRUE(file_exists(model));
  r = run_cli("sample --model " + model + " --n 5 --seed 3 --out " + dir + "/s.csv --png " + dir + "/s.png --trajectory " +
          dir + "/t.png");
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string csv = slurp(dir + "/s.csv");
  int lines = 0, commas = 0;
  for (char c : csv) {
    lines += c == '\n';
    commas += c == ',';
  }
  EXPECT_EQ(lines, 5);
  EXPECT_EQ(commas, 5);  // D = 2: one comma per line, no header
  EXPECT_EQ(slurp(dir + "/s.png").substr(1, 3), "PNG");
  EXPECT_EQ(slurp(dir + "/t.png").substr(1, 3), "PNG");
  EXPECT_NE(r.out.find("energy_distance="), std::string::npos) << r.out;
  // Same seed, same samples; stdout when no file is named.
  r = run_cli("sample --model " + model + " --n 5 --seed 3");
  ASSERT_EQ(r.code, 0);
  EXPECT_NE(r.out.find(csv), std::string::npos);
  // Every sampler runs from the command line.
  for (const char* smp : {"ddpm --steps 5", "ddim --steps 5 --eta 0.3", "dpm++2m --steps 5 --spacing logsnr",
                          "ode --steps 4", "ddpm --spacing 19,10,3", "ddim --spacing sections:2,3 --clip 3"}) {
    r = run_cli("sample --model " + model + " --n 3 --sampler " + smp);
    EXPECT_EQ(r.code, 0) << smp << "\n" << r.out;
  }
  r = run_cli("eval --model " + model + " --n 20");
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* key : {"nll_nats_per_dim=", "nll_bits_per_dim=", "nll_stderr=", "energy_distance=", "mmd="})
    EXPECT_NE(r.out.find(key), std::string::npos) << key << "\n" << r.out;
  r = run_cli("eval --model " + model + " --n 20 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.front(), '{');
  EXPECT_NE(r.out.find("\"nll_bits_per_dim\": "), std::string::npos) << r.out;
  r = run_cli("inspect " + model);
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* s : {"version 1.0", "time_gate", "softplus", "arena bytes", "sampling", "training", "T=20", "moons"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  // The flash line: the file's own size, and the parameters' bytes from the runtime.
  const std::string file = slurp(model);
  md::LoadedWeights w;
  ASSERT_TRUE(md::load_weights(file.data(), file.size(), &w).ok());
  const std::string flash = "flash bytes: " + std::to_string(file.size()) + " (the file, used in place: " +
                            std::to_string(4 * md::parameter_count(w.model.desc)) + " of parameters";
  EXPECT_NE(r.out.find(flash), std::string::npos) << flash << "\n" << r.out;
  r = run_cli("inspect " + model + " --batch 16");
  const std::string arena16 = "batch 16    sampling " + std::to_string(md::sampling_arena_bytes(w.model.desc, 16));
  EXPECT_NE(r.out.find(arena16), std::string::npos) << arena16 << "\n" << r.out;
}

TEST_F(Cli, TrainsOnACsvFileOfAnyDimension) {
  std::ofstream(dir + "/d.csv") << "# three columns\n0.1,0.2,0.3\n-1,2,0.5\n\n0.4,0.4,0.4\n";
  CliResult r = run_cli("train --data " + dir + "/d.csv --steps 5 --batch 4 --T 10 --hidden 8 --quiet --out " + dir + "/m.mdw");
  ASSERT_EQ(r.code, 0) << r.out;
  r = run_cli("sample --model " + dir + "/m.mdw --n 2");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find(","), std::string::npos);
  r = run_cli("sample --model " + dir + "/m.mdw --n 5 --png " + dir + "/grid.png --image-shape 1x3");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(slurp(dir + "/grid.png").substr(1, 3), "PNG");
}

TEST_F(Cli, ConditionalTrainingAndGuidedSampling) {
  const std::string model = dir + "/c.mdw";
  CliResult r = run_cli("train --data 8gaussians --conditional --hidden 16 --T 20 --steps 5 --batch 8 --quiet --out " + model);
  ASSERT_EQ(r.code, 0) << r.out;
  r = run_cli("inspect " + model);
  EXPECT_NE(r.out.find("conditional on 8 classes"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("label_add"), std::string::npos) << r.out;
  r = run_cli("sample --model " + model + " --n 4 --label 7 --guidance 1.5");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("(40 model evaluations)"), std::string::npos) << r.out;  // 20 steps, two passes each
}

TEST_F(Cli, EveryCommandHasHelp) {
  for (const char* c : {"train", "sample", "inspect", "eval"}) {
    const CliResult r = run_cli(std::string(c) + " --help");
    EXPECT_EQ(r.code, 0) << c;
    EXPECT_NE(r.out.find("usage: microdiffusion"), std::string::npos) << c;
  }
  EXPECT_EQ(run_cli("--help").code, 0);
  EXPECT_EQ(run_cli("").code, 2);
  EXPECT_EQ(run_cli("fly").code, 2);
}

struct BadCase {
  const char* args;    // {dir} is replaced by the temp dir
  int code;
  const char* message;  // part of the error
};

TEST_F(Cli, BadArgumentsGetAClearErrorAndNoOutputFile) {
  std::ofstream(dir + "/ragged.csv") << "1,2\n3\n";
  std::ofstream(dir + "/text.csv") << "1,2\n3,abc\n";
  std::ofstream(dir + "/empty.csv") << "\n# nothing\n";
  std::ofstream(dir + "/nan.csv") << "1,nan\n";
  ASSERT_EQ(run_cli("train --data moons --model tutorial --hidden 8 --T 20 --steps 2 --batch 4 --quiet --out " + dir + "/m.mdw").code, 0);
  std::ofstream(dir + "/junk.mdw") << "this is not a weight file at all, not even close......................"
                                      "......................................................................";
  const BadCase cases[] = {
      {"train --out {dir}/o.mdw", 2, "--data is required"},
      {"train --data swissroll", 2, "--out is required"},
      {"train --data swissroll --out {dir}/o.mdw --steps 0", 2, "--steps must be an integer"},
      {"train --data swissroll --out {dir}/o.mdw --steps 12x", 2, "--steps must be an integer"},
      {"train --data swissroll --out {dir}/o.mdw --lr -1", 2, "--lr must be a number"},
      {"train --data swissroll --out {dir}/o.mdw --lr nan", 2, "--lr must be a number"},
      {"train --data swissroll --out {dir}/o.mdw --model big", 2, "--model must be"},
      {"train --data swissroll --out {dir}/o.mdw --schedule quadratic", 2, "--schedule must be"},
      {"train --data swissroll --out {dir}/o.mdw --bogus 1", 2, "unknown option"},
      {"train --data swissroll --out {dir}/o.mdw --steps", 2, "needs a value"},
      {"train --data {dir}/missing.csv --out {dir}/o.mdw", 1, "cannot open"},
      {"train --data {dir}/ragged.csv --out {dir}/o.mdw", 1, "ragged.csv:2: has 1 fields"},
      {"train --data {dir}/text.csv --out {dir}/o.mdw", 1, "ragged"},
      {"train --data {dir}/empty.csv --out {dir}/o.mdw", 1, "no data rows"},
      {"train --data {dir}/nan.csv --out {dir}/o.mdw", 1, "not a finite float"},
      {"train --data swissroll --steps 2 --batch 2 --quiet --out {dir}/no/such/dir/o.mdw", 1, "No such file"},
      {"sample", 2, "--model is required"},
      {"sample --model {dir}/missing.mdw", 1, "cannot open"},
      {"sample --model {dir}/junk.mdw --out {dir}/o.csv", 1, "bad magic"},
      {"sample --model {dir}/junk.mdw --n 0", 2, "--n must be"},
      {"sample --model {dir}/m.mdw --sampler euler", 2, "--sampler must be"},
      {"sample --model {dir}/m.mdw --sampler ddpm --eta 0.5", 2, "--eta applies to --sampler ddim only"},
      {"sample --model {dir}/m.mdw --steps 21", 2, "--steps must be an integer in [1, 20]"},
      {"sample --model {dir}/m.mdw --spacing 3,x", 2, "bad entry 'x'"},
      {"sample --model {dir}/m.mdw --spacing 3,20", 2, "bad entry '20'"},
      {"sample --model {dir}/m.mdw --spacing sections:12,12", 2, "more steps than it has"},
      {"sample --model {dir}/m.mdw --spacing 1,5 --steps 2", 2, "exclusive"},
      {"sample --model {dir}/m.mdw --threshold 1.5", 2, "--threshold must be"},
      {"eval --model {dir}/m.mdw --decoder laplace", 2, "--decoder must be"},
      {"eval --model {dir}/m.mdw --data {dir}/ragged.csv", 1, "ragged.csv:2"},
      {"sample --model {dir}/m.mdw --png {dir}/o.png --image-shape 3x3", 2, "H*W = D = 2"},
      {"train --data swissroll --conditional --out {dir}/o.mdw", 2, "--conditional needs a labelled"},
      {"sample --model {dir}/m.mdw --label 1", 2, "label out of range"},
      {"sample --model {dir}/m.mdw --guidance 2", 2, "--guidance needs --label"},
      {"inspect", 2, "expected one weight file"},
      {"inspect {dir}/junk.mdw", 1, "not a usable weight file"},
  };
  for (const BadCase& c : cases) {
    std::string args = c.args;
    for (size_t p; (p = args.find("{dir}")) != std::string::npos;) args.replace(p, 5, dir);
    const CliResult r = run_cli(args);
    EXPECT_EQ(r.code, c.code) << args << "\n" << r.out;
    const std::string want = std::string(c.message) == "ragged" ? "text.csv:2: field 2 is not a number" : c.message;
    EXPECT_NE(r.out.find(want), std::string::npos) << args << "\n" << r.out;
    EXPECT_FALSE(file_exists(dir + "/o.mdw")) << args;
    EXPECT_FALSE(file_exists(dir + "/o.csv")) << args;
  }
}

TEST_F(Cli, CorruptModelFileIsRefusedWithTheReason) {
  const std::string model = dir + "/m.mdw";
  ASSERT_EQ(run_cli("train --data circles --model tutorial --hidden 8 --T 10 --steps 3 --batch 4 --quiet --out " + model).code, 0);
  std::string bytes = slurp(model);
  bytes[md::weights_header_bytes(md::preset_tutorial(2, 10, 8)) + 5] ^= 0x40;  // a weight bit
  std::ofstream(dir + "/flip.mdw", std::ios::binary) << bytes;
  CliResult r = run_cli("sample --model " + dir + "/flip.mdw --out " + dir + "/o.csv");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("checksum mismatch"), std::string::npos) << r.out;
  EXPECT_FALSE(file_exists(dir + "/o.csv"));
  std::ofstream(dir + "/short.mdw", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  r = run_cli("inspect " + dir + "/short.mdw");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("truncated"), std::string::npos) << r.out;
}

}  // namespace

namespace {

TEST_F(Cli, ThreadsGiveTheSameModelAndSamples) {
  const std::string train = "train --data swissroll --steps 20 --batch 256 --T 50 --quiet --seed 2 --out ";
  ASSERT_EQ(run_cli(train + dir + "/one.mdw").code, 0);
  ASSERT_EQ(run_cli(train + dir + "/two.mdw --threads 2").code, 0);
  const std::string one = slurp(dir + "/one.mdw");
  ASSERT_FALSE(one.empty());
  EXPECT_TRUE(one == slurp(dir + "/two.mdw")) << "--threads 2 trained different weights";
  const std::string sample = "sample --n 600 --seed 5 --model " + dir + "/one.mdw --out ";
  ASSERT_EQ(run_cli(sample + dir + "/one.csv").code, 0);
  ASSERT_EQ(run_cli(sample + dir + "/two.csv --threads 2").code, 0);
  EXPECT_EQ(slurp(dir + "/one.csv"), slurp(dir + "/two.csv"));
  const CliResult bad = run_cli(train + dir + "/bad.mdw --threads 0");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.out.find("--threads must be an integer in [1, 64]"), std::string::npos) << bad.out;
  EXPECT_FALSE(file_exists(dir + "/bad.mdw"));
}

}  // namespace

namespace {

// The data name comes from the file: inspect and embed print it with control
// bytes escaped, so a newline in it can neither forge output lines nor end the
// comment of the generated header and inject code.
TEST_F(Cli, DataNameFromTheFileIsPrintedEscaped) {
  const md::ModelDesc desc = md::preset_tutorial(2, 10, 4);
  std::vector<float> params(md::param_layout(desc).total_floats, 0.01f);
  md::WeightsMeta meta;
  std::snprintf(meta.dataset, sizeof(meta.dataset), "%s", "moons\n#error injected");
  std::vector<unsigned char> bytes(md::weights_file_bytes(desc));
  size_t n = 0;
  ASSERT_TRUE(md::write_weights(desc, md::linear_schedule(10), meta, params.data(), bytes.data(), bytes.size(), &n).ok());
  const std::string model = dir + "/named.mdw";
  std::ofstream(model, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(n));
  CliResult r = run_cli("inspect " + model);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("data moons\\x0a#error injected"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("\n#error"), std::string::npos) << r.out;
  r = run_cli("embed " + model + " --out " + dir + "/w.h");
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string header = slurp(dir + "/w.h");
  EXPECT_NE(header.find("moons\\x0a#error injected"), std::string::npos);
  EXPECT_EQ(header.find("\n#error"), std::string::npos);
}

}  // namespace
