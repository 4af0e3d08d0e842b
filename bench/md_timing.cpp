// md_timing: wall-clock timings of whole training steps and whole samplings
// from a given .mdw file, for comparisons with other implementations
// (bench/compare_pytorch.py). Prints one JSON line on stdout.
//
//   md_timing train  --init FILE.mdw [--batch 32] [--steps 2000] [--lr 1e-3] [--threads 1] [--data swissroll]
//   md_timing sample --model FILE.mdw [--n 1000] [--steps K] [--threads 1]
//
// train: a Trainer with the file's ModelDesc and schedule starts from the
// file's parameters (weights and EMA), runs --warmup untimed steps, then times
// --steps steps: {"ms_per_step": ..., "loss": mean loss of the last tenth, ...}.
// The optimizer settings are TrainConfig's defaults unless given (Adam, no
// clipping, no warmup or decay of the learning rate, EMA 0.995).
// sample: one ancestral (DDPM) sampling of --n points in one batch over every
// timestep, or --steps respaced ones: {"seconds": ..., ...}.
// Bad arguments print a message and exit with 2; runtime failures exit with 1.
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "microdiffusion/microdiffusion.h"
#include "threads/thread_pool.h"

namespace {

using Clock = std::chrono::steady_clock;

const char kUsage[] =
    "usage: md_timing train  --init FILE.mdw [options]\n"
    "       md_timing sample --model FILE.mdw [options]\n"
    "\n"
    "train options:\n"
    "  --batch N        minibatch size (default: 32)\n"
    "  --steps N        timed training steps (default: 2000)\n"
    "  --warmup N       untimed steps before them (default: 20)\n"
    "  --lr X           Adam learning rate, constant (default: 1e-3)\n"
    "  --ema X          EMA decay (default: 0.995)\n"
    "  --clip X         gradient-norm clipping (default: 0, off)\n"
    "  --data NAME      swissroll, moons, 8gaussians, circles, checkerboard (default: swissroll)\n"
    "  --n-data N       points drawn from the dataset (default: 100000)\n"
    "sample options:\n"
    "  --n N            points, sampled in one batch (default: 1000)\n"
    "  --steps K        respaced DDPM steps (default: every timestep of the file)\n"
    "  --warmup N       untimed forward passes of the batch first (default: 3)\n"
    "common options:\n"
    "  --threads N      threads for the large matrix products (default: 1)\n"
    "  --seed N         seed of data, minibatches and noise (default: 0)\n"
    "  --variant NAME   kernel variant: auto, reference, avx2, avx512, neon (default: auto)\n";

// Bad arguments (options, unreadable or unsuitable weight files): exit 2.
int usage_error(const std::string& message) {
  std::fprintf(stderr, "md_timing: %s\n", message.c_str());
  return 2;
}

int runtime_error(const std::string& message) {
  std::fprintf(stderr, "md_timing: %s\n", message.c_str());
  return 1;
}

std::string describe(const md::Status& s) {
  return std::string(md::status_code_name(s.code)) + ": " + s.message;
}

// --name value / --name=value, each name from the command's list.
class Flags {
 public:
  bool parse(int argc, char** argv, const std::vector<std::string>& names, std::string* error) {
    for (int i = 0; i < argc; ++i) {
      std::string a = argv[i];
      if (a.rfind("--", 0) != 0) {
        *error = "unexpected argument '" + a + "'";
        return false;
      }
      a = a.substr(2);
      std::string value;
      const size_t eq = a.find('=');
      bool have_value = false;
      if (eq != std::string::npos) {
        value = a.substr(eq + 1);
        a = a.substr(0, eq);
        have_value = true;
      }
      bool known = false;
      for (const std::string& n : names) known = known || n == a;
      if (!known) {
        *error = "unknown option '--" + a + "'";
        return false;
      }
      if (!have_value) {
        if (i + 1 >= argc) {
          *error = "--" + a + " needs a value";
          return false;
        }
        value = argv[++i];
      }
      values_[a] = value;
    }
    return true;
  }

