#include "microdiffusion/schedule.h"

#include "microdiffusion/rng.h"
#include "scalar_math.h"

namespace md {
namespace {

// cos(q pi/2) as the generator's cos(2 pi u) at u = q/4 (scaling by 1/4 is
// exact): one double sin/cos in the runtime, not two.
double cosine_alpha_bar(double t_over_T, double s) {
  double sine, c;
  portable_sincos_2pi((t_over_T + s) / (1.0 + s) * 0.25, &sine, &c);
  return c * c;
}
}  // namespace

const char* schedule_kind_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::kLinear: return "linear";
    case ScheduleKind::kCosine: return "cosine";
    case ScheduleKind::kScaledLinear: return "scaled-linear";
    case ScheduleKind::kSigmoid: return "sigmoid";
    case ScheduleKind::kCustom: return "custom";
  }
  return "unknown";
}

bool schedule_kind_from_name(const char* name, ScheduleKind* out) {
  for (uint32_t i = 0; i < kScheduleKindCount; ++i) {
    const char* n = schedule_kind_name(static_cast<ScheduleKind>(i));
    size_t k = 0;
    while (n[k] && n[k] == name[k]) ++k;
    if (n[k] == 0 && name[k] == 0) return *out = static_cast<ScheduleKind>(i), true;
  }
  return false;
}

double terminal_alpha_bar(const ScheduleDesc& desc) {
  if (desc.zero_terminal_snr) return 0.0;
  double ab = 1.0;
  for (uint32_t k = 0; k < desc.T; ++k) ab *= 1.0 - schedule_beta(desc, k);
  return ab;
}

const char* prediction_name(Prediction p) {
  switch (p) {
    case Prediction::kEpsilon: return "eps";
    case Prediction::kX0: return "x0";
    case Prediction::kV: return "v";
  }
  return "unknown";
}

bool prediction_from_name(const char* name, Prediction* out) {
  for (uint32_t i = 0; i < kPredictionCount; ++i) {
    const char* n = prediction_name(static_cast<Prediction>(i));
    size_t k = 0;
    while (n[k] && n[k] == name[k]) ++k;
    if (n[k] == 0 && name[k] == 0) return *out = static_cast<Prediction>(i), true;
  }
  return false;
}

bool same_schedule(const ScheduleDesc& a, const ScheduleDesc& b) {
  if (a.kind != b.kind || a.T != b.T || a.zero_terminal_snr != b.zero_terminal_snr) return false;
  if (a.kind == ScheduleKind::kCustom) {
    if (a.betas == nullptr || b.betas == nullptr) return a.betas == b.betas;
    for (uint32_t k = 0; k < a.T; ++k)
      if (a.betas[k] != b.betas[k]) return false;
    return true;
  }
  return a.beta_start == b.beta_start && a.beta_end == b.beta_end && a.cosine_s == b.cosine_s &&
         a.max_beta == b.max_beta;
}

Status validate_schedule(const ScheduleDesc& d) {
  if (d.T < 1 || d.T > kMaxTimesteps)
    return make_status(StatusCode::kInvalidArgument, "T must be in [1, 100000]", d.T, kMaxTimesteps);
  if (d.zero_terminal_snr > 1) return make_status(StatusCode::kInvalidArgument, "zero_terminal_snr must be 0 or 1");
  if (d.zero_terminal_snr && d.T < 2)
    return make_status(StatusCode::kInvalidArgument, "zero terminal SNR needs T >= 2");
  switch (d.kind) {
    case ScheduleKind::kLinear:
    case ScheduleKind::kScaledLinear:
    case ScheduleKind::kSigmoid:
      if (!(d.beta_start > 0.0f && d.beta_end >= d.beta_start && d.beta_end < 1.0f))
        return make_status(StatusCode::kInvalidArgument,
                           "linear, scaled-linear and sigmoid schedules need 0 < beta_start <= beta_end < 1");
      break;
    case ScheduleKind::kCosine:
      if (!(d.cosine_s >= 0.0f && d.cosine_s < 1.0f && d.max_beta > 0.0f && d.max_beta < 1.0f))
        return make_status(StatusCode::kInvalidArgument,
                           "cosine schedule needs 0 <= s < 1 and 0 < max_beta < 1");
      break;
    case ScheduleKind::kCustom:
      if (d.betas == nullptr) return make_status(StatusCode::kInvalidArgument, "custom schedule without its list of betas");
      for (uint32_t k = 0; k < d.T; ++k)
        if (!(d.betas[k] > 0.0f && d.betas[k] < 1.0f))  // also refuses NaN
          return make_status(StatusCode::kInvalidArgument, "custom schedule: every beta must be in (0, 1) (step t)", k + 1);
      break;
    default:
      return make_status(StatusCode::kInvalidArgument, "unknown schedule kind",
                         static_cast<uint32_t>(d.kind));
  }
  return Status::Ok();
}

