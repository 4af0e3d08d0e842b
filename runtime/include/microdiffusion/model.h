// The MLP denoiser eps_theta(x_t, t), described by a short list of layers.
//
// A ModelDesc fully describes the network (the weight file stores it), and
// every size derived from it -- parameter count, tensor offsets, arena bytes --
// is a constexpr function, so firmware can static_assert its buffers.
//
// Activations are row-major (batch, width). Linear weights are stored
// (in, out) row-major so the forward GEMM streams along the output width;
// PyTorch's nn.Linear keeps (out, in) and the converter transposes.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "microdiffusion/arena.h"
#include "microdiffusion/schedule.h"  // Prediction
#include "microdiffusion/status.h"

namespace md {

enum class LayerKind : uint32_t {
  kEmbed = 1,       // (x, t) -> [x?, sin/cos(x_i * scale)..., sin/cos(t)]; always first
  kLinear = 2,      // y = h W + b                      W (in, out), b (out)
  kActivation = 3,  // y = act(h)
  kResidual = 4,    // y = h + act(h W + b)             W (w, w), b (w)
  kTimeGate = 5,    // y = (h W + b) * G[t]             W (in, out), b (out), G (T, out)
  kTimeAdd = 6,     // y = h + E[t]                     E (T, w)
  kLabelAdd = 7,    // y = h + C[label]                 C (n_classes + 1, w); the last row means "no label"
};

enum class Activation : uint32_t {
  kIdentity = 0,
  kReLU = 1,
  kSiLU = 2,
  kGeluTanh = 3,  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  kGeluErf = 4,   // 0.5 x (1 + erf(x / sqrt(2)))
  kSoftplus = 5,  // log(1 + e^x), = x above 20 (PyTorch's threshold)
  kTanh = 6,
};
constexpr uint32_t kActivationCount = 7;

struct LayerDesc {
  LayerKind kind = LayerKind::kLinear;
  uint32_t in = 0;    // input width
  uint32_t out = 0;   // output width
  Activation act = Activation::kIdentity;  // kActivation, kResidual
  // kEmbed only. Sinusoids follow tiny-diffusion: half = dim/2 frequencies
  // f_j = exp(-ln(10000) j / (half - 1)), output [sin(v f), cos(v f)].
  uint32_t x_raw = 0;      // 1: the output starts with x itself
  uint32_t x_sin_dim = 0;  // sinusoid width per coordinate of x (0: none)
  uint32_t t_sin_dim = 0;  // sinusoid width of t (0: none)
  float x_scale = 1.0f;    // x is multiplied by this before its sinusoid
};

constexpr uint32_t kMaxLayers = 16;
constexpr uint32_t kMaxTensors = 3 * kMaxLayers;
constexpr uint32_t kMaxWidth = 8192;
constexpr uint32_t kMaxDataDim = 65536;

struct ModelDesc {
  uint32_t D = 2;         // data dimension
  uint32_t T = 1000;      // timesteps (rows of the per-timestep tables)
  uint32_t n_classes = 0;  // class labels of a conditional model (0: unconditional)
  uint32_t n_layers = 0;
  LayerDesc layers[kMaxLayers] = {};
  // 1: the network also outputs the variance interpolation v (Nichol &
  // Dhariwal's learned range), so its last layer has 2D outputs: the D values
  // of the prediction, then D values of v. Weight files record it as the
  // learned variance type.
  uint32_t learned_variance = 0;
};

// Columns of the network's output: D, or 2D with a learned variance.
constexpr uint32_t output_width(const ModelDesc& d) { return d.learned_variance ? 2 * d.D : d.D; }

enum class TensorRole : uint32_t { kWeight = 0, kBias = 1, kTable = 2 };

// How a weight matrix is stored in a weight file (weights/FORMAT.md): f32;
// f16 (IEEE binary16); or int8 with one f32 scale per output column
// (symmetric, per channel: w = scale[col] * q). Biases and tables are always
// f32, and training always works in f32; reduced precision is for sampling
// from flash.
enum class TensorDType : uint32_t { kF32 = 0, kF16 = 1, kInt8 = 2 };
constexpr uint32_t kTensorDTypeCount = 3;
// Bytes of a (rows, cols) tensor stored as `dtype` (int8: the cols scales, then the values).
constexpr size_t tensor_storage_bytes(TensorDType dtype, uint32_t rows, uint32_t cols) {
  return dtype == TensorDType::kF16    ? 2ull * rows * cols
         : dtype == TensorDType::kInt8 ? 4ull * cols + static_cast<size_t>(rows) * cols
                                       : 4ull * rows * cols;
}

struct TensorDesc {
  uint32_t layer = 0;
  TensorRole role = TensorRole::kWeight;
  uint32_t rows = 0, cols = 0;
  uint32_t offset = 0;  // in floats from the start of the flat parameter block
  constexpr uint32_t count() const { return rows * cols; }
};

// Where each tensor lives in the flat parameter block. Gradients, Adam
// moments and the EMA copy use the same layout. Each tensor starts on a
// 64-byte boundary (16 floats), exactly as in the weight file.
struct ParamLayout {
  uint32_t n_tensors = 0;
  uint32_t total_floats = 0;
  uint32_t first_tensor[kMaxLayers] = {};
  TensorDesc tensors[kMaxTensors] = {};
};

constexpr uint32_t kFloatsPerAlignment = kAlignment / sizeof(float);

constexpr ParamLayout param_layout(const ModelDesc& d) {
  ParamLayout p;
  uint32_t offset = 0;
  auto add = [&](uint32_t layer, TensorRole role, uint32_t rows, uint32_t cols) {
    TensorDesc& t = p.tensors[p.n_tensors++];
    t.layer = layer;
    t.role = role;
    t.rows = rows;
    t.cols = cols;
    t.offset = offset;
    offset += (rows * cols + kFloatsPerAlignment - 1) / kFloatsPerAlignment * kFloatsPerAlignment;
  };
  for (uint32_t l = 0; l < d.n_layers && l < kMaxLayers; ++l) {
    const LayerDesc& L = d.layers[l];
    p.first_tensor[l] = p.n_tensors;
    switch (L.kind) {
      case LayerKind::kLinear:
      case LayerKind::kResidual:
        add(l, TensorRole::kWeight, L.in, L.out);
        add(l, TensorRole::kBias, 1, L.out);
        break;
      case LayerKind::kTimeGate:
        add(l, TensorRole::kWeight, L.in, L.out);
        add(l, TensorRole::kBias, 1, L.out);
        add(l, TensorRole::kTable, d.T, L.out);
        break;
      case LayerKind::kTimeAdd:
        add(l, TensorRole::kTable, d.T, L.out);
        break;
      case LayerKind::kLabelAdd:
        add(l, TensorRole::kTable, d.n_classes + 1, L.out);
        break;
      default:
        break;
    }
  }
  p.total_floats = offset;
  return p;
}

constexpr uint32_t embed_width(uint32_t D, uint32_t x_raw, uint32_t x_sin_dim, uint32_t t_sin_dim) {
  return (x_raw ? D : 0) + D * x_sin_dim + t_sin_dim;
}

constexpr uint32_t max_width(const ModelDesc& d) {
  uint32_t w = d.D;
  for (uint32_t l = 0; l < d.n_layers && l < kMaxLayers; ++l) {
    if (d.layers[l].in > w) w = d.layers[l].in;
    if (d.layers[l].out > w) w = d.layers[l].out;
  }
  return w;
}

constexpr uint32_t parameter_count(const ModelDesc& d) {
  uint32_t n = 0;
  const ParamLayout p = param_layout(d);
  for (uint32_t i = 0; i < p.n_tensors; ++i) n += p.tensors[i].count();
  return n;
}

// Layers whose backward needs the value before the elementwise op (z = hW+b).
constexpr bool layer_keeps_preactivation(LayerKind k) {
  return k == LayerKind::kResidual || k == LayerKind::kTimeGate;
}

// Checks everything the constexpr helpers assume: widths chain, the first
// layer embeds and the last produces D values, limits hold.
Status validate_model(const ModelDesc& d);

// ---- Presets ---------------------------------------------------------------

// A builder for ModelDesc usable in constant expressions.
struct ModelBuilder {
  ModelDesc d;
  uint32_t width = 0;
  constexpr ModelBuilder(uint32_t D, uint32_t T) { d.D = D; d.T = T; width = D; }
  constexpr ModelBuilder& push(LayerDesc L) {
    if (d.n_layers < kMaxLayers) d.layers[d.n_layers++] = L;
    width = L.out;
    return *this;
  }
  constexpr ModelBuilder& embed(uint32_t x_raw, uint32_t x_sin_dim, float x_scale, uint32_t t_sin_dim) {
    LayerDesc L;
    L.kind = LayerKind::kEmbed;
    L.in = d.D;
    L.out = embed_width(d.D, x_raw, x_sin_dim, t_sin_dim);
    L.x_raw = x_raw;
    L.x_sin_dim = x_sin_dim;
    L.t_sin_dim = t_sin_dim;
    L.x_scale = x_scale;
    return push(L);
  }
  constexpr ModelBuilder& layer(LayerKind kind, uint32_t out, Activation act = Activation::kIdentity) {
    LayerDesc L;
    L.kind = kind;
    L.in = width;
    L.out = out;
    L.act = act;
    return push(L);
  }
  constexpr ModelBuilder& linear(uint32_t out) { return layer(LayerKind::kLinear, out); }
  constexpr ModelBuilder& activation(Activation a) { return layer(LayerKind::kActivation, width, a); }
  constexpr ModelBuilder& residual(Activation a) { return layer(LayerKind::kResidual, width, a); }
  constexpr ModelBuilder& time_gate(uint32_t out) { return layer(LayerKind::kTimeGate, out); }
  constexpr ModelBuilder& time_add() { return layer(LayerKind::kTimeAdd, width); }
  constexpr ModelBuilder& label_add(uint32_t classes) {
    d.n_classes = classes;
    return layer(LayerKind::kLabelAdd, width);
  }
};

// `default`: tiny-diffusion's shape -- sinusoids of each coordinate (scale 25)
// and of t, Linear to 128, GELU, three residual GELU blocks, Linear to D.
constexpr ModelDesc preset_default(uint32_t D = 2, uint32_t T = 200, uint32_t hidden = 128,
                                   uint32_t emb = 32, uint32_t blocks = 3) {
  ModelBuilder b(D, T);
  b.embed(0, emb, 25.0f, emb).linear(hidden).activation(Activation::kGeluTanh);
  for (uint32_t i = 0; i < blocks; ++i) b.residual(Activation::kGeluTanh);
  b.linear(D);
  return b.d;
}

// `tutorial`: the classic DDPM swiss-roll tutorial -- three time-gated Linear
// layers (D -> 128 -> 128 -> 128), softplus after each, then Linear(128 -> D).
constexpr ModelDesc preset_tutorial(uint32_t D = 2, uint32_t T = 100, uint32_t hidden = 128) {
  ModelBuilder b(D, T);
  b.embed(1, 0, 1.0f, 0);
  for (int i = 0; i < 3; ++i) b.time_gate(hidden).activation(Activation::kSoftplus);
  b.linear(D);
  return b.d;
}

// The same network made class-conditional: a label embedding added right
// after the first layer that follows the input embedding (where the time
// information has entered), as "a label embedding added to the time embedding".
constexpr ModelDesc with_label_embedding(const ModelDesc& base, uint32_t classes) {
  ModelDesc d = base;
  if (d.n_layers < 2 || d.n_layers >= kMaxLayers) return d;
  d.n_classes = classes;
  for (uint32_t l = d.n_layers; l > 2; --l) d.layers[l] = d.layers[l - 1];
  LayerDesc L;
  L.kind = LayerKind::kLabelAdd;
  L.in = L.out = d.layers[1].out;
  d.layers[2] = L;
  ++d.n_layers;
  return d;
}

// The same network with Nichol & Dhariwal's learned variance range: its last
// layer (a linear or time-gate layer) gets 2D outputs.
constexpr ModelDesc with_learned_variance(const ModelDesc& base) {
  ModelDesc d = base;
  if (d.n_layers < 1 || d.learned_variance) return d;
  LayerDesc& last = d.layers[d.n_layers - 1];
  if (last.kind != LayerKind::kLinear && last.kind != LayerKind::kTimeGate) return d;
  last.out = 2 * d.D;
  d.learned_variance = 1;
  return d;
}

const char* layer_kind_name(LayerKind k);
const char* activation_name(Activation a);

// ---- Running the network ---------------------------------------------------

// A network bound to its weights: tensor pointers in ParamLayout order, into
// a flat parameter block (training) or into a weight file read in place.
struct Model {
  ModelDesc desc;
  ParamLayout layout;
  const float* tensors[kMaxTensors] = {};  // f32 tensors (null for f16 / int8 ones)
  // A model bound to a reduced-precision weight file: each tensor's dtype,
  // and the stored bytes of the f16 / int8 ones, read in place.
  TensorDType dtypes[kMaxTensors] = {};
  const void* stored[kMaxTensors] = {};
  // What the network outputs: load_weights sets the file's, Trainer::model the
  // trainer's; bind_model leaves eps.
  Prediction prediction = Prediction::kEpsilon;
  const float* tensor(uint32_t layer, TensorRole role) const;
  int32_t tensor_index(uint32_t layer, TensorRole role) const;  // -1 if the layer has none
  bool all_f32() const;
};

// Bind `desc` to a flat parameter block laid out by param_layout(desc).
Model bind_model(const ModelDesc& desc, const float* params);

// Inference scratch: three (batch, max_width) buffers.
constexpr size_t forward_scratch_floats(const ModelDesc& d, uint32_t batch) {
  return 3ull * batch * max_width(d);
}

// out (B, output_width) = eps_theta(x (B, D), t (B)); t in [0, T). `labels` (B) in
// [0, n_classes] for a conditional model; null or n_classes mean "no label".
void model_forward(const Model& m, const float* x, const int32_t* t, uint32_t batch,
                   float* out, float* scratch, const int32_t* labels = nullptr);

// ---- Training: the tape ----------------------------------------------------

// Per layer l the tape holds its output (B, out), and for layers that keep
// it, the pre-activation (B, out). Offsets are in floats.
struct TapeLayout {
  uint32_t output[kMaxLayers] = {};
  uint32_t preact[kMaxLayers] = {};
  size_t total_floats = 0;
};

constexpr TapeLayout tape_layout(const ModelDesc& d, uint32_t batch) {
  TapeLayout t;
  size_t offset = 0;
  auto take = [&](uint32_t w) {
    const size_t o = offset;
    offset += (static_cast<size_t>(batch) * w + kFloatsPerAlignment - 1) / kFloatsPerAlignment *
              kFloatsPerAlignment;
    return static_cast<uint32_t>(o);
  };
  for (uint32_t l = 0; l < d.n_layers && l < kMaxLayers; ++l) {
    t.output[l] = take(d.layers[l].out);
    if (layer_keeps_preactivation(d.layers[l].kind)) t.preact[l] = take(d.layers[l].out);
  }
  t.total_floats = offset;
  return t;
}

// The weight gradient dW += X^T dY reads X^T down columns: one cache line
// per reduction step from rows of X `in` floats apart, which for wide layers
// share a few L1 sets and evict each other. x86-64 builds reserve scratch to
// copy X^T into first, in blocks of kWeightGradPackRows reduction rows; the
// AVX2 kernels use it (1.16-1.21x at in = 512, measured on Zen 3 and on a
// Xeon), the AVX-512 ones measured slower with it and read X^T in place,
// keeping each reduction chunk's dY panels there instead when the inputs
// span several row blocks (over 256; at batch 2000 1.02-1.17x for layers
// of 384-1024 inputs, 0.95-0.99x at 300 -> 600: kernels/avx512.cpp).
// The product is bit-identical either way. From kWeightGradPackMinWidth
// inputs on (at 128 it measured nothing); elsewhere (unmeasured; RAM is scarce
// on microcontrollers) nothing is reserved. The input gradient dX = dY W^T of
// the same layer gets the same scratch afterwards: AVX-512 keeps each
// reduction chunk's transposed W panels there across row blocks instead of
// transposing them again for every 256 rows (1.05x at batch 2000).
constexpr uint32_t kWeightGradPackRows = 256;
constexpr uint32_t kWeightGradPackMinWidth = 256;
constexpr size_t weight_grad_pack_floats(uint32_t in) {
#if defined(__x86_64__) || defined(_M_X64)
  return in >= kWeightGradPackMinWidth ? static_cast<size_t>(in) * kWeightGradPackRows : 0;
#else
  static_cast<void>(in);
  return 0;
#endif
}
constexpr bool layer_has_weight_grad(LayerKind k) {
  return k == LayerKind::kLinear || k == LayerKind::kResidual || k == LayerKind::kTimeGate;
}
constexpr size_t weight_grad_pack_floats(const ModelDesc& d) {
  size_t most = 0;
  for (uint32_t l = 0; l < d.n_layers && l < kMaxLayers; ++l)
    if (layer_has_weight_grad(d.layers[l].kind) && weight_grad_pack_floats(d.layers[l].in) > most)
      most = weight_grad_pack_floats(d.layers[l].in);
  return most;
}

// Backward scratch: three (batch, max_width) buffers, then the weight
// gradient's packing scratch (above; usually none).
constexpr size_t backward_scratch_floats(const ModelDesc& d, uint32_t batch) {
  return 3ull * batch * max_width(d) + weight_grad_pack_floats(d);
}

// Forward pass that records what backward needs in `tape`.
void model_forward_train(const Model& m, const float* x, const int32_t* t, uint32_t batch,
                         float* tape, const int32_t* labels = nullptr);
// The network output recorded on the tape (B, output_width).
const float* tape_output(const ModelDesc& d, uint32_t batch, const float* tape);

// Given dL/d(out) (B, output_width), accumulate dL/d(params) into `grads` (flat layout).
void model_backward(const Model& m, const int32_t* t, uint32_t batch, const float* tape,
                    const float* d_out, float* grads, float* scratch, const int32_t* labels = nullptr);

}  // namespace md
