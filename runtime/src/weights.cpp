#include "microdiffusion/weights.h"

#include "kernels/half.h"

#include <math.h>
#include <string.h>

#include <new>

namespace md {
namespace {

// CRC-32 a nibble at a time: a 16-entry table (64 bytes of flash instead of
// the byte-wise table's 1 KiB); two lookups per byte.
struct Crc32Table {
  uint32_t v[16];
  constexpr Crc32Table() : v() {
    for (uint32_t i = 0; i < 16; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 4; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      v[i] = c;
    }
  }
};
constexpr Crc32Table kCrcTable;

// Little-endian field access, independent of host byte order and alignment.
inline uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
inline uint32_t rd32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
inline uint64_t rd64(const uint8_t* p) { return rd32(p) | (static_cast<uint64_t>(rd32(p + 4)) << 32); }
inline float rdf32(const uint8_t* p) {
  const uint32_t u = rd32(p);
  float f;
  memcpy(&f, &u, 4);
  return f;
}
inline void wr16(uint8_t* p, uint16_t v) { p[0] = static_cast<uint8_t>(v); p[1] = static_cast<uint8_t>(v >> 8); }
inline void wr32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline void wr64(uint8_t* p, uint64_t v) { wr32(p, static_cast<uint32_t>(v)); wr32(p + 4, static_cast<uint32_t>(v >> 32)); }
inline void wrf32(uint8_t* p, float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  wr32(p, u);
}
inline bool finite(float f) { return f - f == 0.0f; }

// Fixed header field offsets (weights/FORMAT.md).
enum : size_t {
  kOffMagic = 0, kOffMajor = 8, kOffMinor = 10, kOffHeaderBytes = 12, kOffFileBytes = 16,
  kOffD = 24, kOffT = 28, kOffLayers = 32, kOffTensors = 36, kOffSchedKind = 40, kOffSchedT = 44,
  kOffBetaStart = 48, kOffBetaEnd = 52, kOffCosineS = 56, kOffMaxBeta = 60, kOffPrediction = 64,
  kOffVariance = 68, kOffIsEma = 72, kOffTrainSteps = 76, kOffDataset = 80, kOffClasses = 112,
  kOffHeaderCrc = 124,
};

// The header CRC covers the fixed header before its CRC field and the layer
// and tensor tables.
uint32_t header_crc(const uint8_t* p, size_t tables_end) {
  uint32_t c = crc32(p, kOffHeaderCrc, 0);
  return crc32(p + kWeightsFixedHeaderBytes, tables_end - kWeightsFixedHeaderBytes, c);
}

}  // namespace

uint32_t crc32(const void* data, size_t n, uint32_t crc) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    crc = kCrcTable.v[crc & 0xFu] ^ (crc >> 4);
    crc = kCrcTable.v[crc & 0xFu] ^ (crc >> 4);
  }
  return ~crc;
}

