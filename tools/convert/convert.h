// Checkpoint conversion: read PyTorch (zip and legacy torch.save), safetensors,
// NumPy .npy/.npz files into named tensors, map them onto the runtime's layer
// list, and produce a .mdw weight file. Specification of the mapping file and
// the command line: docs/CONVERT.md.
//
// Every reader takes untrusted bytes (const uint8_t*, size_t) and returns an
// error string ("" on success). Readers bounds-check every length and offset,
// never execute anything (the pickle reader is a restricted virtual machine
// that only understands what a state_dict holds) and keep their own copy of
// the input, so a Checkpoint is self-contained.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "microdiffusion/model.h"
#include "microdiffusion/schedule.h"
#include "microdiffusion/weights.h"

namespace md::convert {

enum class DType : uint8_t { kF32, kF64, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };
const char* dtype_name(DType d);  // "float32", "float16", ...
size_t dtype_size(DType d);
bool dtype_is_float(DType d);

// A tensor inside a checkpoint, not converted yet: a strided view of a storage.
// Bounds were checked by the reader: every element the view addresses lies
// inside [data, data + storage_elems * dtype_size).
struct TensorRef {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;  // in elements
  const uint8_t* data = nullptr;  // storage start
  uint64_t storage_elems = 0;
  uint64_t offset = 0;  // in elements
  bool big_endian = false;
  uint64_t numel() const;
  std::string shape_string() const;  // "(16, 2)"
};

struct Checkpoint {
  std::string format;               // "pytorch zip", "pytorch legacy", "safetensors", "npz", "npy"
  std::vector<TensorRef> tensors;   // in file order
  const TensorRef* find(const std::string& name) const;
  // Buffers the tensors point into (the input copy, inflated zip members).
  std::vector<std::unique_ptr<std::vector<uint8_t>>> buffers;
  const uint8_t* own(const uint8_t* data, size_t size);  // copy into a new buffer
};

// ---- Readers (fuzzing entry points) -------------------------------------------

// Any supported format, detected from the content.
std::string read_checkpoint(const uint8_t* data, size_t size, Checkpoint* out);
// torch.save output: zip (PyTorch >= 1.6) or the legacy sequential format.
// Nested dicts/lists are flattened into dotted names ("model.lin1.lin.weight").
std::string read_pytorch(const uint8_t* data, size_t size, Checkpoint* out);
std::string read_safetensors(const uint8_t* data, size_t size, Checkpoint* out);
std::string read_npy(const uint8_t* data, size_t size, Checkpoint* out, const std::string& name = "array");
std::string read_npz(const uint8_t* data, size_t size, Checkpoint* out);

// Raw DEFLATE (RFC 1951) into *out, which must not exceed max_out bytes.
// *consumed (optional) receives the compressed bytes used.
std::string inflate_raw(const uint8_t* data, size_t size, size_t max_out, std::vector<uint8_t>* out,
                        size_t* consumed = nullptr);

// Keep only the tensors under a dotted key path ("model", "ema.shadow") and
// strip that prefix from their names.
std::string select_key(Checkpoint* ck, const std::string& key);

// The tensor's elements in row-major order as float32 (floating dtypes only).
std::string tensor_to_f32(const TensorRef& t, std::vector<float>* out);

// ---- Mapping onto the runtime's layers -----------------------------------------

struct LayerSpec {
  LayerDesc desc;       // kind, act and embed fields; widths are inferred
  std::string weight;   // tensor names ("" where the layer has none)
  std::string bias;     // "none": nn.Linear(bias=False), zeros
  std::string table;
  bool weight_in_out = false;  // weight stored (in, out) instead of nn.Linear's (out, in)
  int line = 0;                // mapping-file line, for messages
};

struct ModelSpec {
  std::string arch;                  // "tutorial", "default" or "map"
  std::vector<LayerSpec> layers;
  uint32_t D = 0, T = 0;             // 0: inferred
  std::vector<std::string> ignore;   // tensor names not part of the network; "prefix*" allowed
};

// The mapping-file format (docs/CONVERT.md). `name` is used in messages.
std::string parse_map(const std::string& text, const std::string& name, ModelSpec* out);
// arch "tutorial", "default" or "auto" (recognised from the names and shapes).
std::string preset_spec(const std::string& arch, const Checkpoint& ck, ModelSpec* out);

struct Converted {
  ModelDesc desc;
  std::vector<float> params;  // flat block, param_layout(desc) order
};
// Shapes checked; missing and unexpected tensors are listed together, as
// PyTorch's strict load_state_dict does. T_flag 0: T from the tables.
std::string build_model(const ModelSpec& spec, const Checkpoint& ck, uint32_t T_flag, Converted* out);

// ---- Everything at once ----------------------------------------------------------

struct ConvertOptions {
  std::string arch = "auto";   // auto | tutorial | default (ignored with a map)
  std::string map_text;        // mapping file contents ("" = use arch)
  std::string map_name = "map";
  std::string key;             // dotted path of the state_dict inside the checkpoint
  uint32_t T = 0;              // 0: from the per-timestep tables
  ScheduleKind schedule = ScheduleKind::kLinear;  // any kind; defaults as `microdiffusion train`
  double beta_start = 0.0;     // 0: linear_schedule(T)'s (not for cosine)
  double beta_end = 0.0;
  std::vector<float> betas;    // kCustom: beta_1 .. beta_T (T defaults to their count)
  WeightsMeta meta;            // prediction (eps, x0, v), variance, is_ema, dataset name
};

struct ConvertResult {
  std::string arch;
  std::string format;
  Converted model;
  ScheduleDesc schedule;     // a custom schedule's betas point into `betas`
  std::vector<float> betas;
  std::vector<uint8_t> mdw;  // the weight file
};

std::string convert(const uint8_t* data, size_t size, const ConvertOptions& options, ConvertResult* out);

}  // namespace md::convert
