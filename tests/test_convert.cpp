// Checkpoint conversion (tools/convert, `microdiffusion convert` / `predict`)
// against fixtures written by PyTorch (tools/convert/make_fixtures.py):
//
//  - every format (zip and legacy torch.save, safetensors, stored and deflate
//    .npz, f64/f16/bf16, strided tensors, wrapped checkpoints, a mapping file)
//    converts, and the runtime's outputs match PyTorch's recorded outputs to
//    |got - want| <= 1e-5 * max(1, |want|) (float32; kOutputTol);
//  - ancestral sampling with the noise PyTorch used reproduces PyTorch's
//    trajectory to |got - want| <= 2e-5 * max(1, |want|) at every step (kSampleTol);
//  - the Python exporter's .mdw is accepted, predicts identically and equals
//    the C++ converter's file byte for byte;
//  - the inflater matches zlib on every block type;
//  - malicious pickles are refused naming the global, and their payload
//    (creating a marker file) never runs;
//  - truncated, bit-flipped and hand-crafted hostile inputs give errors, not crashes.
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
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "convert/convert.h"
#include "cli_util.h"
#include "microdiffusion/microdiffusion.h"

namespace {

using md_test::CliResult;
using md_test::file_exists;
using md_test::run_cli;
using md_test::slurp;

namespace cv = md::convert;

constexpr double kOutputTol = 1e-5;
constexpr double kSampleTol = 2e-5;
const char kMarker[] = "/tmp/microdiffusion_convert_pwned";

std::string fixture(const std::string& name) { return std::string(MD_SOURCE_DIR) + "/tests/convert/" + name; }

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << "cannot open " << path;
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// tests/convert/expected.txt: "name count v1 ... v_count" per line.
class Expected {
 public:
  static const Expected& get() {
    static const Expected e(fixture("expected.txt"));
    return e;
  }
  const std::vector<double>& operator[](const std::string& name) const {
    const auto it = v_.find(name);
    if (it == v_.end()) {
      ADD_FAILURE() << "expected.txt has no " << name;
      static const std::vector<double> empty;
      return empty;
    }
    return it->second;
  }
  std::vector<float> f(const std::string& name) const {
    const auto& d = (*this)[name];
    return std::vector<float>(d.begin(), d.end());
  }
  std::vector<int32_t> i(const std::string& name) const {
    const auto& d = (*this)[name];
    std::vector<int32_t> r;
    for (double x : d) r.push_back(static_cast<int32_t>(x));
    return r;
  }

