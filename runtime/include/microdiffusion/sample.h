// Samplers over a (possibly respaced) sequence of timesteps s_0 < ... < s_{K-1}:
//
//   ddpm     ancestral sampling (Ho et al. 2020, Algorithm 2), on respaced
//            steps with beta'_i = 1 - alpha_bar(s_i) / alpha_bar(s_{i-1})
//            and sigma^2 = beta' (large) or beta-tilde' (small);
//   ddim     Song et al. 2021 with eta in [0, 1] (eta = 1 is ddpm-small);
//   dpm++2m  DPM-Solver++(2M), multistep second order in data prediction
//            (Lu et al. 2022), for 10-25 steps;
//   ode      the probability-flow ODE, dx~/dsigma~ = eps with x~ = x/sqrt(ab)
//            and sigma~ = sqrt((1 - ab)/ab), by Heun's method (Karras et al.).
//
// Every step forms x0_hat = (x - sqrt(1 - ab) eps) / sqrt(ab), optionally
// clipped or dynamically thresholded (off by default: unbounded data). The
// last step lands on alpha_bar = 1. Noise of sample i at step s comes from
// (seed, i, s), so a sample does not depend on the batch it is drawn in.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "microdiffusion/arena.h"
#include "microdiffusion/model.h"
#include "microdiffusion/schedule.h"

namespace md {

enum class SamplerKind : uint32_t { kDdpm = 0, kDdim = 1, kDpmSolver2M = 2, kOdeHeun = 3 };

enum class Spacing : uint32_t {
  kLinspace = 0,  // round(linspace(0, T-1, K))
  kLeading = 1,   // (0, 1, ..., K-1) * (T / K)
  kTrailing = 2,  // round(T - T/K * (0, 1, ..., K-1)) - 1
  kLogSnr = 3,    // nearest to uniform in log-SNR: the spacing DPM-Solver is derived for
};

struct SamplerConfig {
  SamplerKind kind = SamplerKind::kDdpm;
  uint32_t steps = 0;                  // K; 0 means every timestep
  Spacing spacing = Spacing::kLinspace;
  const uint32_t* timesteps = nullptr;  // explicit steps (overrides steps/spacing); copied at init
  uint32_t n_timesteps = 0;
  float eta = 0.0f;                     // ddim only
  Variance variance = Variance::kFixedSmall;  // ddpm only
  Prediction prediction = Prediction::kEpsilon;  // what the model outputs (the weight file says)
  int32_t label = -1;                   // conditional models: the class to draw (-1: none)
  float guidance = 0.0f;                // classifier-free guidance w: y = y_c + w (y_c - y_uncond)
  float clip_x0 = 0.0f;                 // > 0: clamp x0_hat to [-clip_x0, clip_x0]
  float dynamic_threshold = 0.0f;       // in (0, 1): Imagen's percentile thresholding of x0_hat
};

const char* sampler_kind_name(SamplerKind k);
bool sampler_kind_from_name(const char* name, SamplerKind* out);
const char* spacing_name(Spacing s);
bool spacing_from_name(const char* name, Spacing* out);

// K timesteps in [0, T) by `spacing`, ascending and distinct, into out (T
// entries). kLogSnr needs the schedule's alpha_bar (T entries).
Status make_timesteps(uint32_t T, Spacing spacing, uint32_t steps, uint32_t* out, uint32_t* count,
                      const float* alpha_bar = nullptr);
// improved-diffusion's section spacing ("10,15,20"): T split into equal
// sections, counts[i] evenly strided steps taken from section i.
Status section_timesteps(uint32_t T, const uint32_t* counts, uint32_t n_sections, uint32_t* out, uint32_t* count);

struct SamplerPlan {
  Plan plan;
  size_t alpha_bar = 0, timesteps = 0, x = 0, eps = 0, x0 = 0, prev_x0 = 0, aux = 0, guide = 0, t = 0, labels = 0,
         noise = 0, raw = 0, var_v = 0, scratch = 0;
};

constexpr SamplerPlan sampler_plan(const ModelDesc& d, uint32_t batch) {
  SamplerPlan s;
  const size_t BD = static_cast<size_t>(batch) * d.D;
  s.alpha_bar = s.plan.take_array<float>(d.T);  // build_alpha_bar: the sampler needs no other table
  s.timesteps = s.plan.take_array<uint32_t>(d.T);
  s.x = s.plan.take_array<float>(BD);
  s.eps = s.plan.take_array<float>(BD);
  s.x0 = s.plan.take_array<float>(BD);
  s.prev_x0 = s.plan.take_array<float>(BD);  // dpm++2m history
  s.aux = s.plan.take_array<float>(BD);      // ode: the Euler predictor
  s.guide = s.plan.take_array<float>(d.n_classes ? BD : 0);  // the unconditional output for guidance
  s.t = s.plan.take_array<int32_t>(batch);
  s.labels = s.plan.take_array<int32_t>(batch);
  s.noise = s.plan.take_array<float>(d.D);   // one sample's noise, or |x0| for thresholding
  // Learned variance: the network's (B, 2D) output, and its v half.
  s.raw = s.plan.take_array<float>(d.learned_variance ? static_cast<size_t>(batch) * output_width(d) : 0);
  s.var_v = s.plan.take_array<float>(d.learned_variance ? BD : 0);
  s.scratch = s.plan.take_array<float>(forward_scratch_floats(d, batch));
  return s;
}

// Arena bytes a Sampler needs for `desc` at `batch` (any buffer alignment).
constexpr size_t sampling_arena_bytes(const ModelDesc& d, uint32_t batch) {
  return arena_bytes_for(sampler_plan(d, batch).plan);
}

// Called with x after initialisation and after every step: n rows of D,
// sample indices first..first+n-1, at diffusion time `t` (1-based: T for the
// initial x_T with every step, 0 for the final sample).
using StepObserver = void (*)(void* user, int32_t t, const float* x, uint32_t n, uint32_t first);

class Sampler {
 public:
  Status init(const Model& model, const ScheduleDesc& schedule, const SamplerConfig& config, uint32_t batch,
              Arena& arena);
  // Ancestral sampling (DDPM, eps prediction) over every timestep: the same
  // samples as the config init with only `variance` set. It names no other
  // sampler, so an application that calls only this init links none of the
  // others (ddim, dpm++2m, ode), nor the spacings, guidance, x0 clipping or
  // thresholding (-ffunction-sections -Wl,--gc-sections); the config init
  // links them all. Refuses a model whose `prediction` is not eps.
  Status init(const Model& model, const ScheduleDesc& schedule, Variance variance, uint32_t batch, Arena& arena);

