// Every layer's forward against an independent double-precision
// implementation, and every gradient against central finite differences of
// that double implementation.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "microdiffusion/microdiffusion.h"

namespace {

using md::Activation;
using md::LayerKind;
using md::ModelDesc;

double act(Activation a, double x) {
  switch (a) {
    case Activation::kIdentity: return x;
    case Activation::kReLU: return x > 0 ? x : 0;
    case Activation::kSiLU: return x / (1 + std::exp(-x));
    case Activation::kGeluTanh:
      return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    case Activation::kGeluErf: return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
    case Activation::kSoftplus: return x > 20 ? x : std::log1p(std::exp(x));
    case Activation::kTanh: return std::tanh(x);
  }
  return x;
}

// Reference forward in double, straight from the layer definitions in model.h.
std::vector<double> forward_double(const ModelDesc& d, const std::vector<double>& p, const std::vector<double>& x,
                                   const std::vector<int32_t>& t, uint32_t B, const std::vector<int32_t>& labels) {
  const md::ParamLayout lay = md::param_layout(d);
  auto tensor = [&](uint32_t l, md::TensorRole r) {
    for (uint32_t i = 0; i < lay.n_tensors; ++i)
      if (lay.tensors[i].layer == l && lay.tensors[i].role == r) return &p[lay.tensors[i].offset];
    return static_cast<const double*>(nullptr);
  };
  std::vector<double> h = x;
  uint32_t width = d.D;
  for (uint32_t l = 0; l < d.n_layers; ++l) {
    const md::LayerDesc& L = d.layers[l];
    std::vector<double> y(static_cast<size_t>(B) * L.out);
    for (uint32_t b = 0; b < B; ++b) {
      const double* hb = &h[static_cast<size_t>(b) * width];
      double* yb = &y[static_cast<size_t>(b) * L.out];
      auto sinusoid = [](double* out, double v, uint32_t dim) {
        const uint32_t half = dim / 2;
        for (uint32_t j = 0; j < half; ++j) {
          const double f = half > 1 ? std::exp(-std::log(10000.0) * j / (half - 1)) : 1.0;
          out[j] = std::sin(v * f);
          out[half + j] = std::cos(v * f);
        }
      };
      auto affine = [&](double* z) {
        const double* W = tensor(l, md::TensorRole::kWeight);
        const double* bias = tensor(l, md::TensorRole::kBias);
        for (uint32_t o = 0; o < L.out; ++o) {
          double s = bias[o];
          for (uint32_t i = 0; i < L.in; ++i) s += hb[i] * W[static_cast<size_t>(i) * L.out + o];
          z[o] = s;
        }
      };
      switch (L.kind) {
        case LayerKind::kEmbed: {
          double* o = yb;
          if (L.x_raw) for (uint32_t i = 0; i < d.D; ++i) *o++ = hb[i];
          for (uint32_t i = 0; i < d.D && L.x_sin_dim; ++i, o += L.x_sin_dim)
            sinusoid(o, hb[i] * static_cast<double>(L.x_scale), L.x_sin_dim);
          if (L.t_sin_dim) sinusoid(o, t[b], L.t_sin_dim);
          break;
        }
        case LayerKind::kLinear: affine(yb); break;
        case LayerKind::kActivation:
          for (uint32_t i = 0; i < L.out; ++i) yb[i] = act(L.act, hb[i]);
          break;
        case LayerKind::kResidual: {
          std::vector<double> z(L.out);
          affine(z.data());
          for (uint32_t i = 0; i < L.out; ++i) yb[i] = hb[i] + act(L.act, z[i]);
          break;
        }
        case LayerKind::kTimeGate: {
          affine(yb);
          const double* G = tensor(l, md::TensorRole::kTable) + static_cast<size_t>(t[b]) * L.out;
          for (uint32_t i = 0; i < L.out; ++i) yb[i] *= G[i];
          break;
        }
        case LayerKind::kTimeAdd: {
          const double* E = tensor(l, md::TensorRole::kTable) + static_cast<size_t>(t[b]) * L.out;
          for (uint32_t i = 0; i < L.out; ++i) yb[i] = hb[i] + E[i];
          break;
        }
        case LayerKind::kLabelAdd: {
          const double* C = tensor(l, md::TensorRole::kTable) + static_cast<size_t>(labels[b]) * L.out;
          for (uint32_t i = 0; i < L.out; ++i) yb[i] = hb[i] + C[i];
          break;
        }
      }
    }
    h.swap(y);
    width = L.out;
  }
  return h;
}

double loss_double(const ModelDesc& d, const std::vector<double>& p, const std::vector<double>& x,
                   const std::vector<int32_t>& t, const std::vector<double>& target, uint32_t B,
                   const std::vector<int32_t>& labels) {
  const std::vector<double> y = forward_double(d, p, x, t, B, labels);
  double s = 0;
  for (size_t i = 0; i < y.size(); ++i) s += (y[i] - target[i]) * (y[i] - target[i]);
  return s / y.size();
}

struct Case {
  const char* name;
  ModelDesc desc;
};

ModelDesc single_layer(LayerKind kind, Activation a, uint32_t D = 3, uint32_t T = 5) {
  md::ModelBuilder b(D, T);
  b.embed(1, 4, 0.7f, 4).linear(6);
  if (kind == LayerKind::kActivation) b.activation(a);
  if (kind == LayerKind::kResidual) b.residual(a);
  if (kind == LayerKind::kTimeGate) b.time_gate(5);
  if (kind == LayerKind::kTimeAdd) b.time_add();
  if (kind == LayerKind::kLabelAdd) b.label_add(3);
  if (kind == LayerKind::kLinear) b.linear(7);
  b.linear(D);
  return b.d;
}

std::vector<Case> cases() {
  std::vector<Case> c;
  c.push_back({"linear", single_layer(LayerKind::kLinear, Activation::kIdentity)});
  const Activation acts[] = {Activation::kReLU, Activation::kSiLU, Activation::kGeluTanh, Activation::kGeluErf,
                             Activation::kSoftplus, Activation::kTanh};
  for (Activation a : acts) {
    c.push_back({md::activation_name(a), single_layer(LayerKind::kActivation, a)});
    c.push_back({"residual", single_layer(LayerKind::kResidual, a)});
  }
  c.push_back({"time_gate", single_layer(LayerKind::kTimeGate, Activation::kIdentity)});
  c.push_back({"time_add", single_layer(LayerKind::kTimeAdd, Activation::kIdentity)});
  c.push_back({"label_add", single_layer(LayerKind::kLabelAdd, Activation::kIdentity)});
  c.push_back({"conditional_default", md::with_label_embedding(md::preset_default(2, 9, 10, 6, 2), 4)});
  c.push_back({"tutorial", md::preset_tutorial(2, 7, 12)});
  c.push_back({"default", md::preset_default(2, 9, 10, 6, 2)});
  return c;
}

class LayerGradients : public ::testing::TestWithParam<size_t> {};

TEST_P(LayerGradients, ForwardMatchesDoubleAndBackwardMatchesFiniteDifferences) {
  const Case c = cases()[GetParam()];
  const ModelDesc& d = c.desc;
  ASSERT_TRUE(md::validate_model(d).ok()) << c.name;
  const uint32_t B = 5;
  const md::ParamLayout lay = md::param_layout(d);
  // Parameters and inputs from the portable generator, away from ReLU's kink.
  std::vector<float> pf(lay.total_floats, 0.0f);
  std::vector<float> u(lay.total_floats);
  md::uniform_fill(42, md::RngStream::kInit, 0, 0, u.data(), u.size());
  for (uint32_t i = 0; i < lay.n_tensors; ++i)
    for (uint32_t j = 0; j < lay.tensors[i].count(); ++j)
      pf[lay.tensors[i].offset + j] = 1.2f * (u[lay.tensors[i].offset + j] - 0.5f);
  std::vector<float> xf(static_cast<size_t>(B) * d.D), target(xf.size());
  md::gaussian_fill(7, md::RngStream::kTrainNoise, 0, 0, xf.data(), xf.size());
  md::gaussian_fill(8, md::RngStream::kTrainNoise, 0, 0, target.data(), target.size());
  std::vector<int32_t> t(B), labels(B);
  for (uint32_t b = 0; b < B; ++b) {
    t[b] = static_cast<int32_t>((3 * b + 1) % d.T);
    labels[b] = static_cast<int32_t>(b % (d.n_classes + 1));  // includes the "no label" row
  }

  // Runtime forward + backward.
  const md::Model m = md::bind_model(d, pf.data());
  std::vector<float> tape(md::tape_layout(d, B).total_floats), scratch(md::backward_scratch_floats(d, B));
  md::model_forward_train(m, xf.data(), t.data(), B, tape.data(), labels.data());
  const float* y = md::tape_output(d, B, tape.data());
  std::vector<float> y_infer(xf.size()), scratch_f(md::forward_scratch_floats(d, B));
  md::model_forward(m, xf.data(), t.data(), B, y_infer.data(), scratch_f.data(), labels.data());
  std::vector<float> dy(xf.size());
  for (size_t i = 0; i < dy.size(); ++i) dy[i] = 2.0f * (y[i] - target[i]) / dy.size();
  std::vector<float> grads(lay.total_floats, 0.0f);
  md::model_backward(m, t.data(), B, tape.data(), dy.data(), grads.data(), scratch.data(), labels.data());

  std::vector<double> p(pf.begin(), pf.end()), x(xf.begin(), xf.end()), tg(target.begin(), target.end());
  const std::vector<double> yd = forward_double(d, p, x, t, B, labels);
  for (size_t i = 0; i < yd.size(); ++i) {
    // float32 forward vs double: a few ulp per layer.
    EXPECT_NEAR(y[i], yd[i], 1e-5 * (1 + std::fabs(yd[i]))) << c.name << " output " << i;
    EXPECT_EQ(y[i], y_infer[i]) << c.name << " training and inference forward differ at " << i;
  }
  // Central differences of the double loss, step 1e-6: truncation error
  // ~1e-12, rounding ~1e-10, far below float gradient precision.
  const double h = 1e-6;
  for (uint32_t ti = 0; ti < lay.n_tensors; ++ti) {
    const md::TensorDesc& td = lay.tensors[ti];
    for (uint32_t j = 0; j < td.count(); ++j) {
      const size_t k = td.offset + j;
      const double keep = p[k];
      p[k] = keep + h;
      const double lp = loss_double(d, p, x, t, tg, B, labels);
      p[k] = keep - h;
      const double lm = loss_double(d, p, x, t, tg, B, labels);
      p[k] = keep;
      const double fd = (lp - lm) / (2 * h);
      // Analytic float gradients: relative 1e-4 of the gradient scale.
      EXPECT_NEAR(grads[k], fd, 2e-6 + 1e-4 * std::fabs(fd))
          << c.name << " tensor " << ti << " (layer " << td.layer << ", role " << static_cast<int>(td.role)
          << ") element " << j;
    }
  }
  // Padding between tensors receives no gradient.
  for (uint32_t ti = 0; ti < lay.n_tensors; ++ti) {
    const md::TensorDesc& td = lay.tensors[ti];
    const uint32_t end = ti + 1 < lay.n_tensors ? lay.tensors[ti + 1].offset : lay.total_floats;
    for (uint32_t k = td.offset + td.count(); k < end; ++k) EXPECT_EQ(grads[k], 0.0f);
  }
}

INSTANTIATE_TEST_SUITE_P(AllLayers, LayerGradients, ::testing::Range<size_t>(0, cases().size()),
                         [](const ::testing::TestParamInfo<size_t>& info) {
                           return std::string(cases()[info.param].name) + "_" + std::to_string(info.param);
                         });

TEST(ModelDesc, ValidationNamesTheProblem) {
  ModelDesc d = md::preset_default();
  EXPECT_TRUE(md::validate_model(d).ok());
  d.layers[2].in = 7;
  md::Status s = md::validate_model(d);
  EXPECT_EQ(s.code, md::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.needed, 2u);  // the layer index
  d = md::preset_default();
  d.layers[0].kind = LayerKind::kLinear;
  EXPECT_FALSE(md::validate_model(d).ok());
  d = md::preset_tutorial();
  d.layers[d.n_layers - 1].out = 3;  // must produce D = 2
  EXPECT_FALSE(md::validate_model(d).ok());
  d = md::preset_tutorial();
  d.layers[2].act = static_cast<Activation>(99);
  EXPECT_FALSE(md::validate_model(d).ok());
}

TEST(ModelDesc, PresetsHaveTheDocumentedShape) {
  constexpr ModelDesc tut = md::preset_tutorial();
  static_assert(tut.n_layers == 8, "embed + 3 x (gate, softplus) + linear");
  static_assert(md::parameter_count(tut) == (2 * 128 + 128 + 100 * 128) + 2 * (128 * 128 + 128 + 100 * 128) + 128 * 2 + 2,
                "tutorial parameters");
  constexpr ModelDesc def = md::preset_default();
  EXPECT_EQ(def.layers[0].out, 96u);
  EXPECT_EQ(def.layers[0].x_scale, 25.0f);
  EXPECT_EQ(md::parameter_count(def), 96u * 128 + 128 + 3 * (128 * 128 + 128) + 128 * 2 + 2);
  // Tensors start on 64-byte boundaries.
  const md::ParamLayout lay = md::param_layout(def);
  for (uint32_t i = 0; i < lay.n_tensors; ++i) EXPECT_EQ(lay.tensors[i].offset % 16, 0u);
}

}  // namespace
