// Golden tests: whole training steps and the schedule tables against values
// computed by an independent reference, tools/golden/make_golden.py (PyTorch
// modules and optimizers written from the documented semantics; numpy float64
// for the schedules). The golden files live in tests/golden/; regenerate with
//   /usr/bin/python3 tools/golden/make_golden.py --out tests/golden
// and check a regeneration against the committed files with
//   tools/golden/check_golden.sh
//
// Set MD_GOLDEN_VERBOSE=1 to print, per compared tensor, the largest
// |got - expected| as a fraction of what the tolerance allows.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <map>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "microdiffusion/model.h"
#include "microdiffusion/rng.h"
#include "microdiffusion/sample.h"
#include "microdiffusion/schedule.h"
#include "microdiffusion/train.h"

namespace {

std::string golden_path(const std::string& file) {
  return std::string(MD_SOURCE_DIR) + "/tests/golden/" + file;
}

bool verbose() {
  const char* v = std::getenv("MD_GOLDEN_VERBOSE");
  return v != nullptr && v[0] != '\0' && v[0] != '0';
}

// ---- The golden file format: "name count v1 ... v_count", '#' comments. ----

class GoldenFile {
 public:
  // Returns an empty string on success, else what went wrong.
  std::string load(const std::string& path) {
    std::ifstream in(path);
    if (!in) return "cannot open " + path;
    std::string line;
    int line_no = 0;
    while (std::getline(in, line)) {
      ++line_no;
      if (line.empty() || line[0] == '#') continue;
      std::istringstream ss(line);
      std::string name;
      long long count = -1;
      if (!(ss >> name >> count) || count < 0)
        return path + ":" + std::to_string(line_no) + ": expected 'name count values...'";
      std::vector<std::string> values;
      std::string tok;
      while (ss >> tok) values.push_back(tok);
      if (static_cast<long long>(values.size()) != count)
        return path + ":" + std::to_string(line_no) + ": '" + name + "' says " + std::to_string(count) +
               " values but has " + std::to_string(values.size());
      if (!entries_.emplace(name, std::move(values)).second)
        return path + ":" + std::to_string(line_no) + ": duplicate entry '" + name + "'";
    }
    if (entries_.empty()) return path + ": no entries";
    return "";
  }

  bool has(const std::string& name) const { return entries_.count(name) != 0; }

  const std::vector<std::string>& words(const std::string& name) const {
    static const std::vector<std::string> kEmpty;
    auto it = entries_.find(name);
    if (it == entries_.end()) {
      ADD_FAILURE() << "golden entry '" << name << "' is missing";
      return kEmpty;
    }
    return it->second;
  }

  std::vector<double> doubles(const std::string& name) const {
    std::vector<double> out;
    for (const std::string& w : words(name)) out.push_back(parse<double>(name, w));
    return out;
  }
  // %.9g text round-trips a float32 exactly through strtof.
  std::vector<float> floats(const std::string& name) const {
    std::vector<float> out;
    for (const std::string& w : words(name)) out.push_back(parse<float>(name, w));
    return out;
  }
  std::vector<int32_t> ints(const std::string& name) const {
    std::vector<int32_t> out;
    for (const std::string& w : words(name)) out.push_back(static_cast<int32_t>(parse<long>(name, w)));
    return out;
  }
  double scalar(const std::string& name) const {
    const std::vector<double> v = doubles(name);
    if (v.size() != 1) {
      ADD_FAILURE() << "golden entry '" << name << "' should hold one value";
      return NAN;
    }
    return v[0];
  }

  size_t count_prefix(const std::string& prefix) const {
    size_t n = 0;
    for (const auto& e : entries_)
      if (e.first.compare(0, prefix.size(), prefix) == 0) ++n;
    return n;
  }

 private:
  template <class T>
  static T parse(const std::string& name, const std::string& w) {
    char* end = nullptr;
    T v;
    if constexpr (std::is_same_v<T, float>) v = std::strtof(w.c_str(), &end);
    else if constexpr (std::is_same_v<T, double>) v = std::strtod(w.c_str(), &end);
    else v = std::strtol(w.c_str(), &end, 10);
    if (end == w.c_str() || *end != '\0') ADD_FAILURE() << "golden entry '" << name << "': bad number '" << w << "'";
    return v;
  }

