// Training (Ho et al. 2020, Algorithm 1) with Adam/AdamW and an EMA of the
// weights, entirely inside the arena:
//   t ~ U{0..T-1}, eps ~ N(0, I), x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps
//   L_simple = mean over batch and dimensions of (eps - eps_theta(x_t, t))^2
// (PyTorch's F.mse_loss with its default mean reduction). The target is eps,
// x_0 or v by TrainConfig::prediction; Min-SNR-gamma weights each example by
// min(SNR, gamma) / SNR (eps), min(SNR, gamma) (x_0) or min(SNR, gamma) / (SNR + 1) (v).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "microdiffusion/arena.h"
#include "microdiffusion/model.h"
#include "microdiffusion/schedule.h"
#include "microdiffusion/weights.h"

namespace md {

struct TrainConfig {
  uint32_t batch = 256;
  // Doubles, as PyTorch's Python floats: the bias corrections use them directly.
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999, adam_eps = 1e-8;
  double weight_decay = 0.0;
  bool decoupled_weight_decay = false;  // true: AdamW; false: Adam (L2 added to the gradient)
  double grad_clip_norm = 0.0;         // 0: off; else torch.nn.utils.clip_grad_norm_
  uint32_t warmup_steps = 0;            // linear warmup from lr/warmup to lr
  uint32_t total_steps = 0;             // cosine decay over this many steps (0: constant lr)
  double min_lr_ratio = 0.0;          // cosine floor as a fraction of lr
  double ema_decay = 0.995;
  Prediction prediction = Prediction::kEpsilon;  // what the network learns to output
  double min_snr_gamma = 0.0;  // > 0: Min-SNR-gamma loss weights (Hang et al. 2023)
  // Models with a learned variance (ModelDesc::learned_variance) train on the
  // hybrid loss L_simple + vlb_weight * L_vlb (Nichol & Dhariwal: 0.001); the
  // L_vlb term sees the mean through a stop-gradient and teaches only v.
  double vlb_weight = 0.001;
  // Importance sampling of t (improved-diffusion's LossSecondMomentResampler):
  // once every t has kLossHistory losses, draw t with probability proportional
  // to sqrt(E[loss_t^2]) (mixed with 0.001 uniform) and weight each example's
  // loss by 1 / (T p_t), which keeps the objective unbiased.
  bool importance_sampling = false;
  double label_dropout = 0.1;  // conditional models: chance a label is replaced by "no label"           // 0: EMA equals the weights
  uint64_t seed = 0;
};

struct TrainerPlan {
  Plan plan;
  size_t schedule = 0, params = 0, grads = 0, adam_m = 0, adam_v = 0, ema = 0;
  size_t x0 = 0, xt = 0, eps = 0, t = 0, labels = 0, bits = 0, d_out = 0, tape = 0, scratch = 0;
  size_t loss_history = 0, weights = 0;
};

// Importance sampling keeps this many recent losses per timestep.
constexpr uint32_t kLossHistory = 10;
// Per timestep: kLossHistory losses and a count (always in checkpoints).
constexpr size_t loss_history_floats(const ModelDesc& d) { return static_cast<size_t>(d.T) * (kLossHistory + 1); }

constexpr TrainerPlan trainer_plan(const ModelDesc& d, uint32_t batch) {
  TrainerPlan s;
  const size_t P = param_layout(d).total_floats;
  const size_t BD = static_cast<size_t>(batch) * d.D;
  s.schedule = plan_schedule(s.plan, d.T);
  s.params = s.plan.take_array<float>(P);
  s.grads = s.plan.take_array<float>(P);
  s.adam_m = s.plan.take_array<float>(P);
  s.adam_v = s.plan.take_array<float>(P);
  s.ema = s.plan.take_array<float>(P);
  s.x0 = s.plan.take_array<float>(BD);
  s.xt = s.plan.take_array<float>(BD);
  s.eps = s.plan.take_array<float>(BD);
  s.t = s.plan.take_array<int32_t>(batch);
  s.labels = s.plan.take_array<int32_t>(batch);
  s.bits = s.plan.take_array<uint32_t>(batch);
  s.d_out = s.plan.take_array<float>(static_cast<size_t>(batch) * output_width(d));
  s.tape = s.plan.take_array<float>(tape_layout(d, batch).total_floats);
  s.scratch = s.plan.take_array<float>(backward_scratch_floats(d, batch));
  s.loss_history = s.plan.take_array<float>(loss_history_floats(d));
  s.weights = s.plan.take_array<float>(2 * static_cast<size_t>(batch) + d.T);  // example weights, losses; p_t
  return s;
}

// Arena bytes a Trainer needs for `desc` at `batch` (any buffer alignment).
constexpr size_t training_arena_bytes(const ModelDesc& d, uint32_t batch) {
  return arena_bytes_for(trainer_plan(d, batch).plan);
}

// A checkpoint holds everything a bit-identical resume needs: a .mdw file of
// the raw weights, then a trailer (step, training settings, a fingerprint of
// the data) and the Adam moments and EMA, each CRC-checked. The random
// generator is counter-based, so (seed, step) is its whole state.
constexpr size_t kCheckpointTrailerBytes = 256;
constexpr size_t checkpoint_bytes(const ModelDesc& d, uint32_t n_betas = 0) {
  return weights_file_bytes(d, TensorDType::kF32, n_betas) + kCheckpointTrailerBytes + 3 * sizeof(float) * static_cast<size_t>(param_layout(d).total_floats) +
         sizeof(float) * loss_history_floats(d);
}

class Trainer {
 public:
  Status init(const ModelDesc& desc, const ScheduleDesc& schedule, const TrainConfig& config,
              Arena& arena);

