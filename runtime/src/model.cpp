#include "microdiffusion/model.h"

#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "scalar_math.h"

namespace md {

const char* layer_kind_name(LayerKind k) {
  switch (k) {
    case LayerKind::kEmbed: return "embed";
    case LayerKind::kLinear: return "linear";
    case LayerKind::kActivation: return "activation";
    case LayerKind::kResidual: return "residual";
    case LayerKind::kTimeGate: return "time_gate";
    case LayerKind::kTimeAdd: return "time_add";
    case LayerKind::kLabelAdd: return "label_add";
  }
  return "unknown";
}

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::kIdentity: return "identity";
    case Activation::kReLU: return "relu";
    case Activation::kSiLU: return "silu";
    case Activation::kGeluTanh: return "gelu_tanh";
    case Activation::kGeluErf: return "gelu_erf";
    case Activation::kSoftplus: return "softplus";
    case Activation::kTanh: return "tanh";
  }
  return "unknown";
}

Status validate_model(const ModelDesc& d) {
  if (d.D < 1 || d.D > kMaxDataDim)
    return make_status(StatusCode::kInvalidArgument, "data dimension D out of range", d.D, kMaxDataDim);
  if (d.T < 1 || d.T > 100000)
    return make_status(StatusCode::kInvalidArgument, "model T out of range", d.T, 100000);
  if (d.n_layers < 2 || d.n_layers > kMaxLayers)
    return make_status(StatusCode::kInvalidArgument, "layer count must be in [2, 16]", d.n_layers, kMaxLayers);
  if (d.layers[0].kind != LayerKind::kEmbed)
    return make_status(StatusCode::kInvalidArgument, "the first layer must be an embed layer");
  uint32_t width = d.D;
  uint64_t params = 0;
  for (uint32_t l = 0; l < d.n_layers; ++l) {
    const LayerDesc& L = d.layers[l];
    if (L.in != width)
      return make_status(StatusCode::kInvalidArgument, "layer input width does not match the previous output", l, width);
    if (L.out < 1 || L.out > kMaxWidth || L.in > kMaxWidth)
      return make_status(StatusCode::kInvalidArgument, "layer width out of range", l, kMaxWidth);
    if (static_cast<uint32_t>(L.act) >= kActivationCount)
      return make_status(StatusCode::kInvalidArgument, "unknown activation", l);
    switch (L.kind) {
      case LayerKind::kEmbed:
        if (l != 0) return make_status(StatusCode::kInvalidArgument, "embed must be the first layer only", l);
        if (L.x_raw > 1 || (L.x_sin_dim % 2) != 0 || (L.t_sin_dim % 2) != 0)
          return make_status(StatusCode::kInvalidArgument, "embed sinusoid widths must be even", l);
        if (L.x_sin_dim > kMaxWidth || L.t_sin_dim > kMaxWidth ||
            L.out != embed_width(d.D, L.x_raw, L.x_sin_dim, L.t_sin_dim))
          return make_status(StatusCode::kInvalidArgument, "embed output width is inconsistent", l);
        if (!(L.x_scale == L.x_scale) || L.x_scale - L.x_scale != 0.0f)
          return make_status(StatusCode::kNonFinite, "embed x_scale is not finite", l);
        break;
      case LayerKind::kLabelAdd:
        if (d.n_classes < 1 || d.n_classes > 65536)
          return make_status(StatusCode::kInvalidArgument, "a label layer needs 1 to 65536 classes", l, d.n_classes);
        if (L.out != L.in) return make_status(StatusCode::kInvalidArgument, "this layer keeps its width", l);
        break;
      case LayerKind::kActivation:
      case LayerKind::kResidual:
      case LayerKind::kTimeAdd:
        if (L.out != L.in)
          return make_status(StatusCode::kInvalidArgument, "this layer keeps its width", l);
        break;
      case LayerKind::kLinear:
      case LayerKind::kTimeGate:
        break;
      default:
        return make_status(StatusCode::kInvalidArgument, "unknown layer kind", l);
    }
    if (L.kind != LayerKind::kEmbed && L.kind != LayerKind::kActivation) {
      params += static_cast<uint64_t>(L.in) * L.out + L.out + static_cast<uint64_t>(d.T + d.n_classes + 1) * L.out;
    }
    width = L.out;
  }
  if (d.learned_variance > 1) return make_status(StatusCode::kInvalidArgument, "learned_variance must be 0 or 1");
  if (width != output_width(d))
    return make_status(StatusCode::kInvalidArgument,
                       d.learned_variance ? "the last layer must output 2D values (prediction and variance)"
                                          : "the last layer must output D values",
                       width, output_width(d));
  if (d.n_classes > 65536) return make_status(StatusCode::kInvalidArgument, "too many classes", d.n_classes, 65536);
  if (params > (1ull << 30))
    return make_status(StatusCode::kInvalidArgument, "too many parameters", params, 1ull << 30);
  return Status::Ok();
}

