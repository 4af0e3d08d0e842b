#include "microdiffusion/train.h"

#include <math.h>
#include <string.h>

#include "microdiffusion/rng.h"

namespace md {

Status Trainer::init(const ModelDesc& desc, const ScheduleDesc& schedule, const TrainConfig& config,
                     Arena& arena) {
  MD_RETURN_IF_ERROR(validate_model(desc));
  MD_RETURN_IF_ERROR(validate_schedule(schedule));
  if (schedule.T != desc.T)
    return make_status(StatusCode::kInvalidArgument, "schedule T differs from model T", schedule.T, desc.T);
  if (config.batch < 1 || config.batch > (1u << 20))
    return make_status(StatusCode::kInvalidArgument, "batch must be in [1, 2^20]", config.batch, 1u << 20);
  if (!(config.lr > 0.0 && config.lr < 10.0))
    return make_status(StatusCode::kInvalidArgument, "learning rate must be in (0, 10)");
  if (!(config.beta1 >= 0.0 && config.beta1 < 1.0 && config.beta2 >= 0.0 && config.beta2 < 1.0 &&
        config.adam_eps > 0.0))
    return make_status(StatusCode::kInvalidArgument, "Adam needs 0 <= beta1, beta2 < 1 and eps > 0");
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
  bits_ = reinterpret_cast<uint32_t*>(base + tp.bits);
  d_out_ = reinterpret_cast<float*>(base + tp.d_out);
  tape_ = reinterpret_cast<float*>(base + tp.tape);
  scratch_ = reinterpret_cast<float*>(base + tp.scratch);
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
  step_ = 0;
}

Status Trainer::set_parameters(const float* params, size_t count) {
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

Model Trainer::model(bool use_ema) const { return bind_model(desc_, use_ema ? ema_ : params_); }

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

Status Trainer::loss_and_gradients(const float* x0, const int32_t* t, const float* eps, float* loss) {
  const uint32_t B = config_.batch, D = desc_.D;
  for (uint32_t b = 0; b < B; ++b) {
    if (t[b] < 0 || static_cast<uint32_t>(t[b]) >= desc_.T)
      return make_status(StatusCode::kInvalidArgument, "timestep out of range (row, value)", b,
                         static_cast<uint64_t>(static_cast<int64_t>(t[b])));
    const float a = schedule_.sqrt_alpha_bar[t[b]], s = schedule_.sqrt_one_minus_alpha_bar[t[b]];
    for (uint32_t j = 0; j < D; ++j) {
      const size_t i = static_cast<size_t>(b) * D + j;
      xt_[i] = a * x0[i] + s * eps[i];
    }
  }
  const Model m = bind_model(desc_, params_);
  model_forward_train(m, xt_, t, B, tape_);
  const float* pred = tape_output(desc_, B, tape_);
  const size_t n = static_cast<size_t>(B) * D;
  const float scale = 2.0f / static_cast<float>(n);
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const float diff = pred[i] - eps[i];
    sum += static_cast<double>(diff) * diff;
    d_out_[i] = scale * diff;
  }
  *loss = static_cast<float>(sum / static_cast<double>(n));
  if (!(*loss - *loss == 0.0f))
    return make_status(StatusCode::kNonFinite, "loss is NaN or Inf (step)", step_);
  memset(grads_, 0, sizeof(float) * layout_.total_floats);
  model_backward(m, t, B, tape_, d_out_, grads_, scratch_);
  return Status::Ok();
}

Status Trainer::apply_gradients() {
  const size_t P = layout_.total_floats;
  double sq = 0.0;
  for (size_t i = 0; i < P; ++i) sq += static_cast<double>(grads_[i]) * grads_[i];
  last_grad_norm_ = static_cast<float>(sqrt(sq));
  if (!(last_grad_norm_ - last_grad_norm_ == 0.0f))
    return make_status(StatusCode::kNonFinite, "gradients contain NaN or Inf (step)", step_);
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
  for (size_t i = 0; i < P; ++i) {
    float g = grads_[i];
    if (adamw) {
      params_[i] *= decay;
    } else if (wd != 0.0f) {
      g += wd * params_[i];
    }
    m_[i] = m_[i] * b1 + one_minus_b1 * g;
    v_[i] = v_[i] * b2 + one_minus_b2 * g * g;
    const float denom = sqrtf(v_[i]) / bc2_sqrt + eps;
    params_[i] -= step_size * (m_[i] / denom);
  }
  const float d = static_cast<float>(config_.ema_decay), one_minus_d = static_cast<float>(1.0 - config_.ema_decay);
  for (size_t i = 0; i < P; ++i) ema_[i] = d * ema_[i] + one_minus_d * params_[i];
  return Status::Ok();
}

Status Trainer::step_on(const float* x0, const int32_t* t, const float* eps, float* loss) {
  MD_RETURN_IF_ERROR(loss_and_gradients(x0, t, eps, loss));
  return apply_gradients();
}

Status Trainer::step(const float* data, uint32_t rows, float* loss) {
  if (params_ == nullptr) return make_status(StatusCode::kInvalidArgument, "trainer used before init");
  if (data == nullptr || rows == 0) return make_status(StatusCode::kInvalidArgument, "no training data");
  const uint32_t B = config_.batch, D = desc_.D;
  const uint32_t lo = static_cast<uint32_t>(step_), hi = static_cast<uint32_t>(step_ >> 32);
  const uint64_t seed = config_.seed;
  bits_fill(seed, RngStream::kTrainIndex, lo, hi, bits_, B);
  for (uint32_t b = 0; b < B; ++b)
    memcpy(x0_ + static_cast<size_t>(b) * D, data + static_cast<size_t>(bounded_from_bits(bits_[b], rows)) * D,
           D * sizeof(float));
  bits_fill(seed, RngStream::kTrainTime, lo, hi, bits_, B);
  for (uint32_t b = 0; b < B; ++b) t_[b] = static_cast<int32_t>(bounded_from_bits(bits_[b], desc_.T));
  gaussian_fill(seed, RngStream::kTrainNoise, lo, hi, eps_, static_cast<size_t>(B) * D);
  return step_on(x0_, t_, eps_, loss);
}

}  // namespace md