  // PyTorch's default initialisation from the portable generator: Linear
  // weights and biases U(-1/sqrt(in), 1/sqrt(in)), time-gate tables U[0, 1),
  // additive time tables N(0, 1). Resets the optimizer; EMA = weights.
  void init_parameters(uint64_t seed);
  // Copy a flat parameter block (param_layout order); resets the optimizer.
  Status set_parameters(const float* params, size_t count);

  // One step of Algorithm 1 on a minibatch drawn from `data` (rows x D).
  // A conditional model takes each row's class from `labels` (rows), each
  // replaced by "no label" with probability label_dropout; without labels
  // every example is unlabelled.
  Status step(const float* data, uint32_t rows, float* loss, const int32_t* labels = nullptr);
  // One step on a given minibatch: x0 (B, D), t (B), eps (B, D), labels (B, optional).
  Status step_on(const float* x0, const int32_t* t, const float* eps, float* loss,
                 const int32_t* labels = nullptr);

  // The pieces of a step, for tests: loss and gradients (grads overwritten),
  // then clip + optimizer + EMA.
  Status loss_and_gradients(const float* x0, const int32_t* t, const float* eps, float* loss,
                            const int32_t* labels = nullptr);
  Status apply_gradients();

  // The last step's timesteps (B), each example's loss weight (B: 1 / (T p_t)
  // with importance sampling, else 1) and the distribution t was drawn from
  // (T; meaningful once importance sampling has taken over): for tests and monitoring.
  const int32_t* last_timesteps() const { return t_; }
  const float* last_example_weights() const { return example_weight_; }
  const float* timestep_probabilities() const { return t_prob_; }

  // The learning rate the next update uses.
  double learning_rate() const;
  // Global norm of the last gradients before clipping.
  float last_grad_norm() const { return last_grad_norm_; }

  // Save / restore the whole training state. `data_crc` fingerprints the
  // training data (md::crc32 of its floats); restore refuses a checkpoint made
  // with another model, schedule, settings or data, naming what differs.
  Status write_checkpoint(const WeightsMeta& meta, uint32_t data_crc, uint8_t* out, size_t capacity,
                          size_t* written) const;
  Status restore_checkpoint(const void* data, size_t size, uint32_t data_crc);
  // Bytes write_checkpoint writes for this trainer's model and schedule.
  size_t checkpoint_size() const { return checkpoint_bytes(desc_, stored_beta_count(schedule_desc_)); }

  Model model(bool use_ema) const;
  const ModelDesc& desc() const { return desc_; }
  const Schedule& schedule() const { return schedule_; }
  // As given to init (a custom schedule's betas stay the caller's: they must
  // outlive the trainer, which writes them into weight files and checkpoints).
  const ScheduleDesc& schedule_desc() const { return schedule_desc_; }
  const TrainConfig& config() const { return config_; }
  uint32_t param_floats() const { return layout_.total_floats; }
  uint64_t steps_done() const { return step_; }
  float* params() { return params_; }
  const float* params() const { return params_; }
  const float* grads() const { return grads_; }
  const float* ema() const { return ema_; }
  const float* adam_m() const { return m_; }
  const float* adam_v() const { return v_; }

 private:
  double vlb_term(const float* x0, const float* xt, const float* y, int32_t k, float* d_v, size_t n) const;
  ModelDesc desc_;
  ScheduleDesc schedule_desc_;
  ParamLayout layout_;
  Schedule schedule_;
  TrainConfig config_;
  uint64_t step_ = 0;
  float last_grad_norm_ = 0.0f;
  float* params_ = nullptr;
  float* grads_ = nullptr;
  float* m_ = nullptr;
  float* v_ = nullptr;
  float* ema_ = nullptr;
  float* x0_ = nullptr;
  float* xt_ = nullptr;
  float* eps_ = nullptr;
  int32_t* t_ = nullptr;
  int32_t* labels_ = nullptr;
  uint32_t* bits_ = nullptr;
  float* d_out_ = nullptr;
  float* tape_ = nullptr;
  float* scratch_ = nullptr;
  float* history_ = nullptr;        // T x kLossHistory losses, then T counts (as floats)
  float* example_weight_ = nullptr;  // B: 1 / (T p_t), or 1
  float* example_loss_ = nullptr;    // B: each example's unweighted loss
  float* t_prob_ = nullptr;          // T: the current p_t
  void draw_timesteps(uint64_t seed, uint32_t lo, uint32_t hi);
  void record_losses();
};

}  // namespace md
