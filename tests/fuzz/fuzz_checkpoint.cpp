// libFuzzer target: the checkpoint readers behind `microdiffusion convert`
// (tools/convert). The bytes go to md::convert::read_checkpoint, which sniffs
// the format -- PyTorch zip (data.pkl through the restricted unpickler, stored
// or deflated members), legacy torch.save pickles, safetensors, .npy, .npz
// (zip, ZIP64, the converter's own inflater) -- and then, as the CLI does, to
// md::convert::convert with --arch auto.
//
// Besides "no crash, no sanitizer report, no leak", it checks what the readers
// promise (tools/convert/convert.h):
//   - the bytes it holds (input copy, inflated members) stay within what the
//     input can inflate to: zip members that share compressed data would
//     multiply memory;
//   - every tensor's view passes check_view, and its whole storage lies inside
//     a buffer the Checkpoint owns (so no reader hands out a pointer past the
//     bytes it has);
//   - tensor names are unique; tensor_to_f32 gives numel floats or refuses a
//     non-float dtype;
//   - select_key on a wrapped checkpoint keeps exactly the tensors under the key;
//   - every message is non-empty and has no control byte but '\n' (untrusted
//     names are escaped by detail::printable before they reach a terminal);
//   - what convert() writes, md::load_weights accepts, with the same model and
//     the same weights, bit for bit.
//
// Build and run: .ci/fuzz.sh (docs/BAD_INPUT.md). Reproduce one input:
//   build/fuzz/fuzz_checkpoint path/to/crash-file
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "convert/convert.h"
#include "convert/internal.h"
#include "microdiffusion/microdiffusion.h"
#include "fuzz_check.h"

namespace {

namespace cv = md::convert;

// Tensors converted to float32 by the harness: at most this many elements each
// (the readers accept up to 2^34; the inputs are small anyway).
constexpr uint64_t kMaxConvertElements = 1u << 20;

void check_message(const std::string& m) {
  FUZZ_CHECK(!m.empty());
  for (unsigned char c : m) {
    if (c < 0x20 && c != '\n') {
      std::fprintf(stderr, "fuzz_checkpoint: control byte 0x%02x in message: %s\n", c, m.c_str());
      FUZZ_CHECK(!"a message holds an unescaped control byte");
    }
    FUZZ_CHECK(c != 0x7F);
  }
}

bool owned(const cv::Checkpoint& ck, const uint8_t* p, uint64_t bytes) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  for (const auto& b : ck.buffers) {
    const uintptr_t lo = reinterpret_cast<uintptr_t>(b->data()), hi = lo + b->size();
    if (a >= lo && a <= hi && bytes <= hi - a) return true;
  }
  return false;
}

// Messages about --key quote the key as given: on the command line the user
// typed it, here it comes from the file, so only those skip the escape check.
void check_message_with_key(const std::string& m) {
  if (m.compare(0, 6, "--key ") == 0) FUZZ_CHECK(m.size() > 6);
  else check_message(m);
}

void check_checkpoint(const cv::Checkpoint& ck, size_t size) {
  FUZZ_CHECK(!ck.format.empty());
  // Memory: the input copy plus inflated zip members. DEFLATE expands at most
  // ~1032:1 and zip_read refuses sizes above 1040 x csize + 1024, so members
  // that do not share compressed bytes hold at most ~1063 x the input.
  uint64_t held = 0;
  for (const auto& b : ck.buffers) held += b->size();
  if (held > 1064ull * size + 4096) {
    std::fprintf(stderr, "fuzz_checkpoint: %zu input bytes hold %llu bytes\n", size,
                 static_cast<unsigned long long>(held));
    FUZZ_CHECK(!"a checkpoint holds more bytes than its input can inflate to");
  }
  std::set<std::string> names;
  std::vector<float> f;
  for (const cv::TensorRef& t : ck.tensors) {
    FUZZ_CHECK(names.insert(t.name).second);
    FUZZ_CHECK(cv::detail::check_view(t.name, t.shape, t.strides, t.offset, t.storage_elems).empty());
    FUZZ_CHECK(t.data != nullptr);
    const uint64_t n = t.numel();
    if (n == 0) continue;
    FUZZ_CHECK(n <= t.storage_elems);
    FUZZ_CHECK(owned(ck, t.data, t.storage_elems * cv::dtype_size(t.dtype)));
    if (n > kMaxConvertElements) continue;
    const std::string err = cv::tensor_to_f32(t, &f);
    if (cv::dtype_is_float(t.dtype)) {
      FUZZ_CHECK(err.empty());
      FUZZ_CHECK(f.size() == n);
    } else {
      check_message(err);
    }
  }
}

