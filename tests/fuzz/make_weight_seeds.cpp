// Writes the small, valid .mdw files of tests/fuzz/corpus/weights/: one per
// layer kind, activation, schedule and prediction, each well under libFuzzer's default
// 4096-byte input limit. Usage: make_weight_seeds DIR
#include <cstdio>
#include <string>
#include <vector>

#include "microdiffusion/microdiffusion.h"

namespace {

struct alignas(64) Block {
  unsigned char b[64];
};

bool write_seed(const std::string& dir, const char* name, const md::ModelDesc& desc, const md::ScheduleDesc& sched,
                md::Variance variance, md::Prediction prediction = md::Prediction::kEpsilon) {
  const md::ParamLayout lay = md::param_layout(desc);
  std::vector<float> params(lay.total_floats, 0.0f);
  for (uint32_t i = 0; i < lay.n_tensors; ++i)
    for (uint32_t j = 0; j < lay.tensors[i].count(); ++j)
      params[lay.tensors[i].offset + j] = 0.05f * static_cast<float>((i * 7 + j * 3) % 11) - 0.25f;
  std::vector<Block> out(md::weights_file_bytes(desc, sched) / 64 + 1);
  md::WeightsMeta meta;
  meta.variance = variance;
  meta.prediction = prediction;
  meta.train_steps = 3;
  std::snprintf(meta.dataset, sizeof(meta.dataset), "%s", "moons");
  size_t n = 0;
  const md::Status s = md::write_weights(desc, sched, meta, params.data(), reinterpret_cast<unsigned char*>(out.data()), out.size() * 64, &n);
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", name, s.message);
    return false;
  }
  const std::string path = dir + "/" + name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(reinterpret_cast<unsigned char*>(out.data()), 1, n, f) != n || std::fclose(f) != 0) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    return false;
  }
  std::printf("%s: %zu bytes\n", path.c_str(), n);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_weight_seeds DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  using md::Activation;
  using md::LayerKind;
  bool ok = true;
  // The two presets, shrunk.
  ok &= write_seed(dir, "tutorial_T4_h4.mdw", md::preset_tutorial(2, 4, 4), md::linear_schedule(4),
                   md::Variance::kFixedSmall);
  ok &= write_seed(dir, "default_T5_h4_cosine.mdw", md::preset_default(2, 5, 4, 4, 1), md::cosine_schedule(5),
                   md::Variance::kFixedLarge);
  // Every other layer kind and activation, D = 3.
  md::ModelBuilder b(3, 3);
  b.embed(1, 2, 3.0f, 4)
      .linear(6)
      .time_add()
      .activation(Activation::kReLU)
      .residual(Activation::kSiLU)
      .activation(Activation::kGeluErf)
      .time_gate(4)
      .activation(Activation::kTanh)
      .residual(Activation::kIdentity)
      .linear(3);
  ok &= write_seed(dir, "mixed_D3_T3.mdw", b.d, md::linear_schedule(3), md::Variance::kFixedSmall);
  // The smallest model there is: D = 1, embed x, one linear layer, T = 1.
  md::ModelBuilder m(1, 1);
  m.embed(1, 0, 1.0f, 0).linear(1);
  ok &= write_seed(dir, "minimal_D1_T1.mdw", m.d, md::linear_schedule(1), md::Variance::kFixedSmall);
  // Class-conditional (label_add, 3 classes + the "no label" row), x0 prediction, scaled-linear schedule.
  md::ModelBuilder c(2, 4);
  c.embed(0, 2, 5.0f, 2).linear(4).label_add(3).activation(Activation::kSiLU).linear(2);
  md::ScheduleDesc scaled = md::linear_schedule(4);
  scaled.kind = md::ScheduleKind::kScaledLinear;
  ok &= write_seed(dir, "conditional_x0_scaled_linear.mdw", c.d, scaled, md::Variance::kFixedSmall,
                   md::Prediction::kX0);
  // v prediction, sigmoid schedule.
  md::ScheduleDesc sigmoid = md::linear_schedule(6);
  sigmoid.kind = md::ScheduleKind::kSigmoid;
  ok &= write_seed(dir, "tutorial_v_sigmoid.mdw", md::preset_tutorial(2, 6, 3), sigmoid, md::Variance::kFixedLarge,
                   md::Prediction::kV);
  // Custom schedule (format 1.1): the beta list follows the tensor table, rescaled to zero terminal SNR.
  static const float kBetas[5] = {0.01f, 0.2f, 0.05f, 0.4f, 0.3f};
  md::ScheduleDesc custom = md::custom_schedule(kBetas, 5);
  custom.zero_terminal_snr = 1;
  ok &= write_seed(dir, "tutorial_custom_betas_zsnr.mdw", md::preset_tutorial(2, 5, 3), custom,
                   md::Variance::kFixedSmall, md::Prediction::kV);
  return ok ? 0 : 1;
}