int32_t Model::tensor_index(uint32_t layer, TensorRole role) const {
  for (uint32_t i = layout.first_tensor[layer]; i < layout.n_tensors; ++i) {
    if (layout.tensors[i].layer != layer) break;
    if (layout.tensors[i].role == role) return static_cast<int32_t>(i);
  }
  return -1;
}

bool Model::all_f32() const {
  for (uint32_t i = 0; i < layout.n_tensors; ++i)
    if (dtypes[i] != TensorDType::kF32) return false;
  return true;
}

const float* Model::tensor(uint32_t layer, TensorRole role) const {
  for (uint32_t i = layout.first_tensor[layer]; i < layout.n_tensors; ++i) {
    if (layout.tensors[i].layer != layer) break;
    if (layout.tensors[i].role == role) return tensors[i];
  }
  return nullptr;
}

Model bind_model(const ModelDesc& desc, const float* params) {
  Model m;
  m.desc = desc;
  m.layout = param_layout(desc);
  for (uint32_t i = 0; i < m.layout.n_tensors; ++i) m.tensors[i] = params + m.layout.tensors[i].offset;
  return m;
}

namespace {

// tiny-diffusion's SinusoidalEmbedding: `dim` outputs [sin(v f_j)..., cos(v f_j)...]
// of the scalar v, f_j = exp(-ln(10000) j / (half - 1)). `freq` holds f_j for
// j in [j0, j0 + n); this writes that slice of the sines and cosines.
void sinusoid_slice(float* out, float v, uint32_t dim, const float* freq, uint32_t j0, uint32_t n) {
  const uint32_t half = dim / 2;
  float* s = out + j0;
  for (uint32_t j = 0; j < n; ++j) s[j] = v * freq[j];
  kernels::sincos(s, s, out + half + j0, n);
}

// The sinusoids of `count` values per row (x's coordinates times `scale`, or
// the timestep when `xv` is null): value i of row b fills the `dim` outputs
// at y[b * stride + i * dim]. The frequencies are computed once per call, a
// chunk at a time (a small stack array, whatever the width), not per row.
constexpr uint32_t kFreqChunk = 32;
void embed_sinusoids(float* y, uint32_t stride, const float* xv, const int32_t* tv, uint32_t count, float scale,
                     uint32_t dim, uint32_t batch) {
  const uint32_t half = dim / 2;
  const float step = half > 1 ? 9.21034037197618f / static_cast<float>(half - 1) : 0.0f;  // ln(10000)
  float freq[kFreqChunk];
  for (uint32_t j0 = 0; j0 < half; j0 += kFreqChunk) {
    const uint32_t n = half - j0 < kFreqChunk ? half - j0 : kFreqChunk;
    for (uint32_t j = 0; j < n; ++j) freq[j] = math::exp_f(-step * static_cast<float>(j0 + j));
    for (uint32_t b = 0; b < batch; ++b)
      for (uint32_t i = 0; i < count; ++i) {
        const float v = xv ? xv[static_cast<size_t>(b) * count + i] * scale : static_cast<float>(tv[b]);
        sinusoid_slice(y + static_cast<size_t>(b) * stride + i * dim, v, dim, freq, j0, n);
      }
  }
}

void embed_forward(const LayerDesc& L, uint32_t D, const float* x, const int32_t* t,
                   uint32_t batch, float* y) {
  const uint32_t x_off = L.x_raw ? D : 0;
  for (uint32_t b = 0; b < batch; ++b)
    if (L.x_raw) memcpy(y + static_cast<size_t>(b) * L.out, x + static_cast<size_t>(b) * D, D * sizeof(float));
  embed_sinusoids(y + x_off, L.out, x, nullptr, D, L.x_scale, L.x_sin_dim, batch);
  embed_sinusoids(y + x_off + D * L.x_sin_dim, L.out, nullptr, t, 1, 1.0f, L.t_sin_dim, batch);
}

// y (B, w) = h + E[t]
void add_rows(float* y, const float* h, const float* table, const int32_t* t, uint32_t batch, uint32_t w) {
  for (uint32_t b = 0; b < batch; ++b) {
    const float* e = table + static_cast<size_t>(t[b]) * w;
    const float* hb = h + static_cast<size_t>(b) * w;
    float* yb = y + static_cast<size_t>(b) * w;
    for (uint32_t i = 0; i < w; ++i) yb[i] = hb[i] + e[i];
  }
}

// y (B, w) = h + C[label]; a null `labels` or an out-of-range label means the "no label" row.
void add_label_rows(float* y, const float* h, const float* table, const int32_t* labels, uint32_t n_classes,
                    uint32_t batch, uint32_t w) {
  for (uint32_t b = 0; b < batch; ++b) {
    const uint32_t row = labels && labels[b] >= 0 && static_cast<uint32_t>(labels[b]) < n_classes
                             ? static_cast<uint32_t>(labels[b]) : n_classes;
    const float* c = table + static_cast<size_t>(row) * w;
    const float* hb = h + static_cast<size_t>(b) * w;
    float* yb = y + static_cast<size_t>(b) * w;
    for (uint32_t i = 0; i < w; ++i) yb[i] = hb[i] + c[i];
  }
}

// y = h W + b for layer l's weight in whatever precision the model holds it.
void weight_gemm(const Model& m, uint32_t l, float* y, const float* h, int B, int in, int out) {
  const int32_t i = m.tensor_index(l, TensorRole::kWeight);
  const float* bias = m.tensor(l, TensorRole::kBias);
  switch (i < 0 ? TensorDType::kF32 : m.dtypes[i]) {
    case TensorDType::kF16:
      kernels::gemm_bias_f16(y, h, static_cast<const uint16_t*>(m.stored[i]), bias, B, in, out);
      return;
    case TensorDType::kInt8: {
      const uint8_t* p = static_cast<const uint8_t*>(m.stored[i]);
      kernels::gemm_bias_i8(y, h, reinterpret_cast<const int8_t*>(p + 4ull * out), reinterpret_cast<const float*>(p),
                            bias, B, in, out);
      return;
    }
    default:
      kernels::gemm_bias(y, h, m.tensors[i], bias, B, in, out);
  }
}

// One layer forward. `preact` receives z = hW + b for layers that keep it
// (and must be a separate buffer from y and h).
void layer_forward(const Model& m, uint32_t l, const float* h, const int32_t* t, uint32_t batch,
                   float* y, float* preact, const int32_t* labels) {
  const LayerDesc& L = m.desc.layers[l];
  const int B = static_cast<int>(batch), in = static_cast<int>(L.in), out = static_cast<int>(L.out);
  const size_t n = static_cast<size_t>(batch) * L.out;
  switch (L.kind) {
    case LayerKind::kEmbed:
      embed_forward(L, m.desc.D, h, t, batch, y);
      break;
    case LayerKind::kLinear:
      weight_gemm(m, l, y, h, B, in, out);
      break;
    case LayerKind::kActivation:
      kernels::activation_forward(L.act, y, h, n);
      break;
    case LayerKind::kResidual:
      weight_gemm(m, l, preact, h, B, in, out);
      kernels::activation_forward_residual(L.act, y, preact, h, n);
      break;
    case LayerKind::kTimeGate:
      weight_gemm(m, l, preact, h, B, in, out);
      kernels::time_gate(y, preact, m.tensor(l, TensorRole::kTable), t, B, out);
      break;
    case LayerKind::kTimeAdd:
      add_rows(y, h, m.tensor(l, TensorRole::kTable), t, batch, L.out);
      break;
    case LayerKind::kLabelAdd:
      add_label_rows(y, h, m.tensor(l, TensorRole::kTable), labels, m.desc.n_classes, batch, L.out);
      break;
  }
}

}  // namespace

