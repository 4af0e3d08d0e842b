#include "cli/commands.h"
#include "convert/internal.h"  // printable(): names from files are untrusted

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cmath>
#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/common.h"
#include "cli/csv.h"
#include "microdiffusion/microdiffusion.h"
#include "plot/plot.h"
#include "plot/png.h"
#include "threads/thread_pool.h"

namespace md::cli {
namespace {

// Seed of the fresh data that samples are compared with (never the training draw).
constexpr uint64_t kReferenceDataSeed = 0x5EEDF00Dull;
constexpr uint32_t kReferencePoints = 2000;

// The data a model is compared with: --data, else its built-in training set.
bool reference_data(const Args& args, const LoadedWeights& w, DataSpec* spec) {
  if (args.has("data")) {
    *spec = parse_data_spec(args.str("data"));
    return true;
  }
  if (!dataset_from_name(w.meta.dataset, &spec->dataset)) return false;
  spec->builtin = true;
  spec->label = w.meta.dataset;
  return true;
}

// --variance small|large|learned over the file's default; learned needs a model that outputs it.
bool parse_variance(const Args& args, const LoadedWeights& w, Variance* out, std::string* err) {
  const std::string name = args.str("variance", "");
  *out = name == "small"     ? Variance::kFixedSmall
         : name == "large"   ? Variance::kFixedLarge
         : name == "learned" ? Variance::kLearnedRange
                             : w.meta.variance;
  if (name == "learned" && !w.model.desc.learned_variance) {
    *err = "--variance learned: this model has no learned variance (train it with --variance learned)";
    return false;
  }
  if (name.empty() || name == "small" || name == "large" || name == "learned") return true;
  *err = "--variance must be small, large or learned, got '" + name + "'";
  return false;
}

const char* variance_label(Variance v) {
  return v == Variance::kFixedLarge ? "large (beta)" : v == Variance::kLearnedRange ? "learned range" : "small (beta tilde)";
}

bool is_tty() { return isatty(fileno(stderr)) != 0; }

std::string format_seconds(double s) {
  char buf[32];
  if (s < 60) std::snprintf(buf, sizeof(buf), "%.1fs", s);
  else std::snprintf(buf, sizeof(buf), "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  return buf;
}

// ---- train -------------------------------------------------------------------

const std::vector<FlagSpec> kTrainFlags = {
    {"data", "NAME|FILE.csv", "swissroll, moons, 8gaussians, circles, checkerboard, or a CSV file (required)"},
    {"out", "FILE.mdw", "weight file to write (required; written only when training completes)"},
    {"model", "NAME", "default | tutorial (default: default)"},
    {"steps", "N", "training steps (default: 3000)"},
    {"batch", "N", "minibatch size (default: 256)"},
    {"lr", "X", "peak Adam learning rate (default: 0.002)"},
    {"warmup", "N", "linear warmup steps (default: 100)"},
    {"no-cosine", nullptr, "keep the learning rate constant instead of cosine decay to 0"},
    {"weight-decay", "X", "AdamW weight decay (default: 0)"},
    {"clip", "X", "gradient-norm clipping (default: 1; 0 disables)"},
    {"ema", "X", "EMA decay of the weights (default: 0.995)"},
    {"no-ema", nullptr, "write the raw weights instead of their EMA"},
    {"T", "N", "diffusion steps (default: 200 for default, 100 for tutorial)"},
    {"schedule", "NAME", "linear | cosine | scaled-linear | sigmoid | custom (default: linear)"},
    {"betas", "FILE", "custom schedule: beta_1 .. beta_T, whitespace- or comma-separated, '#' comments; "
                      "T is their count (implies --schedule custom)"},
    {"beta-start", "X", "linear schedule first beta (default: 1e-4 * 1000/T)"},
    {"beta-end", "X", "linear schedule last beta (default: 0.02 * 1000/T)"},
    {"hidden", "N", "hidden width (default: 128)"},
    {"n-data", "N", "points drawn from a built-in dataset (default: 100000)"},
    {"seed", "N", "random seed for data, initialisation and noise (default: 0)"},
    {"prediction", "WHAT", "what the network predicts: eps | x0 | v (default: eps)"},
    {"conditional", nullptr, "class-conditional model on a labelled built-in set (8gaussians, moons, circles, checkerboard)"},
    {"label-dropout", "P", "conditional: chance a label is dropped, for classifier-free guidance (default: 0.1)"},
    {"min-snr", "GAMMA", "Min-SNR-gamma loss weighting (default: off; 5 is the paper's choice)"},
    {"zero-terminal-snr", nullptr, "rescale the schedule so alpha_bar_T = 0 exactly (Lin et al.; needs --prediction v or x0)"},
    {"variance", "NAME", "small | large: the sampler's fixed variance; learned: the network also learns it, "
                         "trained with the hybrid loss (Nichol & Dhariwal) (default: small)"},
    {"importance-sampling", nullptr, "draw t by the second moment of its recent losses, weighting by 1 / (T p_t) "
                                     "(Nichol & Dhariwal's resampler)"},
    {"vlb-weight", "LAMBDA", "with --variance learned: the weight of L_vlb in the hybrid loss (default: 0.001)"},
    {"checkpoint-every", "N", "write a checkpoint every N steps (atomically: temp file, fsync, rename)"},
    {"checkpoint", "PATH", "checkpoint path (default: OUT.ckpt)"},
    {"resume", "PATH", "continue from a checkpoint; the result is bit-identical to an uninterrupted run"},
    {"quiet", nullptr, "no progress output"},
    {"threads", "N", "threads for the large matrix products (default: 1; results are identical for any N)"},
    {"help", nullptr, "show this help"},
};

volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void on_sigint(int) { g_interrupted = 1; }

bool save_checkpoint(const Trainer& trainer, const WeightsMeta& meta, uint32_t data_crc, const std::string& path,
                     std::string* err) {
  std::vector<uint8_t> bytes(trainer.checkpoint_size());
  size_t written = 0;
  const Status s = trainer.write_checkpoint(meta, data_crc, bytes.data(), bytes.size(), &written);
  if (!s.ok()) {
    *err = "cannot write checkpoint: " + describe(s);
    return false;
  }
  bytes.resize(written);
  return write_bytes(path, bytes, err);
}

int train_impl(const Args& args) {
  const char* cmd = "train";
  std::string err;
  if (!args.has("data")) return fail(cmd, "--data is required (see --help)", 2);
  if (!args.has("out")) return fail(cmd, "--out is required (see --help)", 2);
  if (!args.positional().empty()) return fail(cmd, "unexpected argument '" + args.positional()[0] + "'", 2);
  const std::string model_name = args.str("model", "default");
  if (model_name != "default" && model_name != "tutorial")
    return fail(cmd, "--model must be default or tutorial, got '" + model_name + "'", 2);
  const std::string sched_name = args.str("schedule", args.has("betas") ? "custom" : "linear");
  ScheduleKind sched_kind = ScheduleKind::kLinear;
  if (!schedule_kind_from_name(sched_name.c_str(), &sched_kind))
    return fail(cmd, "--schedule must be linear, cosine, scaled-linear, sigmoid or custom, got '" + sched_name + "'", 2);
  std::vector<float> betas;  // the custom schedule's; outlives the trainer
  if ((sched_kind == ScheduleKind::kCustom) != args.has("betas"))
    return fail(cmd, "--betas FILE and --schedule custom go together", 2);
  if (sched_kind == ScheduleKind::kCustom) {
    if (args.has("beta-start") || args.has("beta-end"))
      return fail(cmd, "--beta-start/--beta-end do not apply to a custom schedule", 2);
    if (!read_betas(args.str("betas"), &betas, &err)) return fail(cmd, err, 2);
    if (betas.size() < 2) return fail(cmd, "--betas: a schedule needs at least 2 steps", 2);
  }
  const bool tutorial = model_name == "tutorial";
  unsigned long long steps, batch, warmup, T, hidden, n_data, seed, checkpoint_every;
  double lr, wd, clip, ema, beta_start, beta_end, min_snr, label_dropout;
  if (!args.u64("steps", 3000, 1, 100000000, &steps, &err) ||
      !args.u64("batch", 256, 1, 65536, &batch, &err) ||
      !args.u64("warmup", 100, 0, 100000000, &warmup, &err) ||
      !args.u64("T", !betas.empty() ? betas.size() : tutorial ? 100 : 200, 2, kMaxTimesteps, &T, &err) ||
      !args.u64("hidden", 128, 1, 4096, &hidden, &err) ||
      !args.u64("n-data", 100000, 1, 100000000, &n_data, &err) ||
      !args.u64("seed", 0, 0, ~0ull, &seed, &err) ||
      !args.u64("checkpoint-every", 0, 1, 100000000, &checkpoint_every, &err) ||
      !args.f64("lr", 2e-3, 1e-8, 1.0, &lr, &err) ||
      !args.f64("weight-decay", 0.0, 0.0, 1.0, &wd, &err) ||
      !args.f64("clip", 1.0, 0.0, 1e6, &clip, &err) ||
      !args.f64("ema", 0.995, 0.0, 0.999999, &ema, &err) ||
      !args.f64("min-snr", 0.0, 0.0, 1e6, &min_snr, &err) ||
      !args.f64("label-dropout", 0.1, 0.0, 1.0, &label_dropout, &err))
    return fail(cmd, err, 2);
  if (!betas.empty() && T != betas.size())
    return fail(cmd, "--T " + std::to_string(T) + " differs from the " + std::to_string(betas.size()) + " betas in '" +
                         args.str("betas") + "'", 2);
  Prediction prediction = Prediction::kEpsilon;
  if (!prediction_from_name(args.str("prediction", "eps").c_str(), &prediction))
    return fail(cmd, "--prediction must be eps, x0 or v, got '" + args.str("prediction") + "'", 2);
  ScheduleDesc schedule = sched_kind == ScheduleKind::kCosine ? cosine_schedule(static_cast<uint32_t>(T))
                                                              : linear_schedule(static_cast<uint32_t>(T));
  schedule.kind = sched_kind;
  if (!args.f64("beta-start", schedule.beta_start, 1e-8, 0.999, &beta_start, &err) ||
      !args.f64("beta-end", schedule.beta_end, 1e-8, 0.999, &beta_end, &err))
    return fail(cmd, err, 2);
  schedule.beta_start = static_cast<float>(beta_start);
  schedule.beta_end = static_cast<float>(beta_end);
  if (sched_kind == ScheduleKind::kCustom) schedule.betas = betas.data();
  schedule.zero_terminal_snr = args.has("zero-terminal-snr") ? 1 : 0;
  if (schedule.zero_terminal_snr && prediction == Prediction::kEpsilon)
    return fail(cmd, "--zero-terminal-snr needs --prediction v (or x0): at alpha_bar_T = 0 an eps prediction says "
                     "nothing about x_0", 2);
  Status s = validate_schedule(schedule);
  if (!s.ok()) return fail(cmd, describe(s), 2);
  if (terminal_alpha_bar(schedule) > kTerminalAlphaBarWarning)
    std::fprintf(stderr, "warning: alpha_bar_T = %.3g is far from 0: q(x_T | x_0) is not close to the N(0, I) that "
                 "sampling starts from (raise --T or --beta-end, or use --zero-terminal-snr)\n",
                 terminal_alpha_bar(schedule));

  const DataSpec spec = parse_data_spec(args.str("data"));
  const bool conditional = args.has("conditional");
  if (conditional && (!spec.builtin || dataset_classes(spec.dataset) == 0))
    return fail(cmd, "--conditional needs a labelled built-in dataset: 8gaussians, moons, circles or checkerboard", 2);
  Table data;
  if (!load_points(spec, seed, static_cast<uint32_t>(n_data), &data, &err)) return fail(cmd, err);
  std::vector<int32_t> labels;
  if (conditional) {
    labels.resize(data.rows);
    std::vector<float> scratch(data.values.size());
    make_dataset(spec.dataset, seed, 0, static_cast<uint32_t>(data.rows), scratch.data(), labels.data());
  }
  if (data.cols < 1 || data.cols > kMaxDataDim) return fail(cmd, "data must have 1 to 65536 columns");
  const uint32_t D = static_cast<uint32_t>(data.cols);
  ModelDesc desc = tutorial ? preset_tutorial(D, static_cast<uint32_t>(T), static_cast<uint32_t>(hidden))
                            : preset_default(D, static_cast<uint32_t>(T), static_cast<uint32_t>(hidden));
  if (conditional) desc = with_label_embedding(desc, dataset_classes(spec.dataset));
  const std::string variance_name = args.str("variance", "small");
  if (variance_name != "small" && variance_name != "large" && variance_name != "learned")
    return fail(cmd, "--variance must be small, large or learned, got '" + variance_name + "'", 2);
  if (variance_name == "learned") desc = with_learned_variance(desc);
  double vlb_weight;
  if (!args.f64("vlb-weight", 0.001, 0.0, 1e3, &vlb_weight, &err)) return fail(cmd, err, 2);
  if (args.has("vlb-weight") && variance_name != "learned")
    return fail(cmd, "--vlb-weight only applies with --variance learned", 2);
  s = validate_model(desc);
  if (!s.ok()) return fail(cmd, describe(s), 2);

  TrainConfig cfg;
  cfg.batch = static_cast<uint32_t>(batch);
  cfg.lr = lr;
  cfg.weight_decay = wd;
  cfg.decoupled_weight_decay = true;
  cfg.grad_clip_norm = clip;
  cfg.warmup_steps = static_cast<uint32_t>(warmup);
  cfg.total_steps = args.has("no-cosine") ? 0 : static_cast<uint32_t>(steps);
  cfg.ema_decay = ema;
  cfg.seed = seed;
  cfg.prediction = prediction;
  cfg.min_snr_gamma = min_snr;
  cfg.label_dropout = label_dropout;
  cfg.vlb_weight = vlb_weight;
  cfg.importance_sampling = args.has("importance-sampling");

  const size_t arena_bytes = training_arena_bytes(desc, cfg.batch);
  AlignedBuffer arena_buf;
  arena_buf.resize(arena_bytes);
  Arena arena(arena_buf.data(), arena_bytes);
  Trainer trainer;
  s = trainer.init(desc, schedule, cfg, arena);
  if (!s.ok()) return fail(cmd, describe(s));
  trainer.init_parameters(seed);

  WeightsMeta meta;
  meta.is_ema = args.has("no-ema") ? 0 : 1;
  meta.prediction = prediction;
  meta.variance = variance_name == "learned" ? Variance::kLearnedRange
                  : variance_name == "large" ? Variance::kFixedLarge
                                             : Variance::kFixedSmall;
  std::snprintf(meta.dataset, sizeof(meta.dataset), "%s", spec.label.c_str());
  uint32_t data_crc = crc32(data.values.data(), data.values.size() * sizeof(float));
  if (conditional) data_crc = crc32(labels.data(), labels.size() * sizeof(int32_t), data_crc);
  const std::string checkpoint_path = args.str("checkpoint", args.str("out") + ".ckpt");
  if (args.has("resume")) {
    AlignedBuffer ckpt;
    if (!read_file(args.str("resume"), &ckpt, &err)) return fail(cmd, err);
    s = trainer.restore_checkpoint(ckpt.data(), ckpt.size, data_crc);
    if (!s.ok()) return fail(cmd, "cannot resume from '" + args.str("resume") + "': " + describe(s));
    if (trainer.steps_done() > steps)
      return fail(cmd, "checkpoint is at step " + std::to_string(trainer.steps_done()) + ", past --steps " +
                           std::to_string(steps), 2);
  }
  std::signal(SIGINT, on_sigint);

  const bool quiet = args.has("quiet");
  const bool tty = is_tty();
  if (!quiet)
    std::fprintf(stderr, "training %s model (%u parameters, T=%u %s) on %s: %zu points of dimension %u, "
                 "%llu steps of batch %llu, arena %zu bytes\n",
                 model_name.c_str(), parameter_count(desc), desc.T, schedule_kind_name(schedule.kind),
                 spec.label.c_str(), data.rows, D, steps, batch, arena_bytes);
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto last_print = start;
  double loss_avg = 0.0;
  const unsigned long long first_step = trainer.steps_done();
  if (first_step > 0) std::fprintf(stderr, "resumed at step %llu\n", first_step);
  for (unsigned long long i = first_step; i < steps; ++i) {
    if (g_interrupted) {
      if (tty && !quiet) std::fputc('\n', stderr);
      if (!save_checkpoint(trainer, meta, data_crc, checkpoint_path, &err)) return fail(cmd, err);
      std::fprintf(stderr, "interrupted at step %llu: wrote %s; continue with --resume %s\n", i,
                   checkpoint_path.c_str(), checkpoint_path.c_str());
      return 130;
    }
    float loss = 0.0f;
    s = trainer.step(data.values.data(), static_cast<uint32_t>(data.rows), &loss, conditional ? labels.data() : nullptr);
    if (!s.ok()) {
      if (tty && !quiet) std::fputc('\n', stderr);
      std::string where = describe(s);
      if (s.code == StatusCode::kNonFinite && s.message[0] == 'g') {
        const TensorDesc& td = trainer.model(false).layout.tensors[s.available];
        static const char* kRoles[] = {"weight", "bias", "table"};
        where = "gradients of tensor " + std::to_string(s.available) + " (layer " + std::to_string(td.layer) + " " +
                layer_kind_name(trainer.desc().layers[td.layer].kind) + " " + kRoles[static_cast<uint32_t>(td.role)] +
                ") are NaN or Inf";
      }
      return fail(cmd, "training stopped at step " + std::to_string(i + 1) + ": " + where +
                           (checkpoint_every ? "; the last checkpoint is untouched" : ""));
    }
    if (checkpoint_every && (i + 1) % checkpoint_every == 0 && i + 1 < steps &&
        !save_checkpoint(trainer, meta, data_crc, checkpoint_path, &err))
      return fail(cmd, err);
    loss_avg = i == 0 ? loss : 0.98 * loss_avg + 0.02 * loss;
    const auto now = Clock::now();
    const double since = std::chrono::duration<double>(now - last_print).count();
    const bool last = i + 1 == steps;
    if (!quiet && (last || since > (tty ? 0.2 : 5.0))) {
      last_print = now;
      const double elapsed = std::chrono::duration<double>(now - start).count();
      const double rate = (i + 1 - first_step) / (elapsed > 0 ? elapsed : 1e-9);
      const int filled = static_cast<int>(30.0 * (i + 1) / steps);
      std::string bar(filled, '#');
      bar.resize(30, '.');
      std::fprintf(stderr, "%s[%s] %llu/%llu loss %.4f  %.0f steps/s  %s left%s", tty ? "\r" : "",
                   bar.c_str(), i + 1, steps, loss_avg, rate,
                   format_seconds((steps - i - 1) / rate).c_str(), tty ? "   " : "\n");
    }
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  if (!quiet && tty) std::fputc('\n', stderr);

  meta.train_steps = static_cast<uint32_t>(steps > 0xFFFFFFFFull ? 0xFFFFFFFFull : steps);
  std::vector<uint8_t> file(weights_file_bytes(desc, schedule));
  size_t written = 0;
  s = write_weights(desc, schedule, meta, meta.is_ema ? trainer.ema() : trainer.params(), file.data(),
                    file.size(), &written);
  if (!s.ok()) return fail(cmd, describe(s));
  if (!write_bytes(args.str("out"), file, &err)) return fail(cmd, err);
  if (!quiet)
    std::fprintf(stderr, "trained %llu steps in %s (%.0f steps/s), loss %.4f; wrote %s (%zu bytes)\n", steps,
                 format_seconds(elapsed).c_str(), (steps - first_step) / (elapsed > 0 ? elapsed : 1e-9), loss_avg,
                 args.str("out").c_str(), written);
  return 0;
}

// ---- sample ------------------------------------------------------------------

const std::vector<FlagSpec> kSampleFlags = {
    {"model", "FILE.mdw", "weight file (required)"},
    {"n", "N", "number of samples (default: 2000)"},
    {"seed", "N", "random seed (default: 0)"},
    {"out", "FILE.csv", "write samples, one per line, comma-separated (default: stdout unless a PNG is asked for)"},
    {"png", "FILE.png", "draw the samples over the data"},
    {"trajectory", "FILE.png", "draw x_t at ten timesteps from T to 0"},
    {"data", "NAME|FILE.csv", "data drawn under the samples and scored against (default: the model's training set when built-in)"},
    {"sampler", "NAME", "ddpm | ddim | dpm++2m | ode (default: ddpm)"},
    {"steps", "K", "sampling steps (default: every timestep)"},
    {"spacing", "HOW", "linspace | leading | trailing | logsnr | LIST of timesteps (e.g. 999,500,0) | sections:10,15,20"},
    {"eta", "E", "DDIM stochasticity in [0, 1] (default: 0)"},
    {"clip", "C", "clamp the predicted x0 to [-C, C] (default: off)"},
    {"threshold", "P", "dynamic thresholding of the predicted x0 at percentile P in (0, 1) (default: off)"},
    {"variance", "NAME", "ddpm variance: small (beta tilde) | large (beta) | learned (default: the file's)"},
    {"label", "K", "conditional models: draw class K (default: unconditional)"},
    {"guidance", "W", "classifier-free guidance scale with --label (default: 0)"},
    {"batch", "N", "rows sampled at once (default: 256)"},
    {"image-shape", "HxW", "with --png: draw each sample as an H x W grayscale image in a grid (H*W = D)"},
    {"threads", "N", "threads for the large matrix products (default: 1; results are identical for any N)"},
    {"help", nullptr, "show this help"},
};

// Samples as grayscale images in a grid; values are mapped from [-1, 1] to
// black..white (clamped), as image diffusion models scale their data.
tools::Canvas image_grid(const float* samples, size_t n, uint32_t H, uint32_t W) {
  const size_t shown = n < 256 ? n : 256;
  const int cols = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(shown))));
  const int rows = static_cast<int>((shown + cols - 1) / cols);
  const int scale = static_cast<int>(std::max<uint32_t>(1, 64 / std::max(H, W)));
  const int cell_w = static_cast<int>(W) * scale + 2, cell_h = static_cast<int>(H) * scale + 2;
  tools::Canvas c = tools::make_canvas(cols * cell_w, rows * cell_h);
  for (size_t i = 0; i < shown; ++i) {
    const int x0 = static_cast<int>(i % cols) * cell_w + 1, y0 = static_cast<int>(i / cols) * cell_h + 1;
    for (uint32_t y = 0; y < H; ++y)
      for (uint32_t x = 0; x < W; ++x) {
        const float v = samples[i * H * W + y * W + x];
        const float u = std::fmin(1.0f, std::fmax(0.0f, 0.5f * (v + 1.0f)));
        const uint8_t g = static_cast<uint8_t>(std::lround(255.0f * u));
        tools::fill_rect(c, x0 + static_cast<int>(x) * scale, y0 + static_cast<int>(y) * scale, scale, scale, g, g, g);
      }
  }
  return c;
}

// --sampler/--steps/--spacing/--eta/--clip/--threshold into a SamplerConfig.
bool parse_sampler_flags(const Args& args, uint32_t T, SamplerConfig* config, std::vector<uint32_t>* explicit_steps,
                         std::string* err) {
  const std::string kind = args.str("sampler", "ddpm");
  if (!sampler_kind_from_name(kind.c_str(), &config->kind)) {
    *err = "--sampler must be ddpm, ddim, dpm++2m or ode, got '" + kind + "'";
    return false;
  }
  unsigned long long steps;
  double eta, clip, threshold;
  if (!args.u64("steps", 0, 1, T, &steps, err) || !args.f64("eta", 0.0, 0.0, 1.0, &eta, err) ||
      !args.f64("clip", 0.0, 0.0, 1e30, &clip, err) || !args.f64("threshold", 0.0, 0.0, 0.999999, &threshold, err))
    return false;
  if (args.has("eta") && config->kind != SamplerKind::kDdim) {
    *err = "--eta applies to --sampler ddim only";
    return false;
  }
  config->steps = static_cast<uint32_t>(steps);
  config->eta = static_cast<float>(eta);
  config->clip_x0 = static_cast<float>(clip);
  config->dynamic_threshold = static_cast<float>(threshold);
  unsigned long long label;
  double guidance;
  if (!args.u64("label", 0, 0, 65535, &label, err) || !args.f64("guidance", 0.0, 0.0, 100.0, &guidance, err))
    return false;
  if (args.has("label")) config->label = static_cast<int32_t>(label);
  config->guidance = static_cast<float>(guidance);
  if (args.has("guidance") && !args.has("label")) {
    *err = "--guidance needs --label";
    return false;
  }
  const std::string spacing = args.str("spacing", "linspace");
  if (spacing_from_name(spacing.c_str(), &config->spacing)) return true;
  // A list: explicit timesteps, or improved-diffusion's section counts.
  const bool sections = spacing.rfind("sections:", 0) == 0;
  const std::string list = sections ? spacing.substr(9) : spacing;
  std::vector<uint32_t> values;
  size_t p = 0;
  while (p <= list.size()) {
    const size_t comma = list.find(',', p);
    const std::string field = list.substr(p, comma == std::string::npos ? std::string::npos : comma - p);
    char* end = nullptr;
    const unsigned long v = field.empty() ? 0 : std::strtoul(field.c_str(), &end, 10);
    if (field.empty() || *end != '\0' || field[0] == '-' || v >= (sections ? T + 1ul : T)) {
      *err = "--spacing must be linspace, leading, trailing, logsnr, a list of timesteps in [0, " +
             std::to_string(T - 1) + "] or sections:N1,N2,...; bad entry '" + field + "'";
      return false;
    }
    values.push_back(static_cast<uint32_t>(v));
    if (comma == std::string::npos) break;
    p = comma + 1;
  }
  if (args.has("steps")) {
    *err = "--steps and a --spacing list are exclusive: the list sets the steps";
    return false;
  }
  explicit_steps->assign(T, 0);
  uint32_t count = 0;
  if (sections) {
    const Status s = section_timesteps(T, values.data(), static_cast<uint32_t>(values.size()), explicit_steps->data(), &count);
    if (!s.ok()) {
      *err = std::string("--spacing sections: ") + s.message;
      return false;
    }
  } else {
    if (values.size() > T) {
      *err = "--spacing lists more timesteps than T";
      return false;
    }
    std::copy(values.begin(), values.end(), explicit_steps->begin());
    count = static_cast<uint32_t>(values.size());
  }
  config->timesteps = explicit_steps->data();
  config->n_timesteps = count;
  return true;
}

struct Trajectory {
  std::vector<int32_t> keep;  // t indices to record, descending
  std::vector<std::vector<float>> frames;
  uint32_t D = 0;
};

void record_step(void* user, int32_t t_index, const float* x, uint32_t n, uint32_t /*first*/) {
  auto* tr = static_cast<Trajectory*>(user);
  for (size_t k = 0; k < tr->keep.size(); ++k)
    if (tr->keep[k] == t_index) tr->frames[k].insert(tr->frames[k].end(), x, x + static_cast<size_t>(n) * tr->D);
}

int sample_impl(const Args& args) {
  const char* cmd = "sample";
  std::string err;
  if (!args.has("model")) return fail(cmd, "--model is required (see --help)", 2);
  if (!args.positional().empty()) return fail(cmd, "unexpected argument '" + args.positional()[0] + "'", 2);
  unsigned long long n, seed, batch;
  if (!args.u64("n", 2000, 1, 100000000, &n, &err) || !args.u64("seed", 0, 0, ~0ull, &seed, &err) ||
      !args.u64("batch", 256, 1, 65536, &batch, &err))
    return fail(cmd, err, 2);
  AlignedBuffer file;
  LoadedWeights w;
  if (!load_model_file(args.str("model"), &file, &w, &err)) return fail(cmd, err);
  const uint32_t D = w.model.desc.D;
  Variance variance;
  if (!parse_variance(args, w, &variance, &err)) return fail(cmd, err, 2);

  // Reference data for the picture and the score, read before any work.
  DataSpec spec;
  const bool have_data = reference_data(args, w, &spec);
  Table reference;
  if (have_data) {
    if (!load_points(spec, kReferenceDataSeed, kReferencePoints, &reference, &err)) return fail(cmd, err);
    if (reference.cols != D)
      return fail(cmd, "data has " + std::to_string(reference.cols) + " columns but the model's D is " + std::to_string(D));
  }

  SamplerConfig config;
  config.variance = variance;
  config.prediction = w.meta.prediction;
  std::vector<uint32_t> explicit_steps;
  if (!parse_sampler_flags(args, w.model.desc.T, &config, &explicit_steps, &err)) return fail(cmd, err, 2);
  uint32_t image_h = 0, image_w = 0;
  if (args.has("image-shape")) {
    const std::string shape = args.str("image-shape");
    const size_t xpos = shape.find('x');
    // Keep the halves alive while strtoul's end pointers are read; bound each
    // side by D so H * W cannot wrap before it is compared with D.
    const std::string hs = xpos == std::string::npos ? std::string() : shape.substr(0, xpos);
    const std::string ws = xpos == std::string::npos ? std::string() : shape.substr(xpos + 1);
    char* e1 = nullptr;
    char* e2 = nullptr;
    const unsigned long h = std::strtoul(hs.c_str(), &e1, 10);
    const unsigned long wd = std::strtoul(ws.c_str(), &e2, 10);
    if (xpos == std::string::npos || hs.empty() || ws.empty() || *e1 != '\0' || *e2 != '\0' || h == 0 ||
        wd == 0 || h > D || wd > D || h * wd != D)
      return fail(cmd, "--image-shape must be HxW with H*W = D = " + std::to_string(D) + ", got '" + shape + "'", 2);
    image_h = static_cast<uint32_t>(h);
    image_w = static_cast<uint32_t>(wd);
  }

  const uint32_t b = static_cast<uint32_t>(batch < n ? batch : n);
  const size_t arena_bytes = sampling_arena_bytes(w.model.desc, b);
  AlignedBuffer arena_buf;
  arena_buf.resize(arena_bytes);
  Arena arena(arena_buf.data(), arena_bytes);
  Sampler sampler;
  Status s = sampler.init(w.model, w.schedule, config, b, arena);
  if (!s.ok()) return fail(cmd, describe(s), s.code == StatusCode::kInvalidArgument ? 2 : 1);

  Trajectory traj;
  traj.D = D;
  const bool want_traj = args.has("trajectory");
  if (want_traj) {
    // The observer sees x at times ts[K-1]+1, ..., ts[0]+1, 0; keep ten of them, evenly spread.
    const uint32_t K = sampler.steps();
    std::vector<int32_t> times;
    for (uint32_t i = K; i-- > 0;) times.push_back(static_cast<int32_t>(sampler.timesteps()[i] + 1));
    times.push_back(0);
    for (int j = 0; j < 10; ++j) {
      const int32_t t = times[static_cast<size_t>(std::lround((times.size() - 1) * j / 9.0))];
      if (traj.keep.empty() || traj.keep.back() != t) traj.keep.push_back(t);
    }
    traj.frames.resize(traj.keep.size());
  }
  std::vector<float> samples(static_cast<size_t>(n) * D);
  const auto start = std::chrono::steady_clock::now();
  s = sampler.sample(seed, 0, static_cast<uint32_t>(n), samples.data(), want_traj ? record_step : nullptr, &traj);
  if (!s.ok()) return fail(cmd, describe(s));
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "sampled %llu points with %s, %u steps (%u model evaluations) in %s\n", n,
               sampler_kind_name(config.kind), sampler.steps(), sampler.evaluations(), format_seconds(elapsed).c_str());