  std::map<std::string, std::vector<std::string>> entries_;
};

// ---- Comparison with a stated tolerance: |got - want| <= abs + rel * |want|. ----

struct Tolerance {
  double abs;
  double rel;
};

// Compares n values; reports the first few mismatches with name, index, got,
// expected. Returns true when all are within tolerance.
// `labels`, when given, names each position (e.g. the schedule row k it holds).
template <class Got, class Want>
bool expect_close(const std::string& what, const Got* got, const std::vector<Want>& want, size_t n,
                  Tolerance tol, const std::vector<int32_t>* labels = nullptr) {
  if (want.size() != n) {
    ADD_FAILURE() << what << ": golden has " << want.size() << " values, runtime " << n;
    return false;
  }
  size_t bad = 0;
  double worst = 0.0;  // largest |diff| / allowed
  for (size_t i = 0; i < n; ++i) {
    const double g = static_cast<double>(got[i]), w = static_cast<double>(want[i]);
    if (std::isinf(w) && g == w) continue;  // e.g. 1 / sqrt(alpha_bar) where alpha_bar_T = 0
    const double diff = std::fabs(g - w);
    const double allowed = tol.abs + tol.rel * std::fabs(w);
    const double ratio = allowed > 0.0 ? diff / allowed : (diff > 0.0 ? INFINITY : 0.0);
    if (ratio > worst || std::isnan(g)) worst = std::isnan(g) ? INFINITY : ratio;
    if (!(diff <= allowed)) {
      if (bad < 5)
        ADD_FAILURE() << what << "[" << (labels && i < labels->size() ? (*labels)[i] : static_cast<int64_t>(i))
                      << "]: got " << std::setprecision(9) << g << ", expected " << w
                      << " (|diff| " << diff << " > allowed " << allowed << ")";
      ++bad;
    }
  }
  if (bad > 5) ADD_FAILURE() << what << ": " << bad << " of " << n << " values out of tolerance";
  if (verbose()) std::printf("  %-44s n=%-5zu worst |diff|/allowed = %.3g\n", what.c_str(), n, worst);
  return bad == 0;
}

// ---- Schedules ----------------------------------------------------------------

struct ScheduleCase {
  const char* name;
  md::ScheduleDesc desc;
};

md::ScheduleDesc scaled_linear(uint32_t T, float start, float end) {
  md::ScheduleDesc d = md::linear_schedule(T);
  d.kind = md::ScheduleKind::kScaledLinear;
  d.beta_start = start;
  d.beta_end = end;
  return d;
}
md::ScheduleDesc sigmoid(uint32_t T, float start, float end) {
  md::ScheduleDesc d = scaled_linear(T, start, end);
  d.kind = md::ScheduleKind::kSigmoid;
  return d;
}

md::ScheduleDesc zero_terminal_snr(md::ScheduleDesc d) {
  d.zero_terminal_snr = 1;
  return d;
}

std::vector<ScheduleCase> schedule_cases() {
  md::ScheduleDesc ho;  // the struct's defaults: Ho et al.'s linear 1e-4 .. 0.02, T = 1000
  ho.T = 1000;
  return {{"linear_1000", ho},
          {"linear_200", md::linear_schedule(200)},
          {"linear_10", md::linear_schedule(10)},
          {"cosine_1000", md::cosine_schedule(1000)},
          {"cosine_50", md::cosine_schedule(50)},
          {"scaled_linear_1000", scaled_linear(1000, 0.00085f, 0.012f)},
          {"sigmoid_100", sigmoid(100, 1e-5f, 1e-2f)},
          {"linear_zsnr_100", zero_terminal_snr(md::linear_schedule(100))},
          {"cosine_zsnr_50", zero_terminal_snr(md::cosine_schedule(50))}};
}

TEST(Golden, ScheduleTablesMatchFloat64Reference) {
  GoldenFile g;
  const std::string err = g.load(golden_path("schedules.txt"));
  ASSERT_EQ(err, "");

  // The runtime computes every table in double and stores it as float32, so a
  // correct table is within half an ulp of the float64 reference: relative
  // error <= 2^-24 ~ 6e-8. 2e-7 (about 3 ulps) leaves room for the order of
  // the double operations; the tiny absolute term only matters for the exact
  // zeros (posterior variance and coef2 at k = 0). A wrong formula -- a
  // missing sqrt, an off-by-one alpha_bar_prev, 1 - ab for ab -- is off by
  // far more.
  const Tolerance tol{1e-30, 2e-7};

  for (const ScheduleCase& c : schedule_cases()) {
    SCOPED_TRACE(c.name);
    const std::string n = c.name;
    // The golden tables use the float32 constants the ScheduleDesc (and the
    // weight file) holds: 1e-4f, 0.02f, 0.008f, 0.999f. Against improved-
    // diffusion's float64 constants the tables differ by up to 2.3e-7
    // relative (linear) and 1.3e-5 at steps capped at max_beta (0.999f =
    // 0.999000013); schedules.txt notes the figures per schedule.
    const std::vector<std::string>& p = g.words(n + ".params");
    ASSERT_EQ(p.size(), 6u);
    EXPECT_EQ(p[0], md::schedule_kind_name(c.desc.kind));
    EXPECT_EQ(std::strtoul(p[1].c_str(), nullptr, 10), c.desc.T);
    EXPECT_EQ(std::strtof(p[2].c_str(), nullptr), c.desc.beta_start);
    EXPECT_EQ(std::strtof(p[3].c_str(), nullptr), c.desc.beta_end);
    EXPECT_EQ(std::strtof(p[4].c_str(), nullptr), c.desc.cosine_s);
    EXPECT_EQ(std::strtof(p[5].c_str(), nullptr), c.desc.max_beta);
    EXPECT_EQ(g.has(n + ".zero_terminal_snr") ? g.scalar(n + ".zero_terminal_snr") : 0.0, c.desc.zero_terminal_snr);

    std::vector<float> storage(md::kScheduleTables * c.desc.T);
    md::Schedule s;
    const md::Status st = md::build_schedule(c.desc, storage.data(), &s);
    ASSERT_TRUE(st.ok()) << st.message;

    const std::vector<int32_t> rows = g.ints(n + ".k");
    ASSERT_FALSE(rows.empty());
    const std::pair<const char*, const float*> tables[] = {
        {"beta", s.beta},
        {"alpha", s.alpha},
        {"alpha_bar", s.alpha_bar},
        {"alpha_bar_prev", s.alpha_bar_prev},
        {"sqrt_alpha_bar", s.sqrt_alpha_bar},
        {"sqrt_one_minus_alpha_bar", s.sqrt_one_minus_alpha_bar},
        {"sqrt_recip_alpha_bar", s.sqrt_recip_alpha_bar},
        {"sqrt_recipm1_alpha_bar", s.sqrt_recipm1_alpha_bar},
        {"posterior_variance", s.posterior_variance},
        {"posterior_log_variance_clipped", s.posterior_log_variance_clipped},
        {"posterior_mean_coef1", s.posterior_mean_coef1},
        {"posterior_mean_coef2", s.posterior_mean_coef2},
        {"recip_sqrt_alpha", s.recip_sqrt_alpha},
        {"eps_coef", s.eps_coef},
    };
    static_assert(sizeof(tables) / sizeof(tables[0]) == md::kScheduleTables, "every table is compared");
    for (const auto& t : tables) {
      std::vector<float> got;
      for (int32_t k : rows) {
        ASSERT_TRUE(k >= 0 && static_cast<uint32_t>(k) < c.desc.T) << "row " << k;
        got.push_back(t.second[k]);
      }
      expect_close(n + "." + t.first, got.data(), g.doubles(n + "." + t.first), got.size(), tol, &rows);
    }
  }
}

// ---- Training -----------------------------------------------------------------

// Tolerances of the training comparisons. The reference is PyTorch in float32,
// so both sides round at every operation but sum in different orders (GEMMs,
// the batch reductions, the loss mean) and use different libm sin/exp/tanh/erf:
// differences are a few float32 ulps of the larger terms of each sum. The
// absolute terms are scaled by the largest |expected| value of each tensor
// (its natural unit), so a tensor of small gradients is not held to a looser
// standard than one of large ones.
//
//  * network output, loss, gradient norm: 1e-6 of the tensor's scale plus 5e-6
//    relative -- a few dozen ulps (observed worst: a tenth of this);
//  * gradients before clipping: 4e-6 of the tensor's largest gradient plus
//    4e-5 relative. Every gradient passes through up to seven layers of
//    float32 sums; the observed worst is under a tenth of this
//    (MD_GOLDEN_VERBOSE=1 prints the margins);
//  * parameters and EMA after three Adam steps: 2e-6 of the tensor's scale plus
//    1e-5 relative. Adam's update is lr * m / (sqrt(v) + eps), insensitive to
//    a gradient's scale, so gradient rounding moves a parameter by about
//    lr * 1e-6; a wrong bias correction, decay, clip or EMA moves it by
//    about lr = 1e-2.
// A wrong formula anywhere (a sign, a missing factor 2 in the loss, a wrong
// derivative, a transposed weight) is off by whole percents, orders of
// magnitude beyond these.
constexpr double kOutputAbs = 1e-6, kOutputRel = 5e-6;
constexpr double kGradAbs = 4e-6, kGradRel = 4e-5;
constexpr double kParamAbs = 2e-6, kParamRel = 1e-5;

template <class T>
double max_abs(const std::vector<T>& v) {
  double m = 0.0;
  for (T x : v) m = std::fmax(m, std::fabs(static_cast<double>(x)));
  return m;
}

Tolerance scaled(const std::vector<float>& want, double abs_frac, double rel) {
  return Tolerance{abs_frac * std::fmax(max_abs(want), 1e-30), rel};
}

const char* role_name(md::TensorRole r) {
  switch (r) {
    case md::TensorRole::kWeight: return "W";
    case md::TensorRole::kBias: return "b";
    case md::TensorRole::kTable: return "table";
  }
  return "?";
}

std::string tensor_name(const md::TensorDesc& td) {
  return "l" + std::to_string(td.layer) + "." + role_name(td.role);
}

std::string format_float(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
  return buf;
}

// The golden file's layer list must describe exactly `desc`.
void expect_same_model(const GoldenFile& g, const md::ModelDesc& desc) {
  EXPECT_EQ(g.scalar("config.D"), desc.D);
  EXPECT_EQ(g.scalar("config.T"), desc.T);
  ASSERT_EQ(g.scalar("config.n_layers"), desc.n_layers);
  for (uint32_t l = 0; l < desc.n_layers; ++l) {
    const md::LayerDesc& L = desc.layers[l];
    const std::vector<std::string> want = g.words("layer." + std::to_string(l));
    const std::vector<std::string> got = {md::layer_kind_name(L.kind),
                                          std::to_string(L.in),
                                          std::to_string(L.out),
                                          md::activation_name(L.act),
                                          std::to_string(L.x_raw),
                                          std::to_string(L.x_sin_dim),
                                          format_float(L.x_scale),
                                          std::to_string(L.t_sin_dim)};
    EXPECT_EQ(got, want) << "layer " << l;
  }
}

md::TrainConfig golden_config(const GoldenFile& g) {
  md::TrainConfig c;
  c.batch = static_cast<uint32_t>(g.scalar("config.batch"));
  c.lr = g.scalar("config.lr");
  const std::vector<double> betas = g.doubles("config.betas");
  if (betas.size() == 2) {
    c.beta1 = betas[0];
    c.beta2 = betas[1];
  }
  c.adam_eps = g.scalar("config.adam_eps");
  c.weight_decay = g.scalar("config.weight_decay");
  const std::vector<std::string>& opt = g.words("config.optimizer");
  EXPECT_TRUE(opt.size() == 1 && (opt[0] == "adamw" || opt[0] == "adam"));
  c.decoupled_weight_decay = !opt.empty() && opt[0] == "adamw";
  c.grad_clip_norm = g.scalar("config.grad_clip_norm");
  c.ema_decay = g.scalar("config.ema_decay");
  c.warmup_steps = 0;
  c.total_steps = 0;  // constant learning rate, as torch.optim without a scheduler
  return c;
}

struct Batch {
  std::vector<float> x0, eps;
  std::vector<int32_t> t;
};

void run_golden_training(const char* file, const md::ModelDesc& desc) {
  if (verbose()) std::printf("%s\n", file);
  GoldenFile g;
  const std::string err = g.load(golden_path(file));
  ASSERT_EQ(err, "");
  ASSERT_TRUE(md::validate_model(desc).ok());
  expect_same_model(g, desc);
  if (::testing::Test::HasFatalFailure() || ::testing::Test::HasNonfatalFailure()) return;

  const md::TrainConfig config = golden_config(g);
  const uint32_t B = config.batch, D = desc.D;
  const size_t BD = static_cast<size_t>(B) * D;
  const md::ScheduleDesc sched = md::linear_schedule(desc.T);
  {
    const std::vector<std::string>& s = g.words("config.schedule");
    ASSERT_EQ(s.size(), 4u);
    EXPECT_EQ(s[0], "linear");
    EXPECT_EQ(std::strtof(s[2].c_str(), nullptr), sched.beta_start);
    EXPECT_EQ(std::strtof(s[3].c_str(), nullptr), sched.beta_end);
  }

  std::vector<uint8_t> arena_buffer(md::training_arena_bytes(desc, B));
  md::Arena arena(arena_buffer.data(), arena_buffer.size());
  md::Trainer trainer;
  {
    const md::Status st = trainer.init(desc, sched, config, arena);
    ASSERT_TRUE(st.ok()) << st.message;
  }
  // The two tables x_t is formed from: float32 roundings of the same doubles
  // (one ulp allows for a double computed one ulp apart landing on the other
  // side of a float32 rounding boundary).
  expect_close("schedule.sqrt_alpha_bar", trainer.schedule().sqrt_alpha_bar,
               g.floats("schedule.sqrt_alpha_bar"), desc.T, Tolerance{0.0, 1.2e-7});
  expect_close("schedule.sqrt_one_minus_alpha_bar", trainer.schedule().sqrt_one_minus_alpha_bar,
               g.floats("schedule.sqrt_one_minus_alpha_bar"), desc.T, Tolerance{0.0, 1.2e-7});

  // The initial parameters, in the flat layout (padding stays zero).
  const md::ParamLayout layout = md::param_layout(desc);
  ASSERT_EQ(trainer.param_floats(), layout.total_floats);
  ASSERT_EQ(g.count_prefix("init."), layout.n_tensors) << "golden and runtime disagree on the tensors";
  std::vector<float> init(layout.total_floats, 0.0f);
  for (uint32_t i = 0; i < layout.n_tensors; ++i) {
    const md::TensorDesc& td = layout.tensors[i];
    const std::string name = tensor_name(td);
    EXPECT_EQ(g.ints("shape." + name), (std::vector<int32_t>{static_cast<int32_t>(td.rows),
                                                             static_cast<int32_t>(td.cols)}))
        << name;
    const std::vector<float> v = g.floats("init." + name);
    ASSERT_EQ(v.size(), td.count()) << name;
    std::memcpy(init.data() + td.offset, v.data(), v.size() * sizeof(float));
  }

  std::vector<Batch> batches;
  const int steps = static_cast<int>(g.scalar("config.steps"));
  for (int k = 1; k <= steps; ++k) {
    const std::string p = "batch" + std::to_string(k) + ".";
    Batch b{g.floats(p + "x0"), g.floats(p + "eps"), g.ints(p + "t")};
    ASSERT_EQ(b.x0.size(), BD);
    ASSERT_EQ(b.eps.size(), BD);
    ASSERT_EQ(b.t.size(), B);
    batches.push_back(std::move(b));
  }

  // ---- Step 1 in pieces: forward, loss, gradients before clipping. ----
  ASSERT_TRUE(trainer.set_parameters(init.data(), init.size()).ok());
  {
    const std::vector<float> xt = g.floats("step1.xt");
    const std::vector<float> want = g.floats("step1.pred");
    ASSERT_EQ(xt.size(), BD);
    std::vector<float> pred(BD), scratch(md::forward_scratch_floats(desc, B));
    md::model_forward(trainer.model(false), xt.data(), batches[0].t.data(), B, pred.data(), scratch.data());
    expect_close("step1.pred", pred.data(), want, BD, scaled(want, kOutputAbs, kOutputRel));
  }
  float loss = 0.0f;
  {
    const md::Status st = trainer.loss_and_gradients(batches[0].x0.data(), batches[0].t.data(),
                                                     batches[0].eps.data(), &loss);
    ASSERT_TRUE(st.ok()) << st.message;
  }
  const std::vector<float> losses = g.floats("steps.loss");
  const std::vector<float> norms = g.floats("steps.grad_norm");
  ASSERT_EQ(losses.size(), static_cast<size_t>(steps));
  ASSERT_EQ(norms.size(), static_cast<size_t>(steps));
  expect_close("step1.loss", &loss, std::vector<float>{losses[0]}, 1, Tolerance{0.0, kOutputRel});
  std::vector<bool> padding(layout.total_floats, true);
  for (uint32_t i = 0; i < layout.n_tensors; ++i) {
    const md::TensorDesc& td = layout.tensors[i];
    const std::vector<float> want = g.floats("grad." + tensor_name(td));
    expect_close("grad." + tensor_name(td), trainer.grads() + td.offset, want, td.count(),
                 scaled(want, kGradAbs, kGradRel));
    for (uint32_t j = 0; j < td.count(); ++j) padding[td.offset + j] = false;
  }
  for (size_t i = 0; i < padding.size(); ++i) {
    if (padding[i]) {
      EXPECT_EQ(trainer.grads()[i], 0.0f) << "padding gradient at float " << i;
    }
  }

  // ---- Three whole steps from the same start. ----
  ASSERT_TRUE(trainer.set_parameters(init.data(), init.size()).ok());
  const std::vector<int32_t> clipped = g.ints("steps.clipped");
  for (int k = 0; k < steps; ++k) {
    SCOPED_TRACE("step " + std::to_string(k + 1));
    const md::Status st = trainer.step_on(batches[k].x0.data(), batches[k].t.data(), batches[k].eps.data(), &loss);
    ASSERT_TRUE(st.ok()) << st.message;
    const std::string s = "step" + std::to_string(k + 1);
    expect_close(s + ".loss", &loss, std::vector<float>{losses[k]}, 1, Tolerance{0.0, kOutputRel});
    const float norm = trainer.last_grad_norm();
    expect_close(s + ".grad_norm", &norm, std::vector<float>{norms[k]}, 1, Tolerance{0.0, kOutputRel});
    // Clipping applied on the same steps (none of the golden norms is near 1).
    if (static_cast<size_t>(k) < clipped.size()) {
      EXPECT_EQ(norm + 1e-6 > config.grad_clip_norm, clipped[k] != 0) << s << " norm " << norm;
    }
  }
  EXPECT_EQ(trainer.steps_done(), static_cast<uint64_t>(steps));
  for (uint32_t i = 0; i < layout.n_tensors; ++i) {
    const md::TensorDesc& td = layout.tensors[i];
    const std::string name = tensor_name(td);
    const std::vector<float> want_p = g.floats("final." + name);
    expect_close("final." + name, trainer.params() + td.offset, want_p, td.count(),
                 scaled(want_p, kParamAbs, kParamRel));
    const std::vector<float> want_e = g.floats("ema." + name);
    expect_close("ema." + name, trainer.ema() + td.offset, want_e, td.count(),
                 scaled(want_e, kParamAbs, kParamRel));
  }
}

// D=2, T=10: embed(x) -> 3 x (TimeGate(16) -> softplus) -> Linear(2). AdamW.
TEST(Golden, TrainingStepsTutorialPreset) {
  run_golden_training("train_tutorial.txt", md::preset_tutorial(2, 10, 16));
}

// D=2, T=10: sinusoids (8 per coordinate at scale 25, 8 of t) -> Linear(16)
// -> gelu_tanh -> 3 residual gelu_tanh blocks -> Linear(2). AdamW; the third
// step's gradients are clipped, the first two are not.
TEST(Golden, TrainingStepsDefaultPreset) {
  run_golden_training("train_default.txt", md::preset_default(2, 10, 16, 8, 3));
}

// D=3, T=10: the remaining layer kinds and activations.
constexpr md::ModelDesc mixed_model() {
  md::ModelBuilder b(3, 10);
  b.embed(1, 4, 2.0f, 6)
      .linear(8)
      .activation(md::Activation::kSiLU)
      .time_add()
      .residual(md::Activation::kReLU)
      .residual(md::Activation::kGeluErf)
      .residual(md::Activation::kTanh)
      .linear(3);
  return b.d;
}

// Plain Adam without weight decay.
TEST(Golden, TrainingStepsMixedLayersAdam) { run_golden_training("train_mixed.txt", mixed_model()); }

// Adam with coupled L2 weight decay (added to the gradient), same model and data.
TEST(Golden, TrainingStepsMixedLayersAdamL2) { run_golden_training("train_mixed_l2.txt", mixed_model()); }


// ---- Samplers against float64 numpy (samplers.txt) ------------------------------

// The affine denoiser of samplers.txt, eps(x, k) = x W + b + table[k], as the
// runtime's layers: embed (x only) -> linear -> time_add.
struct AffineDenoiser {
  md::ModelDesc desc;
  std::vector<float> params;
  std::vector<double> W, b, table;
  explicit AffineDenoiser(const GoldenFile& g) {
    const uint32_t T = static_cast<uint32_t>(g.scalar("T"));
    md::ModelBuilder mb(2, T);
    mb.embed(1, 0, 1.0f, 0).linear(2).time_add();
    desc = mb.d;
    const md::ParamLayout layout = md::param_layout(desc);
    params.assign(layout.total_floats, 0.0f);
    W = g.doubles("W");
    b = g.doubles("b");
    table = g.doubles("table");
    for (uint32_t i = 0; i < layout.n_tensors; ++i) {
      const md::TensorDesc& td = layout.tensors[i];
      const std::vector<double>& src = td.layer == 2 ? table : td.role == md::TensorRole::kWeight ? W : b;
      EXPECT_EQ(src.size(), td.count());
      for (uint32_t j = 0; j < td.count() && j < src.size(); ++j) params[td.offset + j] = static_cast<float>(src[j]);
    }
  }
  // eps for one row (D = 2) at timestep index k, in double.
  void eps(const float* x, uint32_t k, double* out) const {
    for (int c = 0; c < 2; ++c) out[c] = x[0] * W[c] + x[1] * W[2 + c] + b[c] + table[k * 2 + c];
  }
};

struct Trajectory {
  std::vector<std::vector<float>> states;  // x_T, then x after each step
  static void observe(void* self, int32_t, const float* x, uint32_t n, uint32_t) {
    static_cast<Trajectory*>(self)->states.emplace_back(x, x + 2 * n);
  }
};

// Runs `config` on the golden x_T; returns every state.
Trajectory run_sampler(const GoldenFile& g, const AffineDenoiser& m, md::SamplerConfig config, uint64_t seed) {
  const std::vector<int32_t> ts = g.ints("timesteps");
  const std::vector<uint32_t> steps(ts.begin(), ts.end());
  config.timesteps = steps.data();
  config.n_timesteps = static_cast<uint32_t>(steps.size());
  const std::vector<float> x_T = g.floats("x_T");
  const uint32_t n = static_cast<uint32_t>(x_T.size() / 2);
  std::vector<unsigned char> buf(md::sampling_arena_bytes(m.desc, n));
  md::Arena arena(buf.data(), buf.size());
  md::Sampler sampler;
  const md::Model model = md::bind_model(m.desc, m.params.data());
  Trajectory tr;
  md::Status s = sampler.init(model, md::linear_schedule(m.desc.T), config, n, arena);
  EXPECT_TRUE(s.ok()) << s.message;
  std::vector<float> out(x_T.size());
  s = sampler.sample_from(x_T.data(), seed, 0, n, out.data(), Trajectory::observe, &tr);
  EXPECT_TRUE(s.ok()) << s.message;
  return tr;
}

// |got - want| <= 2e-5 of the state's largest magnitude (at least 1): float32
// tables and arithmetic against float64, through at most five steps.
void expect_state(const std::vector<float>& got, const double* want, size_t n, const std::string& what) {
  double scale = 1.0;
  for (size_t j = 0; j < n; ++j) scale = std::fmax(scale, std::fabs(want[j]));
  for (size_t j = 0; j < n; ++j)
    EXPECT_NEAR(got[j], want[j], 2e-5 * scale) << what << " value " << j;
}

TEST(Golden, DeterministicSamplersMatchFloat64Trajectories) {
  GoldenFile g;
  const std::string err = g.load(golden_path("samplers.txt"));
  ASSERT_EQ(err, "") << err;
  const AffineDenoiser m(g);
  const struct {
    const char* name;
    md::SamplerKind kind;
  } cases[] = {{"ddim", md::SamplerKind::kDdim}, {"dpmpp2m", md::SamplerKind::kDpmSolver2M},
               {"ode", md::SamplerKind::kOdeHeun}};
  for (const auto& c : cases) {
    md::SamplerConfig config;
    config.kind = c.kind;
    const Trajectory tr = run_sampler(g, m, config, 1);
    const std::vector<double> want = g.doubles(std::string(c.name) + ".x");
    const size_t K = g.ints("timesteps").size(), BD = g.floats("x_T").size();
    ASSERT_EQ(tr.states.size(), K + 1) << c.name;
    ASSERT_EQ(want.size(), K * BD) << c.name;
    for (size_t i = 0; i < K; ++i)
      expect_state(tr.states[i + 1], &want[i * BD], BD, std::string(c.name) + " step " + std::to_string(i + 1));
  }
  md::Sampler unused;
  float out[2];
  EXPECT_EQ(unused.sample_from(nullptr, 1, 0, 1, out).code, md::StatusCode::kInvalidArgument);
}

// DDPM (both variances) and DDIM with eta = 0.7: each step's result from the
// captured state, the golden coefficients and the runtime's noise for
// (seed, sample, timestep): x' = A x + C eps + S z, or A x0_hat + C eps + S z.
TEST(Golden, StochasticSamplerStepsMatchFloat64Coefficients) {
  GoldenFile g;
  const std::string err = g.load(golden_path("samplers.txt"));
  ASSERT_EQ(err, "") << err;
  const AffineDenoiser m(g);
  const std::vector<int32_t> ts = g.ints("timesteps");
  const size_t K = ts.size();
  md::ScheduleDesc sd = md::linear_schedule(m.desc.T);
  std::vector<float> storage(md::kScheduleTables * m.desc.T);
  md::Schedule sched;
  ASSERT_TRUE(md::build_schedule(sd, storage.data(), &sched).ok());
  const uint64_t seed = 77;
  const struct {
    const char* name;
    md::SamplerKind kind;
    md::Variance variance;
    bool via_x0;
  } cases[] = {{"ddpm_small", md::SamplerKind::kDdpm, md::Variance::kFixedSmall, false},
               {"ddpm_large", md::SamplerKind::kDdpm, md::Variance::kFixedLarge, false},
               {"ddim_eta", md::SamplerKind::kDdim, md::Variance::kFixedSmall, true}};
  for (const auto& c : cases) {
    md::SamplerConfig config;
    config.kind = c.kind;
    config.variance = c.variance;
    config.eta = 0.7f;
    const Trajectory tr = run_sampler(g, m, config, seed);
    const std::vector<double> A = g.doubles(std::string(c.name) + ".A"), C = g.doubles(std::string(c.name) + ".C"),
                              S = g.doubles(std::string(c.name) + ".S");
    ASSERT_EQ(tr.states.size(), K + 1) << c.name;
    ASSERT_EQ(A.size(), K);
    for (size_t step = 0; step < K; ++step) {
      const uint32_t k = static_cast<uint32_t>(ts[K - 1 - step]);
      const std::vector<float>& x = tr.states[step];
      std::vector<double> want(x.size());
      for (uint32_t r = 0; r < x.size() / 2; ++r) {
        double eps[2];
        m.eps(&x[2 * r], k, eps);
        float z[2];
        md::gaussian_fill(seed, md::RngStream::kSampleStep, r, k, z, 2);
        for (int j = 0; j < 2; ++j) {
          const double a = std::sqrt(static_cast<double>(sched.alpha_bar[k]));
          const double x0 = (x[2 * r + j] - std::sqrt(1.0 - a * a) * eps[j]) / a;
          want[2 * r + j] = A[step] * (c.via_x0 ? x0 : x[2 * r + j]) + C[step] * eps[j] + S[step] * z[j];
        }
      }
      expect_state(tr.states[step + 1], want.data(), want.size(),
                   std::string(c.name) + " step " + std::to_string(step + 1));
    }
  }
}

}  // namespace
