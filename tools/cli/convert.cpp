// microdiffusion convert: a PyTorch / safetensors / NumPy checkpoint -> .mdw.
// microdiffusion predict: the model's output eps_theta(x, t) for rows of a CSV.
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/csv.h"
#include "convert/convert.h"
#include "convert/internal.h"
#include "microdiffusion/microdiffusion.h"
#include "threads/thread_pool.h"

namespace md::cli {
namespace {

int run_with(const char* name, const char* usage, const char* summary, const std::vector<FlagSpec>& flags,
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

// ---- convert -----------------------------------------------------------------------

const std::vector<FlagSpec> kConvertFlags = {
    {"out", "FILE.mdw", "weight file to write (required unless --list)"},
    {"arch", "NAME", "auto | tutorial | default (default: auto, recognised from the tensor names)"},
    {"map", "FILE", "mapping file for any other MLP (docs/CONVERT.md); replaces --arch"},
    {"key", "PATH", "the state_dict inside a wrapped checkpoint, e.g. model, ema, ema.shadow"},
    {"T", "N", "diffusion steps (default: the rows of the per-timestep tables; required without them)"},
    {"schedule", "NAME", "linear | cosine | scaled-linear | sigmoid | custom (default: linear)"},
    {"betas", "FILE", "custom schedule: beta_1 .. beta_T, whitespace- or comma-separated, '#' comments "
                      "(e.g. diffusers' trained_betas; implies --schedule custom)"},
    {"beta-start", "X", "first beta, not for cosine (default: 1e-4 * 1000/T; the tutorial: sigmoid 1e-5 to 1e-2)"},
    {"beta-end", "X", "last beta, not for cosine (default: 0.02 * 1000/T)"},
    {"prediction", "WHAT", "what the network predicts: eps | x0 | v (default: eps)"},
    {"variance", "NAME", "default sampler variance written to the file: small | large (default: small)"},
    {"data", "NAME", "training data name recorded in the file (e.g. swissroll; informational)"},
    {"list", nullptr, "print the checkpoint's tensors (after --key) and exit"},
    {"quiet", nullptr, "no summary"},
    {"config", "FILE", "schedule and metadata as 'name value' lines: T, schedule, betas, beta-start, beta-end, prediction, "
                       "variance, data (flags win)"},
    {"dtype", "TYPE", "f32 | f16 | int8 (per output column): how weight matrices are stored (default: f32); "
                      "reports the largest output change on a probe batch. The input may also be a .mdw file"},
    {"help", nullptr, "show this help"},
};

// Rewrites an f32 weight file with its weight matrices as `dtype`, and
// measures what that costs: the network on a 256-row probe batch (x ~ N(0, I)
// from the portable generator, t spread over [0, T)), f32 against `dtype`.
bool requantize(const uint8_t* f32_file, size_t size, TensorDType dtype, std::vector<uint8_t>* out, double* max_err,
                double* rms, std::string* err) {
  AlignedBuffer copy;
  copy.resize(size);
  memcpy(copy.data(), f32_file, size);
  LoadedWeights w;
  Status s = load_weights(copy.data(), size, &w);
  if (!s.ok()) return *err = describe(s), false;
  if (!w.model.all_f32()) return *err = "the input already holds reduced-precision weights; convert from f32", false;
  const ModelDesc& d = w.model.desc;
  const ParamLayout& lay = w.model.layout;
  std::vector<float> params(lay.total_floats, 0.0f);
  for (uint32_t i = 0; i < lay.n_tensors; ++i)
    memcpy(params.data() + lay.tensors[i].offset, w.model.tensors[i], sizeof(float) * lay.tensors[i].count());
  WeightsMeta meta = w.meta;
  meta.weight_dtype = dtype;
  AlignedBuffer q;
  q.resize(weights_file_bytes(d, w.schedule, dtype));
  size_t written = 0;
  s = write_weights(d, w.schedule, meta, params.data(), q.data(), q.size, &written);
  if (!s.ok()) return *err = describe(s), false;
  LoadedWeights wq;
  s = load_weights(q.data(), written, &wq);
  if (!s.ok()) return *err = "the rewritten file does not load: " + describe(s), false;
  constexpr uint32_t kProbe = 256;
  const uint32_t W = output_width(d);
  std::vector<float> x(static_cast<size_t>(kProbe) * d.D), y(kProbe * W), yq(kProbe * W);
  std::vector<int32_t> t(kProbe), labels(kProbe, static_cast<int32_t>(d.n_classes));
  for (uint32_t r = 0; r < kProbe; ++r) {
    gaussian_fill(0, RngStream::kSampleInit, r, 0, x.data() + static_cast<size_t>(r) * d.D, d.D);
    t[r] = static_cast<int32_t>(static_cast<uint64_t>(r) * d.T / kProbe);
  }
  std::vector<float> scratch(forward_scratch_floats(d, kProbe));
  model_forward(w.model, x.data(), t.data(), kProbe, y.data(), scratch.data(), labels.data());
  model_forward(wq.model, x.data(), t.data(), kProbe, yq.data(), scratch.data(), labels.data());
  double worst = 0.0, sq = 0.0;
  for (size_t i = 0; i < y.size(); ++i) {
    worst = std::fmax(worst, std::fabs(static_cast<double>(yq[i]) - y[i]));
    sq += static_cast<double>(y[i]) * y[i];
  }
  *max_err = worst;
  *rms = std::sqrt(sq / static_cast<double>(y.size()));
  out->assign(q.data(), q.data() + written);
  return true;
}

int convert_impl(const Args& cli_args) {
  const char* cmd = "convert";
  std::string err;
  Args args = cli_args;
  if (args.has("config")) {
    AlignedBuffer text;
    if (!read_file(args.str("config"), &text, &err)) return fail(cmd, err);
    if (!args.merge_config(std::string(text.data(), text.data() + text.size), args.str("config"),
                           {"T", "schedule", "betas", "beta-start", "beta-end", "prediction", "variance", "data"}, &err))
      return fail(cmd, err, 2);
  }
  if (args.positional().size() != 1) return fail(cmd, "expected one checkpoint file (see --help)", 2);
  const bool list = args.has("list");
  if (!list && !args.has("out")) return fail(cmd, "--out is required (see --help)", 2);
  convert::ConvertOptions o;
  o.arch = args.str("arch", "auto");
  if (o.arch != "auto" && o.arch != "tutorial" && o.arch != "default")
    return fail(cmd, "--arch must be auto, tutorial or default, got '" + o.arch + "'", 2);
  if (args.has("map") && args.has("arch")) return fail(cmd, "--map and --arch exclude each other", 2);
  const std::string sched = args.str("schedule", args.has("betas") ? "custom" : "linear");
  if (!schedule_kind_from_name(sched.c_str(), &o.schedule))
    return fail(cmd, "--schedule must be linear, cosine, scaled-linear, sigmoid or custom, got '" + sched + "'", 2);
  if ((o.schedule == ScheduleKind::kCosine || o.schedule == ScheduleKind::kCustom) &&
      (args.has("beta-start") || args.has("beta-end")))
    return fail(cmd, "--beta-start/--beta-end do not apply to the " + sched + " schedule", 2);
  if ((o.schedule == ScheduleKind::kCustom) != args.has("betas"))
    return fail(cmd, "--betas FILE and --schedule custom go together", 2);
  if (args.has("betas") && !read_betas(args.str("betas"), &o.betas, &err)) return fail(cmd, err, 2);
  if (!prediction_from_name(args.str("prediction", "eps").c_str(), &o.meta.prediction))
    return fail(cmd, "--prediction must be eps, x0 or v, got '" + args.str("prediction") + "'", 2);
  unsigned long long T;
  if (!args.u64("T", 0, 1, kMaxTimesteps, &T, &err) || !args.f64("beta-start", 0.0, 1e-8, 0.999, &o.beta_start, &err) ||
      !args.f64("beta-end", 0.0, 1e-8, 0.999, &o.beta_end, &err))
    return fail(cmd, err, 2);
  o.T = static_cast<uint32_t>(T);
  const std::string variance = args.str("variance", "small");
  if (variance != "small" && variance != "large")
    return fail(cmd, "--variance must be small or large, got '" + variance + "'", 2);
  o.meta.variance = variance == "large" ? Variance::kFixedLarge : Variance::kFixedSmall;
  o.key = args.str("key", "");
  // The file holds EMA weights when the key path names an EMA copy.
  o.meta.is_ema = 0;
  for (size_t p = 0; p <= o.key.size();) {
    const size_t dot = o.key.find('.', p);
    const std::string part = o.key.substr(p, dot == std::string::npos ? std::string::npos : dot - p);
    if (part.find("ema") != std::string::npos) o.meta.is_ema = 1;
    if (dot == std::string::npos) break;
    p = dot + 1;
  }
  const std::string dtype_name = args.str("dtype", "f32");
  if (dtype_name != "f32" && dtype_name != "f16" && dtype_name != "int8")
    return fail(cmd, "--dtype must be f32, f16 or int8, got '" + dtype_name + "'", 2);
  const TensorDType dtype = dtype_name == "f16" ? TensorDType::kF16 : dtype_name == "int8" ? TensorDType::kInt8
                                                                                        : TensorDType::kF32;
  const std::string data_name = args.str("data", "");
  if (data_name.size() > 31) return fail(cmd, "--data must be at most 31 characters", 2);
  std::snprintf(o.meta.dataset, sizeof(o.meta.dataset), "%s", data_name.c_str());

  const std::string in = args.positional()[0];
  AlignedBuffer bytes;
  if (!read_file(in, &bytes, &err)) return fail(cmd, err);
  if (args.has("map")) {
    AlignedBuffer map;
    if (!read_file(args.str("map"), &map, &err)) return fail(cmd, err);
    o.map_text.assign(map.data(), map.data() + map.size);
    o.map_name = args.str("map");
    if (o.map_text.empty()) return fail(cmd, "'" + o.map_name + "' is empty");
  }

  if (list) {
    convert::Checkpoint ck;
    err = convert::read_checkpoint(bytes.data(), bytes.size, &ck);
    if (err.empty()) err = convert::select_key(&ck, o.key);
    if (!err.empty()) return fail(cmd, "'" + in + "': " + err);
    std::printf("%s: %s, %zu tensors\n", in.c_str(), ck.format.c_str(), ck.tensors.size());
    for (const convert::TensorRef& t : ck.tensors)
      std::printf("  %-40s %-9s %s\n", convert::detail::printable(t.name).c_str(), convert::dtype_name(t.dtype),
                  t.shape_string().c_str());  // names come from the file: control bytes escaped
    return 0;
  }

  // A .mdw input: only its weights' precision changes.
  if (bytes.size >= 8 && memcmp(bytes.data(), kWeightsMagic, 8) == 0) {
    std::vector<uint8_t> q;
    double max_err = 0.0, rms = 0.0;
    if (!requantize(bytes.data(), bytes.size, dtype, &q, &max_err, &rms, &err)) return fail(cmd, "'" + in + "': " + err);
    if (!write_bytes(args.str("out"), q, &err)) return fail(cmd, err);
    std::fprintf(stderr, "wrote %s (%zu bytes, weights %s; %zu bytes as f32): largest output change on a 256-row "
                 "probe %.3g (output RMS %.3g)\n", args.str("out").c_str(), q.size(), dtype_name.c_str(), bytes.size,
                 max_err, rms);
    return 0;
  }
  convert::ConvertResult r;
  err = convert::convert(bytes.data(), bytes.size, o, &r);
  if (!err.empty()) return fail(cmd, "'" + in + "': " + err);
  double max_err = 0.0, rms = 0.0;
  if (dtype != TensorDType::kF32) {
    std::vector<uint8_t> q;
    if (!requantize(r.mdw.data(), r.mdw.size(), dtype, &q, &max_err, &rms, &err)) return fail(cmd, "'" + in + "': " + err);
    r.mdw.swap(q);
  }
  if (!write_bytes(args.str("out"), r.mdw, &err)) return fail(cmd, err);
  if (dtype != TensorDType::kF32 && !args.has("quiet"))
    std::fprintf(stderr, "weights stored as %s: largest output change on a 256-row probe %.3g (output RMS %.3g)\n",
                 dtype_name.c_str(), max_err, rms);
  if (terminal_alpha_bar(r.schedule) > kTerminalAlphaBarWarning)
    std::fprintf(stderr, "warning: alpha_bar_T = %.3g is far from 0 with this schedule: check --T and the schedule "
                 "flags against how the model was trained\n", terminal_alpha_bar(r.schedule));
  if (!args.has("quiet")) {
    const ModelDesc& d = r.model.desc;
    std::fprintf(stderr, "converted %s (%s, arch %s): D=%u T=%u, %u layers, %u parameters", in.c_str(),
                 r.format.c_str(), r.arch.c_str(), d.D, d.T, d.n_layers, parameter_count(d));
    if (d.n_classes) std::fprintf(stderr, ", %u classes", d.n_classes);
    std::fprintf(stderr, ", prediction %s, schedule %s", prediction_name(o.meta.prediction),
                 schedule_kind_name(r.schedule.kind));
    if (r.schedule.kind == ScheduleKind::kCustom)
      std::fprintf(stderr, " (%u betas) beta %.6g -> %.6g", d.T, r.betas.front(), r.betas.back());
    else if (r.schedule.kind != ScheduleKind::kCosine)
      std::fprintf(stderr, " beta %.6g -> %.6g", r.schedule.beta_start, r.schedule.beta_end);
    std::fprintf(stderr, "; wrote %s (%zu bytes)\n", args.str("out").c_str(), r.mdw.size());
  }
  return 0;
}

// ---- predict -----------------------------------------------------------------------

const std::vector<FlagSpec> kPredictFlags = {
    {"model", "FILE.mdw", "weight file (required)"},
    {"input", "FILE.csv", "rows t,x1,...,xD; t is the timestep index 0..T-1 (required)"},
    {"labels", nullptr, "class-conditional models: rows are t,label,x1,...,xD (label n_classes = no label)"},
    {"out", "FILE.csv", "model outputs, one row of D values per input row (default: stdout)"},
    {"batch", "N", "rows evaluated at once (default: 256)"},
    {"threads", "N", "threads for the large matrix products (default: 1; results are identical for any N)"},
    {"help", nullptr, "show this help"},
};

int predict_impl(const Args& args) {
  const char* cmd = "predict";
  std::string err;
  if (!args.has("model")) return fail(cmd, "--model is required (see --help)", 2);
  if (!args.has("input")) return fail(cmd, "--input is required (see --help)", 2);
  if (!args.positional().empty()) return fail(cmd, "unexpected argument '" + args.positional()[0] + "'", 2);
  unsigned long long batch;
  if (!args.u64("batch", 256, 1, 65536, &batch, &err)) return fail(cmd, err, 2);

  const std::string model_path = args.str("model");
  AlignedBuffer model_file;
  LoadedWeights w;
  if (!load_model_file(model_path, &model_file, &w, &err)) return fail(cmd, err);
  const uint32_t D = w.model.desc.D, T = w.model.desc.T, C = w.model.desc.n_classes;
  const bool with_labels = args.has("labels");
  if (with_labels && C == 0) return fail(cmd, "--labels: '" + model_path + "' is not a class-conditional model", 2);
  const uint32_t lead = with_labels ? 2 : 1;  // columns before x

  // Input rows, with their line numbers for messages.
  const std::string in_path = args.str("input");
  AlignedBuffer text_bytes;
  if (!read_file(in_path, &text_bytes, &err)) return fail(cmd, err);
  const std::string text(text_bytes.data(), text_bytes.data() + text_bytes.size);
  std::vector<int32_t> ts, labels;
  std::vector<float> xs;
  size_t pos = 0, line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    const size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    Table row;
    const std::string where = in_path + ":" + std::to_string(line_no);
    if (!parse_csv(line, where, &row, &err)) {
      // parse_csv names line 1 of the one-line text; point at the real line.
      const std::string prefix = where + ":1:";
      if (err.compare(0, prefix.size(), prefix) == 0) err = where + ":" + err.substr(prefix.size());
      return fail(cmd, err);
    }
    if (row.cols != D + lead)
      return fail(cmd, where + ": has " + std::to_string(row.cols) + " fields, the model needs " + std::to_string(D + lead) +
                           (with_labels ? " (t, label, then D = " : " (t, then D = ") + std::to_string(D) + " values)");
    const float t = row.values[0];
    if (t != std::floor(t) || t < 0.0f || t >= static_cast<float>(T))
      return fail(cmd, where + ": t = " + format_csv(&t, 1, 1).substr(0, format_csv(&t, 1, 1).size() - 1) +
                           " is not an integer timestep index in [0, " + std::to_string(T - 1) + "]");
    ts.push_back(static_cast<int32_t>(t));
    if (with_labels) {
      const float c = row.values[1];
      if (c != std::floor(c) || c < 0.0f || c > static_cast<float>(C))
        return fail(cmd, where + ": label " + format_csv(&c, 1, 1).substr(0, format_csv(&c, 1, 1).size() - 1) +
                             " is not a class in [0, " + std::to_string(C) + "] (" + std::to_string(C) + " = no label)");
      labels.push_back(static_cast<int32_t>(c));
    }
    xs.insert(xs.end(), row.values.begin() + lead, row.values.end());
  }
  if (ts.empty()) return fail(cmd, in_path + ": no data rows");

  const size_t n = ts.size();
  const uint32_t b = static_cast<uint32_t>(batch < n ? batch : n);
  std::vector<float> scratch(forward_scratch_floats(w.model.desc, b));
  const uint32_t W = output_width(w.model.desc);  // a learned variance adds D columns of v
  std::vector<float> out(n * W);
  for (size_t i = 0; i < n; i += b) {
    const uint32_t rows = static_cast<uint32_t>(n - i < b ? n - i : b);
    model_forward(w.model, xs.data() + i * D, ts.data() + i, rows, out.data() + i * W, scratch.data(),
                  with_labels ? labels.data() + i : nullptr);
  }
  const std::string csv = format_csv(out.data(), n, W);
  if (args.has("out")) {
    if (!write_text(args.str("out"), csv, &err))
      return fail(cmd, err);
  } else {
    std::fwrite(csv.data(), 1, csv.size(), stdout);
  }
  return 0;
}

}  // namespace

int run_convert(int argc, char** argv) {
  return run_with("convert", "microdiffusion convert CHECKPOINT --out model.mdw [--arch auto|tutorial|default | --map FILE] [options]",
                  "Convert a PyTorch (.pt/.pth, zip or legacy), safetensors, .npz or .npy checkpoint into a .mdw weight "
                  "file. Nothing in the checkpoint is executed. See docs/CONVERT.md.",
                  kConvertFlags, convert_impl, argc, argv);
}

int run_predict(int argc, char** argv) {
  return run_with("predict", "microdiffusion predict --model model.mdw --input in.csv [--out out.csv]",
                  "Evaluate the denoiser: for each row t,x1,...,xD write the network's output (D values: eps, x0 or v, "
                  "as the file says).", kPredictFlags,
                  predict_impl, argc, argv);
}

}  // namespace md::cli
