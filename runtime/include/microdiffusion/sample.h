// Ancestral sampling (Ho et al. 2020, Algorithm 2):
//   x_T ~ N(0, I);  for t = T..1:
//     x_{t-1} = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_theta(x_t, t)) + sigma_t z
//   with z ~ N(0, I) for t > 1 and z = 0 on the last step.
// The noise of sample i is drawn from (seed, i, step), so a sample does not
// depend on the batch size or on which other samples are drawn with it.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "microdiffusion/arena.h"
#include "microdiffusion/model.h"
#include "microdiffusion/schedule.h"

namespace md {

struct SamplerPlan {
  Plan plan;
  size_t schedule = 0, x = 0, eps = 0, t = 0, noise = 0, scratch = 0;
};

constexpr SamplerPlan sampler_plan(const ModelDesc& d, uint32_t batch) {
  SamplerPlan s;
  s.schedule = plan_schedule(s.plan, d.T);
  s.x = s.plan.take_array<float>(static_cast<size_t>(batch) * d.D);
  s.eps = s.plan.take_array<float>(static_cast<size_t>(batch) * d.D);
  s.t = s.plan.take_array<int32_t>(batch);
  s.noise = s.plan.take_array<float>(d.D + 4);  // per-sample noise, rounded up to a Philox block
  s.scratch = s.plan.take_array<float>(forward_scratch_floats(d, batch));
  return s;
}

// Arena bytes a Sampler needs for `desc` at `batch` (any buffer alignment).
constexpr size_t sampling_arena_bytes(const ModelDesc& d, uint32_t batch) {
  return arena_bytes_for(sampler_plan(d, batch).plan);
}

// Called after every denoising step with the current x_{t} of the chunk
// (n rows of D, sample indices first..first+n-1); k is the step index just
// produced (T-1 .. 0 after the update, -1 ... see sample.cpp).
using StepObserver = void (*)(void* user, int32_t t_index, const float* x, uint32_t n, uint32_t first);

class Sampler {
 public:
  // Takes the schedule tables and buffers for `batch` rows from `arena`.
  Status init(const Model& model, const ScheduleDesc& schedule, Variance variance, uint32_t batch,
              Arena& arena);

  // Draw samples with indices [first, first + n) into out (n, D). Samples are
  // processed `batch` rows at a time. The observer (optional) sees x_T and
  // every x_{t-1}, with t_index = T for x_T and t-1 after each step.
  Status sample(uint64_t seed, uint32_t first, uint32_t n, float* out,
                StepObserver observer = nullptr, void* user = nullptr);

  const Schedule& schedule() const { return schedule_; }
  uint32_t batch() const { return batch_; }

 private:
  Model model_;
  Schedule schedule_;
  Variance variance_ = Variance::kFixedSmall;
  uint32_t batch_ = 0;
  float* x_ = nullptr;
  float* eps_ = nullptr;
  int32_t* t_ = nullptr;
  float* noise_ = nullptr;
  float* scratch_ = nullptr;
};

}  // namespace md