 private:
  explicit Expected(const std::string& path) {
    std::ifstream f(path);
    std::string line;
    while (std::getline(f, line)) {
      if (line.empty() || line[0] == '#') continue;
      std::istringstream in(line);
      std::string name;
      size_t n;
      in >> name >> n;
      std::vector<double> vals(n);
      for (size_t k = 0; k < n; ++k) {
        std::string tok;
        in >> tok;
        vals[k] = std::strtod(tok.c_str(), nullptr);
      }
      v_[name] = std::move(vals);
    }
  }
  std::map<std::string, std::vector<double>> v_;
};

// A weight file held 64-byte aligned and bound in place.
struct Bound {
  std::vector<uint64_t> storage;
  md::LoadedWeights w;
  md::Status status;
  explicit Bound(const std::vector<uint8_t>& bytes) : storage(bytes.size() / 8 + 16) {
    uint8_t* p = reinterpret_cast<uint8_t*>(storage.data());
    p += (64 - reinterpret_cast<uintptr_t>(p) % 64) % 64;
    std::memcpy(p, bytes.data(), bytes.size());
    status = md::load_weights(p, bytes.size(), &w);
  }
};

std::vector<float> forward(const md::Model& m, const std::vector<int32_t>& t, const std::vector<float>& x,
                           const std::vector<int32_t>& labels = {}) {
  const uint32_t n = static_cast<uint32_t>(t.size());
  std::vector<float> out(static_cast<size_t>(n) * m.desc.D), scratch(md::forward_scratch_floats(m.desc, n));
  md::model_forward(m, x.data(), t.data(), n, out.data(), scratch.data(), labels.empty() ? nullptr : labels.data());
  return out;
}

struct Agreement {
  double max_abs = 0.0, max_rel = 0.0;  // rel over |want| >= 1e-2
  double worst = 0.0;                   // max |got - want| / max(1, |want|)
};

Agreement agreement(const std::vector<float>& got, const std::vector<float>& want) {
  Agreement a;
  EXPECT_EQ(got.size(), want.size());
  for (size_t k = 0; k < got.size() && k < want.size(); ++k) {
    const double d = std::fabs(static_cast<double>(got[k]) - want[k]);
    a.max_abs = std::max(a.max_abs, d);
    if (std::fabs(want[k]) >= 1e-2) a.max_rel = std::max(a.max_rel, d / std::fabs(want[k]));
    a.worst = std::max(a.worst, d / std::max(1.0, std::fabs(static_cast<double>(want[k]))));
  }
  return a;
}

cv::ConvertOptions options(uint32_t T = 0, const std::string& key = "") {
  cv::ConvertOptions o;
  o.T = T;
  o.key = key;
  return o;
}

std::string convert_file(const std::string& name, const cv::ConvertOptions& o, cv::ConvertResult* r) {
  const std::vector<uint8_t> bytes = read_bytes(fixture(name));
  return cv::convert(bytes.data(), bytes.size(), o, r);
}

// ---- inflate ---------------------------------------------------------------------

TEST(ConvertInflate, MatchesZlibOnEveryBlockType) {
  const std::vector<uint8_t> f = read_bytes(fixture("inflate_cases.bin"));
  ASSERT_GE(f.size(), 12u);
  ASSERT_EQ(std::memcmp(f.data(), "MDINFL01", 8), 0);
  uint32_t count;
  std::memcpy(&count, f.data() + 8, 4);
  size_t p = 12;
  for (uint32_t c = 0; c < count; ++c) {
    const std::string label(reinterpret_cast<const char*>(f.data() + p + 1), f[p]);
    p += 1 + f[p];
    uint32_t raw_len, raw_crc, comp_len;
    std::memcpy(&raw_len, f.data() + p, 4);
    std::memcpy(&raw_crc, f.data() + p + 4, 4);
    std::memcpy(&comp_len, f.data() + p + 8, 4);
    p += 12;
    ASSERT_LE(p + comp_len, f.size());
    const uint8_t* comp = f.data() + p;
    p += comp_len;
    std::vector<uint8_t> out;
    size_t used = 0;
    ASSERT_EQ(cv::inflate_raw(comp, comp_len, raw_len, &out, &used), "") << label;
    EXPECT_EQ(out.size(), raw_len) << label;
    EXPECT_EQ(md::crc32(out.data(), out.size()), raw_crc) << label;
    EXPECT_EQ(used, comp_len) << label;
    // One byte less room than the data needs is an error, never an overrun.
    if (raw_len > 0) EXPECT_NE(cv::inflate_raw(comp, comp_len, raw_len - 1, &out), "") << label;
    // Every strict prefix is truncated.
    const size_t stride = comp_len > 3000 ? 97 : 1;
    for (size_t n = 0; n < comp_len; n += stride) EXPECT_NE(cv::inflate_raw(comp, n, raw_len, &out), "") << label << " " << n;
    // Flipped bits: any result, no crash, never more than the limit.
    std::vector<uint8_t> bad(comp, comp + comp_len);
    uint32_t seed = 12345 + c;
    for (int k = 0; k < 300 && comp_len > 0; ++k) {
      seed = seed * 1664525u + 1013904223u;
      std::vector<uint8_t> b = bad;
      b[(seed >> 8) % comp_len] ^= static_cast<uint8_t>(1u << ((seed >> 4) & 7));
      cv::inflate_raw(b.data(), b.size(), raw_len + 100, &out);
      EXPECT_LE(out.size(), raw_len + 100u);
    }
  }
  EXPECT_EQ(p, f.size());
}

TEST(ConvertInflate, RandomBytesNeverCrash) {
  uint32_t seed = 99;
  std::vector<uint8_t> out;
  int ok = 0;
  for (int k = 0; k < 3000; ++k) {
    std::vector<uint8_t> b(1 + k % 200);
    for (uint8_t& x : b) {
      seed = seed * 1664525u + 1013904223u;
      x = static_cast<uint8_t>(seed >> 24);
    }
    ok += cv::inflate_raw(b.data(), b.size(), 1 << 16, &out).empty();
    EXPECT_LE(out.size(), 1u << 16);
  }
  EXPECT_LT(ok, 3000);
  EXPECT_EQ(cv::inflate_raw(nullptr, 0, 10, &out), "deflate stream is truncated");
}

// ---- conversion and predictions vs PyTorch -----------------------------------------

struct Case {
  const char* file;
  const char* key;
  const char* expected;  // expected.txt prefix of the outputs
  const char* probe;     // expected.txt prefix of the inputs
  const char* format;
  const char* arch;
  uint32_t T;            // --T (0: from tables)
};

const Case kCases[] = {
    {"tutorial.pt", "", "tutorial", "tutorial", "pytorch zip", "tutorial", 0},
    {"tutorial_legacy.pt", "", "tutorial", "tutorial", "pytorch legacy", "tutorial", 0},
    {"tutorial.safetensors", "", "tutorial", "tutorial", "safetensors", "tutorial", 0},
    {"tutorial_stored.npz", "", "tutorial", "tutorial", "npz", "tutorial", 0},
    {"tutorial_deflate.npz", "", "tutorial", "tutorial", "npz", "tutorial", 20},
    {"tutorial_wrapped.pt", "model", "tutorial", "tutorial", "pytorch zip", "tutorial", 0},
    {"tutorial_wrapped.pt", "ema", "tutorial_ema", "tutorial", "pytorch zip", "tutorial", 0},
    {"tutorial_strided.pt", "", "tutorial", "tutorial", "pytorch zip", "tutorial", 0},
    {"tutorial_f64.safetensors", "", "tutorial", "tutorial", "safetensors", "tutorial", 0},
    {"tutorial_f64.npz", "", "tutorial", "tutorial", "npz", "tutorial", 0},
    {"tutorial_f64_legacy.pt", "", "tutorial", "tutorial", "pytorch legacy", "tutorial", 0},
    {"tutorial_f16.safetensors", "", "tutorial_f16", "tutorial", "safetensors", "tutorial", 0},
    {"tutorial_f16.npz", "", "tutorial_f16", "tutorial", "npz", "tutorial", 0},
    {"tutorial_f16.pt", "", "tutorial_f16", "tutorial", "pytorch zip", "tutorial", 0},
    {"tutorial_bf16.safetensors", "", "tutorial_bf16", "tutorial", "safetensors", "tutorial", 0},
    {"tutorial_bf16_legacy.pt", "", "tutorial_bf16", "tutorial", "pytorch legacy", "tutorial", 0},
    {"default.pt", "", "default", "default", "pytorch zip", "default", 20},
    {"default_legacy.pt", "", "default", "default", "pytorch legacy", "default", 20},
    {"default.safetensors", "", "default", "default", "safetensors", "default", 20},
    {"default_stored.npz", "", "default", "default", "npz", "default", 20},
    {"default_deflate.npz", "", "default", "default", "npz", "default", 20},
    {"default_wrapped_legacy.pt", "model", "default", "default", "pytorch legacy", "default", 20},
    {"default_wrapped_legacy.pt", "ema", "default_ema", "default", "pytorch legacy", "default", 20},
};

TEST(Convert, EveryFormatPredictsLikePyTorch) {
  const Expected& e = Expected::get();
  Agreement total;
  for (const Case& c : kCases) {
    SCOPED_TRACE(std::string(c.file) + (c.key[0] ? std::string(" --key ") + c.key : ""));
    cv::ConvertResult r;
    ASSERT_EQ(convert_file(c.file, options(c.T, c.key), &r), "");
    EXPECT_EQ(r.format, c.format);
    EXPECT_EQ(r.arch, c.arch);
    EXPECT_EQ(r.model.desc.T, 20u);
    EXPECT_EQ(r.model.desc.D, 2u);
    Bound b(r.mdw);
    ASSERT_TRUE(b.status.ok()) << b.status.message;
    const std::string probe = c.probe;
    const std::vector<float> got = forward(b.w.model, e.i(probe + ".t"), e.f(probe + ".x"));
    const Agreement a = agreement(got, e.f(std::string(c.expected) + ".eps"));
    EXPECT_LE(a.worst, kOutputTol) << "max abs " << a.max_abs << " max rel " << a.max_rel;
    std::printf("  %-28s %-6s max abs err %.3g, max rel err %.3g\n", c.file, c.key, a.max_abs, a.max_rel);
    total.max_abs = std::max(total.max_abs, a.max_abs);
    total.max_rel = std::max(total.max_rel, a.max_rel);
  }
  std::printf("  all formats: max abs err %.3g, max rel err %.3g (|want| >= 0.01)\n", total.max_abs, total.max_rel);
}

TEST(Convert, PresetsMatchTheRuntimesOwnDescriptions) {
  cv::ConvertResult r;
  ASSERT_EQ(convert_file("tutorial.pt", options(), &r), "");
  const md::ModelDesc tut = md::preset_tutorial(2, 20, 16);
  ASSERT_EQ(r.model.desc.n_layers, tut.n_layers);
  ASSERT_EQ(std::memcmp(&r.model.desc, &tut, sizeof(tut)), 0);
  ASSERT_EQ(convert_file("default.pt", options(20), &r), "");
  const md::ModelDesc def = md::preset_default(2, 20, 16, 8, 3);
  ASSERT_EQ(std::memcmp(&r.model.desc, &def, sizeof(def)), 0);
  // The schedule defaults to linear_schedule(T); flags override it.
  EXPECT_EQ(r.schedule.kind, md::ScheduleKind::kLinear);
  EXPECT_EQ(r.schedule.beta_start, md::linear_schedule(20).beta_start);
  EXPECT_EQ(r.schedule.beta_end, md::linear_schedule(20).beta_end);
  cv::ConvertOptions o = options(20);
  o.schedule = md::ScheduleKind::kCosine;
  ASSERT_EQ(convert_file("default.pt", o, &r), "");
  EXPECT_EQ(r.schedule.kind, md::ScheduleKind::kCosine);
  o.schedule = md::ScheduleKind::kLinear;
  o.beta_start = 1e-3;
  o.beta_end = 0.2;
  ASSERT_EQ(convert_file("default.pt", o, &r), "");
  {
    Bound b(r.mdw);
    ASSERT_TRUE(b.status.ok());
    EXPECT_EQ(b.w.schedule.beta_start, 1e-3f);
    EXPECT_EQ(b.w.schedule.beta_end, 0.2f);
  }
  // The tutorial's own schedule (sigmoid, 1e-5 to 1e-2) and another parameterisation.
  o = options();
  o.schedule = md::ScheduleKind::kSigmoid;
  o.beta_start = 1e-5;
  o.beta_end = 1e-2;
  o.meta.prediction = md::Prediction::kV;
  ASSERT_EQ(convert_file("tutorial.pt", o, &r), "");
  Bound b(r.mdw);
  ASSERT_TRUE(b.status.ok());
  EXPECT_EQ(b.w.schedule.kind, md::ScheduleKind::kSigmoid);
  EXPECT_EQ(b.w.schedule.beta_start, 1e-5f);
  EXPECT_EQ(b.w.meta.prediction, md::Prediction::kV);
}

TEST(Convert, ConditionalExportKeepsLabelsScheduleAndPrediction) {
  const Expected& e = Expected::get();
  Bound b(read_bytes(fixture("conditional_export.mdw")));
  ASSERT_TRUE(b.status.ok()) << b.status.message;
  EXPECT_EQ(b.w.model.desc.n_classes, 3u);
  EXPECT_EQ(b.w.meta.prediction, md::Prediction::kV);
  EXPECT_EQ(b.w.meta.variance, md::Variance::kFixedLarge);
  EXPECT_EQ(b.w.schedule.kind, md::ScheduleKind::kSigmoid);
  EXPECT_EQ(b.w.schedule.beta_start, 1e-5f);
  EXPECT_EQ(b.w.schedule.beta_end, 1e-2f);
  EXPECT_STREQ(b.w.meta.dataset, "moons");
  const Agreement a = agreement(forward(b.w.model, e.i("conditional.t"), e.f("conditional.x"), e.i("conditional.label")),
                                e.f("conditional.eps"));
  EXPECT_LE(a.worst, kOutputTol) << a.max_abs;
  std::printf("  conditional_export.mdw: max abs err %.3g, max rel err %.3g\n", a.max_abs, a.max_rel);
}

TEST(Convert, MappingFileCoversOtherLayers) {
  const Expected& e = Expected::get();
  const std::vector<uint8_t> map = read_bytes(fixture("custom.map"));
  cv::ConvertOptions o;
  o.map_text.assign(map.begin(), map.end());
  o.map_name = "custom.map";
  cv::ConvertResult r;
  ASSERT_EQ(convert_file("custom.pt", o, &r), "");
  EXPECT_EQ(r.arch, "map");
  EXPECT_EQ(r.model.desc.D, 3u);
  EXPECT_EQ(r.model.desc.T, 20u);
  EXPECT_EQ(r.model.desc.n_layers, 10u);
  EXPECT_EQ(r.model.desc.n_classes, 3u);
  Bound b(r.mdw);
  ASSERT_TRUE(b.status.ok()) << b.status.message;
  const Agreement a =
      agreement(forward(b.w.model, e.i("custom.t"), e.f("custom.x"), e.i("custom.label")), e.f("custom.eps"));
  EXPECT_LE(a.worst, kOutputTol) << a.max_abs;
  std::printf("  custom.pt + custom.map: max abs err %.3g, max rel err %.3g\n", a.max_abs, a.max_rel);

  // Without the ignore line the buffer is unexpected; a wrong tensor is a size mismatch.
  std::string text(map.begin(), map.end());
  o.map_text = text.substr(0, text.find("ignore")) + text.substr(text.find('\n', text.find("ignore")) + 1);
  std::string err = convert_file("custom.pt", o, &r);
  EXPECT_NE(err.find("Unexpected key(s) in state_dict: \"net.steps_seen\""), std::string::npos) << err;
  o.map_text = text;
  o.map_text.replace(o.map_text.find("weight=net.res.1.weight"), 23, "weight=net.gate.lin.weight");
  err = convert_file("custom.pt", o, &r);
  EXPECT_NE(err.find("size mismatch for 'net.gate.lin.weight'"), std::string::npos) << err;
  EXPECT_NE(err.find("Unexpected key(s) in state_dict: \"net.res.1.weight\""), std::string::npos) << err;
}

TEST(Convert, MappingFileErrorsNameTheLine) {
  const struct {
    const char* text;
    const char* message;
  } cases[] = {
      {"embed x_raw=1\nconv weight=a bias=b\n", "m:2: unknown line 'conv'"},
      {"embed x_raw=1\nlinear weight=a\n", "m:2: linear needs weight=NAME and bias=NAME"},
      {"embed x_raw=2\nlinear weight=a bias=b\n", "m:1: bad value for x_raw"},
      {"embed x_sin=3\nlinear weight=a bias=b\n", "m:1: bad value for x_sin"},
      {"linear weight=a bias=b\n", "m:1: the first layer must be embed"},
      {"embed\nactivation swish\n", "m:2: activation needs an activation"},
      {"embed\nlinear weight=a bias=b layout=xy\n", "m:2: layout must be"},
      {"embed\ntime_add\n", "m:2: time_add needs table=NAME"},
      {"embed\nlinear weight=a bias=b bias=c\n", "m:2: bias given twice"},
      {"embed\nresidual relu weight=a bias=b table=c\n", "m:2: residual does not take 'table'"},
      {"T x\n", "m:1: T needs one positive integer"},
      {"embed\n", "a mapping needs an embed line"},
  };
  for (const auto& c : cases) {
    cv::ModelSpec spec;
    const std::string err = cv::parse_map(c.text, "m", &spec);
    EXPECT_NE(err.find(c.message), std::string::npos) << c.text << " -> " << err;
  }
}

TEST(Convert, StrictLoadListsEveryMissingAndUnexpectedTensor) {
  const std::vector<uint8_t> bytes = read_bytes(fixture("tutorial.pt"));
  cv::Checkpoint ck;
  ASSERT_EQ(cv::read_checkpoint(bytes.data(), bytes.size(), &ck), "");
  ck.tensors.erase(std::remove_if(ck.tensors.begin(), ck.tensors.end(),
                                  [](const cv::TensorRef& t) { return t.name == "lin2.lin.bias" || t.name == "lin4.bias"; }),
                   ck.tensors.end());
  ck.tensors.push_back(ck.tensors[0]);
  ck.tensors.back().name = "extra.weight";
  cv::ModelSpec spec;
  ASSERT_EQ(cv::preset_spec("auto", ck, &spec), "");
  cv::Converted out;
  const std::string err = cv::build_model(spec, ck, 0, &out);
  EXPECT_NE(err.find("Missing key(s) in state_dict: \"lin2.lin.bias\", \"lin4.bias\"."), std::string::npos) << err;
  EXPECT_NE(err.find("Unexpected key(s) in state_dict: \"extra.weight\"."), std::string::npos) << err;
  // The wrong preset: every tensor is missing or unexpected.
  ASSERT_EQ(cv::preset_spec("default", ck, &spec), "");
  const std::string err2 = cv::build_model(spec, ck, 20, &out);
  EXPECT_NE(err2.find("\"input.weight\""), std::string::npos) << err2;
  EXPECT_NE(err2.find("\"lin1.lin.weight\""), std::string::npos) << err2;
  // A table whose rows disagree with --T.
  cv::ConvertResult r;
  const std::string err3 = convert_file("tutorial.pt", options(50), &r);
  EXPECT_NE(err3.find("has 20 rows (timesteps) but --T gives T = 50"), std::string::npos) << err3;
  // The default model has no tables: T must be given.
  const std::string err4 = convert_file("default.pt", options(), &r);
  EXPECT_NE(err4.find("give --T"), std::string::npos) << err4;
}

TEST(Convert, WrappedCheckpointsNeedAKey) {
  cv::ConvertResult r;
  std::string err = convert_file("tutorial_wrapped.pt", options(), &r);
  EXPECT_NE(err.find("--key ema"), std::string::npos) << err;
  EXPECT_NE(err.find("--key model"), std::string::npos) << err;
  err = convert_file("tutorial_wrapped.pt", options(0, "nope"), &r);
  EXPECT_NE(err.find("no tensors under that key"), std::string::npos) << err;
  EXPECT_NE(err.find("'optimizer'"), std::string::npos) << err;
  err = convert_file("tutorial_wrapped.pt", options(0, "model.lin4.bias"), &r);
  EXPECT_NE(err.find("names a tensor"), std::string::npos) << err;
  // The optimizer's state is readable (exp_avg etc. under integer keys), just not a model.
  const std::vector<uint8_t> bytes = read_bytes(fixture("tutorial_wrapped.pt"));
  cv::Checkpoint ck;
  ASSERT_EQ(cv::read_checkpoint(bytes.data(), bytes.size(), &ck), "");
  EXPECT_NE(ck.find("optimizer.state.0.exp_avg"), nullptr);
  EXPECT_NE(ck.find("ema.lin4.weight"), nullptr);
  EXPECT_EQ(ck.tensors.size(), 11u * 2 + 11u * 3);  // model + ema + (step, exp_avg, exp_avg_sq) per parameter
}

TEST(Convert, StridedTensorsAreCopiedCorrectly) {
  const std::vector<uint8_t> a = read_bytes(fixture("tutorial.pt")), b = read_bytes(fixture("tutorial_strided.pt"));
  cv::Checkpoint ca, cb;
  ASSERT_EQ(cv::read_checkpoint(a.data(), a.size(), &ca), "");
  ASSERT_EQ(cv::read_checkpoint(b.data(), b.size(), &cb), "");
  const cv::TensorRef* w = cb.find("lin2.lin.weight");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->strides, (std::vector<int64_t>{32, 2}));
  EXPECT_EQ(cb.find("lin1.lin.bias")->offset, 5u);
  EXPECT_EQ(cb.find("lin4.weight")->strides, (std::vector<int64_t>{1, 2}));
  for (const char* name : {"lin2.lin.weight", "lin1.lin.bias", "lin4.weight"}) {
    std::vector<float> x, y;
    ASSERT_EQ(cv::tensor_to_f32(*ca.find(name), &x), "");
    ASSERT_EQ(cv::tensor_to_f32(*cb.find(name), &y), "");
    EXPECT_EQ(x, y) << name;
  }
}