  // Draw samples with indices [first, first + n) into out (n, D), `batch`
  // rows at a time.
  Status sample(uint64_t seed, uint32_t first, uint32_t n, float* out, StepObserver observer = nullptr,
                void* user = nullptr);
  // The same, starting from the caller's x at the first step's time instead
  // of N(0, I) noise (n rows of D in x_start): deterministic samplers (ddim
  // with eta 0, dpm++2m, ode) then depend on x_start alone; the others still
  // draw their step noise from (seed, index, timestep).
  Status sample_from(const float* x_start, uint64_t seed, uint32_t first, uint32_t n, float* out,
                     StepObserver observer = nullptr, void* user = nullptr);

  const float* alpha_bar() const { return alpha_bar_; }  // T entries (build_alpha_bar)
  uint32_t batch() const { return batch_; }
  uint32_t steps() const { return n_steps_; }
  const uint32_t* timesteps() const { return timesteps_; }
  // Model evaluations per sample.
  uint32_t evaluations() const;

 private:
  struct Step {  // one denoising step, from timestep t = ts[i] to ts[i - 1] (alpha_bar 1 after i = 0)
    uint64_t seed;
    uint32_t index0, rows, i, t;
    size_t count;  // rows * D
    double ab, ab_prev;
    double h_prev;    // dpm++2m: the previous step's h ...
    bool have_prev;   // ... once there is one
  };
  using StepFn = void (Sampler::*)(Step&);
  // The arena layout and alpha_bar (by `build`: build_alpha_bar or build_alpha_bar_plain).
  Status bind(const Model& model, const ScheduleDesc& schedule, uint32_t batch, Arena& arena,
              Status (*build)(const ScheduleDesc&, float*));
  void step_ddpm(Step& st);
  void step_ddpm_x0(Step& st);
  void step_ddim(Step& st);
  void step_dpm2m(Step& st);
  void step_ode(Step& st);
  void add_noise(const Step& st, float sigma, const double* learned = nullptr);
  void add_ddpm_noise(const Step& st, double beta);
  Status run(const float* x_start, uint64_t seed, uint32_t first, uint32_t n, float* out, StepObserver observer,
             void* user);
  void denoise(uint32_t rows, uint32_t t);  // eps and x0_hat for the current x at timestep t
  void predict_eps(const float* x, uint32_t rows, uint32_t t, float* eps);
  // The network at (x, t) into out (rows, D); with a learned variance its v half goes to var_v_.
  void forward(const float* x, uint32_t rows, float* out, float* v_out);

  Model model_;
  const float* alpha_bar_ = nullptr;
  SamplerConfig config_;
  StepFn step_ = nullptr;  // the configured sampler's step (set by init)
  uint32_t batch_ = 0;
  uint32_t n_steps_ = 0;
  uint32_t* timesteps_ = nullptr;
  float* x_ = nullptr;
  float* eps_ = nullptr;
  float* x0_ = nullptr;
  float* prev_x0_ = nullptr;
  float* aux_ = nullptr;
  float* guide_ = nullptr;
  int32_t* t_ = nullptr;
  int32_t* labels_ = nullptr;
  float* noise_ = nullptr;
  float* raw_ = nullptr;
  float* var_v_ = nullptr;
  float* scratch_ = nullptr;
};

}  // namespace md