Status write_weights(const ModelDesc& desc, const ScheduleDesc& schedule, const WeightsMeta& meta,
                     const float* params, uint8_t* out, size_t capacity, size_t* written) {
  MD_RETURN_IF_ERROR(validate_model(desc));
  MD_RETURN_IF_ERROR(validate_schedule(schedule));
  if (schedule.T != desc.T)
    return make_status(StatusCode::kInvalidArgument, "schedule T differs from model T", schedule.T, desc.T);
  if (static_cast<uint32_t>(meta.variance) >= kVarianceCount ||
      (meta.variance == Variance::kLearnedRange && !desc.learned_variance))
    return make_status(StatusCode::kInvalidArgument, "a learned variance needs a network with 2D outputs");
  if (static_cast<uint32_t>(meta.weight_dtype) >= kTensorDTypeCount)
    return make_status(StatusCode::kInvalidArgument, "unknown weight dtype", static_cast<uint32_t>(meta.weight_dtype));
  const uint32_t n_betas = stored_beta_count(schedule);
  const size_t header = weights_header_bytes(desc, n_betas);
  const size_t total = weights_file_bytes(desc, meta.weight_dtype, n_betas);
  if (capacity < total)
    return make_status(StatusCode::kOutOfMemory, "output buffer too small for the weight file", total, capacity);
  const ParamLayout layout = param_layout(desc);
  for (uint32_t i = 0; i < layout.n_tensors; ++i) {
    const TensorDesc& t = layout.tensors[i];
    for (uint32_t j = 0; j < t.count(); ++j)
      if (!finite(params[t.offset + j]))
        return make_status(StatusCode::kNonFinite, "weights contain NaN or Inf (tensor index, element)", i, j);
  }
  memset(out, 0, total);
  memcpy(out + kOffMagic, kWeightsMagic, 8);
  wr16(out + kOffMajor, kWeightsVersionMajor);
  wr16(out + kOffMinor, n_betas ? kWeightsVersionMinor : 0);
  wr32(out + kOffHeaderBytes, static_cast<uint32_t>(header));
  wr64(out + kOffFileBytes, total);
  wr32(out + kOffD, desc.D);
  wr32(out + kOffT, desc.T);
  wr32(out + kOffClasses, desc.n_classes);
  wr32(out + kOffLayers, desc.n_layers);
  wr32(out + kOffTensors, layout.n_tensors);
  wr32(out + kOffSchedKind,
       static_cast<uint32_t>(schedule.kind) | (schedule.zero_terminal_snr ? kScheduleZeroTerminalSnrBit : 0u));
  wr32(out + kOffSchedT, schedule.T);
  wrf32(out + kOffBetaStart, schedule.beta_start);
  wrf32(out + kOffBetaEnd, schedule.beta_end);
  wrf32(out + kOffCosineS, schedule.cosine_s);
  wrf32(out + kOffMaxBeta, schedule.max_beta);
  wr32(out + kOffPrediction, static_cast<uint32_t>(meta.prediction));
  // A learned variance is a property of the network (its 2D outputs).
  wr32(out + kOffVariance, desc.learned_variance ? static_cast<uint32_t>(Variance::kLearnedRange)
                                                 : static_cast<uint32_t>(meta.variance));
  wr32(out + kOffIsEma, meta.is_ema);
  wr32(out + kOffTrainSteps, meta.train_steps);
  memcpy(out + kOffDataset, meta.dataset, sizeof(meta.dataset) - 1);  // always NUL-terminated

  uint8_t* rec = out + kWeightsFixedHeaderBytes;
  for (uint32_t l = 0; l < desc.n_layers; ++l, rec += kWeightsLayerRecordBytes) {
    const LayerDesc& L = desc.layers[l];
    wr32(rec + 0, static_cast<uint32_t>(L.kind));
    wr32(rec + 4, L.in);
    wr32(rec + 8, L.out);
    wr32(rec + 12, static_cast<uint32_t>(L.act));
    wr32(rec + 16, L.x_raw);
    wr32(rec + 20, L.x_sin_dim);
    wr32(rec + 24, L.t_sin_dim);
    wrf32(rec + 28, L.x_scale);
  }
  size_t offset = header;
  for (uint32_t i = 0; i < layout.n_tensors; ++i, rec += kWeightsTensorRecordBytes) {
    const TensorDesc& t = layout.tensors[i];
    const TensorDType dtype = stored_dtype(t, meta.weight_dtype);
    const size_t nbytes = tensor_storage_bytes(dtype, t.rows, t.cols);
    uint8_t* dst = out + offset;
    const float* src = params + t.offset;
    if (dtype == TensorDType::kF16) {
      for (uint32_t j = 0; j < t.count(); ++j) {
        const uint16_t h = kernels::float_to_half(src[j]);
        if ((h & 0x7C00u) == 0x7C00u)
          return make_status(StatusCode::kInvalidArgument, "weight too large for f16 (tensor index, element)", i, j);
        wr16(dst + 2 * j, h);
      }
    } else if (dtype == TensorDType::kInt8) {
      // Per output column c: scale = max_r |w| / 127, q = round(w / scale) in [-127, 127].
      for (uint32_t c = 0; c < t.cols; ++c) {
        float amax = 0.0f;
        for (uint32_t r = 0; r < t.rows; ++r) amax = fmaxf(amax, fabsf(src[r * t.cols + c]));
        const float scale = amax > 0.0f ? amax / 127.0f : 1.0f;
        wrf32(dst + 4 * c, scale);
        for (uint32_t r = 0; r < t.rows; ++r) {
          const float q = rintf(src[r * t.cols + c] / scale);
          dst[4 * t.cols + r * t.cols + c] = static_cast<uint8_t>(static_cast<int8_t>(q > 127.0f ? 127.0f : q < -127.0f ? -127.0f : q));
        }
      }
    } else {
      for (uint32_t j = 0; j < t.count(); ++j) wrf32(dst + 4 * j, src[j]);
    }
    wr32(rec + 0, t.layer);
    wr32(rec + 4, static_cast<uint32_t>(t.role));
    wr32(rec + 8, static_cast<uint32_t>(dtype));
    wr32(rec + 12, t.rows);
    wr32(rec + 16, t.cols);
    wr32(rec + 20, crc32(dst, nbytes));
    wr64(rec + 24, offset);
    offset += align_up(nbytes);
  }
  for (uint32_t k = 0; k < n_betas; ++k, rec += 4) wrf32(rec, schedule.betas[k]);
  wr32(out + kOffHeaderCrc, header_crc(out, static_cast<size_t>(rec - out)));
  *written = total;
  return Status::Ok();
}