  bool has(const std::string& name) const { return values_.count(name) != 0; }
  std::string str(const std::string& name, const std::string& fallback) const {
    const auto it = values_.find(name);
    return it == values_.end() ? fallback : it->second;
  }
  bool u64(const std::string& name, unsigned long long fallback, unsigned long long lo, unsigned long long hi,
           unsigned long long* out, std::string* error) const {
    *out = fallback;
    const auto it = values_.find(name);
    if (it == values_.end()) return true;
    const char* s = it->second.c_str();
    char* end = nullptr;
    errno = 0;
    const unsigned long long v = std::strtoull(s, &end, 10);
    if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0 || v < lo || v > hi) {
      *error = "--" + name + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
               "], got '" + it->second + "'";
      return false;
    }
    *out = v;
    return true;
  }
  bool f64(const std::string& name, double fallback, double lo, double hi, double* out, std::string* error) const {
    *out = fallback;
    const auto it = values_.find(name);
    if (it == values_.end()) return true;
    const char* s = it->second.c_str();
    char* end = nullptr;
    const double v = std::strtod(s, &end);
    if (*s == '\0' || *end != '\0' || !(v >= lo && v <= hi)) {
      char range[64];
      std::snprintf(range, sizeof(range), "[%g, %g]", lo, hi);
      *error = "--" + name + " must be a number in " + range + ", got '" + it->second + "'";
      return false;
    }
    *out = v;
    return true;
  }

 private:
  std::map<std::string, std::string> values_;
};

// A 64-byte aligned copy of a file, so the weight file is bound in place.
struct AlignedBuffer {
  struct alignas(64) Block {
    uint8_t bytes[64];
  };
  std::vector<Block> blocks;
  size_t size = 0;
  void resize(size_t n) {
    blocks.assign((n + 63) / 64 + 1, Block{});
    size = n;
  }
  uint8_t* data() { return blocks[0].bytes; }
};

bool load_model_file(const std::string& path, AlignedBuffer* buffer, md::LoadedWeights* w, std::string* error) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    *error = "cannot open '" + path + "': " + std::strerror(errno);
    return false;
  }
  std::vector<uint8_t> bytes;
  uint8_t chunk[65536];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof(chunk), f)) > 0) bytes.insert(bytes.end(), chunk, chunk + n);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) {
    *error = "cannot read '" + path + "'";
    return false;
  }
  buffer->resize(bytes.size());
  if (!bytes.empty()) std::memcpy(buffer->data(), bytes.data(), bytes.size());
  const md::Status s = md::load_weights(buffer->data(), buffer->size, w);
  if (!s.ok()) {
    *error = "'" + path + "' is not a usable weight file: " + describe(s);
    return false;
  }
  return true;
}

// The options every command takes; the pool lives in main's scope.
struct Common {
  unsigned long long threads = 1, seed = 0;
  std::string variant = "auto";
};