void model_forward(const Model& m, const float* x, const int32_t* t, uint32_t batch, float* out,
                   float* scratch, const int32_t* labels) {
  const size_t stride = static_cast<size_t>(batch) * max_width(m.desc);
  float* buf[2] = {scratch, scratch + stride};
  float* preact = scratch + 2 * stride;
  const float* h = x;
  for (uint32_t l = 0; l < m.desc.n_layers; ++l) {
    float* y = (l + 1 == m.desc.n_layers) ? out : buf[l % 2];
    layer_forward(m, l, h, t, batch, y, preact, labels);
    h = y;
  }
}

void model_forward_train(const Model& m, const float* x, const int32_t* t, uint32_t batch, float* tape,
                         const int32_t* labels) {
  const TapeLayout tl = tape_layout(m.desc, batch);
  const float* h = x;
  for (uint32_t l = 0; l < m.desc.n_layers; ++l) {
    float* y = tape + tl.output[l];
    layer_forward(m, l, h, t, batch, y, tape + tl.preact[l], labels);
    h = y;
  }
}

const float* tape_output(const ModelDesc& d, uint32_t batch, const float* tape) {
  return tape + tape_layout(d, batch).output[d.n_layers - 1];
}

void model_backward(const Model& m, const int32_t* t, uint32_t batch, const float* tape,
                    const float* d_out, float* grads, float* scratch, const int32_t* labels) {
  const ModelDesc& d = m.desc;
  const TapeLayout tl = tape_layout(d, batch);
  const size_t stride = static_cast<size_t>(batch) * max_width(d);
  float* d_cur = scratch;               // dL/d(output of layer l)
  float* d_prev = scratch + stride;     // dL/d(input of layer l)
  float* d_z = scratch + 2 * stride;    // dL/d(pre-activation)
  float* pack = scratch + 3 * stride;   // weight_grad_pack_floats(d), for the weight gradients
  memcpy(d_cur, d_out, static_cast<size_t>(batch) * output_width(d) * sizeof(float));
  const int B = static_cast<int>(batch);

  auto grad_of = [&](uint32_t l, TensorRole role) -> float* {
    for (uint32_t i = m.layout.first_tensor[l]; i < m.layout.n_tensors; ++i)
      if (m.layout.tensors[i].layer == l && m.layout.tensors[i].role == role)
        return grads + m.layout.tensors[i].offset;
    return nullptr;
  };

  // Layer 0 embeds (x, t) and has no parameters: nothing flows past layer 1.
  for (uint32_t l = d.n_layers - 1; l >= 1; --l) {
    const LayerDesc& L = d.layers[l];
    const int in = static_cast<int>(L.in), out = static_cast<int>(L.out);
    const size_t n = static_cast<size_t>(batch) * L.out;
    const float* h = tape + tl.output[l - 1];
    const bool need_input_grad = l > 1;
    float* w_pack = weight_grad_pack_floats(L.in) > 0 ? pack : nullptr;
    switch (L.kind) {
      case LayerKind::kLinear:
        kernels::gemm_tn_acc(grad_of(l, TensorRole::kWeight), h, d_cur, B, in, out, w_pack);
        kernels::colsum_acc(grad_of(l, TensorRole::kBias), d_cur, B, out);
        if (need_input_grad) kernels::gemm_nt(d_prev, d_cur, m.tensor(l, TensorRole::kWeight), B, out, in, w_pack);
        break;
      case LayerKind::kActivation:
        kernels::activation_backward(L.act, d_prev, h, d_cur, n);
        break;
      case LayerKind::kResidual: {
        kernels::activation_backward(L.act, d_z, tape + tl.preact[l], d_cur, n);
        kernels::gemm_tn_acc(grad_of(l, TensorRole::kWeight), h, d_z, B, in, out, w_pack);
        kernels::colsum_acc(grad_of(l, TensorRole::kBias), d_z, B, out);
        if (need_input_grad) {
          kernels::gemm_nt(d_prev, d_z, m.tensor(l, TensorRole::kWeight), B, out, in, w_pack);
          for (size_t i = 0; i < n; ++i) d_prev[i] += d_cur[i];
        }
        break;
      }
      case LayerKind::kTimeGate: {
        kernels::time_gate_backward(d_z, grad_of(l, TensorRole::kTable), d_cur, tape + tl.preact[l],
                                    m.tensor(l, TensorRole::kTable), t, B, out);
        kernels::gemm_tn_acc(grad_of(l, TensorRole::kWeight), h, d_z, B, in, out, w_pack);
        kernels::colsum_acc(grad_of(l, TensorRole::kBias), d_z, B, out);
        if (need_input_grad) kernels::gemm_nt(d_prev, d_z, m.tensor(l, TensorRole::kWeight), B, out, in, w_pack);
        break;
      }
      case LayerKind::kTimeAdd: {
        float* d_table = grad_of(l, TensorRole::kTable);
        for (uint32_t b = 0; b < batch; ++b) {
          const size_t row = static_cast<size_t>(b) * L.out;
          float* de = d_table + static_cast<size_t>(t[b]) * L.out;
          for (uint32_t i = 0; i < L.out; ++i) de[i] += d_cur[row + i];
        }
        memcpy(d_prev, d_cur, n * sizeof(float));
        break;
      }
      case LayerKind::kLabelAdd: {
        float* d_table = grad_of(l, TensorRole::kTable);
        const uint32_t C = d.n_classes;
        for (uint32_t b = 0; b < batch; ++b) {
          const size_t row = static_cast<size_t>(b) * L.out;
          const uint32_t c = labels && labels[b] >= 0 && static_cast<uint32_t>(labels[b]) < C
                                 ? static_cast<uint32_t>(labels[b]) : C;
          float* dc = d_table + static_cast<size_t>(c) * L.out;
          for (uint32_t i = 0; i < L.out; ++i) dc[i] += d_cur[row + i];
        }
        memcpy(d_prev, d_cur, n * sizeof(float));
        break;
      }
      case LayerKind::kEmbed:
        break;
    }
    float* tmp = d_cur;
    d_cur = d_prev;
    d_prev = tmp;
  }
}

}  // namespace md
