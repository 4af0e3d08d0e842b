// libFuzzer target: md::load_weights on arbitrary bytes, and when a file
// loads, run it -- md::model_forward on a tiny batch in a scratch buffer of
// exactly md::forward_scratch_floats floats, and (for small T) two Samplers in
// an arena of exactly md::sampling_arena_bytes -- so "it loaded" means "it is
// safe to run". ASan catches any read past the input or past the scratch.
//
// Random mutations almost never keep the header CRC valid, so every input is
// also loaded a second time after "re-signing" a copy: the tensor CRCs and the
// header CRC are recomputed for whatever the (hostile) tables say. That pass
// reaches the layer, schedule, tensor-table, offset and finiteness checks.
//
// Build and run: .ci/fuzz.sh (docs/BAD_INPUT.md). Reproduce one input:
//   build/fuzz/fuzz_weights path/to/crash-file
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "microdiffusion/microdiffusion.h"
#include "fuzz_check.h"

namespace {

// A failed invariant is a bug in the loader: report and abort (libFuzzer
// records the input as a crash).
uint32_t rd32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t rd64(const uint8_t* p) { return rd32(p) | (static_cast<uint64_t>(rd32(p + 4)) << 32); }
void wr32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

// Recompute every CRC the tables ask for, where the bytes they name exist.
// Harness code: it must itself stay inside [buf, buf + size).
void resign(uint8_t* buf, size_t size) {
  if (size < md::kWeightsFixedHeaderBytes) return;
  const uint32_t n_layers = rd32(buf + 32), n_tensors = rd32(buf + 36);
  if (n_layers > md::kMaxLayers || n_tensors > md::kMaxTensors) return;
  const size_t tables_end = md::kWeightsFixedHeaderBytes + 32 * static_cast<size_t>(n_layers + n_tensors);
  if (tables_end > size) return;
  uint8_t* rec = buf + md::kWeightsFixedHeaderBytes + 32 * static_cast<size_t>(n_layers);
  for (uint32_t i = 0; i < n_tensors; ++i, rec += 32) {
    const uint32_t dtype = rd32(rec + 8);
    if (dtype >= md::kTensorDTypeCount) continue;
    const uint64_t nbytes = md::tensor_storage_bytes(static_cast<md::TensorDType>(dtype), rd32(rec + 12), rd32(rec + 16));
    const uint64_t offset = rd64(rec + 24);
    if (offset <= size && nbytes <= size - offset)
      wr32(rec + 20, md::crc32(buf + offset, static_cast<size_t>(nbytes)));
  }
  // A custom schedule's beta list (kind 4, format 1.1) follows the tables, under the header CRC.
  size_t signed_end = tables_end;
  const uint32_t kind = rd32(buf + 40) & ~md::kScheduleZeroTerminalSnrBit, sched_T = rd32(buf + 44);
  if (kind == static_cast<uint32_t>(md::ScheduleKind::kCustom) && sched_T <= md::kMaxTimesteps &&
      4 * static_cast<size_t>(sched_T) <= size - tables_end)
    signed_end += 4 * static_cast<size_t>(sched_T);
  uint32_t c = md::crc32(buf, 124);
  c = md::crc32(buf + md::kWeightsFixedHeaderBytes, signed_end - md::kWeightsFixedHeaderBytes, c);
  wr32(buf + 124, c);
}

bool finite(float f) { return f - f == 0.0f; }

void run_loaded(const uint8_t* p, size_t size, const md::LoadedWeights& w) {
  const md::ModelDesc& d = w.model.desc;
  // What the loader promises.
  FUZZ_CHECK(md::validate_model(d).ok());
  FUZZ_CHECK(md::validate_schedule(w.schedule).ok());
  FUZZ_CHECK(w.schedule.T == d.T);
  FUZZ_CHECK(w.file_bytes <= size);
  FUZZ_CHECK(w.header_bytes <= w.file_bytes);
  const md::ParamLayout& lay = w.model.layout;
  FUZZ_CHECK(lay.n_tensors == md::param_layout(d).n_tensors);
  for (uint32_t i = 0; i < lay.n_tensors; ++i) {
    const md::TensorDType dt = w.model.dtypes[i];
    const bool f32 = dt == md::TensorDType::kF32;
    FUZZ_CHECK(f32 || lay.tensors[i].role == md::TensorRole::kWeight);  // f16 / int8: weight matrices only
    const uint8_t* t = f32 ? reinterpret_cast<const uint8_t*>(w.model.tensors[i])
                           : static_cast<const uint8_t*>(w.model.stored[i]);
    FUZZ_CHECK(t != nullptr);
    FUZZ_CHECK(t >= p + w.header_bytes);
    const size_t off = static_cast<size_t>(t - p);
    const uint64_t nbytes = md::tensor_storage_bytes(dt, lay.tensors[i].rows, lay.tensors[i].cols);
    FUZZ_CHECK(off <= w.file_bytes && nbytes <= w.file_bytes - off);
    if (f32)
      for (uint32_t j = 0; j < lay.tensors[i].count(); ++j) FUZZ_CHECK(finite(w.model.tensors[i][j]));
  }

  // Forward on a batch of 2 at the first and last timestep, in exactly the
  // scratch the header promises (std::vector: ASan sees one float too far).
  constexpr uint32_t kBatch = 2;
  std::vector<float> x(static_cast<size_t>(kBatch) * d.D), out(static_cast<size_t>(kBatch) * md::output_width(d));
  for (size_t i = 0; i < x.size(); ++i) x[i] = (i % 2 ? -0.75f : 1.5f) * static_cast<float>(1 + i % 3);
  const int32_t t[kBatch] = {0, static_cast<int32_t>(d.T - 1)};
  // Conditional models: a real label, and one out of range (means "no label").
  const int32_t labels[kBatch] = {d.n_classes ? 0 : -1, 0x7FFFFFFF};
  std::vector<float> scratch(md::forward_scratch_floats(d, kBatch));
  md::model_forward(w.model, x.data(), t, kBatch, out.data(), scratch.data(), labels);

  // Real samplers, as the file says to run them, while that stays cheap:
  // ancestral over every timestep, then DPM-Solver++(2M) on a few.
  if (d.T > 256) return;
  for (int pass = 0; pass < 2; ++pass) {
    md::SamplerConfig config;
    config.variance = w.meta.variance;
    config.prediction = w.meta.prediction;
    if (d.n_classes) {
      config.label = 0;
      config.guidance = 1.5f;
    }
    if (pass == 1) {
      config.kind = md::SamplerKind::kDpmSolver2M;
      config.steps = d.T < 4 ? d.T : 4;
    }
    const size_t bytes = md::sampling_arena_bytes(d, 1);
    std::unique_ptr<uint8_t[]> arena_buf(new uint8_t[bytes]);
    md::Arena arena(arena_buf.get(), bytes);
    md::Sampler sampler;
    const md::Status s = sampler.init(w.model, w.schedule, config, 1, arena);
    // The arena the plan asked for always suffices. A schedule that passes
    // validate_schedule can still degenerate in double precision (beta_start
    // = 1e-40: alpha_bar stays exactly 1); init refuses it with a status.
    FUZZ_CHECK(s.code != md::StatusCode::kOutOfMemory);
    if (!s.ok()) {
      FUZZ_CHECK(s.code == md::StatusCode::kInvalidArgument);
      return;
    }
    std::vector<float> sample(d.D);
    // Finite but hostile weights may overflow to Inf: that is a status, not a crash.
    const md::Status r = sampler.sample(7, 0, 1, sample.data());
    FUZZ_CHECK(r.ok() || r.code == md::StatusCode::kNonFinite);
  }
}

void load_and_run(const uint8_t* p, size_t size) {
  md::LoadedWeights w;
  const md::Status s = md::load_weights(p, size, &w);
  if (!s.ok()) {
    FUZZ_CHECK(s.message != nullptr && s.message[0] != '\0');
    FUZZ_CHECK(md::status_code_name(s.code) != nullptr);
    return;
  }
  run_loaded(p, size, w);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // libFuzzer hands over an exactly sized heap copy (malloc-aligned), so a
  // read one byte past the input is an ASan report.
  load_and_run(data, size);
  if (size >= md::kWeightsFixedHeaderBytes) {
    std::unique_ptr<uint8_t[]> copy(new uint8_t[size]);
    memcpy(copy.get(), data, size);
    resign(copy.get(), size);
    load_and_run(copy.get(), size);
  }
  return 0;
}
