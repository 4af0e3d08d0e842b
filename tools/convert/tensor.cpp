// Tensors, dtypes, key selection, format detection.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <string>

#include "convert/convert.h"
#include "convert/internal.h"

namespace md::convert {

const char* dtype_name(DType d) {
  switch (d) {
    case DType::kF32: return "float32";
    case DType::kF64: return "float64";
    case DType::kF16: return "float16";
    case DType::kBF16: return "bfloat16";
    case DType::kI64: return "int64";
    case DType::kI32: return "int32";
    case DType::kI16: return "int16";
    case DType::kI8: return "int8";
    case DType::kU8: return "uint8";
    case DType::kBool: return "bool";
  }
  return "unknown";
}

size_t dtype_size(DType d) {
  switch (d) {
    case DType::kF64:
    case DType::kI64: return 8;
    case DType::kF32:
    case DType::kI32: return 4;
    case DType::kF16:
    case DType::kBF16:
    case DType::kI16: return 2;
    case DType::kI8:
    case DType::kU8:
    case DType::kBool: return 1;
  }
  return 1;
}

bool dtype_is_float(DType d) {
  return d == DType::kF32 || d == DType::kF64 || d == DType::kF16 || d == DType::kBF16;
}

uint64_t TensorRef::numel() const {
  uint64_t n = 1;
  for (int64_t s : shape) n *= static_cast<uint64_t>(s);  // bounded by check_view
  return n;
}

std::string TensorRef::shape_string() const {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

const TensorRef* Checkpoint::find(const std::string& name) const {
  for (const TensorRef& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

const uint8_t* Checkpoint::own(const uint8_t* data, size_t size) {
  buffers.push_back(std::make_unique<std::vector<uint8_t>>(data, data + size));
  // Never hand out a null pointer, even for an empty input.
  if (buffers.back()->empty()) buffers.back()->reserve(1);
  return buffers.back()->data();
}

namespace detail {

std::string printable(const std::string& s, size_t max_len) {
  std::string r;
  for (size_t i = 0; i < s.size() && i < max_len; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      r += buf;
    } else {
      r += static_cast<char>(c);
    }
  }
  if (s.size() > max_len) r += "...";
  return r;
}

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape) {
  // Unsigned arithmetic: callers bound the element count first; even for a
  // hostile shape this cannot overflow into undefined behaviour.
  std::vector<int64_t> st(shape.size(), 1);
  uint64_t s = 1;
  for (size_t i = shape.size(); i-- > 1;) {
    s *= static_cast<uint64_t>(shape[i] > 0 ? shape[i] : 1);
    st[i - 1] = static_cast<int64_t>(s & 0x7FFFFFFFFFFFFFFFull);
  }
  return st;
}

std::string check_view(const std::string& name, const std::vector<int64_t>& shape,
                       const std::vector<int64_t>& strides, uint64_t offset, uint64_t storage_elems) {
  const std::string who = "tensor '" + printable(name) + "'";
  if (shape.size() > kMaxDims) return who + " has " + std::to_string(shape.size()) + " dimensions (at most 16)";
  if (shape.size() != strides.size()) return who + ": shape and stride have different lengths";
  uint64_t numel = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) return who + " has a negative size";
    if (strides[i] < 0) return who + " has a negative stride";
    const uint64_t s = static_cast<uint64_t>(shape[i]);
    if (s > kMaxElements || (s != 0 && numel > kMaxElements / s)) return who + " is too large";
    numel *= s;
  }
  if (numel == 0) return "";
  if (numel > storage_elems)
    return who + " has " + std::to_string(numel) + " elements but its storage only " + std::to_string(storage_elems);
  // Highest addressed element: offset + sum (size_i - 1) * stride_i, overflow-checked.
  uint64_t last = offset;
  for (size_t i = 0; i < shape.size(); ++i) {
    const uint64_t span = static_cast<uint64_t>(shape[i] - 1);
    const uint64_t st = static_cast<uint64_t>(strides[i]);
    if (st != 0 && span > (kMaxElements * 4) / st) return who + " has strides that overflow";
    last += span * st;
    if (last >= storage_elems) break;
  }
  if (offset >= storage_elems || last >= storage_elems)
    return who + " reaches past the end of its storage (offset " + std::to_string(offset) + ", storage " +
           std::to_string(storage_elems) + " elements)";
  return "";
}

}  // namespace detail

namespace {

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3FFu) << 13);
    }
  } else if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint64_t load_le(const uint8_t* p, size_t n, bool big_endian) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(p[big_endian ? n - 1 - i : i]) << (8 * i);
  return v;
}

}  // namespace