  const bool to_stdout = !args.has("out") && !args.has("png") && !want_traj;
  const std::string csv = format_csv(samples.data(), n, D);
  if (to_stdout) {
    std::fwrite(csv.data(), 1, csv.size(), stdout);
  } else if (args.has("out") && !write_text(args.str("out"), csv, &err)) {
    return fail(cmd, err);
  }
  if (have_data) {
    const size_t m = n < kReferencePoints ? n : kReferencePoints;
    const double ed = energy_distance(samples.data(), m, reference.values.data(), reference.rows, D);
    std::fprintf(stderr, "energy_distance=%.6f (first %zu samples vs %zu points of %s)\n", ed, m, reference.rows,
                 spec.label.c_str());
  }
  if (args.has("png") && image_h) {
    const tools::Canvas c = image_grid(samples.data(), n, image_h, image_w);
    if (!write_bytes(args.str("png"), tools::encode_png_rgb(c.rgb.data(), c.w, c.h), &err)) return fail(cmd, err);
  } else if (args.has("png")) {
    const tools::View view = tools::fit_view(reference.rows ? reference.values.data() : samples.data(),
                                             reference.rows ? reference.rows : n, static_cast<int>(D), 0.1f);
    const tools::Canvas c = tools::scatter(view, 640, 640, reference.values.data(), reference.rows,
                                           samples.data(), n, static_cast<int>(D));
    if (!write_bytes(args.str("png"), tools::encode_png_rgb(c.rgb.data(), c.w, c.h), &err)) return fail(cmd, err);
  }
  if (want_traj) {
    std::vector<std::string> labels;
    for (int32_t t : traj.keep) labels.push_back("t=" + std::to_string(t));
    const tools::Canvas c = tools::trajectory_strip(traj.frames, static_cast<int>(D), 200, labels);
    if (!write_bytes(args.str("trajectory"), tools::encode_png_rgb(c.rgb.data(), c.w, c.h), &err))
      return fail(cmd, err);
  }
  return 0;
}