bool parse_common(const Flags& flags, Common* c, std::string* error) {
  if (!flags.u64("threads", 1, 1, 64, &c->threads, error) || !flags.u64("seed", 0, 0, ~0ull, &c->seed, error))
    return false;
  c->variant = flags.str("variant", "auto");
  if (!md::select_kernel_variant(c->variant.c_str()).ok()) {
    *error = "--variant '" + c->variant + "' is unknown or not available on this CPU";
    return false;
  }
  return true;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// ---- train -----------------------------------------------------------------

int run_train(int argc, char** argv) {
  Flags flags;
  std::string err;
  if (!flags.parse(argc, argv,
                   {"init", "batch", "steps", "warmup", "lr", "ema", "clip", "data", "n-data", "threads", "seed",
                    "variant"},
                   &err))
    return usage_error(err);
  if (!flags.has("init")) return usage_error("train needs --init FILE.mdw");
  Common common;
  unsigned long long batch, steps, warmup, n_data;
  double lr, ema, clip;
  if (!parse_common(flags, &common, &err) || !flags.u64("batch", 32, 1, 65536, &batch, &err) ||
      !flags.u64("steps", 2000, 1, 100000000, &steps, &err) ||
      !flags.u64("warmup", 20, 0, 100000000, &warmup, &err) ||
      !flags.u64("n-data", 100000, 1, 100000000, &n_data, &err) || !flags.f64("lr", 1e-3, 1e-8, 1.0, &lr, &err) ||
      !flags.f64("ema", 0.995, 0.0, 0.999999, &ema, &err) || !flags.f64("clip", 0.0, 0.0, 1e6, &clip, &err))
    return usage_error(err);
  md::Dataset dataset;
  const std::string data_name = flags.str("data", "swissroll");
  if (!md::dataset_from_name(data_name.c_str(), &dataset))
    return usage_error("--data must be swissroll, moons, 8gaussians, circles or checkerboard, got '" + data_name +
                       "'");

  AlignedBuffer file;
  md::LoadedWeights w;
  if (!load_model_file(flags.str("init", ""), &file, &w, &err)) return usage_error(err);
  const md::ModelDesc& desc = w.model.desc;
  if (desc.D != md::kDatasetDim)
    return usage_error("the model's D is " + std::to_string(desc.D) + " but the built-in datasets are 2-D");
  if (!w.model.all_f32()) return usage_error("training starts from f32 weights; this file holds f16 / int8 ones");

  md::TrainConfig cfg;  // Adam, constant learning rate, no clipping unless asked
  cfg.batch = static_cast<uint32_t>(batch);
  cfg.lr = lr;
  cfg.ema_decay = ema;
  cfg.grad_clip_norm = clip;
  cfg.seed = common.seed;
  cfg.prediction = w.meta.prediction;
  const md::tools::ScopedParallelism parallel(static_cast<unsigned>(common.threads));
  AlignedBuffer arena_buf;
  arena_buf.resize(md::training_arena_bytes(desc, cfg.batch));
  md::Arena arena(arena_buf.data(), arena_buf.size);
  md::Trainer trainer;
  md::Status s = trainer.init(desc, w.schedule, cfg, arena);
  if (!s.ok()) return runtime_error("trainer init: " + describe(s));
  // The file's tensors into the flat parameter block (weights and EMA).
  std::vector<float> params(trainer.param_floats(), 0.0f);
  const md::ParamLayout& layout = w.model.layout;
  for (uint32_t i = 0; i < layout.n_tensors; ++i)
    std::memcpy(params.data() + layout.tensors[i].offset, w.model.tensors[i],
                sizeof(float) * layout.tensors[i].count());
  s = trainer.set_parameters(params.data(), params.size());
  if (!s.ok()) return runtime_error("set_parameters: " + describe(s));

  std::vector<float> data(static_cast<size_t>(n_data) * md::kDatasetDim);
  md::make_dataset(dataset, common.seed, 0, static_cast<uint32_t>(n_data), data.data());
  const uint32_t rows = static_cast<uint32_t>(n_data);
  float loss = 0.0f;
  for (unsigned long long i = 0; i < warmup; ++i) {
    s = trainer.step(data.data(), rows, &loss);
    if (!s.ok()) return runtime_error("warm-up step " + std::to_string(i + 1) + ": " + describe(s));
  }
  // The loss reported is the mean over the last tenth of the timed steps.
  const unsigned long long tail = steps / 10 > 0 ? steps / 10 : 1;
  double loss_sum = 0.0;
  const Clock::time_point start = Clock::now();
  for (unsigned long long i = 0; i < steps; ++i) {
    s = trainer.step(data.data(), rows, &loss);
    if (!s.ok()) return runtime_error("step " + std::to_string(warmup + i + 1) + ": " + describe(s));
    if (i >= steps - tail) loss_sum += loss;
  }
  const double elapsed = seconds_since(start);
  std::printf(
      "{\"ms_per_step\": %.6g, \"loss\": %.6g, \"steps\": %llu, \"warmup\": %llu, \"batch\": %llu, "
      "\"threads\": %llu, \"variant\": \"%s\", \"params\": %u, \"T\": %u}\n",
      1e3 * elapsed / static_cast<double>(steps), loss_sum / static_cast<double>(tail), steps, warmup, batch,
      common.threads, md::kernel_variant(), md::parameter_count(desc), desc.T);
  return 0;
}

// ---- sample ----------------------------------------------------------------

int run_sample(int argc, char** argv) {
  Flags flags;
  std::string err;
  if (!flags.parse(argc, argv, {"model", "n", "steps", "warmup", "threads", "seed", "variant"}, &err))
    return usage_error(err);
  if (!flags.has("model")) return usage_error("sample needs --model FILE.mdw");
  Common common;
  unsigned long long n, warmup;
  if (!parse_common(flags, &common, &err) || !flags.u64("n", 1000, 1, 65536, &n, &err) ||
      !flags.u64("warmup", 3, 0, 1000000, &warmup, &err))
    return usage_error(err);
  AlignedBuffer file;
  md::LoadedWeights w;
  if (!load_model_file(flags.str("model", ""), &file, &w, &err)) return usage_error(err);
  const md::ModelDesc& desc = w.model.desc;
  unsigned long long steps;
  if (!flags.u64("steps", desc.T, 1, desc.T, &steps, &err)) return usage_error(err);
  if (desc.n_classes != 0 || desc.learned_variance)
    return usage_error("sample times unconditional models with a fixed variance only");

  md::SamplerConfig config;
  config.kind = md::SamplerKind::kDdpm;
  config.steps = steps < desc.T ? static_cast<uint32_t>(steps) : 0;
  config.variance = w.meta.variance;
  config.prediction = w.meta.prediction;
  const uint32_t B = static_cast<uint32_t>(n);
  const md::tools::ScopedParallelism parallel(static_cast<unsigned>(common.threads));
  AlignedBuffer arena_buf;
  arena_buf.resize(md::sampling_arena_bytes(desc, B));
  md::Arena arena(arena_buf.data(), arena_buf.size);
  md::Sampler sampler;
  md::Status s = sampler.init(w.model, w.schedule, config, B, arena);
  if (!s.ok()) return runtime_error("sampler init: " + describe(s));

  // Warm-up: forward passes of the whole batch (caches, the thread pool).
  {
    std::vector<float> x(static_cast<size_t>(B) * desc.D, 0.5f), y(x.size());
    std::vector<float> scratch(md::forward_scratch_floats(desc, B));
    std::vector<int32_t> t(B, static_cast<int32_t>(desc.T / 2));
    for (unsigned long long i = 0; i < warmup; ++i)
      md::model_forward(w.model, x.data(), t.data(), B, y.data(), scratch.data());
  }
  std::vector<float> out(static_cast<size_t>(B) * desc.D);
  const Clock::time_point start = Clock::now();
  s = sampler.sample(common.seed, 0, B, out.data());
  const double elapsed = seconds_since(start);
  if (!s.ok()) return runtime_error("sampling: " + describe(s));
  // The samples' root mean square: the same model and schedule give the same
  // distribution in any implementation, so this should agree to sampling noise.
  double sq = 0.0;
  for (float v : out) sq += static_cast<double>(v) * v;
  const double rms = std::sqrt(sq / static_cast<double>(out.size()));
  if (!std::isfinite(rms)) return runtime_error("the samples are not finite");
  std::printf(
      "{\"seconds\": %.6g, \"n\": %llu, \"steps\": %u, \"T\": %u, \"threads\": %llu, \"variant\": \"%s\", "
      "\"rms\": %.6g}\n",
      elapsed, n, sampler.steps(), desc.T, common.threads, md::kernel_variant(), rms);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  for (int i = 2; i < argc; ++i)
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
  if (cmd == "train") return run_train(argc - 2, argv + 2);
  if (cmd == "sample") return run_sample(argc - 2, argv + 2);
  return usage_error("unknown command '" + cmd + "' (train or sample)");
}