Status load_weights(const void* data, size_t size, LoadedWeights* out) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  if (p == nullptr) return make_status(StatusCode::kInvalidArgument, "null weight buffer");
  if (size < kWeightsFixedHeaderBytes)
    return make_status(StatusCode::kTruncated, "weight file shorter than its fixed header", kWeightsFixedHeaderBytes, size);
  if (memcmp(p, kWeightsMagic, 8) != 0)
    return make_status(StatusCode::kBadFormat, "not a microdiffusion weight file (bad magic)");
  // Built in *out itself (a local LoadedWeights copied out would put 2.2 KB
  // more on the stack); on failure *out holds whatever was read so far.
  LoadedWeights& w = *new (out) LoadedWeights;
  w.version_major = rd16(p + kOffMajor);
  w.version_minor = rd16(p + kOffMinor);
  if (w.version_major != kWeightsVersionMajor)
    return make_status(StatusCode::kUnsupportedVersion,
                       "weight file major version not understood (file version, understood version)",
                       w.version_major, kWeightsVersionMajor);
  if (reinterpret_cast<uintptr_t>(p) % 4 != 0)
    return make_status(StatusCode::kMisaligned, "weight buffer must be at least 4-byte aligned",
                       reinterpret_cast<uintptr_t>(p) % 4, 4);
  w.header_bytes = rd32(p + kOffHeaderBytes);
  w.file_bytes = rd64(p + kOffFileBytes);
  if (w.file_bytes > size)
    return make_status(StatusCode::kTruncated, "weight file is truncated (file size field, bytes present)", w.file_bytes, size);
  const uint32_t n_layers = rd32(p + kOffLayers);
  const uint32_t n_tensors = rd32(p + kOffTensors);
  if (n_layers > kMaxLayers || n_tensors > kMaxTensors)
    return make_status(StatusCode::kBadFormat, "too many layers or tensors", n_layers, kMaxLayers);
  const size_t tables_end = kWeightsFixedHeaderBytes + kWeightsLayerRecordBytes * n_layers +
                            kWeightsTensorRecordBytes * n_tensors;
  // A custom schedule's T betas follow the tensor table (format 1.1).
  const uint32_t kind_field = rd32(p + kOffSchedKind);
  const bool custom = (kind_field & ~kScheduleZeroTerminalSnrBit) == static_cast<uint32_t>(ScheduleKind::kCustom);
  const uint32_t sched_T = rd32(p + kOffSchedT);
  if (custom && sched_T > kMaxTimesteps)
    return make_status(StatusCode::kBadFormat, "custom schedule T is too large", sched_T, kMaxTimesteps);
  const size_t betas_end = tables_end + (custom ? sizeof(float) * static_cast<size_t>(sched_T) : 0);
  if (w.header_bytes < betas_end || w.header_bytes > w.file_bytes)
    return make_status(StatusCode::kBadFormat, "header size field is inconsistent", w.header_bytes, w.file_bytes);
  const uint32_t stored_crc = rd32(p + kOffHeaderCrc);
  const uint32_t actual_crc = header_crc(p, betas_end);
  if (stored_crc != actual_crc)
    return make_status(StatusCode::kChecksumMismatch, "header checksum mismatch (stored, computed)", stored_crc, actual_crc);

  // The description and layout are built in w itself: separate ModelDesc and
  // ParamLayout locals, or a temporary for `layout = param_layout(desc)`,
  // would add 1.5 KB of stack.
  ModelDesc& desc = w.model.desc;
  desc.D = rd32(p + kOffD);
  desc.T = rd32(p + kOffT);
  desc.n_classes = rd32(p + kOffClasses);
  desc.n_layers = n_layers;
  const uint32_t variance = rd32(p + kOffVariance);
  if (variance >= kVarianceCount) return make_status(StatusCode::kBadFormat, "unknown variance type", variance);
  desc.learned_variance = variance == static_cast<uint32_t>(Variance::kLearnedRange) ? 1 : 0;
  const uint8_t* rec = p + kWeightsFixedHeaderBytes;
  for (uint32_t l = 0; l < n_layers; ++l, rec += kWeightsLayerRecordBytes) {
    LayerDesc& L = desc.layers[l];
    L.kind = static_cast<LayerKind>(rd32(rec + 0));
    L.in = rd32(rec + 4);
    L.out = rd32(rec + 8);
    L.act = static_cast<Activation>(rd32(rec + 12));
    L.x_raw = rd32(rec + 16);
    L.x_sin_dim = rd32(rec + 20);
    L.t_sin_dim = rd32(rec + 24);
    L.x_scale = rdf32(rec + 28);
  }
  MD_RETURN_IF_ERROR(validate_model(desc));
  w.schedule.kind = static_cast<ScheduleKind>(kind_field & ~kScheduleZeroTerminalSnrBit);
  w.schedule.zero_terminal_snr = (kind_field & kScheduleZeroTerminalSnrBit) ? 1 : 0;
  w.schedule.T = sched_T;
  if (custom) w.schedule.betas = reinterpret_cast<const float*>(p + tables_end);  // validated just below
  w.schedule.beta_start = rdf32(p + kOffBetaStart);
  w.schedule.beta_end = rdf32(p + kOffBetaEnd);
  w.schedule.cosine_s = rdf32(p + kOffCosineS);
  w.schedule.max_beta = rdf32(p + kOffMaxBeta);
  MD_RETURN_IF_ERROR(validate_schedule(w.schedule));
  if (w.schedule.T != desc.T)
    return make_status(StatusCode::kBadFormat, "schedule T differs from model T", w.schedule.T, desc.T);
  const uint32_t prediction = rd32(p + kOffPrediction);
  if (prediction >= kPredictionCount) return make_status(StatusCode::kBadFormat, "unknown prediction type", prediction);
  w.meta.prediction = static_cast<Prediction>(prediction);
  w.model.prediction = w.meta.prediction;
  w.meta.variance = static_cast<Variance>(variance);
  w.meta.is_ema = rd32(p + kOffIsEma);
  w.meta.train_steps = rd32(p + kOffTrainSteps);
  memcpy(w.meta.dataset, p + kOffDataset, sizeof(w.meta.dataset) - 1);

  // Initialised from the prvalue directly (C++17 guaranteed elision), not assigned.
  const ParamLayout& layout = *new (&w.model.layout) ParamLayout(param_layout(desc));
  if (n_tensors != layout.n_tensors)
    return make_status(StatusCode::kBadFormat, "tensor count does not match the layer list", n_tensors, layout.n_tensors);
  uint64_t previous_end = w.header_bytes;
  for (uint32_t i = 0; i < n_tensors; ++i, rec += kWeightsTensorRecordBytes) {
    const TensorDesc& expect = layout.tensors[i];
    const uint32_t layer = rd32(rec + 0), role = rd32(rec + 4), dtype = rd32(rec + 8);
    const uint32_t rows = rd32(rec + 12), cols = rd32(rec + 16), crc = rd32(rec + 20);
    const uint64_t offset = rd64(rec + 24);
    if (layer != expect.layer || role != static_cast<uint32_t>(expect.role))
      return make_status(StatusCode::kBadFormat, "tensor table does not match the layer list (tensor index)", i);
    if (rows != expect.rows || cols != expect.cols)
      return make_status(StatusCode::kBadFormat, "tensor shape does not match its layer (tensor index, expected elements)",
                         i, expect.count());
    if (dtype >= kTensorDTypeCount || (dtype != static_cast<uint32_t>(TensorDType::kF32) && role != static_cast<uint32_t>(TensorRole::kWeight)))
      return make_status(StatusCode::kBadFormat, "unsupported tensor dtype (tensor index, dtype)", i, dtype);
    const TensorDType dt = static_cast<TensorDType>(dtype);
    const uint64_t nbytes = tensor_storage_bytes(dt, expect.rows, expect.cols);
    if (offset % kAlignment != 0)
      return make_status(StatusCode::kBadFormat, "tensor offset is not 64-byte aligned (tensor index, offset)", i, offset);
    if (offset < previous_end || offset > w.file_bytes || nbytes > w.file_bytes - offset)
      return make_status(StatusCode::kBadFormat, "tensor lies outside the file or overlaps another (tensor index, offset)", i, offset);
    previous_end = offset + nbytes;
    const uint8_t* src = p + offset;
    const uint32_t actual = crc32(src, static_cast<size_t>(nbytes));
    if (actual != crc)
      return make_status(StatusCode::kChecksumMismatch, "tensor checksum mismatch (tensor index, computed crc)", i, actual);
    w.model.dtypes[i] = dt;
    if (dt == TensorDType::kF16) {
      for (uint32_t j = 0; j < expect.count(); ++j)
        if ((rd16(src + 2 * j) & 0x7C00u) == 0x7C00u)
          return make_status(StatusCode::kNonFinite, "weights contain NaN or Inf (tensor index, element)", i, j);
      w.model.stored[i] = src;
      w.meta.weight_dtype = dt;
      continue;
    }
    const float* f = reinterpret_cast<const float*>(src);
    const uint32_t n_floats = dt == TensorDType::kInt8 ? expect.cols : expect.count();  // int8: the scales
    for (uint32_t j = 0; j < n_floats; ++j)
      if (!finite(f[j])) return make_status(StatusCode::kNonFinite, "weights contain NaN or Inf (tensor index, element)", i, j);
    if (dt == TensorDType::kInt8) {
      w.model.stored[i] = src;
      w.meta.weight_dtype = dt;
      continue;
    }
    w.model.tensors[i] = f;
  }
  return Status::Ok();
}

}  // namespace md