// ---- inspect -----------------------------------------------------------------

const std::vector<FlagSpec> kInspectFlags = {
    {"batch", "N", "batch size for the arena figures (default: 1 and 256)"},
    {"help", nullptr, "show this help"},
};

int inspect_impl(const Args& args) {
  const char* cmd = "inspect";
  std::string err;
  if (args.positional().size() != 1) return fail(cmd, "expected one weight file (see --help)", 2);
  unsigned long long batch;
  if (!args.u64("batch", 0, 0, 65536, &batch, &err)) return fail(cmd, err, 2);
  AlignedBuffer file;
  LoadedWeights w;
  if (!load_model_file(args.positional()[0], &file, &w, &err)) return fail(cmd, err);
  const ModelDesc& d = w.model.desc;
  std::printf("file: %s\n", args.positional()[0].c_str());
  std::printf("format: version %u.%u, %llu bytes, header %u bytes, checksums ok\n", w.version_major,
              w.version_minor, static_cast<unsigned long long>(w.file_bytes), w.header_bytes);
  std::printf("model: D=%u T=%u, %u layers, %u tensors, %u parameters", d.D, d.T, d.n_layers,
              w.model.layout.n_tensors, parameter_count(d));
  if (d.n_classes) std::printf(", conditional on %u classes", d.n_classes);
  std::printf("\n");
  std::printf("schedule: %s", schedule_kind_name(w.schedule.kind));
  if (w.schedule.kind == ScheduleKind::kCustom)
    std::printf(" (%u betas in the file) beta %.6g -> %.6g", w.schedule.T, w.schedule.betas[0],
                w.schedule.betas[w.schedule.T - 1]);
  else if (w.schedule.kind != ScheduleKind::kCosine)
    std::printf(" beta %.6g -> %.6g", w.schedule.beta_start, w.schedule.beta_end);
  else
    std::printf(" s=%.6g max_beta=%.6g", w.schedule.cosine_s, w.schedule.max_beta);
  if (w.schedule.zero_terminal_snr) std::printf(", rescaled to zero terminal SNR");
  const double alpha_bar = terminal_alpha_bar(w.schedule);
  std::printf(", alpha_bar_T=%.3g%s\n", alpha_bar,
              alpha_bar > kTerminalAlphaBarWarning ? " (warning: far from 0, the prior does not match q(x_T | x_0))" : "");
  std::printf("weights: %s, prediction %s, sampler variance %s, %u training steps, data %s\n",
              w.meta.is_ema ? "EMA" : "raw", prediction_name(w.meta.prediction), variance_label(w.meta.variance),
              w.meta.train_steps, w.meta.dataset[0] ? convert::detail::printable(w.meta.dataset).c_str() : "(unknown)");
  std::printf("layers:\n");
  for (uint32_t l = 0; l < d.n_layers; ++l) {
    const LayerDesc& L = d.layers[l];
    std::printf("  %2u %-10s %5u -> %-5u", l, layer_kind_name(L.kind), L.in, L.out);
    if (L.kind == LayerKind::kActivation || L.kind == LayerKind::kResidual) std::printf(" %s", activation_name(L.act));
    if (L.kind == LayerKind::kEmbed)
      std::printf(" x_raw=%u x_sin=%u (scale %g) t_sin=%u", L.x_raw, L.x_sin_dim, L.x_scale, L.t_sin_dim);
    std::printf("\n");
  }
  std::printf("tensors:\n");
  static const char* kRoles[] = {"weight", "bias", "table"};
  static const char* kDTypes[] = {"f32", "f16", "int8"};
  size_t tensor_bytes = 0;
  for (uint32_t i = 0; i < w.model.layout.n_tensors; ++i) {
    const TensorDesc& t = w.model.layout.tensors[i];
    const TensorDType dt = w.model.dtypes[i];
    const void* data = dt == TensorDType::kF32 ? static_cast<const void*>(w.model.tensors[i]) : w.model.stored[i];
    const size_t offset = static_cast<const uint8_t*>(data) - file.data();
    std::printf("  %2u layer %2u %-6s (%u, %u) %-4s at %zu\n", i, t.layer, kRoles[static_cast<uint32_t>(t.role)],
                t.rows, t.cols, kDTypes[static_cast<uint32_t>(dt)], offset);
    tensor_bytes += tensor_storage_bytes(dt, t.rows, t.cols);
  }
  // Firmware keeps the whole file in flash and reads the tensors in place.
  std::printf("flash bytes: %zu (the file, used in place: %zu of parameters, %zu of header, tables and padding)\n",
              file.size, tensor_bytes, file.size - tensor_bytes);
  std::printf("arena bytes:\n");
  std::vector<uint32_t> batches = batch ? std::vector<uint32_t>{static_cast<uint32_t>(batch)}
                                        : std::vector<uint32_t>{1, 256};
  for (uint32_t b : batches)
    std::printf("  batch %-5u sampling %zu  training %zu\n", b, sampling_arena_bytes(d, b),
                training_arena_bytes(d, b));
  return 0;
}