namespace {
double base_beta(const ScheduleDesc& d, uint32_t k) {
  if (d.kind == ScheduleKind::kCustom) return d.betas[k];
  const double T = d.T;
  if (d.kind == ScheduleKind::kCosine) {
    const double s = d.cosine_s;
    const double beta = 1.0 - cosine_alpha_bar((k + 1) / T, s) / cosine_alpha_bar(k / T, s);
    return beta < d.max_beta ? beta : static_cast<double>(d.max_beta);
  }
  if (d.T == 1) return d.beta_start;
  const double start = d.beta_start, end = d.beta_end, u = k / (T - 1.0);  // numpy.linspace in float64
  if (d.kind == ScheduleKind::kScaledLinear) {
    const double r = math::sqrt_d(start) + (math::sqrt_d(end) - math::sqrt_d(start)) * u;
    return r * r;
  }
  if (d.kind == ScheduleKind::kSigmoid) return start + (end - start) / (1.0 + math::exp_d(-(-6.0 + 12.0 * u)));
  return start + (end - start) * u;
}

// Lin et al.'s rescale: sqrt(ab)' = (sqrt(ab) - sqrt(ab_T)) sqrt(ab_1) / (sqrt(ab_1) - sqrt(ab_T)).
struct ZeroSnrRescale {
  double first = 1.0, last = 0.0;  // sqrt(alpha_bar) at k = 0 and k = T - 1 of the base schedule
  ZeroSnrRescale() = default;
  explicit ZeroSnrRescale(const ScheduleDesc& d) {
    double ab = 1.0;
    for (uint32_t k = 0; k < d.T; ++k) {
      ab *= 1.0 - base_beta(d, k);
      if (k == 0) first = math::sqrt_d(ab);
    }
    last = math::sqrt_d(ab);
  }
  double alpha_bar(double base_ab) const {
    const double r = (math::sqrt_d(base_ab) - last) * first / (first - last);
    return r > 0.0 ? r * r : 0.0;
  }
};
}  // namespace

double schedule_beta(const ScheduleDesc& d, uint32_t k) {
  if (!d.zero_terminal_snr) return base_beta(d, k);
  const ZeroSnrRescale z(d);
  double ab = 1.0, ab_prev = 1.0;
  for (uint32_t i = 0; i <= k; ++i) {
    ab_prev = ab;
    ab *= 1.0 - base_beta(d, i);
  }
  if (k == 0) return 1.0 - z.alpha_bar(ab);  // alpha_bar_1 is kept: beta_1 unchanged
  return 1.0 - z.alpha_bar(ab) / z.alpha_bar(ab_prev);
}

namespace {
// Walks the schedule k = 0, 1, ... in double: the one place beta_k and
// alpha_bar_k are formed, for build_schedule and build_alpha_bar alike.
// kZeroSnr = false leaves the zero-terminal-SNR rescale out of the code (the
// caller has refused such schedules), for build_alpha_bar_plain.
template <bool kZeroSnr>
struct ScheduleWalk {
  const ScheduleDesc& d;
  ZeroSnrRescale zsnr;
  double alpha_bar = 1.0;
  double base_ab = 1.0;  // the base schedule's product, for the zero-SNR rescale
  explicit ScheduleWalk(const ScheduleDesc& desc)
      : d(desc), zsnr(kZeroSnr && desc.zero_terminal_snr ? ZeroSnrRescale(desc) : ZeroSnrRescale()) {}
  // Steps to k (called for k = 0, 1, ... in order); returns beta_k, leaves alpha_bar_k in alpha_bar.
  double next(uint32_t k) {
    const double ab_prev = alpha_bar;
    if (kZeroSnr && d.zero_terminal_snr) {
      base_ab *= 1.0 - base_beta(d, k);
      alpha_bar = k + 1 == d.T ? 0.0 : zsnr.alpha_bar(base_ab);
      return k + 1 == d.T ? 1.0 : 1.0 - alpha_bar / ab_prev;
    }
    const double beta = base_beta(d, k);
    alpha_bar *= 1.0 - beta;
    return beta;
  }
  // alpha_bar must stay below 1 and alpha above 0 (but at a zero-SNR end, where both are 0 by design).
  bool valid(uint32_t k, double beta) const {
    const bool terminal_zero = kZeroSnr && d.zero_terminal_snr && k + 1 == d.T;
    return 1.0 - alpha_bar > 0.0 && (1.0 - beta > 0.0 || terminal_zero);
  }
};
Status bad_schedule(uint32_t k) {
  return make_status(StatusCode::kInvalidArgument, "schedule makes alpha_bar reach 1 or alpha 0", k);
}

template <bool kZeroSnr>
Status fill_alpha_bar(const ScheduleDesc& d, float* alpha_bar) {
  MD_RETURN_IF_ERROR(validate_schedule(d));
  ScheduleWalk<kZeroSnr> walk(d);
  for (uint32_t k = 0; k < d.T; ++k) {
    const double beta = walk.next(k);
    alpha_bar[k] = static_cast<float>(walk.alpha_bar);
    if (!walk.valid(k, beta)) return bad_schedule(k);
  }
  return Status::Ok();
}
}  // namespace