// ---- sampling with PyTorch's noise ----------------------------------------------------

TEST(Convert, AncestralSamplingReproducesPyTorch) {
  const Expected& e = Expected::get();
  for (const char* name : {"tutorial", "default"}) {
    SCOPED_TRACE(name);
    cv::ConvertResult r;
    cv::ConvertOptions o = options(20);
    o.beta_end = e[std::string(name) + ".sample.beta_end"].at(0);  // a well-conditioned schedule (make_fixtures.py)
    ASSERT_EQ(convert_file(std::string(name) + ".pt", o, &r), "");
    Bound b(r.mdw);
    ASSERT_TRUE(b.status.ok());
    const md::Model& m = b.w.model;
    const uint32_t T = m.desc.T, D = m.desc.D;
    std::vector<float> tables(md::kScheduleTables * T);
    md::Schedule s;
    ASSERT_TRUE(md::build_schedule(b.w.schedule, tables.data(), &s).ok());
    std::vector<float> x = e.f(std::string(name) + ".sample.xT");
    const std::vector<float> z = e.f(std::string(name) + ".sample.z");
    const std::vector<float> traj = e.f(std::string(name) + ".sample.traj");
    const uint32_t n = static_cast<uint32_t>(x.size() / D);
    ASSERT_EQ(traj.size(), static_cast<size_t>(T + 1) * n * D);
    std::vector<float> eps(x.size()), scratch(md::forward_scratch_floats(m.desc, n));
    Agreement worst;
    for (uint32_t k = T; k-- > 0;) {
      // x_{k-1} = (x_k - beta/sqrt(1 - ab) eps) / sqrt(alpha) + sigma z, sigma^2 = beta tilde (Algorithm 2)
      const std::vector<int32_t> t(n, static_cast<int32_t>(k));
      md::model_forward(m, x.data(), t.data(), n, eps.data(), scratch.data());
      const float sigma = std::sqrt(s.posterior_variance[k]);
      for (size_t j = 0; j < x.size(); ++j) {
        x[j] = s.recip_sqrt_alpha[k] * (x[j] - s.eps_coef[k] * eps[j]);
        if (k > 0) x[j] += sigma * z[static_cast<size_t>(k) * n * D + j];
      }
      const size_t step = T - k;
      const std::vector<float> want(traj.begin() + step * n * D, traj.begin() + (step + 1) * n * D);
      const Agreement a = agreement(x, want);
      EXPECT_LE(a.worst, kSampleTol) << "step k = " << k;
      worst.max_abs = std::max(worst.max_abs, a.max_abs);
      worst.max_rel = std::max(worst.max_rel, a.max_rel);
    }
    std::printf("  %s sampling (%u steps, %u samples): max abs err %.3g, max rel err %.3g\n", name, T, n,
                worst.max_abs, worst.max_rel);
  }
}