// ---- eval -------------------------------------------------------------------

const std::vector<FlagSpec> kEvalFlags = {
    {"model", "FILE.mdw", "weight file (required)"},
    {"data", "NAME|FILE.csv", "data to score (default: the model's built-in training set)"},
    {"n", "N", "data points for the bound and the sample metrics (default: 1000)"},
    {"seed", "N", "seed for the bound's noise and for sampling (default: 0)"},
    {"decoder", "NAME", "gaussian (continuous data) | discrete8 (8-bit data in [-1, 1]) (default: gaussian)"},
    {"variance", "NAME", "small | large | learned reverse-process variance (default: the file's)"},
    {"json", nullptr, "print one JSON object instead of name=value lines"},
    {"threads", "N", "threads for the large matrix products (default: 1; results are identical for any N)"},
    {"help", nullptr, "show this help"},
};

// Median pairwise distance of up to 500 points of each set: the MMD bandwidth.
double median_distance(const float* a, size_t na, const float* b, size_t nb, uint32_t D) {
  std::vector<const float*> pts;
  for (size_t i = 0; i < na && i < 500; ++i) pts.push_back(a + i * D);
  for (size_t i = 0; i < nb && i < 500; ++i) pts.push_back(b + i * D);
  std::vector<double> d;
  for (size_t i = 0; i < pts.size(); ++i)
    for (size_t j = i + 1; j < pts.size(); ++j) {
      double sq = 0;
      for (uint32_t k = 0; k < D; ++k) sq += (pts[i][k] - pts[j][k]) * static_cast<double>(pts[i][k] - pts[j][k]);
      d.push_back(std::sqrt(sq));
    }
  if (d.empty()) return 1.0;
  std::nth_element(d.begin(), d.begin() + d.size() / 2, d.end());
  return d[d.size() / 2] > 0 ? d[d.size() / 2] : 1.0;
}

