#include "microdiffusion/train.h"

#include <math.h>
#include <string.h>

#include "le.h"
#include "kernels/kernels.h"
#include "microdiffusion/rng.h"

namespace md {

Status Trainer::init(const ModelDesc& desc, const ScheduleDesc& schedule, const TrainConfig& config,
                     Arena& arena) {
  MD_RETURN_IF_ERROR(validate_model(desc));
  MD_RETURN_IF_ERROR(validate_schedule(schedule));
  if (schedule.T != desc.T)
    return make_status(StatusCode::kInvalidArgument, "schedule T differs from model T", schedule.T, desc.T);
  if (schedule.zero_terminal_snr && config.prediction == Prediction::kEpsilon)
    return make_status(StatusCode::kInvalidArgument, "zero terminal SNR needs a v or x0 prediction, not eps");
  if (config.batch < 1 || config.batch > (1u << 20))
    return make_status(StatusCode::kInvalidArgument, "batch must be in [1, 2^20]", config.batch, 1u << 20);
  if (!(config.lr > 0.0 && config.lr < 10.0))
    return make_status(StatusCode::kInvalidArgument, "learning rate must be in (0, 10)");
  if (!(config.beta1 >= 0.0 && config.beta1 < 1.0 && config.beta2 >= 0.0 && config.beta2 < 1.0 &&
        config.adam_eps > 0.0))
    return make_status(StatusCode::kInvalidArgument, "Adam needs 0 <= beta1, beta2 < 1 and eps > 0");
  if (static_cast<uint32_t>(config.prediction) >= kPredictionCount)
    return make_status(StatusCode::kInvalidArgument, "unknown prediction type");
  if (!(config.label_dropout >= 0.0 && config.label_dropout <= 1.0))
    return make_status(StatusCode::kInvalidArgument, "label dropout must be in [0, 1]");
  if (!(config.min_snr_gamma >= 0.0))
    return make_status(StatusCode::kInvalidArgument, "Min-SNR gamma must be >= 0");
  if (!(config.ema_decay >= 0.0 && config.ema_decay < 1.0))
    return make_status(StatusCode::kInvalidArgument, "EMA decay must be in [0, 1)");
  if (!(config.weight_decay >= 0.0) || !(config.grad_clip_norm >= 0.0) ||
      !(config.min_lr_ratio >= 0.0 && config.min_lr_ratio <= 1.0))
    return make_status(StatusCode::kInvalidArgument, "weight decay, clip norm and min lr ratio must be >= 0");

  const TrainerPlan tp = trainer_plan(desc, config.batch);
  uint8_t* base = nullptr;
  MD_RETURN_IF_ERROR(arena.reserve(tp.plan, &base));
  MD_RETURN_IF_ERROR(build_schedule(schedule, reinterpret_cast<float*>(base + tp.schedule), &schedule_));
  desc_ = desc;
  schedule_desc_ = schedule;
  layout_ = param_layout(desc);
  config_ = config;
  step_ = 0;
  params_ = reinterpret_cast<float*>(base + tp.params);
  grads_ = reinterpret_cast<float*>(base + tp.grads);
  m_ = reinterpret_cast<float*>(base + tp.adam_m);
  v_ = reinterpret_cast<float*>(base + tp.adam_v);
  ema_ = reinterpret_cast<float*>(base + tp.ema);
  x0_ = reinterpret_cast<float*>(base + tp.x0);
  xt_ = reinterpret_cast<float*>(base + tp.xt);
  eps_ = reinterpret_cast<float*>(base + tp.eps);
  t_ = reinterpret_cast<int32_t*>(base + tp.t);
  labels_ = reinterpret_cast<int32_t*>(base + tp.labels);
  bits_ = reinterpret_cast<uint32_t*>(base + tp.bits);
  d_out_ = reinterpret_cast<float*>(base + tp.d_out);
  tape_ = reinterpret_cast<float*>(base + tp.tape);
  scratch_ = reinterpret_cast<float*>(base + tp.scratch);
  history_ = reinterpret_cast<float*>(base + tp.loss_history);
  example_weight_ = reinterpret_cast<float*>(base + tp.weights);
  example_loss_ = example_weight_ + config.batch;
  t_prob_ = example_loss_ + config.batch;
  memset(history_, 0, sizeof(float) * loss_history_floats(desc));
  for (uint32_t b = 0; b < config.batch; ++b) example_weight_[b] = 1.0f;
  // Padding between tensors stays zero so whole-block loops are exact.
  memset(params_, 0, sizeof(float) * layout_.total_floats);
  memset(grads_, 0, sizeof(float) * layout_.total_floats);
  memset(m_, 0, sizeof(float) * layout_.total_floats);
  memset(v_, 0, sizeof(float) * layout_.total_floats);
  memset(ema_, 0, sizeof(float) * layout_.total_floats);
  return Status::Ok();
}

void Trainer::init_parameters(uint64_t seed) {
  for (uint32_t i = 0; i < layout_.n_tensors; ++i) {
    const TensorDesc& td = layout_.tensors[i];
    const LayerDesc& L = desc_.layers[td.layer];
    float* p = params_ + td.offset;
    if (td.role == TensorRole::kTable) {
      if (L.kind == LayerKind::kTimeGate) {
        uniform_fill(seed, RngStream::kInit, i, 0, p, td.count());
      } else {
        gaussian_fill(seed, RngStream::kInit, i, 0, p, td.count());
      }
      continue;
    }
    const float bound = 1.0f / sqrtf(static_cast<float>(L.in));
    uniform_fill(seed, RngStream::kInit, i, 0, p, td.count());
    for (uint32_t j = 0; j < td.count(); ++j) p[j] = (2.0f * p[j] - 1.0f) * bound;
  }
  memcpy(ema_, params_, sizeof(float) * layout_.total_floats);
  memset(m_, 0, sizeof(float) * layout_.total_floats);
  memset(v_, 0, sizeof(float) * layout_.total_floats);
  memset(history_, 0, sizeof(float) * loss_history_floats(desc_));
  step_ = 0;
}

Status Trainer::set_parameters(const float* params, size_t count) {
  if (params == nullptr)
    return make_status(StatusCode::kInvalidArgument,
                       "no f32 parameter block (training starts from f32 weights, not f16 / int8 ones)");
  if (count != layout_.total_floats)
    return make_status(StatusCode::kInvalidArgument, "parameter block size does not match the model",
                       count, layout_.total_floats);
  memcpy(params_, params, sizeof(float) * count);
  memcpy(ema_, params_, sizeof(float) * count);
  memset(m_, 0, sizeof(float) * count);
  memset(v_, 0, sizeof(float) * count);
  step_ = 0;
  return Status::Ok();
}

Model Trainer::model(bool use_ema) const {
  Model m = bind_model(desc_, use_ema ? ema_ : params_);
  m.prediction = config_.prediction;
  return m;
}

double Trainer::learning_rate() const {
  const double s = static_cast<double>(step_);
  double lr = config_.lr;
  if (config_.warmup_steps > 0 && s < config_.warmup_steps) lr *= (s + 1.0) / config_.warmup_steps;
  if (config_.total_steps > 0) {
    const double progress = s >= config_.total_steps ? 1.0 : s / config_.total_steps;
    const double pi = 3.14159265358979323846;
    lr *= config_.min_lr_ratio + (1.0 - config_.min_lr_ratio) * 0.5 * (1.0 + cos(pi * progress));
  }
  return lr;
}

// Nichol & Dhariwal's L_vlb term for one example at index k, scaled as in
// improved-diffusion's hybrid loss (in bits, times T / 1000 = lambda T with
// lambda = 0.001): the KL from q(x_{k-1} | x_k, x_0) to p(x_{k-1} | x_k), or the
// decoder's negative log density at k = 0, with p's mean from the prediction
// under a stop-gradient and log sigma^2 from v. Writes dL/dv (already divided
// by n, as the MSE's gradient is) and returns the term times n, summed over D.
double Trainer::vlb_term(const float* x0, const float* xt, const float* y, int32_t k, float* d_v, size_t n) const {
  const uint32_t D = desc_.D;
  const double weight = config_.vlb_weight * desc_.T / 0.6931471805599453;  // nats -> bits, times lambda T
  const double a = schedule_.sqrt_alpha_bar[k], s = schedule_.sqrt_one_minus_alpha_bar[k];
  const double c1 = schedule_.posterior_mean_coef1[k], c2 = schedule_.posterior_mean_coef2[k];
  const double log_beta = log(static_cast<double>(schedule_.beta[k]));
  const double log_tilde = schedule_.posterior_log_variance_clipped[k];
  const double dlv_dv = 0.5 * (log_beta - log_tilde);
  double total = 0.0;
  for (uint32_t j = 0; j < D; ++j) {
    float eps_hat, x0_hat;
    prediction_to_eps_x0(config_.prediction, y[j], xt[j], static_cast<float>(a), static_cast<float>(s), &eps_hat,
                         &x0_hat);
    const double mean_p = c1 * x0_hat + c2 * xt[j];
    const double lv = learned_log_variance(y[D + j], log_beta, log_tilde);
    const double inv_var = exp(-lv);
    double term, dterm;  // the term and its derivative in lv
    if (k == 0) {
      const double d = x0[j] - mean_p;
      term = 0.5 * (1.8378770664093453 + lv + d * d * inv_var);
      dterm = 0.5 * (1.0 - d * d * inv_var);
    } else {
      const double d = c1 * x0[j] + c2 * xt[j] - mean_p;
      term = 0.5 * (-1.0 + lv - log_tilde + exp(log_tilde - lv) + d * d * inv_var);
      dterm = 0.5 * (1.0 - exp(log_tilde - lv) - d * d * inv_var);
    }
    total += weight * term;
    d_v[j] = static_cast<float>(weight * dterm * dlv_dv / static_cast<double>(n));
  }
  return total;
}

Status Trainer::loss_and_gradients(const float* x0, const int32_t* t, const float* eps, float* loss,
                                   const int32_t* labels) {
  const uint32_t B = config_.batch, D = desc_.D;
  const Prediction pred_kind = config_.prediction;
  if (labels != nullptr)
    for (uint32_t b = 0; b < B; ++b)
      if (labels[b] < 0 || static_cast<uint32_t>(labels[b]) > desc_.n_classes)
        return make_status(StatusCode::kInvalidArgument, "label out of range (row, classes)", b, desc_.n_classes);
  for (uint32_t b = 0; b < B; ++b) {
    if (t[b] < 0 || static_cast<uint32_t>(t[b]) >= desc_.T)
      return make_status(StatusCode::kInvalidArgument, "timestep out of range (row, value)", b,
                         static_cast<uint64_t>(static_cast<int64_t>(t[b])));
    const float a = schedule_.sqrt_alpha_bar[t[b]], s = schedule_.sqrt_one_minus_alpha_bar[t[b]];
    for (uint32_t j = 0; j < D; ++j) {
      const size_t i = static_cast<size_t>(b) * D + j;
      xt_[i] = a * x0[i] + s * eps[i];
      d_out_[i] = prediction_target(pred_kind, x0[i], eps[i], a, s);  // the target, for now
    }
  }
  const Model m = bind_model(desc_, params_);
  model_forward_train(m, xt_, t, B, tape_, labels);
  const float* pred = tape_output(desc_, B, tape_);
  const size_t n = static_cast<size_t>(B) * D;
  const uint32_t W = output_width(desc_);  // D, or 2D: the prediction then v
  const float scale = 2.0f / static_cast<float>(n);
  double sum = 0.0;
  // With a learned variance the target moves out of d_out_, which becomes (B, 2D).
  if (desc_.learned_variance)
    for (uint32_t b = B; b-- > 0;)
      for (uint32_t j = D; j-- > 0;) d_out_[static_cast<size_t>(b) * W + j] = d_out_[static_cast<size_t>(b) * D + j];
  for (uint32_t b = 0; b < B; ++b) {
    float w = 1.0f;
    if (config_.min_snr_gamma > 0.0) {
      const double ab = schedule_.alpha_bar[t[b]], snr = ab / (1.0 - ab);
      const double clipped = snr < config_.min_snr_gamma ? snr : config_.min_snr_gamma;
      w = static_cast<float>(pred_kind == Prediction::kEpsilon ? clipped / snr
                             : pred_kind == Prediction::kX0    ? clipped
                                                               : clipped / (snr + 1.0));
    }
    // Importance sampling: this example counts 1 / (T p_t) (1 otherwise).
    const float iw = example_weight_[b];
    double example = 0.0;
    for (uint32_t j = 0; j < D; ++j) {
      const size_t i = static_cast<size_t>(b) * W + j;
      const float diff = pred[i] - d_out_[i];
      example += static_cast<double>(w) * diff * diff;
      d_out_[i] = scale * iw * w * diff;
    }
    if (desc_.learned_variance) {
      float* d_v = d_out_ + static_cast<size_t>(b) * W + D;
      example += vlb_term(x0 + static_cast<size_t>(b) * D, xt_ + static_cast<size_t>(b) * D,
                          pred + static_cast<size_t>(b) * W, t[b], d_v, n);
      for (uint32_t j = 0; j < D; ++j) d_v[j] *= iw;
    }
    example_loss_[b] = static_cast<float>(example / D);
    sum += iw * example;
  }
  *loss = static_cast<float>(sum / static_cast<double>(n));
  if (!(*loss - *loss == 0.0f))
    return make_status(StatusCode::kNonFinite, "loss is NaN or Inf (step)", step_ + 1);
  memset(grads_, 0, sizeof(float) * layout_.total_floats);
  model_backward(m, t, B, tape_, d_out_, grads_, scratch_, labels);
  return Status::Ok();
}

Status Trainer::apply_gradients() {
  const size_t P = layout_.total_floats;
  // In double over 32 interleaved partial sums in a fixed order (one running
  // sum is a chain of dependent adds): the same bits on every target.
  const double sq = kernels::sum_squares(grads_, P);
  last_grad_norm_ = static_cast<float>(sqrt(sq));
  if (!(last_grad_norm_ - last_grad_norm_ == 0.0f)) {
    // Name the first tensor holding a non-finite gradient; nothing is updated.
    uint32_t bad = 0;
    for (uint32_t i = 0; i < layout_.n_tensors && bad == 0; ++i)
      for (uint32_t j = 0; j < layout_.tensors[i].count(); ++j) {
        const float g = grads_[layout_.tensors[i].offset + j];
        if (!(g - g == 0.0f)) {
          bad = i + 1;
          break;
        }
      }
    return make_status(StatusCode::kNonFinite, "gradients contain NaN or Inf (step, tensor index)", step_ + 1,
                       bad ? bad - 1 : 0);
  }
  if (config_.grad_clip_norm > 0.0) {
    // torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when below 1.
    const float coef = static_cast<float>(config_.grad_clip_norm / (last_grad_norm_ + 1e-6));
    if (coef < 1.0f)
      for (size_t i = 0; i < P; ++i) grads_[i] *= coef;
  }
  const double lr = learning_rate();
  ++step_;
  // torch.optim.Adam / AdamW (single-tensor path), including its rounding:
  // bias corrections in double, moments in float.
  const double bc1 = 1.0 - pow(config_.beta1, static_cast<double>(step_));
  const double bc2 = 1.0 - pow(config_.beta2, static_cast<double>(step_));
  const float step_size = static_cast<float>(lr / bc1);
  const float bc2_sqrt = static_cast<float>(sqrt(bc2));
  const float b1 = static_cast<float>(config_.beta1), b2 = static_cast<float>(config_.beta2);
  const float one_minus_b1 = static_cast<float>(1.0 - config_.beta1);
  const float one_minus_b2 = static_cast<float>(1.0 - config_.beta2);
  const float eps = static_cast<float>(config_.adam_eps);
  const float wd = static_cast<float>(config_.weight_decay);
  const float decay = static_cast<float>(1.0 - lr * config_.weight_decay);
  const bool adamw = config_.decoupled_weight_decay;
  // The same loop, vectorised (bit-identical in every kernel variant).
  const kernels::AdamStep adam{b1, b2, one_minus_b1, one_minus_b2, step_size, bc2_sqrt, eps, wd, decay, adamw};
  kernels::adam_update(params_, m_, v_, grads_, P, adam);
  const float d = static_cast<float>(config_.ema_decay), one_minus_d = static_cast<float>(1.0 - config_.ema_decay);
  kernels::ema_update(ema_, params_, P, d, one_minus_d);
  return Status::Ok();
}

Status Trainer::step_on(const float* x0, const int32_t* t, const float* eps, float* loss, const int32_t* labels) {
  MD_RETURN_IF_ERROR(loss_and_gradients(x0, t, eps, loss, labels));
  return apply_gradients();
}

Status Trainer::step(const float* data, uint32_t rows, float* loss, const int32_t* labels) {
  if (params_ == nullptr) return make_status(StatusCode::kInvalidArgument, "trainer used before init");
  if (data == nullptr || rows == 0) return make_status(StatusCode::kInvalidArgument, "no training data");
  const uint32_t B = config_.batch, D = desc_.D;
  const uint32_t lo = static_cast<uint32_t>(step_), hi = static_cast<uint32_t>(step_ >> 32);
  const uint64_t seed = config_.seed;
  bits_fill(seed, RngStream::kTrainIndex, lo, hi, bits_, B);
  const bool conditional = desc_.n_classes > 0 && labels != nullptr;
  for (uint32_t b = 0; b < B; ++b) {
    const uint32_t row = bounded_from_bits(bits_[b], rows);
    memcpy(x0_ + static_cast<size_t>(b) * D, data + static_cast<size_t>(row) * D, D * sizeof(float));
    labels_[b] = conditional ? labels[row] : static_cast<int32_t>(desc_.n_classes);
  }
  if (conditional) {  // classifier-free guidance: drop labels at random
    bits_fill(seed, RngStream::kTrainLabel, lo, hi, bits_, B);
    for (uint32_t b = 0; b < B; ++b)
      if (uniform_from_bits(bits_[b]) < config_.label_dropout) labels_[b] = static_cast<int32_t>(desc_.n_classes);
  }
  draw_timesteps(seed, lo, hi);
  gaussian_fill(seed, RngStream::kTrainNoise, lo, hi, eps_, static_cast<size_t>(B) * D);
  const Status s = step_on(x0_, t_, eps_, loss, desc_.n_classes > 0 ? labels_ : nullptr);
  if (s.ok() && config_.importance_sampling) record_losses();
  return s;
}

// t uniform, or (importance sampling, once every t has a full loss history)
// from p_t ~ sqrt(mean of its recent squared losses), mixed with 0.001 uniform.
void Trainer::draw_timesteps(uint64_t seed, uint32_t lo, uint32_t hi) {
  const uint32_t B = config_.batch, T = desc_.T;
  bits_fill(seed, RngStream::kTrainTime, lo, hi, bits_, B);
  bool warm = config_.importance_sampling;
  const float* counts = history_ + static_cast<size_t>(T) * kLossHistory;
  for (uint32_t k = 0; warm && k < T; ++k) warm = counts[k] >= static_cast<float>(kLossHistory);
  if (!warm) {
    for (uint32_t b = 0; b < B; ++b) {
      t_[b] = static_cast<int32_t>(bounded_from_bits(bits_[b], T));
      example_weight_[b] = 1.0f;
    }
    return;
  }
  double total = 0.0;
  for (uint32_t k = 0; k < T; ++k) {
    double sq = 0.0;
    for (uint32_t i = 0; i < kLossHistory; ++i) {
      const double l = history_[static_cast<size_t>(k) * kLossHistory + i];
      sq += l * l;
    }
    t_prob_[k] = static_cast<float>(sqrt(sq / kLossHistory));
    total += t_prob_[k];
  }
  constexpr double kUniform = 0.001;
  for (uint32_t k = 0; k < T; ++k)
    t_prob_[k] = static_cast<float>((total > 0.0 ? t_prob_[k] / total : 1.0 / T) * (1.0 - kUniform) + kUniform / T);
  for (uint32_t b = 0; b < B; ++b) {
    // Inverse CDF: the first k whose cumulative probability exceeds u.
    const double u = uniform_from_bits(bits_[b]);
    double c = 0.0;
    uint32_t k = 0;
    for (; k + 1 < T; ++k) {
      c += t_prob_[k];
      if (u < c) break;
    }
    t_[b] = static_cast<int32_t>(k);
    example_weight_[b] = static_cast<float>(1.0 / (static_cast<double>(T) * t_prob_[k]));
  }
}

// The history improved-diffusion keeps: the last kLossHistory losses of each t.
void Trainer::record_losses() {
  const uint32_t T = desc_.T;
  float* counts = history_ + static_cast<size_t>(T) * kLossHistory;
  for (uint32_t b = 0; b < config_.batch; ++b) {
    const uint32_t k = static_cast<uint32_t>(t_[b]);
    float* h = history_ + static_cast<size_t>(k) * kLossHistory;
    if (counts[k] >= static_cast<float>(kLossHistory)) {
      memmove(h, h + 1, sizeof(float) * (kLossHistory - 1));
      h[kLossHistory - 1] = example_loss_[b];
    } else {
      h[static_cast<uint32_t>(counts[k])] = example_loss_[b];
      counts[k] += 1.0f;
    }
  }
}

namespace {
constexpr uint8_t kCheckpointMagic[8] = {'M', 'D', 'C', 'K', 'P', 'T', '0', '1'};
// Trailer field offsets.
enum : size_t {
  kCkStep = 8, kCkFloats = 16, kCkDataCrc = 20, kCkCrcM = 24, kCkCrcV = 28, kCkCrcEma = 32, kCkBatch = 36,
  kCkWarmup = 40, kCkTotal = 44, kCkDecoupled = 48, kCkSeed = 56, kCkLr = 64, kCkBeta1 = 72, kCkBeta2 = 80,
  kCkEps = 88, kCkWd = 96, kCkClip = 104, kCkMinLr = 112, kCkEma = 120, kCkPrediction = 128, kCkMinSnr = 136,
  kCkLabelDropout = 144, kCkVlbWeight = 152, kCkImportance = 160, kCkCrcHistory = 164,
  kCkTrailerCrc = 252,
};

void write_block(uint8_t* out, const float* v, size_t n) {
  for (size_t i = 0; i < n; ++i) le::wrf32(out + 4 * i, v[i]);
}
void read_block(float* v, const uint8_t* in, size_t n) {
  for (size_t i = 0; i < n; ++i) v[i] = le::rdf32(in + 4 * i);
}
}  // namespace

Status Trainer::write_checkpoint(const WeightsMeta& meta_in, uint32_t data_crc, uint8_t* out, size_t capacity,
                                 size_t* written) const {
  if (params_ == nullptr) return make_status(StatusCode::kInvalidArgument, "trainer used before init");
  const size_t total = checkpoint_size();
  if (capacity < total)
    return make_status(StatusCode::kOutOfMemory, "output buffer too small for the checkpoint", total, capacity);
  WeightsMeta meta = meta_in;
  meta.is_ema = 0;
  meta.prediction = config_.prediction;
  meta.weight_dtype = TensorDType::kF32;  // checkpoints keep full precision
  meta.train_steps = static_cast<uint32_t>(step_ > 0xFFFFFFFFull ? 0xFFFFFFFFull : step_);
  size_t n = 0;
  MD_RETURN_IF_ERROR(write_weights(desc_, schedule_desc_, meta, params_, out, capacity, &n));
  const size_t P = layout_.total_floats;
  uint8_t* tr = out + n;
  memset(tr, 0, kCheckpointTrailerBytes);
  memcpy(tr, kCheckpointMagic, 8);
  uint8_t* blocks = tr + kCheckpointTrailerBytes;
  write_block(blocks, m_, P);
  write_block(blocks + 4 * P, v_, P);
  write_block(blocks + 8 * P, ema_, P);
  const size_t H = loss_history_floats(desc_);
  write_block(blocks + 12 * P, history_, H);
  le::wr32(tr + kCkCrcHistory, crc32(blocks + 12 * P, 4 * H));
  le::wrf64(tr + kCkVlbWeight, config_.vlb_weight);
  le::wr32(tr + kCkImportance, config_.importance_sampling ? 1 : 0);
  le::wr64(tr + kCkStep, step_);
  le::wr32(tr + kCkFloats, static_cast<uint32_t>(P));
  le::wr32(tr + kCkDataCrc, data_crc);
  le::wr32(tr + kCkCrcM, crc32(blocks, 4 * P));
  le::wr32(tr + kCkCrcV, crc32(blocks + 4 * P, 4 * P));
  le::wr32(tr + kCkCrcEma, crc32(blocks + 8 * P, 4 * P));
  le::wr32(tr + kCkBatch, config_.batch);
  le::wr32(tr + kCkWarmup, config_.warmup_steps);
  le::wr32(tr + kCkTotal, config_.total_steps);
  le::wr32(tr + kCkDecoupled, config_.decoupled_weight_decay ? 1 : 0);
  le::wr64(tr + kCkSeed, config_.seed);
  le::wrf64(tr + kCkLr, config_.lr);
  le::wrf64(tr + kCkBeta1, config_.beta1);
  le::wrf64(tr + kCkBeta2, config_.beta2);
  le::wrf64(tr + kCkEps, config_.adam_eps);
  le::wrf64(tr + kCkWd, config_.weight_decay);
  le::wrf64(tr + kCkClip, config_.grad_clip_norm);
  le::wrf64(tr + kCkMinLr, config_.min_lr_ratio);
  le::wrf64(tr + kCkEma, config_.ema_decay);
  le::wr32(tr + kCkPrediction, static_cast<uint32_t>(config_.prediction));
  le::wrf64(tr + kCkMinSnr, config_.min_snr_gamma);
  le::wrf64(tr + kCkLabelDropout, config_.label_dropout);
  le::wr32(tr + kCkTrailerCrc, crc32(tr, kCkTrailerCrc));
  *written = total;
  return Status::Ok();
}

Status Trainer::restore_checkpoint(const void* data, size_t size, uint32_t data_crc) {
  if (params_ == nullptr) return make_status(StatusCode::kInvalidArgument, "trainer used before init");
  LoadedWeights w;
  MD_RETURN_IF_ERROR(load_weights(data, size, &w));
  const uint8_t* p = static_cast<const uint8_t*>(data);
  // The embedded weight file must describe exactly this trainer's model and schedule.
  bool same_model = w.model.desc.D == desc_.D && w.model.desc.T == desc_.T && w.model.desc.n_layers == desc_.n_layers &&
                    w.model.desc.n_classes == desc_.n_classes;
  for (uint32_t l = 0; same_model && l < desc_.n_layers; ++l)
    same_model = memcmp(&w.model.desc.layers[l], &desc_.layers[l], sizeof(LayerDesc)) == 0;
  if (!same_model) return make_status(StatusCode::kInvalidArgument, "checkpoint holds a different model");
  if (!same_schedule(w.schedule, schedule_desc_))
    return make_status(StatusCode::kInvalidArgument, "checkpoint was made with a different noise schedule");
  const size_t P = layout_.total_floats;
  const size_t need = checkpoint_size();
  if (w.file_bytes != weights_file_bytes(desc_, schedule_desc_) || size < need)
    return make_status(StatusCode::kTruncated, "checkpoint is truncated (needed, have)", need, size);
  const uint8_t* tr = p + w.file_bytes;
  if (memcmp(tr, kCheckpointMagic, 8) != 0)
    return make_status(StatusCode::kBadFormat, "not a checkpoint (a plain weight file has no optimizer state)");
  if (le::rd32(tr + kCkTrailerCrc) != crc32(tr, kCkTrailerCrc))
    return make_status(StatusCode::kChecksumMismatch, "checkpoint trailer checksum mismatch");
  if (le::rd32(tr + kCkFloats) != P)
    return make_status(StatusCode::kBadFormat, "checkpoint parameter count differs", le::rd32(tr + kCkFloats), P);
  struct Field { const char* what; bool same; };
  const Field fields[] = {
      {"checkpoint was made with different training data", le::rd32(tr + kCkDataCrc) == data_crc},
      {"checkpoint was made with a different --batch", le::rd32(tr + kCkBatch) == config_.batch},
      {"checkpoint was made with a different --warmup", le::rd32(tr + kCkWarmup) == config_.warmup_steps},
      {"checkpoint was made with a different number of --steps (cosine horizon)", le::rd32(tr + kCkTotal) == config_.total_steps},
      {"checkpoint was made with a different optimizer (Adam vs AdamW)",
       le::rd32(tr + kCkDecoupled) == (config_.decoupled_weight_decay ? 1u : 0u)},
      {"checkpoint was made with a different --seed", le::rd64(tr + kCkSeed) == config_.seed},
      {"checkpoint was made with a different --lr", le::rdf64(tr + kCkLr) == config_.lr},
      {"checkpoint was made with different Adam betas",
       le::rdf64(tr + kCkBeta1) == config_.beta1 && le::rdf64(tr + kCkBeta2) == config_.beta2},
      {"checkpoint was made with a different Adam eps", le::rdf64(tr + kCkEps) == config_.adam_eps},
      {"checkpoint was made with a different --weight-decay", le::rdf64(tr + kCkWd) == config_.weight_decay},
      {"checkpoint was made with a different --clip", le::rdf64(tr + kCkClip) == config_.grad_clip_norm},
      {"checkpoint was made with a different minimum learning rate", le::rdf64(tr + kCkMinLr) == config_.min_lr_ratio},
      {"checkpoint was made with a different --ema", le::rdf64(tr + kCkEma) == config_.ema_decay},
      {"checkpoint was made with a different --prediction",
       le::rd32(tr + kCkPrediction) == static_cast<uint32_t>(config_.prediction)},
      {"checkpoint was made with a different --min-snr", le::rdf64(tr + kCkMinSnr) == config_.min_snr_gamma},
      {"checkpoint was made with a different --label-dropout", le::rdf64(tr + kCkLabelDropout) == config_.label_dropout},
      {"checkpoint was made with a different --vlb-weight", le::rdf64(tr + kCkVlbWeight) == config_.vlb_weight},
      {"checkpoint was made with importance sampling on or off differently",
       le::rd32(tr + kCkImportance) == (config_.importance_sampling ? 1u : 0u)},
  };
  for (const Field& f : fields)
    if (!f.same) return make_status(StatusCode::kInvalidArgument, f.what);
  const uint8_t* blocks = tr + kCheckpointTrailerBytes;
  if (crc32(blocks, 4 * P) != le::rd32(tr + kCkCrcM) || crc32(blocks + 4 * P, 4 * P) != le::rd32(tr + kCkCrcV) ||
      crc32(blocks + 8 * P, 4 * P) != le::rd32(tr + kCkCrcEma))
    return make_status(StatusCode::kChecksumMismatch, "checkpoint optimizer state checksum mismatch");
  const size_t H = loss_history_floats(desc_);
  if (crc32(blocks + 12 * P, 4 * H) != le::rd32(tr + kCkCrcHistory))
    return make_status(StatusCode::kChecksumMismatch, "checkpoint loss history checksum mismatch");
  // The weights were validated by load_weights; tensor padding stays zero.
  for (uint32_t i = 0; i < layout_.n_tensors; ++i)
    memcpy(params_ + layout_.tensors[i].offset, w.model.tensors[i], 4 * layout_.tensors[i].count());
  read_block(m_, blocks, P);
  read_block(v_, blocks + 4 * P, P);
  read_block(ema_, blocks + 8 * P, P);
  read_block(history_, blocks + 12 * P, H);
  step_ = le::rd64(tr + kCkStep);
  return Status::Ok();
}

}  // namespace md
