// Noise schedules and every table the forward process, the posterior and the
// sampler need. Index k = 0..T-1 stands for diffusion step t = k + 1, which is
// also the integer the denoiser receives.
//
//   alpha_t = 1 - beta_t,  alpha_bar_t = prod_{s<=t} alpha_s
//   q(x_t | x_0)          = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)
//   q(x_{t-1} | x_t, x_0) = N(coef1_t x_0 + coef2_t x_t, beta_tilde_t I)
//     coef1 = beta_t sqrt(alpha_bar_{t-1}) / (1 - alpha_bar_t)
//     coef2 = (1 - alpha_bar_{t-1}) sqrt(alpha_t) / (1 - alpha_bar_t)
//     beta_tilde = beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)
// Tables are computed once in double and stored as float.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "microdiffusion/arena.h"
#include "microdiffusion/status.h"

namespace md {

enum class ScheduleKind : uint32_t {
  kLinear = 0,  // beta linear from beta_start to beta_end (Ho et al.)
  kCosine = 1,  // alpha_bar = cos^2(((t/T + s)/(1 + s)) pi/2), beta capped (Nichol & Dhariwal)
  kScaledLinear = 2,  // sqrt(beta) linear from sqrt(beta_start) to sqrt(beta_end) (Stable Diffusion)
  kSigmoid = 3,       // beta_start + (beta_end - beta_start) sigmoid(linspace(-6, 6, T)) (the swiss-roll tutorial)
  kCustom = 4,        // beta_1..beta_T given as a list (ScheduleDesc::betas; stored in the weight file)
};
constexpr uint32_t kScheduleKindCount = 5;

struct ScheduleDesc {
  ScheduleKind kind = ScheduleKind::kLinear;
  uint32_t T = 1000;
  float beta_start = 1e-4f;
  float beta_end = 0.02f;
  float cosine_s = 0.008f;
  float max_beta = 0.999f;
  // 1: rescale sqrt(alpha_bar) linearly so that alpha_bar_T = 0 exactly while
  // alpha_bar_1 is kept (Lin et al. 2024, "Common diffusion noise schedules and
  // sample steps are flawed", Algorithm 1): the prior N(0, I) is then exactly
  // q(x_T | x_0). beta_T becomes 1, so the network must predict v or x0 (an
  // eps prediction carries no information about x_0 at T), and the ODE sampler,
  // whose time variable is infinite at T, is not available.
  uint32_t zero_terminal_snr = 0;
  // kCustom only: T betas, each in (0, 1), owned by the caller (a weight file
  // points it into its own bytes). Read while building the schedule's tables;
  // it must outlive whatever holds this description.
  const float* betas = nullptr;
};
// The schedule a list of betas defines (beta[k] for step t = k + 1).
constexpr ScheduleDesc custom_schedule(const float* betas, uint32_t T) {
  ScheduleDesc d;
  d.kind = ScheduleKind::kCustom;
  d.T = T;
  d.betas = betas;
  return d;
}
// Floats of beta list a weight file holds for this schedule (T for kCustom, else 0).
constexpr uint32_t stored_beta_count(const ScheduleDesc& d) { return d.kind == ScheduleKind::kCustom ? d.T : 0; }
// Same schedule: same kind, T, parameters and (kCustom) the same beta values.
bool same_schedule(const ScheduleDesc& a, const ScheduleDesc& b);
// Weight files store zero_terminal_snr as this bit of the schedule-kind field,
// so readers that predate it refuse such files as an unknown schedule kind.
constexpr uint32_t kScheduleZeroTerminalSnrBit = 0x100;

constexpr uint32_t kMaxTimesteps = 100000;

// Ho et al.'s linear schedule (beta from 1e-4 to 0.02 at T = 1000), with both
// ends scaled by 1000/T as improved-diffusion does, so alpha_bar_T stays near
// 4e-5 for any T (beta_end capped at 0.999 for very small T).
constexpr ScheduleDesc linear_schedule(uint32_t T) {
  ScheduleDesc d;
  d.kind = ScheduleKind::kLinear;
  d.T = T;
  const double scale = T > 0 ? 1000.0 / T : 1.0;
  const double end = 0.02 * scale;
  d.beta_start = static_cast<float>(1e-4 * scale < 0.5 ? 1e-4 * scale : 0.5);
  d.beta_end = static_cast<float>(end < 0.999 ? end : 0.999);
  return d;
}

// Nichol & Dhariwal's cosine schedule: s = 0.008, beta capped at 0.999.
constexpr ScheduleDesc cosine_schedule(uint32_t T) {
  ScheduleDesc d;
  d.kind = ScheduleKind::kCosine;
  d.T = T;
  return d;
}

// Variance of the reverse step p(x_{t-1} | x_t).
enum class Variance : uint32_t {
  kFixedSmall = 0,  // sigma^2 = beta_tilde (posterior variance)
  kFixedLarge = 1,  // sigma^2 = beta
  // Nichol & Dhariwal's learned range: the network also outputs v in about
  // [-1, 1], and log sigma^2 = f log beta + (1 - f) log beta_tilde, f = (v + 1) / 2.
  kLearnedRange = 2,
};
constexpr uint32_t kVarianceCount = 3;

// log sigma^2 of the learned range between log beta (max) and log beta_tilde (min).
inline double learned_log_variance(double v, double log_beta, double log_beta_tilde) {
  const double f = 0.5 * (v + 1.0);
  return f * log_beta + (1.0 - f) * log_beta_tilde;
}

// What the network predicts. With a = sqrt(alpha_bar_t), s = sqrt(1 - alpha_bar_t)
// and x_t = a x_0 + s eps:
//   epsilon: y = eps             x_0 = (x_t - s y) / a
//   x0:      y = x_0             eps = (x_t - a y) / s
//   v:       y = a eps - s x_0   x_0 = a x_t - s y,  eps = s x_t + a y   (Salimans & Ho 2022)
enum class Prediction : uint32_t { kEpsilon = 0, kX0 = 1, kV = 2 };
constexpr uint32_t kPredictionCount = 3;
const char* prediction_name(Prediction p);
bool prediction_from_name(const char* name, Prediction* out);

// The one place the parameterisations convert: eps and x0 from the output y.
inline void prediction_to_eps_x0(Prediction p, float y, float x_t, float a, float s, float* eps, float* x0) {
  switch (p) {
    case Prediction::kX0: *x0 = y; *eps = (x_t - a * y) / s; return;
    case Prediction::kV: *x0 = a * x_t - s * y; *eps = s * x_t + a * y; return;
    default: *eps = y; *x0 = (x_t - s * y) / a; return;
  }
}
// The training target for the parameterisation, given x_0 and eps.
inline float prediction_target(Prediction p, float x0, float eps, float a, float s) {
  return p == Prediction::kX0 ? x0 : p == Prediction::kV ? a * eps - s * x0 : eps;
}

// Views into float tables of length T (owned by the arena).
struct Schedule {
  uint32_t T = 0;
  float* beta = nullptr;
  float* alpha = nullptr;
  float* alpha_bar = nullptr;
  float* alpha_bar_prev = nullptr;           // alpha_bar_{t-1}, 1 at k = 0
  float* sqrt_alpha_bar = nullptr;
  float* sqrt_one_minus_alpha_bar = nullptr;
  float* sqrt_recip_alpha_bar = nullptr;      // x_0 = sqrt_recip_ab x_t - sqrt_recipm1_ab eps
  float* sqrt_recipm1_alpha_bar = nullptr;
  float* posterior_variance = nullptr;        // beta_tilde
  float* posterior_log_variance_clipped = nullptr;  // log beta_tilde, k = 0 uses k = 1
  float* posterior_mean_coef1 = nullptr;      // multiplies x_0
  float* posterior_mean_coef2 = nullptr;      // multiplies x_t
  float* recip_sqrt_alpha = nullptr;          // 1 / sqrt(alpha_t)
  float* eps_coef = nullptr;                  // beta_t / sqrt(1 - alpha_bar_t)
};

constexpr size_t kScheduleTables = 14;

// Plan the schedule's tables into a Plan (used by the sampler and trainer plans).
constexpr size_t plan_schedule(Plan& plan, uint32_t T) {
  return plan.take_array<float>(static_cast<size_t>(T) * kScheduleTables);
}

Status validate_schedule(const ScheduleDesc& desc);
bool schedule_kind_from_name(const char* name, ScheduleKind* out);

// alpha_bar at the last step; far from 0 means the prior N(0, I) is far from
// q(x_T | x_0) and samples start from the wrong distribution.
double terminal_alpha_bar(const ScheduleDesc& desc);
constexpr double kTerminalAlphaBarWarning = 0.01;

// Fill the tables in `storage` (kScheduleTables * T floats) and point `out` at them.
Status build_schedule(const ScheduleDesc& desc, float* storage, Schedule* out);

// alpha_bar alone (T floats, the same values as build_schedule's table): all
// a Sampler needs, so the sampling arena holds T floats of schedule, not 14 T.
Status build_alpha_bar(const ScheduleDesc& desc, float* alpha_bar);
// The same for schedules without zero_terminal_snr (refused), leaving the
// rescale's code out of images that call only this (the DDPM-only
// Sampler::init: eps prediction cannot sample a zero-terminal-SNR schedule).
Status build_alpha_bar_plain(const ScheduleDesc& desc, float* alpha_bar);

// beta_k in double, the single source the tables derive from (O(k) with
// zero_terminal_snr, which needs the products up to k; build_schedule is O(T)).
double schedule_beta(const ScheduleDesc& desc, uint32_t k);

const char* schedule_kind_name(ScheduleKind kind);

}  // namespace md