int eval_impl(const Args& args) {
  const char* cmd = "eval";
  std::string err;
  if (!args.has("model")) return fail(cmd, "--model is required (see --help)", 2);
  if (!args.positional().empty()) return fail(cmd, "unexpected argument '" + args.positional()[0] + "'", 2);
  unsigned long long n, seed;
  if (!args.u64("n", 1000, 2, 1000000, &n, &err) || !args.u64("seed", 0, 0, ~0ull, &seed, &err)) return fail(cmd, err, 2);
  const std::string decoder_name = args.str("decoder", "gaussian");
  if (decoder_name != "gaussian" && decoder_name != "discrete8")
    return fail(cmd, "--decoder must be gaussian or discrete8, got '" + decoder_name + "'", 2);
  AlignedBuffer file;
  LoadedWeights w;
  if (!load_model_file(args.str("model"), &file, &w, &err)) return fail(cmd, err);
  const uint32_t D = w.model.desc.D;
  Variance variance;
  if (!parse_variance(args, w, &variance, &err)) return fail(cmd, err, 2);
  DataSpec spec;
  if (!reference_data(args, w, &spec))
    return fail(cmd, "--data is required: the model was not trained on a built-in dataset", 2);
  Table data;
  if (!load_points(spec, kReferenceDataSeed, static_cast<uint32_t>(n), &data, &err)) return fail(cmd, err);
  if (data.cols != D)
    return fail(cmd, "data has " + std::to_string(data.cols) + " columns but the model's D is " + std::to_string(D));
  const uint32_t m = static_cast<uint32_t>(data.rows < n ? data.rows : n);
  const uint32_t batch = m < 256 ? m : 256;

  // The bound.
  AlignedBuffer arena_buf;
  arena_buf.resize(bound_arena_bytes(w.model.desc, batch));
  Arena arena(arena_buf.data(), arena_buf.size);
  BoundEvaluator ev;
  Status s = ev.init(w.model, w.schedule, variance, decoder_name == "gaussian" ? Decoder::kGaussian : Decoder::kDiscretized8Bit,
                     batch, arena, w.meta.prediction);
  if (!s.ok()) return fail(cmd, describe(s));
  std::vector<BoundTerms> terms(m);
  s = ev.evaluate(data.values.data(), m, seed, 0, terms.data());
  if (!s.ok()) return fail(cmd, describe(s));
  double mean = 0, sq = 0, prior = 0, decoder = 0;
  for (const BoundTerms& t : terms) {
    mean += t.total() / D;
    prior += t.prior / D;
    decoder += t.decoder / D;
  }
  mean /= m;
  for (const BoundTerms& t : terms) sq += (t.total() / D - mean) * (t.total() / D - mean);
  const double stderr_ = std::sqrt(sq / (m - 1.0) / m);

  // Samples against the data.
  AlignedBuffer sarena_buf;
  sarena_buf.resize(sampling_arena_bytes(w.model.desc, batch));
  Arena sarena(sarena_buf.data(), sarena_buf.size);
  Sampler sampler;
  SamplerConfig sconfig;
  sconfig.variance = variance;
  sconfig.prediction = w.meta.prediction;
  s = sampler.init(w.model, w.schedule, sconfig, batch, sarena);
  if (!s.ok()) return fail(cmd, describe(s));
  std::vector<float> samples(static_cast<size_t>(m) * D);
  s = sampler.sample(seed, 0, m, samples.data());
  if (!s.ok()) return fail(cmd, describe(s));
  const double ed = energy_distance(samples.data(), m, data.values.data(), m, D);
  const double bw = median_distance(samples.data(), m, data.values.data(), m, D);
  const double mmd = mmd_rbf(samples.data(), m, data.values.data(), m, D, bw);

  const double bits = mean / std::log(2.0);
  if (args.has("json")) {
    std::printf("{\"nll_nats_per_dim\": %.6f, \"nll_bits_per_dim\": %.6f, \"nll_stderr\": %.6f, "
                "\"prior_nats_per_dim\": %.6g, \"decoder_nats_per_dim\": %.6f, \"energy_distance\": %.6f, "
                "\"mmd\": %.6g, \"mmd_bandwidth\": %.6g, \"points\": %u}\n",
                mean, bits, stderr_, prior / m, decoder / m, ed, mmd, bw, m);
  } else {
    std::printf("nll_nats_per_dim=%.6f\nnll_bits_per_dim=%.6f\nnll_stderr=%.6f\nprior_nats_per_dim=%.6g\n"
                "decoder_nats_per_dim=%.6f\nenergy_distance=%.6f\nmmd=%.6g\nmmd_bandwidth=%.6g\npoints=%u\n",
                mean, bits, stderr_, prior / m, decoder / m, ed, mmd, bw, m);
  }
  return 0;
}

