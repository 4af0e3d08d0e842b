// The variational bound on the negative log-likelihood (Ho et al. 2020, eq. 5):
//
//   -log p(x_0) <= L_T + sum_{t=2..T} L_{t-1} + L_0
//   L_T     = KL(q(x_T | x_0) || N(0, I))
//   L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)),  x_t ~ q(x_t | x_0)
//   L_0     = -log p(x_0 | x_1)
//
// The KL terms between Gaussians are in closed form; each L_{t-1} uses one
// x_t drawn from (seed, point index, t), so the estimate is a Monte Carlo
// average over those draws. L_0 is a Gaussian density for continuous data or
// the discretised Gaussian of improved-diffusion for 8-bit data in [-1, 1].
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "microdiffusion/arena.h"
#include "microdiffusion/model.h"
#include "microdiffusion/schedule.h"

namespace md {

enum class Decoder : uint32_t { kGaussian = 0, kDiscretized8Bit = 1 };

struct BoundPlan {
  Plan plan;
  size_t schedule = 0, x0 = 0, xt = 0, eps = 0, raw = 0, t = 0, scratch = 0;
};
constexpr BoundPlan bound_plan(const ModelDesc& d, uint32_t batch) {
  BoundPlan b;
  const size_t BD = static_cast<size_t>(batch) * d.D;
  b.schedule = plan_schedule(b.plan, d.T);
  b.x0 = b.plan.take_array<float>(BD);
  b.xt = b.plan.take_array<float>(BD);
  b.eps = b.plan.take_array<float>(BD);
  b.raw = b.plan.take_array<float>(static_cast<size_t>(batch) * output_width(d));  // the network's output
  b.t = b.plan.take_array<int32_t>(batch);
  b.scratch = b.plan.take_array<float>(forward_scratch_floats(d, batch));
  return b;
}
constexpr size_t bound_arena_bytes(const ModelDesc& d, uint32_t batch) { return arena_bytes_for(bound_plan(d, batch).plan); }

// Per point, in nats (summed over the D dimensions).
struct BoundTerms {
  double prior = 0;      // L_T
  double diffusion = 0;  // sum of L_{t-1}, t = 2..T
  double decoder = 0;    // L_0
  double total() const { return prior + diffusion + decoder; }
};

class BoundEvaluator {
 public:
  // `variance` is the reverse process's: small (beta tilde, with t = 1 using
  // t = 2's, as improved-diffusion clips it) or large (beta, t = 1 using beta tilde_2).
  Status init(const Model& model, const ScheduleDesc& schedule, Variance variance, Decoder decoder, uint32_t batch,
              Arena& arena, Prediction prediction = Prediction::kEpsilon);
  // Bounds for points x0 (n, D), indices [first, first + n), into terms[n].
  Status evaluate(const float* x0, uint32_t n, uint64_t seed, uint32_t first, BoundTerms* terms);

 private:
  double log_variance(uint32_t k, float v) const;  // log sigma_t^2 of p(x_{t-1} | x_t), k = t - 1; v: a learned variance output
  Model model_;
  Schedule schedule_;
  Variance variance_ = Variance::kFixedSmall;
  Decoder decoder_ = Decoder::kGaussian;
  Prediction prediction_ = Prediction::kEpsilon;
  uint32_t batch_ = 0;
  float *x0_ = nullptr, *xt_ = nullptr, *eps_ = nullptr, *raw_ = nullptr, *scratch_ = nullptr;
  int32_t* t_ = nullptr;
};

// Squared maximum mean discrepancy with a Gaussian kernel
// k(a, b) = exp(-|a - b|^2 / (2 h^2)), the unbiased estimator.
double mmd_rbf(const float* X, size_t n, const float* Y, size_t m, uint32_t D, double bandwidth);

}  // namespace md