// The first dotted component of a tensor name, if any ("model" of "model.lin1.lin.weight").
std::string wrapper_key(const cv::Checkpoint& ck) {
  for (const cv::TensorRef& t : ck.tensors) {
    const size_t dot = t.name.find('.');
    if (dot != std::string::npos && dot > 0) return t.name.substr(0, dot);
  }
  return "";
}

void check_select(const cv::Checkpoint& ck, const std::string& key) {
  cv::Checkpoint sel;
  sel.format = ck.format;
  sel.tensors = ck.tensors;  // views into ck's buffers, which outlive sel
  size_t under = 0;
  for (const cv::TensorRef& t : ck.tensors) under += t.name.compare(0, key.size() + 1, key + ".") == 0;
  const std::string err = cv::select_key(&sel, key);
  if (!err.empty()) {
    check_message_with_key(err);
    return;
  }
  FUZZ_CHECK(sel.tensors.size() == under);
  for (const cv::TensorRef& t : sel.tensors) FUZZ_CHECK(ck.find(key + "." + t.name) != nullptr);
}

// convert() as `microdiffusion convert FILE --out X [--key K]`, then with --T
// when the model has no per-timestep tables; a weight file it writes must load.
// True if it converted.
bool check_convert(const uint8_t* data, size_t size, const std::string& key) {
  cv::ConvertOptions o;
  o.key = key;
  cv::ConvertResult r;
  std::string err = cv::convert(data, size, o, &r);
  if (err.compare(0, 13, "T is unknown:") == 0) {
    o.T = 6;
    o.schedule = md::ScheduleKind::kCosine;
    err = cv::convert(data, size, o, &r);
  }
  if (!err.empty()) {
    check_message_with_key(err);
    return false;
  }
  FUZZ_CHECK(r.arch == "tutorial" || r.arch == "default");
  FUZZ_CHECK(!r.mdw.empty());
  // std::vector's storage is malloc-aligned: the 4-byte alignment load_weights needs.
  md::LoadedWeights w;
  const md::Status s = md::load_weights(r.mdw.data(), r.mdw.size(), &w);
  if (!s.ok()) std::fprintf(stderr, "fuzz_checkpoint: load_weights: %s\n", s.message);
  FUZZ_CHECK(s.ok());
  const md::ModelDesc& a = w.model.desc;
  const md::ModelDesc& b = r.model.desc;
  FUZZ_CHECK(a.D == b.D && a.T == b.T && a.n_layers == b.n_layers && a.n_classes == b.n_classes);
  const md::ParamLayout& lay = w.model.layout;
  FUZZ_CHECK(lay.total_floats == r.model.params.size());
  for (uint32_t i = 0; i < lay.n_tensors; ++i) {  // f32 tensors that read back bit for bit
    FUZZ_CHECK(w.model.tensors[i] != nullptr);
    FUZZ_CHECK(memcmp(w.model.tensors[i], r.model.params.data() + lay.tensors[i].offset,
                      sizeof(float) * lay.tensors[i].count()) == 0);
  }
  if (o.T) FUZZ_CHECK(a.T == o.T);
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cv::Checkpoint ck;
  const std::string err = cv::read_checkpoint(data, size, &ck);
  if (!err.empty()) {
    check_message(err);
    FUZZ_CHECK(ck.tensors.empty() && ck.buffers.empty());  // a refusal leaves *out alone
    return 0;
  }
  check_checkpoint(ck, size);
  const bool converted = check_convert(data, size, "");
  // A wrapped checkpoint ({"model": state_dict, ...}): as with --key model.
  const std::string key = wrapper_key(ck);
  if (!key.empty()) {
    check_select(ck, key);
    if (!converted) check_convert(data, size, key);
  }
  return 0;
}