// ---- the Python exporter ---------------------------------------------------------------

TEST(Convert, PythonExporterFileIsAcceptedAndIdentical) {
  const Expected& e = Expected::get();
  for (const char* name : {"tutorial", "default"}) {
    SCOPED_TRACE(name);
    const std::vector<uint8_t> exported = read_bytes(fixture(std::string(name) + "_export.mdw"));
    Bound b(exported);
    ASSERT_TRUE(b.status.ok()) << b.status.message;
    const Agreement a = agreement(forward(b.w.model, e.i(std::string(name) + ".t"), e.f(std::string(name) + ".x")),
                                  e.f(std::string(name) + ".eps"));
    EXPECT_LE(a.worst, kOutputTol) << a.max_abs;
    cv::ConvertOptions o = options(20);
    o.meta.is_ema = 0;
    std::snprintf(o.meta.dataset, sizeof(o.meta.dataset), "swissroll");
    cv::ConvertResult r;
    ASSERT_EQ(convert_file(std::string(name) + ".pt", o, &r), "");
    EXPECT_TRUE(r.mdw == exported) << "the exporter and the converter write different bytes";
  }
}

// ---- the command line ------------------------------------------------------------------

class ConvertCli : public md_test::TempDirTest {
 protected:
  ConvertCli() : TempDirTest("convert") {}
};