int run(const char* name, const char* usage, const char* summary, const std::vector<FlagSpec>& flags,
        int (*impl)(const Args&), int argc, char** argv) {
  Args args;
  std::string err;
  if (!args.parse(argc, argv, flags, &err)) return fail(name, err, 2);
  if (args.has("help")) {
    std::fputs(format_help(usage, summary, flags).c_str(), stdout);
    return 0;
  }
  unsigned long long threads;
  if (!args.u64("threads", 1, 1, 64, &threads, &err)) return fail(name, err, 2);
  const tools::ScopedParallelism parallel(static_cast<unsigned>(threads));
  return impl(args);
}

}  // namespace

int run_train(int argc, char** argv) {
  return run("train", "microdiffusion train --data NAME|FILE.csv --out model.mdw [options]",
             "Train a DDPM denoiser with L_simple (Ho et al., Algorithm 1), Adam and an EMA of the weights.",
             kTrainFlags, train_impl, argc, argv);
}
int run_sample(int argc, char** argv) {
  return run("sample", "microdiffusion sample --model model.mdw [--n N] [--seed S] [--out samples.csv] [--png samples.png]",
             "Draw samples by ancestral sampling (Ho et al., Algorithm 2).", kSampleFlags, sample_impl, argc, argv);
}
int run_eval(int argc, char** argv) {
  return run("eval", "microdiffusion eval --model model.mdw [--data NAME|FILE.csv] [--n N] [--json]",
             "Score a model: the variational bound on the negative log-likelihood (nats and bits per dimension, with\n"
             "its Monte Carlo standard error), and the energy distance and MMD of its samples against the data.",
             kEvalFlags, eval_impl, argc, argv);
}
int run_inspect(int argc, char** argv) {
  return run("inspect", "microdiffusion inspect model.mdw",
             "Print a weight file's header, layers, tensors and the arena bytes sampling and training need.",
             kInspectFlags, inspect_impl, argc, argv);
}

}  // namespace md::cli
