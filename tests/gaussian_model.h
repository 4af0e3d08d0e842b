// The closed-form optimal denoiser for Gaussian data, shared by the sampler,
// likelihood and parameterisation tests. For x_0 ~ N(0, s^2 I):
//   E[eps | x_t] = sqrt(1 - ab) / (ab s^2 + 1 - ab) x_t,  E[x_0 | x_t] = sqrt(ab) s^2 / (ab s^2 + 1 - ab) x_t.
// A time-gated model with identity weights and that factor as its gate
// computes it exactly, in whichever parameterisation is asked for.
#pragma once
#include <cmath>
#include <vector>

#include "microdiffusion/microdiffusion.h"

namespace md_test {

struct GaussianModel {
  md::ModelDesc desc;
  md::ScheduleDesc sched;
  std::vector<float> params;
  GaussianModel(uint32_t D, uint32_t T, double s, md::Prediction p = md::Prediction::kEpsilon)
      : sched(md::linear_schedule(T)) {
    md::ModelBuilder b(D, T);
    b.embed(1, 0, 1.0f, 0).time_gate(D).linear(D);
    desc = b.d;
    const md::ParamLayout lay = md::param_layout(desc);
    params.assign(lay.total_floats, 0.0f);
    for (uint32_t i = 0; i < lay.n_tensors; ++i) {
      const md::TensorDesc& t = lay.tensors[i];
      float* q = params.data() + t.offset;
      if (t.role == md::TensorRole::kWeight)
        for (uint32_t j = 0; j < D; ++j) q[j * D + j] = 1.0f;
      if (t.role != md::TensorRole::kTable) continue;
      double ab = 1.0;
      for (uint32_t k = 0; k < T; ++k) {
        ab *= 1.0 - md::schedule_beta(sched, k);
        const double v = ab * s * s + 1 - ab, c1 = std::sqrt(1 - ab) / v, c0 = std::sqrt(ab) * s * s / v;
        const double g = p == md::Prediction::kEpsilon ? c1
                         : p == md::Prediction::kX0    ? c0
                                                       : std::sqrt(ab) * c1 - std::sqrt(1 - ab) * c0;
        for (uint32_t j = 0; j < D; ++j) q[k * D + j] = static_cast<float>(g);
      }
    }
  }
  md::Model model() const { return md::bind_model(desc, params.data()); }
};

}  // namespace md_test
