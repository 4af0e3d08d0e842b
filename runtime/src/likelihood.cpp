#include "microdiffusion/likelihood.h"

#include <math.h>
#include <string.h>

#include "microdiffusion/rng.h"

namespace md {
namespace {
constexpr double kLog2Pi = 1.8378770664093454836;

// KL(N(m1, e^lv1) || N(m2, e^lv2)) for one dimension.
double normal_kl(double m1, double lv1, double m2, double lv2) {
  return 0.5 * (lv2 - lv1 + exp(lv1 - lv2) + (m1 - m2) * (m1 - m2) * exp(-lv2) - 1.0);
}
double normal_cdf(double x) { return 0.5 * erfc(-x / 1.4142135623730951); }

// log of the probability of x's 8-bit bin under N(mean, e^log_var) (x in [-1, 1]).
double discretized_log_likelihood(double x, double mean, double log_var) {
  const double inv_std = exp(-0.5 * log_var), c = x - mean;
  const double cdf_plus = normal_cdf(inv_std * (c + 1.0 / 255.0));
  const double cdf_min = normal_cdf(inv_std * (c - 1.0 / 255.0));
  auto safe_log = [](double v) { return log(v > 1e-12 ? v : 1e-12); };
  if (x < -0.999) return safe_log(cdf_plus);
  if (x > 0.999) return safe_log(1.0 - cdf_min);
  return safe_log(cdf_plus - cdf_min);
}
}  // namespace

Status BoundEvaluator::init(const Model& model, const ScheduleDesc& schedule, Variance variance, Decoder decoder,
                            uint32_t batch, Arena& arena, Prediction prediction) {
  MD_RETURN_IF_ERROR(validate_model(model.desc));
  if (schedule.T != model.desc.T)
    return make_status(StatusCode::kInvalidArgument, "schedule T differs from model T", schedule.T, model.desc.T);
  if (model.desc.T < 2) return make_status(StatusCode::kInvalidArgument, "the bound needs T >= 2");
  if (schedule.zero_terminal_snr && prediction == Prediction::kEpsilon)
    return make_status(StatusCode::kInvalidArgument, "zero terminal SNR needs a v or x0 prediction, not eps");
  if (batch < 1 || batch > (1u << 20)) return make_status(StatusCode::kInvalidArgument, "batch must be in [1, 2^20]");
  if (static_cast<uint32_t>(variance) >= kVarianceCount)
    return make_status(StatusCode::kInvalidArgument, "unknown variance");
  if (variance == Variance::kLearnedRange && !model.desc.learned_variance)
    return make_status(StatusCode::kInvalidArgument, "a learned variance needs a model that outputs one");
  if (static_cast<uint32_t>(prediction) >= kPredictionCount)
    return make_status(StatusCode::kInvalidArgument, "unknown prediction type");
  if (decoder != Decoder::kGaussian && decoder != Decoder::kDiscretized8Bit)
    return make_status(StatusCode::kInvalidArgument, "unknown decoder");
  const BoundPlan bp = bound_plan(model.desc, batch);
  uint8_t* base = nullptr;
  MD_RETURN_IF_ERROR(arena.reserve(bp.plan, &base));
  MD_RETURN_IF_ERROR(build_schedule(schedule, reinterpret_cast<float*>(base + bp.schedule), &schedule_));
  model_ = model;
  variance_ = variance;
  decoder_ = decoder;
  prediction_ = prediction;
  batch_ = batch;
  x0_ = reinterpret_cast<float*>(base + bp.x0);
  xt_ = reinterpret_cast<float*>(base + bp.xt);
  eps_ = reinterpret_cast<float*>(base + bp.eps);
  raw_ = reinterpret_cast<float*>(base + bp.raw);
  t_ = reinterpret_cast<int32_t*>(base + bp.t);
  scratch_ = reinterpret_cast<float*>(base + bp.scratch);
  return Status::Ok();
}

double BoundEvaluator::log_variance(uint32_t k, float v) const {
  if (variance_ == Variance::kLearnedRange)
    return learned_log_variance(v, log(static_cast<double>(schedule_.beta[k])),
                                schedule_.posterior_log_variance_clipped[k]);
  if (variance_ == Variance::kFixedSmall) return schedule_.posterior_log_variance_clipped[k];
  return log(k == 0 ? static_cast<double>(schedule_.posterior_variance[1]) : static_cast<double>(schedule_.beta[k]));
}

Status BoundEvaluator::evaluate(const float* x0, uint32_t n, uint64_t seed, uint32_t first, BoundTerms* terms) {
  if (x0_ == nullptr) return make_status(StatusCode::kInvalidArgument, "evaluator used before init");
  const uint32_t D = model_.desc.D, T = schedule_.T;
  for (uint32_t done = 0; done < n; done += batch_) {
    const uint32_t rows = n - done < batch_ ? n - done : batch_;
    const size_t count = static_cast<size_t>(rows) * D;
    memcpy(x0_, x0 + static_cast<size_t>(done) * D, count * sizeof(float));
    for (size_t i = 0; i < count; ++i)
      if (!(x0_[i] - x0_[i] == 0.0f))
        return make_status(StatusCode::kNonFinite, "data contains NaN or Inf (point index)", done + i / D);
    BoundTerms* out = terms + done;
    // L_T: q(x_T | x_0) = N(sqrt(ab_T) x_0, 1 - ab_T) against N(0, 1).
    const double abT = schedule_.alpha_bar[T - 1];
    for (uint32_t r = 0; r < rows; ++r) {
      out[r] = BoundTerms{};
      for (uint32_t j = 0; j < D; ++j)
        out[r].prior += normal_kl(sqrt(abT) * x0_[r * D + j], log(1.0 - abT), 0.0, 0.0);
    }
    for (uint32_t k = 0; k < T; ++k) {
      for (uint32_t r = 0; r < rows; ++r) {
        t_[r] = static_cast<int32_t>(k);
        gaussian_fill(seed, RngStream::kBound, first + done + r, k, eps_ + static_cast<size_t>(r) * D, D);
      }
      const float sa = schedule_.sqrt_alpha_bar[k], s1 = schedule_.sqrt_one_minus_alpha_bar[k];
      for (size_t i = 0; i < count; ++i) xt_[i] = sa * x0_[i] + s1 * eps_[i];
      // raw_ holds the model output: (rows, D), or (rows, 2D) with the v half.
      model_forward(model_, xt_, t_, rows, raw_, scratch_);
      const uint32_t W = output_width(model_.desc);
      // p's mean is the posterior mean at the model's x0_hat.
      const double c1 = schedule_.posterior_mean_coef1[k], c2 = schedule_.posterior_mean_coef2[k];
      for (uint32_t r = 0; r < rows; ++r) {
        double term = 0.0;
        for (uint32_t j = 0; j < D; ++j) {
          const size_t i = static_cast<size_t>(r) * D + j;
          const float* y = raw_ + static_cast<size_t>(r) * W;
          const double lv_p = log_variance(k, model_.desc.learned_variance ? y[D + j] : 0.0f);
          float eps_hat, x0_f;
          prediction_to_eps_x0(prediction_, y[j], xt_[i], sa, s1, &eps_hat, &x0_f);
          const double x0_hat = x0_f;
          const double mean_p = c1 * x0_hat + c2 * xt_[i];
          if (k == 0) {  // L_0: the decoder p(x_0 | x_1)
            term -= decoder_ == Decoder::kGaussian
                        ? -0.5 * (kLog2Pi + lv_p + (x0_[i] - mean_p) * (x0_[i] - mean_p) * exp(-lv_p))
                        : discretized_log_likelihood(x0_[i], mean_p, lv_p);
          } else {
            const double mean_q = c1 * x0_[i] + c2 * xt_[i];
            term += normal_kl(mean_q, schedule_.posterior_log_variance_clipped[k], mean_p, lv_p);
          }
        }
        if (k == 0) out[r].decoder = term;
        else out[r].diffusion += term;
      }
    }
  }
  return Status::Ok();
}

double mmd_rbf(const float* X, size_t n, const float* Y, size_t m, uint32_t D, double bandwidth) {
  if (n < 2 || m < 2 || !(bandwidth > 0)) return 0.0;
  const double g = 1.0 / (2.0 * bandwidth * bandwidth);
  auto k = [&](const float* a, const float* b) {
    double sq = 0;
    for (uint32_t j = 0; j < D; ++j) sq += (static_cast<double>(a[j]) - b[j]) * (static_cast<double>(a[j]) - b[j]);
    return exp(-g * sq);
  };
  double xx = 0, yy = 0, xy = 0;
  for (size_t i = 0; i < n; ++i)
    for (size_t j = i + 1; j < n; ++j) xx += k(X + i * D, X + j * D);
  for (size_t i = 0; i < m; ++i)
    for (size_t j = i + 1; j < m; ++j) yy += k(Y + i * D, Y + j * D);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < m; ++j) xy += k(X + i * D, Y + j * D);
  return 2 * xx / (n * (n - 1.0)) + 2 * yy / (m * (m - 1.0)) - 2 * xy / (static_cast<double>(n) * m);
}

}  // namespace md