std::vector<float> parse_floats(const std::string& csv) {
  std::vector<float> v;
  std::string tok;
  for (char c : csv) {
    if (c == ',' || c == '\n') {
      if (!tok.empty()) v.push_back(std::strtof(tok.c_str(), nullptr));
      tok.clear();
    } else {
      tok += c;
    }
  }
  return v;
}

TEST_F(ConvertCli, CustomBetaListFromAFileOrTheConfig) {
  // The default fixture has no per-timestep tables, so T comes from the list.
  std::string list = "# trained_betas\n";
  for (int k = 0; k < 20; ++k) list += std::to_string(0.02 + 0.01 * k) + "\n";
  std::ofstream(dir + "/betas.txt") << list;
  CliResult r = run_cli("convert " + fixture("default_deflate.npz") + " --betas " + dir + "/betas.txt --out " + dir + "/m.mdw");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("schedule custom (20 betas) beta 0.02 -> 0.21"), std::string::npos) << r.out;
  r = run_cli("inspect " + dir + "/m.mdw");
  EXPECT_NE(r.out.find("schedule: custom (20 betas in the file)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("version 1.1"), std::string::npos) << r.out;
  // The same through --config.
  std::ofstream(dir + "/cfg.txt") << "betas " + dir + "/betas.txt\nprediction eps\n";
  r = run_cli("convert " + fixture("default_deflate.npz") + " --config " + dir + "/cfg.txt --out " + dir + "/c.mdw");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(slurp(dir + "/c.mdw"), slurp(dir + "/m.mdw"));
  // A list whose length is not the model's T, or next to --beta-start: refused, nothing written.
  r = run_cli("convert " + fixture("default_deflate.npz") + " --betas " + dir + "/betas.txt --T 25 --out " + dir + "/x.mdw");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("lists 20 betas"), std::string::npos) << r.out;
  r = run_cli("convert " + fixture("default_deflate.npz") + " --betas " + dir + "/betas.txt --beta-start 0.1 --out " +
              dir + "/x.mdw");
  EXPECT_EQ(r.code, 2);
  EXPECT_FALSE(file_exists(dir + "/x.mdw"));
}

