#include "microdiffusion/sample.h"

#include <math.h>
#include <string.h>

#include <algorithm>

#include "microdiffusion/rng.h"
#include "scalar_math.h"

namespace md {
namespace {

struct KindName { SamplerKind kind; const char* name; };
constexpr KindName kKinds[] = {{SamplerKind::kDdpm, "ddpm"}, {SamplerKind::kDdim, "ddim"},
                               {SamplerKind::kDpmSolver2M, "dpm++2m"}, {SamplerKind::kOdeHeun, "ode"}};
struct SpacingName { Spacing spacing; const char* name; };
constexpr SpacingName kSpacings[] = {{Spacing::kLinspace, "linspace"}, {Spacing::kLeading, "leading"},
                                     {Spacing::kTrailing, "trailing"}, {Spacing::kLogSnr, "logsnr"}};

// Sort ascending and drop duplicates in place (K <= T, once per init).
uint32_t sort_unique(uint32_t* v, uint32_t n) {
  for (uint32_t i = 1; i < n; ++i) {
    const uint32_t key = v[i];
    uint32_t j = i;
    for (; j > 0 && v[j - 1] > key; --j) v[j] = v[j - 1];
    v[j] = key;
  }
  uint32_t m = 0;
  for (uint32_t i = 0; i < n; ++i)
    if (m == 0 || v[m - 1] != v[i]) v[m++] = v[i];
  return m;
}

// rint(v) for v >= 0: below 2^52, v + 2^52 has an ulp of 1, so the addition
// rounds v to an integer in the current rounding mode, as rint does, and the
// subtraction is exact; from 2^52 up every double is an integer. Keeps libm's
// rint out of images whose FPU has no double rounding instruction (Cortex-M4F:
// 304 bytes). Needs double arithmetic without excess precision, and no
// reassociation (GCC and Clang never reassociate without -ffast-math).
inline double rint_nonnegative(double v) {
#if defined(__FLT_EVAL_METHOD__) && __FLT_EVAL_METHOD__ != 0
  return rint(v);
#else
  constexpr double kTwo52 = 4503599627370496.0;
  return v < kTwo52 ? (v + kTwo52) - kTwo52 : v;
#endif
}

}  // namespace

const char* sampler_kind_name(SamplerKind k) {
  for (const KindName& n : kKinds)
    if (n.kind == k) return n.name;
  return "unknown";
}
bool sampler_kind_from_name(const char* name, SamplerKind* out) {
  for (const KindName& n : kKinds)
    if (strcmp(n.name, name) == 0) return *out = n.kind, true;
  return false;
}
const char* spacing_name(Spacing s) {
  for (const SpacingName& n : kSpacings)
    if (n.spacing == s) return n.name;
  return "unknown";
}
bool spacing_from_name(const char* name, Spacing* out) {
  for (const SpacingName& n : kSpacings)
    if (strcmp(n.name, name) == 0) return *out = n.spacing, true;
  return false;
}

Status make_timesteps(uint32_t T, Spacing spacing, uint32_t steps, uint32_t* out, uint32_t* count,
                      const float* alpha_bar) {
  if (T < 1) return make_status(StatusCode::kInvalidArgument, "T must be at least 1");
  if (steps == 0) steps = T;
  if (steps > T) return make_status(StatusCode::kInvalidArgument, "more sampling steps than timesteps", steps, T);
  if (spacing == Spacing::kLogSnr) {
    if (alpha_bar == nullptr) return make_status(StatusCode::kInvalidArgument, "logsnr spacing needs alpha_bar");
    // lambda = log(alpha_bar / (1 - alpha_bar)) falls with t; take the
    // timestep nearest each of K uniform targets (a forward scan: lambda is monotone).
    // A zero-terminal-SNR schedule has lambda = -inf at T: that step is always
    // taken, and the others are spaced down to the last finite lambda.
    const bool zero_end = !(alpha_bar[T - 1] > 0.0f) && T > 1;
    const uint32_t last = zero_end ? T - 2 : T - 1;
    const uint32_t spaced = zero_end ? steps - 1 : steps;
    if (zero_end) out[steps - 1] = T - 1;
    const double lo = math::log_d(alpha_bar[last] / (1.0 - alpha_bar[last]));
    const double hi = math::log_d(alpha_bar[0] / (1.0 - alpha_bar[0]));
    uint32_t k = 0;
    for (uint32_t i = 0; i < spaced; ++i) {
      const double target = spaced == 1 ? lo : hi + (lo - hi) * i / (spaced - 1.0);
      while (k + 1 <= last) {
        const double here = math::log_d(alpha_bar[k] / (1.0 - alpha_bar[k]));
        const double next = math::log_d(alpha_bar[k + 1] / (1.0 - alpha_bar[k + 1]));
        if (math::fabs_d(next - target) <= math::fabs_d(here - target)) ++k;
        else break;
      }
      out[i] = k;
    }
    *count = sort_unique(out, steps);
    return Status::Ok();
  }
  for (uint32_t i = 0; i < steps; ++i) {
    double v = 0.0;
    switch (spacing) {
      case Spacing::kLinspace: v = steps == 1 ? T - 1.0 : rint_nonnegative((T - 1.0) * i / (steps - 1.0)); break;
      case Spacing::kLeading: v = static_cast<double>(i) * (T / steps); break;
      case Spacing::kTrailing: v = rint_nonnegative(T - static_cast<double>(T) / steps * i) - 1.0; break;  // i < steps
      default: return make_status(StatusCode::kInvalidArgument, "unknown spacing");
    }
    if (v < 0.0) v = 0.0;
    if (v > T - 1.0) v = T - 1.0;
    out[i] = static_cast<uint32_t>(v);
  }
  *count = sort_unique(out, steps);
  return Status::Ok();
}

Status section_timesteps(uint32_t T, const uint32_t* counts, uint32_t n_sections, uint32_t* out, uint32_t* count) {
  if (n_sections < 1 || n_sections > T)
    return make_status(StatusCode::kInvalidArgument, "section count must be in [1, T]", n_sections, T);
  const uint32_t size_per = T / n_sections, extra = T % n_sections;
  uint32_t start = 0, n = 0;
  for (uint32_t i = 0; i < n_sections; ++i) {
    const uint32_t size = size_per + (i < extra ? 1 : 0);
    if (counts[i] < 1 || counts[i] > size)
      return make_status(StatusCode::kInvalidArgument, "a section asks for more steps than it has (section, size)", i, size);
    const double stride = counts[i] <= 1 ? 1.0 : (size - 1.0) / (counts[i] - 1.0);
    double cur = 0.0;
    for (uint32_t j = 0; j < counts[i]; ++j, cur += stride)
      out[n++] = start + static_cast<uint32_t>(rint_nonnegative(cur));
    start += size;
  }
  *count = sort_unique(out, n);
  return Status::Ok();
}

namespace {
// The checks both inits start with.
Status check_shape(const Model& model, const ScheduleDesc& schedule, uint32_t batch) {
  MD_RETURN_IF_ERROR(validate_model(model.desc));
  if (batch < 1 || batch > (1u << 20))
    return make_status(StatusCode::kInvalidArgument, "sampler batch must be in [1, 2^20]", batch, 1u << 20);
  if (schedule.T != model.desc.T)
    return make_status(StatusCode::kInvalidArgument, "schedule T differs from model T", schedule.T, model.desc.T);
  return Status::Ok();
}
}  // namespace

// The arena layout and the schedule, for both inits (after check_shape).
Status Sampler::bind(const Model& model, const ScheduleDesc& schedule, uint32_t batch, Arena& arena,
                     Status (*build)(const ScheduleDesc&, float*)) {
  const SamplerPlan sp = sampler_plan(model.desc, batch);
  uint8_t* base = nullptr;
  MD_RETURN_IF_ERROR(arena.reserve(sp.plan, &base));
  float* alpha_bar = reinterpret_cast<float*>(base + sp.alpha_bar);
  MD_RETURN_IF_ERROR(build(schedule, alpha_bar));
  alpha_bar_ = alpha_bar;
  timesteps_ = reinterpret_cast<uint32_t*>(base + sp.timesteps);
  model_ = model;
  batch_ = batch;
  x_ = reinterpret_cast<float*>(base + sp.x);
  eps_ = reinterpret_cast<float*>(base + sp.eps);
  x0_ = reinterpret_cast<float*>(base + sp.x0);
  prev_x0_ = reinterpret_cast<float*>(base + sp.prev_x0);
  aux_ = reinterpret_cast<float*>(base + sp.aux);
  guide_ = reinterpret_cast<float*>(base + sp.guide);
  t_ = reinterpret_cast<int32_t*>(base + sp.t);
  labels_ = reinterpret_cast<int32_t*>(base + sp.labels);
  noise_ = reinterpret_cast<float*>(base + sp.noise);
  raw_ = reinterpret_cast<float*>(base + sp.raw);
  var_v_ = reinterpret_cast<float*>(base + sp.var_v);
  scratch_ = reinterpret_cast<float*>(base + sp.scratch);
  return Status::Ok();
}

// DDPM over every timestep, eps prediction, nothing else: this init names
// only the ancestral step, so an application that uses it alone links none
// of the other samplers, the spacings, guidance, clipping or thresholding.
Status Sampler::init(const Model& model, const ScheduleDesc& schedule, Variance variance, uint32_t batch,
                     Arena& arena) {
  MD_RETURN_IF_ERROR(check_shape(model, schedule, batch));
  if (static_cast<uint32_t>(variance) >= kVarianceCount)
    return make_status(StatusCode::kInvalidArgument, "unknown variance");
  if (variance == Variance::kLearnedRange && !model.desc.learned_variance)
    return make_status(StatusCode::kInvalidArgument, "a learned variance needs a model that outputs one");
  if (model.prediction != Prediction::kEpsilon)  // its step assumes eps; it would sample garbage silently
    return make_status(StatusCode::kInvalidArgument,
                       "the DDPM-only init samples eps-prediction models: use the SamplerConfig init for x0 or v");
  if (schedule.zero_terminal_snr)
    return make_status(StatusCode::kInvalidArgument, "zero terminal SNR needs a v or x0 prediction, not eps");
  x_ = nullptr;
  MD_RETURN_IF_ERROR(bind(model, schedule, batch, arena, build_alpha_bar_plain));
  const uint32_t T = model.desc.T;
  for (uint32_t i = 0; i < T; ++i) timesteps_[i] = i;  // make_timesteps' linspace with K = T
  n_steps_ = T;
  config_ = SamplerConfig();
  config_.variance = variance;
  config_.n_timesteps = T;
  step_ = &Sampler::step_ddpm;
  return Status::Ok();
}

Status Sampler::init(const Model& model, const ScheduleDesc& schedule, const SamplerConfig& config, uint32_t batch,
                     Arena& arena) {
  MD_RETURN_IF_ERROR(check_shape(model, schedule, batch));
  const uint32_t T = model.desc.T;
  if (schedule.zero_terminal_snr && config.prediction == Prediction::kEpsilon)
    return make_status(StatusCode::kInvalidArgument, "zero terminal SNR needs a v or x0 prediction, not eps");
  if (schedule.zero_terminal_snr && config.kind == SamplerKind::kOdeHeun)
    return make_status(StatusCode::kInvalidArgument,
                       "the ODE sampler cannot start at zero terminal SNR (its time variable is infinite there)");
  if (static_cast<uint32_t>(config.kind) > static_cast<uint32_t>(SamplerKind::kOdeHeun))
    return make_status(StatusCode::kInvalidArgument, "unknown sampler");
  if (static_cast<uint32_t>(config.variance) >= kVarianceCount)
    return make_status(StatusCode::kInvalidArgument, "unknown variance");
  if (config.variance == Variance::kLearnedRange && !model.desc.learned_variance)
    return make_status(StatusCode::kInvalidArgument, "a learned variance needs a model that outputs one");
  if (static_cast<uint32_t>(config.prediction) >= kPredictionCount)
    return make_status(StatusCode::kInvalidArgument, "unknown prediction type");
  if (config.label < -1 || (config.label >= 0 && static_cast<uint32_t>(config.label) >= model.desc.n_classes))
    return make_status(StatusCode::kInvalidArgument, "label out of range (label, classes)",
                       static_cast<uint64_t>(static_cast<int64_t>(config.label)), model.desc.n_classes);
  if (!(config.guidance >= 0.0f && config.guidance <= 100.0f))
    return make_status(StatusCode::kInvalidArgument, "guidance scale must be in [0, 100]");
  if (config.guidance > 0.0f && config.label < 0)
    return make_status(StatusCode::kInvalidArgument, "guidance needs a label");
  if (!(config.eta >= 0.0f && config.eta <= 1.0f))
    return make_status(StatusCode::kInvalidArgument, "DDIM eta must be in [0, 1]");
  if (!(config.clip_x0 >= 0.0f && config.clip_x0 < 3.0e38f))
    return make_status(StatusCode::kInvalidArgument, "x0 clip must be >= 0 and finite");
  if (!(config.dynamic_threshold >= 0.0f && config.dynamic_threshold < 1.0f))
    return make_status(StatusCode::kInvalidArgument, "dynamic threshold percentile must be in [0, 1)");
  if (config.timesteps != nullptr && (config.n_timesteps < 1 || config.n_timesteps > T))
    return make_status(StatusCode::kInvalidArgument, "explicit timestep count must be in [1, T]", config.n_timesteps, T);
  if (config.timesteps != nullptr)
    for (uint32_t i = 0; i < config.n_timesteps; ++i)
      if (config.timesteps[i] >= T)
        return make_status(StatusCode::kInvalidArgument, "explicit timestep out of range (value, T)", config.timesteps[i], T);

  x_ = nullptr;
  MD_RETURN_IF_ERROR(bind(model, schedule, batch, arena, build_alpha_bar));
  if (config.timesteps != nullptr) {
    memcpy(timesteps_, config.timesteps, config.n_timesteps * sizeof(uint32_t));
    n_steps_ = sort_unique(timesteps_, config.n_timesteps);
  } else {
    const Status st = make_timesteps(T, config.spacing, config.steps, timesteps_, &n_steps_, alpha_bar_);
    if (!st.ok()) {
      x_ = nullptr;
      return st;
    }
  }
  config_ = config;
  config_.timesteps = nullptr;  // copied into the arena
  config_.n_timesteps = n_steps_;
  // Algorithm 2's eps form applies when the output is eps and x0_hat is left alone.
  const bool via_x0 = config_.clip_x0 > 0.0f || config_.dynamic_threshold > 0.0f ||
                      config_.prediction != Prediction::kEpsilon;
  switch (config_.kind) {
    case SamplerKind::kDdpm: step_ = via_x0 ? &Sampler::step_ddpm_x0 : &Sampler::step_ddpm; break;
    case SamplerKind::kDdim: step_ = &Sampler::step_ddim; break;
    case SamplerKind::kDpmSolver2M: step_ = &Sampler::step_dpm2m; break;
    default: step_ = &Sampler::step_ode; break;
  }
  return Status::Ok();
}

uint32_t Sampler::evaluations() const {
  const uint32_t calls = config_.kind == SamplerKind::kOdeHeun ? 2 * n_steps_ - 1 : n_steps_;
  return config_.guidance > 0.0f ? 2 * calls : calls;
}

// The model output at (x, t) for the configured label, with classifier-free
// guidance when asked: y = y_c + w (y_c - y_u).
void Sampler::predict_eps(const float* x, uint32_t rows, uint32_t t, float* eps) {
  const int32_t none = static_cast<int32_t>(model_.desc.n_classes);
  for (uint32_t r = 0; r < rows; ++r) {
    t_[r] = static_cast<int32_t>(t);
    labels_[r] = config_.label >= 0 ? config_.label : none;
  }
  forward(x, rows, eps, var_v_);
  if (config_.guidance > 0.0f) {
    // Guidance moves the prediction only; a learned variance stays the conditional one.
    for (uint32_t r = 0; r < rows; ++r) labels_[r] = none;
    forward(x, rows, guide_, nullptr);
    const float w = config_.guidance;
    const size_t n = static_cast<size_t>(rows) * model_.desc.D;
    for (size_t i = 0; i < n; ++i) eps[i] += w * (eps[i] - guide_[i]);
  }
}

void Sampler::forward(const float* x, uint32_t rows, float* out, float* v_out) {
  if (!model_.desc.learned_variance) {
    model_forward(model_, x, t_, rows, out, scratch_, labels_);
    return;
  }
  const uint32_t D = model_.desc.D;
  model_forward(model_, x, t_, rows, raw_, scratch_, labels_);
  for (uint32_t r = 0; r < rows; ++r) {
    const float* row = raw_ + static_cast<size_t>(r) * 2 * D;
    memcpy(out + static_cast<size_t>(r) * D, row, D * sizeof(float));
    if (v_out != nullptr) memcpy(v_out + static_cast<size_t>(r) * D, row + D, D * sizeof(float));
  }
}

// eps_ = eps_theta(x_, t) and x0_ = x0_hat, clipped or thresholded if asked;
// when x0_hat changes, eps_ is made consistent with it.
void Sampler::denoise(uint32_t rows, uint32_t t) {
  const uint32_t D = model_.desc.D;
  const size_t n = static_cast<size_t>(rows) * D;
  predict_eps(x_, rows, t, eps_);  // the raw output y, converted in place below
  const double ab = alpha_bar_[t];
  const float sa = static_cast<float>(math::sqrt_d(ab)), s1 = static_cast<float>(math::sqrt_d(1.0 - ab));
  const Prediction p = config_.prediction;
  for (size_t i = 0; i < n; ++i) prediction_to_eps_x0(p, eps_[i], x_[i], sa, s1, &eps_[i], &x0_[i]);
  const float clip = config_.clip_x0;
  const float q = config_.dynamic_threshold;
  if (clip <= 0.0f && q <= 0.0f) return;
  for (uint32_t r = 0; r < rows; ++r) {
    float* x0 = x0_ + static_cast<size_t>(r) * D;
    if (q > 0.0f) {
      // Imagen: s = max(1, q-quantile of |x0_hat|); x0_hat = clamp(x0_hat, -s, s) / s.
      for (uint32_t j = 0; j < D; ++j) noise_[j] = (x0[j] < 0.0f ? -x0[j] : x0[j]);
      const uint32_t k = static_cast<uint32_t>(q * (D - 1));
      std::nth_element(noise_, noise_ + k, noise_ + D);
      const float s = noise_[k] > 1.0f ? noise_[k] : 1.0f;
      for (uint32_t j = 0; j < D; ++j) x0[j] = math::clamp_f(x0[j], -s, s) / s;
    }
    if (clip > 0.0f)
      for (uint32_t j = 0; j < D; ++j) x0[j] = math::clamp_f(x0[j], -clip, clip);
  }
  const float inv_s1 = static_cast<float>(1.0 / math::sqrt_d(1.0 - ab));
  for (size_t i = 0; i < n; ++i) eps_[i] = (x_[i] - sa * x0_[i]) * inv_s1;
}

Status Sampler::sample(uint64_t seed, uint32_t first, uint32_t n, float* out, StepObserver observer, void* user) {
  return run(nullptr, seed, first, n, out, observer, user);
}

Status Sampler::sample_from(const float* x_start, uint64_t seed, uint32_t first, uint32_t n, float* out,
                            StepObserver observer, void* user) {
  if (x_start == nullptr && n > 0) return make_status(StatusCode::kInvalidArgument, "null starting points");
  return run(x_start, seed, first, n, out, observer, user);
}

// Step noise, per sample, keyed by the timestep: sigma for every element,
// or with `learned` (log beta', log beta-tilde') the learned range's sigma
// per element from the model's v output.
void Sampler::add_noise(const Step& st, float sigma, const double* learned) {
  if (!(sigma > 0.0f)) return;
  const uint32_t D = model_.desc.D;
  for (uint32_t r = 0; r < st.rows; ++r) {
    gaussian_fill(st.seed, RngStream::kSampleStep, st.index0 + r, st.t, noise_, D);
    float* x = x_ + static_cast<size_t>(r) * D;
    const float* v = var_v_ + static_cast<size_t>(r) * D;
    for (uint32_t j = 0; j < D; ++j) {
      const float s = learned ? static_cast<float>(math::exp_d(0.5 * learned_log_variance(v[j], learned[0], learned[1])))
                              : sigma;
      x[j] += s * noise_[j];
    }
  }
}

// The DDPM noise: sigma^2 = beta' (large) or beta-tilde' (small), or per
// element between their logs (learned range).
void Sampler::add_ddpm_noise(const Step& st, double beta) {
  if (st.i == 0) return;
  const double tilde = beta * (1.0 - st.ab_prev) / (1.0 - st.ab);
  if (config_.variance != Variance::kLearnedRange) {
    add_noise(st, static_cast<float>(math::sqrt_d(config_.variance == Variance::kFixedLarge ? beta : tilde)));
    return;
  }
  const double logs[2] = {math::log_d(beta), math::log_d(tilde)};
  add_noise(st, 1.0f, logs);
}

// DDPM, Algorithm 2: x = (x - beta' / sqrt(1 - ab) eps) / sqrt(alpha'), plus noise.
void Sampler::step_ddpm(Step& st) {
  const double beta = 1.0 - st.ab / st.ab_prev;  // respaced beta'
  predict_eps(x_, st.rows, st.t, eps_);
  const float a = static_cast<float>(1.0 / math::sqrt_d(1.0 - beta));
  const float c = static_cast<float>(beta / math::sqrt_d(1.0 - st.ab));
  for (size_t k = 0; k < st.count; ++k) x_[k] = a * (x_[k] - c * eps_[k]);
  add_ddpm_noise(st, beta);
}

// DDPM through x0_hat (clipped, thresholded, or from a v / x0 prediction): the posterior mean.
void Sampler::step_ddpm_x0(Step& st) {
  const double beta = 1.0 - st.ab / st.ab_prev;
  denoise(st.rows, st.t);
  const float c1 = static_cast<float>(beta * math::sqrt_d(st.ab_prev) / (1.0 - st.ab));
  const float c2 = static_cast<float>((1.0 - st.ab_prev) * math::sqrt_d(1.0 - beta) / (1.0 - st.ab));
  for (size_t k = 0; k < st.count; ++k) x_[k] = c1 * x0_[k] + c2 * x_[k];
  add_ddpm_noise(st, beta);
}

void Sampler::step_ddim(Step& st) {
  const double ab = st.ab, ab_prev = st.ab_prev;
  denoise(st.rows, st.t);
  const double sigma = st.i == 0 ? 0.0
                       : config_.eta * math::sqrt_d((1.0 - ab_prev) / (1.0 - ab)) * math::sqrt_d(1.0 - ab / ab_prev);
  const double dir = 1.0 - ab_prev - sigma * sigma;
  const float a = static_cast<float>(math::sqrt_d(ab_prev)), c = static_cast<float>(math::sqrt_d(dir > 0.0 ? dir : 0.0));
  for (size_t k = 0; k < st.count; ++k) x_[k] = a * x0_[k] + c * eps_[k];
  add_noise(st, static_cast<float>(sigma));
}

void Sampler::step_dpm2m(Step& st) {
  const size_t count = st.count;
  denoise(st.rows, st.t);
  if (st.i == 0) {  // to alpha_bar = 1: the data prediction itself
    memcpy(x_, x0_, count * sizeof(float));
    return;
  }
  const double alpha = math::sqrt_d(st.ab), sigma = math::sqrt_d(1.0 - st.ab);
  const double alpha_n = math::sqrt_d(st.ab_prev), sigma_n = math::sqrt_d(1.0 - st.ab_prev);
  const double h = math::log_d(alpha_n / sigma_n) - math::log_d(alpha / sigma);
  const float a = static_cast<float>(sigma_n / sigma);
  const float b = static_cast<float>(-alpha_n * math::expm1_d(-h));
  if (st.have_prev) {
    const float half_over_r = static_cast<float>(0.5 * h / st.h_prev);  // 0.5 / r, r = h_prev / h
    for (size_t k = 0; k < count; ++k) x_[k] = a * x_[k] + b * (x0_[k] + half_over_r * (x0_[k] - prev_x0_[k]));
  } else {
    for (size_t k = 0; k < count; ++k) x_[k] = a * x_[k] + b * x0_[k];
  }
  memcpy(prev_x0_, x0_, count * sizeof(float));
  st.h_prev = h;
  st.have_prev = true;
}

// The probability-flow ODE: x~ = x / sqrt(ab), sigma~ = sqrt((1 - ab) / ab), dx~/dsigma~ = eps; Heun.
void Sampler::step_ode(Step& st) {
  const size_t count = st.count;
  const double ab = st.ab, ab_prev = st.ab_prev;
  denoise(st.rows, st.t);
  const double s_cur = math::sqrt_d((1.0 - ab) / ab);
  const double s_next = st.i == 0 ? 0.0 : math::sqrt_d((1.0 - ab_prev) / ab_prev);
  const float inv_sa = static_cast<float>(1.0 / math::sqrt_d(ab));
  const float ds = static_cast<float>(s_next - s_cur);
  const float sa_next = static_cast<float>(math::sqrt_d(ab_prev));
  if (st.i == 0) {  // Euler to sigma~ = 0 is x0_hat
    memcpy(x_, x0_, count * sizeof(float));
    return;
  }
  // Predictor (Euler) in aux_, kept in x~ units; corrector with eps at the predictor.
  for (size_t k = 0; k < count; ++k) aux_[k] = x_[k] * inv_sa + ds * eps_[k];
  for (size_t k = 0; k < count; ++k) prev_x0_[k] = eps_[k];  // d at the start
  for (size_t k = 0; k < count; ++k) x_[k] = aux_[k] * sa_next;
  denoise(st.rows, timesteps_[st.i - 1]);
  for (size_t k = 0; k < count; ++k)
    x_[k] = (aux_[k] - ds * prev_x0_[k] + 0.5f * ds * (prev_x0_[k] + eps_[k])) * sa_next;
}

Status Sampler::run(const float* x_start, uint64_t seed, uint32_t first, uint32_t n, float* out,
                    StepObserver observer, void* user) {
  if (x_ == nullptr) return make_status(StatusCode::kInvalidArgument, "sampler used before init");
  if (out == nullptr && n > 0) return make_status(StatusCode::kInvalidArgument, "null output buffer");
  if (static_cast<uint64_t>(first) + n > 0xFFFFFFFFull)
    return make_status(StatusCode::kInvalidArgument, "sample indices exceed 2^32", first, n);
  const uint32_t D = model_.desc.D;
  const uint32_t K = n_steps_;
  const uint32_t* ts = timesteps_;
  for (uint32_t done = 0; done < n; done += batch_) {
    Step st;
    st.seed = seed;
    st.rows = n - done < batch_ ? n - done : batch_;
    st.index0 = first + done;
    st.count = static_cast<size_t>(st.rows) * D;
    if (x_start != nullptr) {
      for (size_t k = 0; k < st.count; ++k) x_[k] = x_start[static_cast<size_t>(done) * D + k];
    } else {
      for (uint32_t r = 0; r < st.rows; ++r)
        gaussian_fill(seed, RngStream::kSampleInit, st.index0 + r, 0, x_ + static_cast<size_t>(r) * D, D);
    }
    if (observer) observer(user, static_cast<int32_t>(ts[K - 1] + 1), x_, st.rows, st.index0);
    st.h_prev = 0.0;  // dpm++2m's history starts afresh with each chunk
    st.have_prev = false;
    for (uint32_t i = K; i-- > 0;) {
      st.i = i;
      st.t = ts[i];
      st.ab = alpha_bar_[st.t];
      st.ab_prev = i > 0 ? static_cast<double>(alpha_bar_[ts[i - 1]]) : 1.0;
      (this->*step_)(st);
      if (observer) observer(user, i > 0 ? static_cast<int32_t>(ts[i - 1] + 1) : 0, x_, st.rows, st.index0);
    }
    for (size_t j = 0; j < st.count; ++j) {
      if (!(x_[j] - x_[j] == 0.0f))
        return make_status(StatusCode::kNonFinite, "sampling produced NaN or Inf (sample index)", st.index0 + j / D);
      out[static_cast<size_t>(done) * D + j] = x_[j];
    }
  }
  return Status::Ok();
}

}  // namespace md