Status build_alpha_bar(const ScheduleDesc& d, float* alpha_bar) { return fill_alpha_bar<true>(d, alpha_bar); }

Status build_alpha_bar_plain(const ScheduleDesc& d, float* alpha_bar) {
  if (d.zero_terminal_snr)
    return make_status(StatusCode::kInvalidArgument, "build_alpha_bar_plain: zero terminal SNR schedules need build_alpha_bar");
  return fill_alpha_bar<false>(d, alpha_bar);
}

Status build_schedule(const ScheduleDesc& d, float* storage, Schedule* out) {
  MD_RETURN_IF_ERROR(validate_schedule(d));
  const size_t T = d.T;
  Schedule s;
  s.T = d.T;
  float** tables[kScheduleTables] = {
      &s.beta, &s.alpha, &s.alpha_bar, &s.alpha_bar_prev, &s.sqrt_alpha_bar,
      &s.sqrt_one_minus_alpha_bar, &s.sqrt_recip_alpha_bar, &s.sqrt_recipm1_alpha_bar,
      &s.posterior_variance, &s.posterior_log_variance_clipped, &s.posterior_mean_coef1,
      &s.posterior_mean_coef2, &s.recip_sqrt_alpha, &s.eps_coef};
  for (size_t i = 0; i < kScheduleTables; ++i) *tables[i] = storage + i * T;

  ScheduleWalk<true> walk(d);
  double first_log_var = 0.0;  // log beta_tilde at k = 1, used for k = 0
  for (size_t k = 0; k < T; ++k) {
    const double ab_prev = walk.alpha_bar;
    const double beta = walk.next(static_cast<uint32_t>(k));
    const double alpha_bar = walk.alpha_bar;
    const double alpha = 1.0 - beta;
    const double one_minus_ab = 1.0 - alpha_bar;
    const double post_var = beta * (1.0 - ab_prev) / one_minus_ab;
    s.beta[k] = static_cast<float>(beta);
    s.alpha[k] = static_cast<float>(alpha);
    s.alpha_bar[k] = static_cast<float>(alpha_bar);
    s.alpha_bar_prev[k] = static_cast<float>(ab_prev);
    s.sqrt_alpha_bar[k] = static_cast<float>(math::sqrt_d(alpha_bar));
    s.sqrt_one_minus_alpha_bar[k] = static_cast<float>(math::sqrt_d(one_minus_ab));
    s.sqrt_recip_alpha_bar[k] = static_cast<float>(math::sqrt_d(1.0 / alpha_bar));
    s.sqrt_recipm1_alpha_bar[k] = static_cast<float>(math::sqrt_d(1.0 / alpha_bar - 1.0));
    s.posterior_variance[k] = static_cast<float>(post_var);
    s.posterior_mean_coef1[k] = static_cast<float>(beta * math::sqrt_d(ab_prev) / one_minus_ab);
    s.posterior_mean_coef2[k] = static_cast<float>((1.0 - ab_prev) * math::sqrt_d(alpha) / one_minus_ab);
    s.recip_sqrt_alpha[k] = static_cast<float>(1.0 / math::sqrt_d(alpha));
    s.eps_coef[k] = static_cast<float>(beta / math::sqrt_d(one_minus_ab));
    if (k == 1) first_log_var = math::log_d(post_var);
    s.posterior_log_variance_clipped[k] = static_cast<float>(k == 0 ? 0.0 : math::log_d(post_var));
    if (!walk.valid(static_cast<uint32_t>(k), beta)) return bad_schedule(static_cast<uint32_t>(k));
  }
  // improved-diffusion: the k = 0 variance is 0, so its log is clipped to k = 1's.
  s.posterior_log_variance_clipped[0] = static_cast<float>(T > 1 ? first_log_var : math::log_d(schedule_beta(d, 0)));
  *out = s;
  return Status::Ok();
}

}  // namespace md
