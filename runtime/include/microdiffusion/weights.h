// The .mdw weight file: a header, the layer list, the schedule and the tensor
// table, then the tensors, each 64-byte aligned, checked by CRC-32. The
// runtime reads it in place from any byte buffer (a const array in flash, a
// mapped file) without copying weights. Specification: weights/FORMAT.md.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "microdiffusion/model.h"
#include "microdiffusion/schedule.h"
#include "microdiffusion/status.h"

namespace md {

constexpr uint8_t kWeightsMagic[8] = {'M', 'D', 'I', 'F', 'F', 'W', 'T', 'S'};
constexpr uint16_t kWeightsVersionMajor = 1;
// 1.1 adds the custom schedule's beta list; writers write 1.0 when the file
// holds none, so files without one stay readable by 1.0 readers byte for byte.
constexpr uint16_t kWeightsVersionMinor = 1;
constexpr size_t kWeightsFixedHeaderBytes = 128;
constexpr size_t kWeightsLayerRecordBytes = 32;
constexpr size_t kWeightsTensorRecordBytes = 32;


// What the file says about how its weights were made and should be sampled.
struct WeightsMeta {
  Prediction prediction = Prediction::kEpsilon;
  Variance variance = Variance::kFixedSmall;  // default sampler variance
  uint32_t is_ema = 1;                        // 1: the weights are the EMA copy
  uint32_t train_steps = 0;                   // informational
  char dataset[32] = {};                      // training data name, NUL-padded (informational)
  // Writing: how weight matrices are stored (biases and tables stay f32).
  // Reading: the weight matrices' dtype (f32 unless the file holds f16 / int8 ones).
  TensorDType weight_dtype = TensorDType::kF32;
};

// A weight file bound in place: the tensor pointers point into the buffer.
struct LoadedWeights {
  uint16_t version_major = 0, version_minor = 0;
  uint64_t file_bytes = 0;
  uint32_t header_bytes = 0;
  ScheduleDesc schedule;
  WeightsMeta meta;
  Model model;
};

// n_betas: the floats of beta list the schedule stores (stored_beta_count).
constexpr size_t weights_header_bytes(const ModelDesc& d, uint32_t n_betas = 0) {
  return align_up(kWeightsFixedHeaderBytes + kWeightsLayerRecordBytes * d.n_layers +
                  kWeightsTensorRecordBytes * param_layout(d).n_tensors + sizeof(float) * static_cast<size_t>(n_betas));
}
// How a tensor is stored when the weight matrices are `weight_dtype`.
constexpr TensorDType stored_dtype(const TensorDesc& t, TensorDType weight_dtype) {
  return t.role == TensorRole::kWeight ? weight_dtype : TensorDType::kF32;
}
// File size: the header, then each tensor 64-byte aligned. With f32 weights
// the tensor region is exactly the flat parameter block (param_layout).
constexpr size_t weights_file_bytes(const ModelDesc& d, TensorDType weight_dtype = TensorDType::kF32,
                                    uint32_t n_betas = 0) {
  const ParamLayout p = param_layout(d);
  size_t bytes = weights_header_bytes(d, n_betas);
  for (uint32_t i = 0; i < p.n_tensors; ++i)
    bytes += align_up(tensor_storage_bytes(stored_dtype(p.tensors[i], weight_dtype), p.tensors[i].rows,
                                           p.tensors[i].cols));
  return bytes;
}
// The same for the schedule the file will hold.
constexpr size_t weights_file_bytes(const ModelDesc& d, const ScheduleDesc& s,
                                    TensorDType weight_dtype = TensorDType::kF32) {
  return weights_file_bytes(d, weight_dtype, stored_beta_count(s));
}
// Write a weight file for `desc` whose parameters are the flat block `params`
// (param_layout order) into `out`, weight matrices as meta.weight_dtype (f16:
// round to nearest even, refused past 65504; int8: per output column, scale =
// max |w| / 127, q = round(w / scale)). Refuses NaN/Inf weights.
Status write_weights(const ModelDesc& desc, const ScheduleDesc& schedule, const WeightsMeta& meta,
                     const float* params, uint8_t* out, size_t capacity, size_t* written);

// Validate `data` (magic, version, sizes, layer list, tensor table, CRCs,
// finite values) and bind a Model to it in place (a custom schedule's betas
// too: LoadedWeights::schedule.betas points into `data`). `data` must stay
// alive and be 4-byte aligned (64-byte for aligned tensors). *out is filled in
// place (no LoadedWeights on load_weights' own stack); after a failure its
// contents are unspecified.
Status load_weights(const void* data, size_t size, LoadedWeights* out);

// CRC-32 (IEEE 802.3, as zlib): crc32(data, n, 0) of "123456789" is 0xCBF43926.
uint32_t crc32(const void* data, size_t n, uint32_t crc = 0);

}  // namespace md
