// `microdiffusion embed`: a weight file becomes a C/C++ header whose array
// holds exactly the file's bytes, with the model's numbers beside it; bad
// input gets an error and no header.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli_util.h"
#include "microdiffusion/microdiffusion.h"

namespace {

using md_test::CliResult;
using md_test::file_exists;
using md_test::run_cli;
using md_test::slurp;

// What a header declares: the bytes of NAME[] and the value of NAME_len.
struct Parsed {
  bool ok = false;
  std::string error;
  std::vector<unsigned char> bytes;
  long long len = -1;
};

Parsed parse_header(const std::string& text, const std::string& name) {
  Parsed p;
  const std::string decl = "alignas(64) static const unsigned char " + name + "[] = {";
  const size_t open = text.find(decl);
  if (open == std::string::npos) {
    p.error = "no '" + decl + "'";
    return p;
  }
  const size_t close = text.find("};", open);
  if (close == std::string::npos) {
    p.error = "array not closed";
    return p;
  }
  std::istringstream body(text.substr(open + decl.size(), close - open - decl.size()));
  std::string tok;
  while (body >> tok) {
    if (!tok.empty() && tok.back() == ',') tok.pop_back();
    if (tok.size() != 4 || tok.compare(0, 2, "0x") != 0) {
      p.error = "bad byte '" + tok + "'";
      return p;
    }
    p.bytes.push_back(static_cast<unsigned char>(std::stoul(tok, nullptr, 16)));
  }
  const std::string len_decl = "static const unsigned int " + name + "_len = ";
  const size_t l = text.find(len_decl, close);
  if (l == std::string::npos) {
    p.error = "no '" + len_decl + "'";
    return p;
  }
  p.len = std::stoll(text.substr(l + len_decl.size()));
  p.ok = true;
  return p;
}

class Embed : public md_test::TempDirTest {
 protected:
  Embed() : TempDirTest("embed") {}

  // A small tutorial model with arbitrary (deterministic) weights, written by
  // the runtime's own writer.
  std::string write_model(const std::string& file) {
    const md::ModelDesc desc = desc_;
    std::vector<float> params(md::param_layout(desc).total_floats);
    for (size_t i = 0; i < params.size(); ++i) params[i] = 0.25f * std::sin(0.37f * static_cast<float>(i));
    md::WeightsMeta meta;
    meta.train_steps = 123;
    std::snprintf(meta.dataset, sizeof(meta.dataset), "%s", "moons");
    std::vector<uint8_t> bytes(md::weights_file_bytes(desc));
    size_t written = 0;
    const md::Status s = md::write_weights(desc, md::linear_schedule(desc.T), meta, params.data(), bytes.data(),
                                           bytes.size(), &written);
    EXPECT_TRUE(s.ok()) << s.message;
    bytes.resize(written);
    const std::string path = dir + "/" + file;
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                static_cast<std::streamsize>(bytes.size()));
    return path;
  }

  const md::ModelDesc desc_ = md::preset_tutorial(2, 12, 8);
};

TEST_F(Embed, HeaderHoldsTheFileBytesAndTheModelNumbers) {
  const std::string model = write_model("m.mdw");
  const std::string header = dir + "/model_weights.h";
  const CliResult r = run_cli("embed " + model + " --out " + header + " --name my_model");
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string text = slurp(header);
  const Parsed p = parse_header(text, "my_model");
  ASSERT_TRUE(p.ok) << p.error << "\n" << text.substr(0, 2000);

  const std::string file = slurp(model);
  ASSERT_EQ(p.len, static_cast<long long>(file.size()));
  ASSERT_EQ(p.bytes.size(), file.size());
  EXPECT_TRUE(std::equal(p.bytes.begin(), p.bytes.end(), file.begin(),
                         [](unsigned char a, char b) { return a == static_cast<unsigned char>(b); }));

  // The bytes bind as a weight file again.
  std::vector<float> aligned(p.bytes.size() / sizeof(float) + 1);
  std::memcpy(aligned.data(), p.bytes.data(), p.bytes.size());
  md::LoadedWeights w;
  ASSERT_TRUE(md::load_weights(aligned.data(), p.bytes.size(), &w).ok());
  EXPECT_EQ(w.model.desc.T, 12u);

  // The numbers firmware checks its compile-time ModelDesc against.
  const auto has = [&](const std::string& s) { return text.find(s) != std::string::npos; };
  const std::string params = std::to_string(md::parameter_count(desc_));
  const std::string arena1 = std::to_string(md::sampling_arena_bytes(desc_, 1));
  EXPECT_TRUE(has("D=2 T=12, 8 layers, " + params + " parameters")) << text.substr(0, 1500);
  EXPECT_TRUE(has("sampling at batch 1 = " + arena1)) << text.substr(0, 1500);
  EXPECT_TRUE(has("static const unsigned int my_model_parameters = " + params + ";"));
  EXPECT_TRUE(has("static const unsigned int my_model_sampling_arena_bytes_batch1 = " + arena1 + ";"));
  EXPECT_TRUE(has("static const unsigned int my_model_D = 2;"));
  EXPECT_TRUE(has("static const unsigned int my_model_T = 12;"));
  EXPECT_TRUE(has("#pragma once"));
  EXPECT_NE(r.out.find("wrote"), std::string::npos) << r.out;
}

TEST_F(Embed, DefaultNameComesFromTheWeightFile) {
  const std::string model = write_model("swiss-roll.v2.mdw");
  const CliResult r = run_cli("embed " + model + " --out " + dir + "/w.h");
  ASSERT_EQ(r.code, 0) << r.out;
  const Parsed p = parse_header(slurp(dir + "/w.h"), "swiss_roll_v2");
  ASSERT_TRUE(p.ok) << p.error;
  EXPECT_EQ(p.len, static_cast<long long>(slurp(model).size()));
}

TEST_F(Embed, RefusesBadInputWithoutWritingAHeader) {
  const std::string model = write_model("m.mdw");
  std::string bytes = slurp(model);
  bytes[md::weights_header_bytes(desc_) + 3] ^= 0x10;  // a weight bit: CRC mismatch
  std::ofstream(dir + "/flip.mdw", std::ios::binary) << bytes;
  std::ofstream(dir + "/junk.mdw") << "not a weight file";
  struct Case {
    std::string args;
    int code;
    const char* message;
  } cases[] = {
      {"embed " + dir + "/flip.mdw --out " + dir + "/o.h", 1, "checksum mismatch"},
      {"embed " + dir + "/junk.mdw --out " + dir + "/o.h", 1, "not a usable weight file"},
      {"embed " + dir + "/missing.mdw --out " + dir + "/o.h", 1, "cannot open"},
      {"embed " + model + " --out " + dir + "/o.h --name 9lives", 2, "--name must be a C identifier"},
      {"embed " + model + " --out " + dir + "/o.h --name has-dash", 2, "--name must be a C identifier"},
      {"embed " + model, 2, "--out is required"},
      {"embed --out " + dir + "/o.h", 2, "expected one weight file"},
      {"embed " + model + " --out " + dir + "/o.h --bogus", 2, "unknown option"},
  };
  for (const Case& c : cases) {
    const CliResult r = run_cli(c.args);
    EXPECT_EQ(r.code, c.code) << c.args << "\n" << r.out;
    EXPECT_NE(r.out.find(c.message), std::string::npos) << c.args << "\n" << r.out;
    EXPECT_FALSE(file_exists(dir + "/o.h")) << c.args;
  }
  const CliResult help = run_cli("embed --help");
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("usage: microdiffusion embed"), std::string::npos) << help.out;
}

}  // namespace