TEST_F(ConvertCli, ConvertThenPredictMatchesPyTorch) {
  const Expected& e = Expected::get();
  for (const char* name : {"tutorial_legacy.pt", "default_deflate.npz"}) {
    SCOPED_TRACE(name);
    const bool tut = std::string(name).find("tutorial") == 0;
    const std::string prefix = tut ? "tutorial" : "default";
    CliResult r = run_cli("convert " + fixture(name) + " --out " + dir + "/m.mdw" + (tut ? "" : " --T 20") + " --data swissroll");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find(tut ? "arch tutorial" : "arch default"), std::string::npos) << r.out;
    const std::vector<int32_t> t = e.i(prefix + ".t");
    const std::vector<float> x = e.f(prefix + ".x");
    std::ofstream in(dir + "/in.csv");
    in << "# t,x1,x2\n";
    char buf[64];
    for (size_t k = 0; k < t.size(); ++k) {
      std::snprintf(buf, sizeof(buf), "%d,%.9g,%.9g\n", t[k], x[2 * k], x[2 * k + 1]);
      in << buf;
    }
    in.close();
    r = run_cli("predict --model " + dir + "/m.mdw --input " + dir + "/in.csv --out " + dir + "/out.csv");
    ASSERT_EQ(r.code, 0) << r.out;
    std::ifstream f(dir + "/out.csv");
    const std::string csv((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const Agreement a = agreement(parse_floats(csv), e.f(prefix + ".eps"));
    EXPECT_LE(a.worst, kOutputTol) << a.max_abs;
    r = run_cli("inspect " + dir + "/m.mdw");
    EXPECT_NE(r.out.find("swissroll"), std::string::npos) << r.out;
    EXPECT_EQ(r.code, 0);
  }
  // A mapping file through the CLI; predict with class labels.
  CliResult r = run_cli("convert " + fixture("custom.pt") + " --map " + fixture("custom.map") + " --out " + dir + "/c.mdw");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("3 classes"), std::string::npos) << r.out;
  {
    const std::vector<int32_t> t = e.i("custom.t"), label = e.i("custom.label");
    const std::vector<float> x = e.f("custom.x");
    std::ofstream in(dir + "/cin.csv");
    char buf[96];
    for (size_t k = 0; k < t.size(); ++k) {
      std::snprintf(buf, sizeof(buf), "%d,%d,%.9g,%.9g,%.9g\n", t[k], label[k], x[3 * k], x[3 * k + 1], x[3 * k + 2]);
      in << buf;
    }
    in.close();
    r = run_cli("predict --model " + dir + "/c.mdw --input " + dir + "/cin.csv --labels");  // to stdout
    ASSERT_EQ(r.code, 0) << r.out;
    const Agreement a = agreement(parse_floats(r.out), e.f("custom.eps"));
    EXPECT_LE(a.worst, kOutputTol) << a.max_abs;
  }
  r = run_cli("convert " + fixture("tutorial_wrapped.pt") + " --list --key ema");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("lin1.embed.weight"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(20, 16)"), std::string::npos) << r.out;
  r = run_cli("convert " + fixture("tutorial_wrapped.pt") + " --key ema --out " + dir + "/e.mdw");
  ASSERT_EQ(r.code, 0) << r.out;
  r = run_cli("inspect " + dir + "/e.mdw");
  EXPECT_NE(r.out.find("weights: EMA"), std::string::npos) << r.out;
  for (const char* c : {"convert", "predict"}) {
    r = run_cli(std::string(c) + " --help");
    EXPECT_EQ(r.code, 0);
    EXPECT_NE(r.out.find("usage: microdiffusion " + std::string(c)), std::string::npos);
  }
}

TEST_F(ConvertCli, BadInputsGetClearErrorsAndNoOutput) {
  ASSERT_EQ(run_cli("convert " + fixture("tutorial.pt") + " --out " + dir + "/m.mdw").code, 0);
  std::ofstream(dir + "/range.csv") << "0,1,2\n19,0,0\n20,1,1\n";
  std::ofstream(dir + "/cols.csv") << "0,1,2\n\n# c\n3,1\n";
  std::ofstream(dir + "/frac.csv") << "1.5,1,2\n";
  std::ofstream(dir + "/text.csv") << "1,x,2\n";
  std::ofstream(dir + "/junk.pt") << "definitely not a checkpoint";
  std::ofstream(dir + "/badlabel.csv") << "0,4,1,2,3\n";
  ASSERT_EQ(run_cli("convert " + fixture("custom.pt") + " --map " + fixture("custom.map") + " --out " + dir + "/c.mdw").code, 0);
  const struct {
    std::string args;
    int code;
    const char* message;
  } cases[] = {
      {"predict --model {dir}/m.mdw --input {dir}/range.csv --out {dir}/o.csv", 1, "range.csv:3: t = 20 is not an integer timestep index in [0, 19]"},
      {"predict --model {dir}/m.mdw --input {dir}/cols.csv --out {dir}/o.csv", 1, "cols.csv:4: has 2 fields, the model needs 3"},
      {"predict --model {dir}/m.mdw --input {dir}/frac.csv --out {dir}/o.csv", 1, "frac.csv:1: t = 1.5 is not an integer"},
      {"predict --model {dir}/m.mdw --input {dir}/text.csv --out {dir}/o.csv", 1, "text.csv:1: field 2 is not a number"},
      {"predict --model {dir}/junk.pt --input {dir}/range.csv --out {dir}/o.csv", 1, "not a usable weight file"},
      {"predict --input {dir}/range.csv", 2, "--model is required"},
      {"convert {src}/default.pt --out {dir}/o.mdw", 1, "give --T"},
      {"convert {src}/tutorial.pt --out {dir}/o.mdw --arch big", 2, "--arch must be"},
      {"convert {src}/tutorial.pt --out {dir}/o.mdw --arch default --map {src}/custom.map", 2, "exclude each other"},
      {"convert {src}/tutorial.pt --out {dir}/o.mdw --schedule cosine --beta-end 0.1", 2, "do not apply to the cosine"},
      {"convert {src}/tutorial.pt --out {dir}/o.mdw --schedule quadratic", 2, "--schedule must be"},
      {"convert {src}/tutorial.pt --out {dir}/o.mdw --prediction score", 2, "--prediction must be"},
      {"predict --model {dir}/m.mdw --input {dir}/range.csv --labels", 2, "not a class-conditional model"},
      {"predict --model {dir}/c.mdw --input {dir}/badlabel.csv --labels --out {dir}/o.csv", 1, "badlabel.csv:1: label 4 is not a class in [0, 3]"},
      {"convert {src}/tutorial.pt", 2, "--out is required"},
      {"convert {dir}/junk.pt --out {dir}/o.mdw", 1, "unrecognised file format"},
      {"convert {src}/missing.pt --out {dir}/o.mdw", 1, "cannot open"},
      {"convert {src}/evil_global.pt --out {dir}/o.mdw", 1, "GLOBAL 'os.system' is not allowed"},
      {"convert {src}/evil_stack_global.pt --out {dir}/o.mdw", 1, "STACK_GLOBAL 'os.system' is not allowed"},
      {"convert {src}/evil_reduce.pt --key model --out {dir}/o.mdw", 1, "GLOBAL 'posix.system' is not allowed"},
  };
  std::remove(kMarker);
  for (const auto& c : cases) {
    std::string args = c.args;
    for (size_t p; (p = args.find("{dir}")) != std::string::npos;) args.replace(p, 5, dir);
    for (size_t p; (p = args.find("{src}")) != std::string::npos;) args.replace(p, 5, fixture(""));
    const CliResult r = run_cli(args);
    EXPECT_EQ(r.code, c.code) << args << "\n" << r.out;
    EXPECT_NE(r.out.find(c.message), std::string::npos) << args << "\n" << r.out;
    EXPECT_FALSE(file_exists(dir + "/o.mdw")) << args;
    EXPECT_FALSE(file_exists(dir + "/o.csv")) << args;
  }
  EXPECT_FALSE(file_exists(kMarker)) << "a pickle payload ran";
}

// ---- hostile input ---------------------------------------------------------------------

TEST(ConvertHostile, MaliciousPicklesAreRefusedAndNeverRun) {
  std::remove(kMarker);
  const struct {
    const char* file;
    const char* message;
  } cases[] = {
      {"evil_global.pt", "pickle: GLOBAL 'os.system' is not allowed"},
      {"evil_stack_global.pt", "pickle: STACK_GLOBAL 'os.system' is not allowed"},
      {"evil_reduce.pt", "pickle: GLOBAL 'posix.system' is not allowed"},
  };
  for (const auto& c : cases) {
    const std::vector<uint8_t> bytes = read_bytes(fixture(c.file));
    cv::Checkpoint ck;
    const std::string err = cv::read_checkpoint(bytes.data(), bytes.size(), &ck);
    EXPECT_NE(err.find(c.message), std::string::npos) << c.file << ": " << err;
    EXPECT_NE(err.find("nothing was imported or executed"), std::string::npos) << err;
  }
  EXPECT_FALSE(file_exists(kMarker)) << "a pickle payload ran";
}

// Every fixture truncated at many lengths and with flipped bytes: errors (or,
// for flips that miss every check, a successful read), never a crash.
TEST(ConvertHostile, TruncatedAndCorruptFilesGiveErrors) {
  const char* files[] = {"tutorial.pt", "tutorial_legacy.pt", "tutorial.safetensors", "tutorial_stored.npz",
                         "tutorial_deflate.npz", "tutorial_wrapped.pt", "tutorial_strided.pt", "tutorial_f16.pt",
                         "tutorial_bf16_legacy.pt", "default_wrapped_legacy.pt", "custom.pt", "evil_reduce.pt"};
  size_t reads = 0, flipped_ok = 0;
  for (const char* name : files) {
    const std::vector<uint8_t> bytes = read_bytes(fixture(name));
    std::vector<size_t> cuts;
    for (size_t n = 0; n < std::min<size_t>(bytes.size(), 300); ++n) cuts.push_back(n);
    for (size_t n = 300; n < bytes.size(); n += 37) cuts.push_back(n);
    for (size_t n = bytes.size() > 100 ? bytes.size() - 100 : 0; n < bytes.size(); ++n) cuts.push_back(n);
    for (size_t n : cuts) {
      std::vector<uint8_t> b(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n));
      cv::Checkpoint ck;
      EXPECT_NE(cv::read_checkpoint(b.data(), b.size(), &ck), "") << name << " cut at " << n;
      ++reads;
    }
    uint32_t seed = 777;
    for (int k = 0; k < 400; ++k) {
      std::vector<uint8_t> b = bytes;
      for (int j = 0; j < 1 + k % 3; ++j) {
        seed = seed * 1664525u + 1013904223u;
        b[(seed >> 5) % b.size()] = static_cast<uint8_t>(seed >> 24);
      }
      cv::ConvertResult r;
      if (cv::convert(b.data(), b.size(), options(20, std::string(name).find("wrapped") != std::string::npos ? "model" : ""), &r).empty()) {
        ++flipped_ok;
        Bound bound(r.mdw);
        EXPECT_TRUE(bound.status.ok());
      }
      ++reads;
    }
  }
  std::printf("  %zu hostile reads, %zu corrupted files still converted (bytes in weights or padding)\n", reads,
              flipped_ok);
}

