#include "microdiffusion/sample.h"

#include <math.h>

#include "microdiffusion/rng.h"

namespace md {

Status Sampler::init(const Model& model, const ScheduleDesc& schedule, Variance variance,
                     uint32_t batch, Arena& arena) {
  MD_RETURN_IF_ERROR(validate_model(model.desc));
  if (batch < 1 || batch > (1u << 20))
    return make_status(StatusCode::kInvalidArgument, "sampler batch must be in [1, 2^20]", batch, 1u << 20);
  if (schedule.T != model.desc.T)
    return make_status(StatusCode::kInvalidArgument, "schedule T differs from model T", schedule.T, model.desc.T);
  if (variance != Variance::kFixedSmall && variance != Variance::kFixedLarge)
    return make_status(StatusCode::kInvalidArgument, "unknown variance");
  const SamplerPlan sp = sampler_plan(model.desc, batch);
  uint8_t* base = nullptr;
  MD_RETURN_IF_ERROR(arena.reserve(sp.plan, &base));
  MD_RETURN_IF_ERROR(build_schedule(schedule, reinterpret_cast<float*>(base + sp.schedule), &schedule_));
  model_ = model;
  variance_ = variance;
  batch_ = batch;
  x_ = reinterpret_cast<float*>(base + sp.x);
  eps_ = reinterpret_cast<float*>(base + sp.eps);
  t_ = reinterpret_cast<int32_t*>(base + sp.t);
  noise_ = reinterpret_cast<float*>(base + sp.noise);
  scratch_ = reinterpret_cast<float*>(base + sp.scratch);
  return Status::Ok();
}

Status Sampler::sample(uint64_t seed, uint32_t first, uint32_t n, float* out, StepObserver observer,
                       void* user) {
  if (x_ == nullptr) return make_status(StatusCode::kInvalidArgument, "sampler used before init");
  if (out == nullptr && n > 0) return make_status(StatusCode::kInvalidArgument, "null output buffer");
  if (static_cast<uint64_t>(first) + n > 0xFFFFFFFFull)
    return make_status(StatusCode::kInvalidArgument, "sample indices exceed 2^32", first, n);
  const uint32_t D = model_.desc.D;
  const uint32_t T = schedule_.T;
  const float* sigma2 = variance_ == Variance::kFixedLarge ? schedule_.beta : schedule_.posterior_variance;
  for (uint32_t done = 0; done < n; done += batch_) {
    const uint32_t rows = n - done < batch_ ? n - done : batch_;
    const uint32_t index0 = first + done;
    for (uint32_t r = 0; r < rows; ++r)
      gaussian_fill(seed, RngStream::kSampleInit, index0 + r, 0, x_ + static_cast<size_t>(r) * D, D);
    if (observer) observer(user, static_cast<int32_t>(T), x_, rows, index0);
    for (uint32_t step = T; step-- > 0;) {
      for (uint32_t r = 0; r < rows; ++r) t_[r] = static_cast<int32_t>(step);
      model_forward(model_, x_, t_, rows, eps_, scratch_);
      const float a = schedule_.recip_sqrt_alpha[step];
      const float c = schedule_.eps_coef[step];
      const float sigma = step > 0 ? sqrtf(sigma2[step]) : 0.0f;
      for (uint32_t r = 0; r < rows; ++r) {
        float* x = x_ + static_cast<size_t>(r) * D;
        const float* e = eps_ + static_cast<size_t>(r) * D;
        if (step > 0) gaussian_fill(seed, RngStream::kSampleStep, index0 + r, step, noise_, D);
        for (uint32_t j = 0; j < D; ++j) {
          const float mean = a * (x[j] - c * e[j]);
          x[j] = step > 0 ? mean + sigma * noise_[j] : mean;
        }
      }
      if (observer) observer(user, static_cast<int32_t>(step), x_, rows, index0);
    }
    for (size_t j = 0; j < static_cast<size_t>(rows) * D; ++j) {
      if (!(x_[j] - x_[j] == 0.0f))
        return make_status(StatusCode::kNonFinite, "sampling produced NaN or Inf (sample index)",
                           index0 + j / D);
      out[static_cast<size_t>(done) * D + j] = x_[j];
    }
  }
  return Status::Ok();
}

}  // namespace md