std::string tensor_to_f32(const TensorRef& t, std::vector<float>* out) {
  if (!dtype_is_float(t.dtype))
    return "tensor '" + detail::printable(t.name) + "' has dtype " + dtype_name(t.dtype) +
           "; only floating-point tensors can be weights";
  const std::string bad = detail::check_view(t.name, t.shape, t.strides, t.offset, t.storage_elems);
  if (!bad.empty()) return bad;
  const uint64_t n = t.numel();
  out->assign(static_cast<size_t>(n), 0.0f);
  if (n == 0) return "";
  const size_t es = dtype_size(t.dtype);
  const size_t dims = t.shape.size();
  std::vector<int64_t> idx(dims, 0);
  uint64_t elem = t.offset;
  for (uint64_t i = 0; i < n; ++i) {
    const uint8_t* p = t.data + elem * es;
    const uint64_t raw = load_le(p, es, t.big_endian);
    float v = 0.0f;
    switch (t.dtype) {
      case DType::kF32: {
        const uint32_t u = static_cast<uint32_t>(raw);
        std::memcpy(&v, &u, 4);
        break;
      }
      case DType::kF64: {
        double d;
        std::memcpy(&d, &raw, 8);
        v = static_cast<float>(d);
        break;
      }
      case DType::kF16: v = half_to_float(static_cast<uint16_t>(raw)); break;
      case DType::kBF16: {
        const uint32_t u = static_cast<uint32_t>(raw) << 16;
        std::memcpy(&v, &u, 4);
        break;
      }
      default: break;
    }
    (*out)[static_cast<size_t>(i)] = v;
    // Advance the multi-index (last dimension fastest).
    for (size_t d = dims; d-- > 0;) {
      if (++idx[d] < t.shape[d]) {
        elem += static_cast<uint64_t>(t.strides[d]);
        break;
      }
      elem -= static_cast<uint64_t>(t.strides[d]) * static_cast<uint64_t>(t.shape[d] - 1);
      idx[d] = 0;
    }
  }
  return "";
}

std::string select_key(Checkpoint* ck, const std::string& key) {
  if (key.empty()) return "";
  const std::string prefix = key + ".";
  std::vector<TensorRef> kept;
  for (TensorRef& t : ck->tensors) {
    if (t.name == key) return "--key " + key + " names a tensor, not a dict of tensors";
    if (t.name.compare(0, prefix.size(), prefix) == 0) {
      TensorRef r = t;
      r.name = t.name.substr(prefix.size());
      kept.push_back(std::move(r));
    }
  }
  if (kept.empty()) {
    std::set<std::string> top;
    for (const TensorRef& t : ck->tensors) top.insert(t.name.substr(0, t.name.find('.')));
    std::string list;
    size_t shown = 0;
    for (const std::string& s : top) {
      if (shown++ == 20) {
        list += ", ...";
        break;
      }
      list += (list.empty() ? "'" : ", '") + detail::printable(s) + "'";
    }
    return "--key " + key + ": no tensors under that key" +
           (list.empty() ? std::string(" (the file holds no tensors)") : " (top-level keys with tensors: " + list + ")");
  }
  ck->tensors = std::move(kept);
  return "";
}

std::string read_checkpoint(const uint8_t* data, size_t size, Checkpoint* out) {
  if (data == nullptr && size > 0) return "null input";
  if (size == 0) return "the file is empty";
  if (detail::is_zip(data, size)) {
    std::vector<detail::ZipEntry> entries;
    const std::string err = detail::zip_list(data, size, &entries);
    if (!err.empty()) return err;
    bool pkl = false, npy = !entries.empty();
    for (const detail::ZipEntry& e : entries) {
      const std::string& n = e.name;
      if (n.size() >= 8 && n.compare(n.size() - 8, 8, "data.pkl") == 0) pkl = true;
      if (n.size() < 4 || n.compare(n.size() - 4, 4, ".npy") != 0) npy = false;
    }
    if (pkl) return read_pytorch(data, size, out);
    if (npy) return read_npz(data, size, out);
    return "zip archive holds neither data.pkl (a PyTorch checkpoint) nor only .npy members (an .npz file)";
  }
  if (size >= 6 && std::memcmp(data, "\x93NUMPY", 6) == 0) return read_npy(data, size, out);
  if (data[0] == 0x80) return read_pytorch(data, size, out);
  if (size >= 262 && std::memcmp(data + 257, "ustar", 5) == 0)
    return "this is a tar archive: PyTorch's pre-0.4 tar checkpoint format is not supported";
  if (size >= 9 && data[8] == '{') {
    const uint64_t n = detail::rd64(data);
    if (n <= size - 8) return read_safetensors(data, size, out);
  }
  return "unrecognised file format: expected a PyTorch checkpoint (zip or legacy torch.save), safetensors, "
         ".npy or .npz";
}

}  // namespace md::convert