// Legacy torch.save framing around a hand-written main pickle.
std::vector<uint8_t> legacy(const std::string& main_pickle, const std::string& keys = std::string("\x80\x02]\x2e", 4),
                            const std::string& storages = "") {
  std::string s("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e", 15);  // magic
  s += std::string("\x80\x02M\xe9\x03.", 6);                                         // 1001
  s += std::string("\x80\x02}.", 4);                                                   // sys_info {}
  s += main_pickle + keys + storages;
  return std::vector<uint8_t>(s.begin(), s.end());
}

std::string u32le(uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }

// {'w': _rebuild_tensor_v2(storage('0', FloatStorage, numel 4), offset, size, stride, False, OrderedDict())}
std::vector<uint8_t> tensor_file(const std::string& size_tuple, const std::string& stride_tuple, int offset = 0,
                                 int numel = 4) {
  std::string p("\x80\x02}(X\x01\x00\x00\x00w", 10);
  p += "ctorch._utils\n_rebuild_tensor_v2\n((X" + u32le(7) + "storage" + "ctorch\nFloatStorage\nX" + u32le(1) + "0" +
       "X" + u32le(3) + "cpu" + "K" + std::string(1, static_cast<char>(numel)) + "Nt" + "Q";
  p += "K" + std::string(1, static_cast<char>(offset)) + size_tuple + stride_tuple;
  p += "\x89" "ccollections\nOrderedDict\n)Rt" "R" "u.";
  std::string keys = std::string("\x80\x02]X", 4) + u32le(1) + "0" + "a.";
  std::string data(8, '\0');
  data[0] = static_cast<char>(numel);
  for (int k = 0; k < numel; ++k) {
    const float f = static_cast<float>(k + 1);
    data += std::string(reinterpret_cast<const char*>(&f), 4);
  }
  return legacy(p, keys, data);
}

TEST(ConvertHostile, HandWrittenPickles) {
  struct C {
    std::vector<uint8_t> bytes;
    const char* message;  // "" = must succeed
  };
  const std::string k2 = std::string("K\x02\x85", 3), k1 = std::string("K\x01\x85", 3), k3 = std::string("K\x03\x85", 3);
  // An exponentially shared DAG: l0 = [], l_{i+1} = [l_i, l_i]; 40 levels is 2^40 paths.
  std::string dag("\x80\x02]q\x00", 5);
  for (int i = 0; i < 40; ++i) dag += "(h" + std::string(1, static_cast<char>(i)) + "h" + std::string(1, static_cast<char>(i)) + "lq" + std::string(1, static_cast<char>(i + 1));
  dag += ".";
  const C cases[] = {
      {tensor_file(k2, k2), ""},  // size 2, stride 2: elements 0 and 2
      {tensor_file(k3, k2), "reaches past the end of its storage"},
      {tensor_file(k2, k1, 3), "reaches past the end of its storage"},
      {tensor_file(std::string("K\x05\x85", 3), k1), "has 5 elements but its storage only 4"},
      {legacy(std::string("\x80\x02]q\x00h\x00\x61.", 9)), "reference cycle"},
      {legacy("\x80\x02(i__builtin__\nobject\n."), "INST (0x69) is not supported"},
      {legacy("\x80\x02" "cbuiltins\neval\n."), "GLOBAL 'builtins.eval' is not allowed"},
      {legacy("\x80\x02" "c__main__\nNet\n."), "save model.state_dict() instead"},
      {legacy(std::string("\x80\x02\x61.", 4)), "APPEND with too few items"},
      {legacy(std::string("\x80\x02h\x05.", 5)), "memo entry 5, which was never stored"},
      {legacy(std::string("\x80\x02\x8b\xff\xff\xff\x7f", 7)), "truncated LONG4"},
      {legacy(std::string("\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\x7f", 11)), "truncated BINUNICODE8"},
      {legacy(std::string("\x80\x02K\x01K\x02R.", 8)), "REDUCE (0x52) of a int, not a callable"},
      {legacy(std::string("\x80\x02\xff", 3)), "0xff (not a pickle opcode)"},
      {legacy(std::string("\x80\x02}", 3)), "no STOP opcode"},
      {legacy(dag), "too large to walk"},
      {legacy("\x80\x02" "ccollections\nOrderedDict\nK\x01\x85R."), "called with arguments"},
      {legacy(std::string("\x80\x02(X", 4) + u32le(7) + "storage" + "ctorch\nFloatStorage\nX" + u32le(1) + "0" +
              std::string("K\x01Nt", 4) + "Q."),
       "storage persistent ID has 5 fields"},
  };
  for (const C& c : cases) {
    cv::Checkpoint ck;
    const std::string err = cv::read_pytorch(c.bytes.data(), c.bytes.size(), &ck);
    if (c.message[0] == '\0') {
      ASSERT_EQ(err, "");
      ASSERT_EQ(ck.tensors.size(), 1u);
      std::vector<float> v;
      ASSERT_EQ(cv::tensor_to_f32(ck.tensors[0], &v), "");
      EXPECT_EQ(v, (std::vector<float>{1.0f, 3.0f}));
    } else {
      EXPECT_NE(err.find(c.message), std::string::npos) << "want '" << c.message << "', got: " << err;
    }
  }
}

std::vector<uint8_t> st_file(const std::string& json, size_t data_bytes) {
  std::string s(8, '\0');
  const uint64_t n = json.size();
  std::memcpy(&s[0], &n, 8);
  s += json + std::string(data_bytes, '\0');
  return std::vector<uint8_t>(s.begin(), s.end());
}

TEST(ConvertHostile, SafetensorsHeaders) {
  const struct {
    std::vector<uint8_t> bytes;
    const char* message;
  } cases[] = {
      {st_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8), ""},
      {st_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}})", 12), "spans 12 bytes but shape x dtype needs 8"},
      {st_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4), "outside the data region"},
      {st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})", 8), "overlap"},
      {st_file(R"({"a":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}})", 1), "unsupported dtype 'F8'"},
      {st_file(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4), "not a non-negative integer"},
      {st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{}})", 4), "duplicate key"},
      {st_file(R"({"a":)", 0), "JSON header ends early"},
      {st_file(std::string(100, '[') + std::string(100, ']'), 0), "nests too deeply"},
      {st_file(R"({"a":"\ud800"})", 0), "unpaired surrogate"},
      {st_file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", 4), "too large"},
  };
  for (const auto& c : cases) {
    cv::Checkpoint ck;
    const std::string err = cv::read_safetensors(c.bytes.data(), c.bytes.size(), &ck);
    if (c.message[0] == '\0') EXPECT_EQ(err, "");
    else EXPECT_NE(err.find(c.message), std::string::npos) << "want '" << c.message << "', got: " << err;
  }
  std::vector<uint8_t> huge = st_file("{}", 0);
  huge[7] = 0x7f;
  cv::Checkpoint ck;
  EXPECT_NE(cv::read_checkpoint(huge.data(), huge.size(), &ck), "");
}

std::vector<uint8_t> npy(const std::string& header, const std::string& data) {
  std::string h = header;
  while ((10 + h.size() + 1) % 64) h += ' ';
  h += '\n';
  std::string s = std::string("\x93NUMPY\x01\x00", 8) + static_cast<char>(h.size() & 0xFF) + static_cast<char>(h.size() >> 8) + h + data;
  return std::vector<uint8_t>(s.begin(), s.end());
}

TEST(ConvertHostile, NpyHeaders) {
  std::string six;
  for (int k = 0; k < 6; ++k) {
    const float f = static_cast<float>(k);
    six += std::string(reinterpret_cast<const char*>(&f), 4);
  }
  std::string big;  // '>f4' of 1, 2
  for (const uint8_t b : {0x3f, 0x80, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00}) big += static_cast<char>(b);
  cv::Checkpoint ck;
  std::vector<float> v;
  auto bytes = npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", six);
  ASSERT_EQ(cv::read_npy(bytes.data(), bytes.size(), &ck), "");
  ASSERT_EQ(cv::tensor_to_f32(ck.tensors[0], &v), "");
  EXPECT_EQ(v, (std::vector<float>{0, 2, 4, 1, 3, 5}));  // column-major storage, row-major values
  bytes = npy("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", big);
  ASSERT_EQ(cv::read_npy(bytes.data(), bytes.size(), &ck), "");
  ASSERT_EQ(cv::tensor_to_f32(ck.tensors[0], &v), "");
  EXPECT_EQ(v, (std::vector<float>{1, 2}));
  const struct {
    std::vector<uint8_t> bytes;
    const char* message;
  } cases[] = {
      {npy("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", "xxxxxxxx"), "object arrays are refused"},
      {npy("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", "xxxxxxxx"), "unsupported dtype '<c8'"},
      {npy("{'descr': '<f4', 'fortran_order': False, 'shape': (7,), }", six), "(truncated)"},
      {npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), '__class__': 1}", six), "unexpected header key"},
      {npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", "xxxx"), "structured dtypes"},
      {npy("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }", six), "too large"},
      {npy("__import__('os').system('x')", six), "header is not a dict"},
  };
  for (const auto& c : cases) {
    const std::string err = cv::read_npy(c.bytes.data(), c.bytes.size(), &ck);
    EXPECT_NE(err.find(c.message), std::string::npos) << "want '" << c.message << "', got: " << err;
  }
}

TEST(ConvertHostile, HalfAndBfloat16Conversion) {
  // float16 bit patterns: 1, -2, 65504 (max), 2^-24 (smallest subnormal), 2^-15 (subnormal), inf
  const uint16_t h[] = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x0200, 0x7C00};
  cv::TensorRef t;
  t.name = "h";
  t.dtype = cv::DType::kF16;
  t.shape = {6};
  t.strides = {1};
  t.data = reinterpret_cast<const uint8_t*>(h);
  t.storage_elems = 6;
  std::vector<float> v;
  ASSERT_EQ(cv::tensor_to_f32(t, &v), "");
  EXPECT_EQ(v[0], 1.0f);
  EXPECT_EQ(v[1], -2.0f);
  EXPECT_EQ(v[2], 65504.0f);
  EXPECT_EQ(v[3], std::ldexp(1.0f, -24));
  EXPECT_EQ(v[4], std::ldexp(1.0f, -15));
  EXPECT_TRUE(std::isinf(v[5]));
  t.dtype = cv::DType::kI16;
  EXPECT_NE(cv::tensor_to_f32(t, &v).find("only floating-point"), std::string::npos);
}

}  // namespace

namespace {

// Found by hand while fuzzing (docs/BAD_INPUT.md): a 32 KB .npz whose 300
// entries share one deflated 16 MB record, and a 4.6 KB pickle of lists that
// hold the same list twice, 20 levels deep, under a long key. Both once took
// gigabytes; now each is refused before it costs anything.
TEST(ConvertHostile, SharedZipRecordsAndPickleDagsAreRefusedCheaply) {
  for (const char* name : {"hostile_overlap.npz", "hostile_dag.pt"}) {
    const std::vector<uint8_t> bytes = read_bytes(fixture(name));
    ASSERT_FALSE(bytes.empty()) << name;
    cv::Checkpoint ck;
    const std::string err = cv::read_checkpoint(bytes.data(), bytes.size(), &ck);
    EXPECT_NE(err, "") << name;
    EXPECT_TRUE(err.find("members overlap") != std::string::npos ||
                err.find("too large to walk") != std::string::npos)
        << name << ": " << err;
  }
}

TEST_F(ConvertCli, ListEscapesControlBytesInTensorNames) {
  const CliResult r = run_cli("convert " + fixture("hostile_esc.safetensors") + " --list");
  for (char c : r.out) EXPECT_FALSE(c == '\x1b' || c == '\x07') << r.out;
}

}  // namespace

namespace {

TEST_F(ConvertCli, ScheduleFromAConfigFileWithFlagsWinning) {
  std::ofstream(dir + "/sched.cfg") << "# how the model was trained\nschedule = cosine\nprediction v\ndata moons\n";
  CliResult r = run_cli("convert " + fixture("tutorial.pt") + " --config " + dir + "/sched.cfg --out " + dir + "/a.mdw");
  ASSERT_EQ(r.code, 0) << r.out;
  r = run_cli("inspect " + dir + "/a.mdw");
  EXPECT_NE(r.out.find("schedule: cosine"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("prediction v"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("data moons"), std::string::npos) << r.out;
  r = run_cli("convert " + fixture("tutorial.pt") + " --config " + dir + "/sched.cfg --schedule linear --out " + dir +
              "/b.mdw");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(run_cli("inspect " + dir + "/b.mdw").out.find("schedule: linear"), std::string::npos);
  std::ofstream(dir + "/bad.cfg") << "T 20\nlearning-rate 3\n";
  r = run_cli("convert " + fixture("tutorial.pt") + " --config " + dir + "/bad.cfg --out " + dir + "/c.mdw");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("bad.cfg:2: unknown setting 'learning-rate'"), std::string::npos) << r.out;
  EXPECT_FALSE(file_exists(dir + "/c.mdw"));
}

}  // namespace
