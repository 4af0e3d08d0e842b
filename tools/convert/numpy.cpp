// NumPy .npy (format versions 1, 2, 3) and .npz (a zip of .npy members).
// The header is a Python dict literal; this parses exactly the literal numpy
// writes ({'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }) and
// nothing that would need evaluation. Object arrays are refused (numpy would
// unpickle them).
#include <cstring>
#include <string>
#include <vector>

#include "convert/convert.h"
#include "convert/internal.h"

namespace md::convert::detail {
namespace {

struct Lexer {
  const char* p;
  const char* end;
  void skip() {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) ++p;
  }
  bool eat(char c) {
    skip();
    if (p < end && *p == c) {
      ++p;
      return true;
    }
    return false;
  }
  bool string(std::string* out) {
    skip();
    if (p >= end || (*p != '\'' && *p != '"')) return false;
    const char q = *p++;
    out->clear();
    while (p < end && *p != q) {
      if (*p == '\\') return false;  // numpy never escapes
      out->push_back(*p++);
    }
    if (p >= end) return false;
    ++p;
    return true;
  }
  bool word(const char* w) {
    skip();
    const size_t n = std::strlen(w);
    if (static_cast<size_t>(end - p) >= n && std::memcmp(p, w, n) == 0) {
      p += n;
      return true;
    }
    return false;
  }
  bool integer(int64_t* v) {
    skip();
    if (p >= end || *p < '0' || *p > '9') return false;
    uint64_t x = 0;
    while (p < end && *p >= '0' && *p <= '9') {
      x = x * 10 + static_cast<uint64_t>(*p++ - '0');
      if (x > (1ull << 40)) return false;
    }
    if (p < end && *p == 'L') ++p;  // Python 2 longs
    *v = static_cast<int64_t>(x);
    return true;
  }
};

bool parse_descr(const std::string& d, DType* dtype, bool* big_endian) {
  if (d.size() != 3) return false;
  const char order = d[0];
  if (order != '<' && order != '>' && order != '|' && order != '=') return false;
  *big_endian = order == '>';
  const std::string t = d.substr(1);
  if (t == "f4") *dtype = DType::kF32;
  else if (t == "f8") *dtype = DType::kF64;
  else if (t == "f2") *dtype = DType::kF16;
  else if (t == "i8") *dtype = DType::kI64;
  else if (t == "i4") *dtype = DType::kI32;
  else if (t == "i2") *dtype = DType::kI16;
  else if (t == "i1") *dtype = DType::kI8;
  else if (t == "u1") *dtype = DType::kU8;
  else if (t == "b1") *dtype = DType::kBool;
  else return false;
  if (dtype_size(*dtype) == 1) *big_endian = false;
  else if (order == '|') return false;
  return true;
}

}  // namespace

std::string parse_npy(const uint8_t* data, size_t size, const std::string& name, Checkpoint* out) {
  const std::string who = "npy '" + printable(name) + "'";
  if (size < 10 || std::memcmp(data, "\x93NUMPY", 6) != 0) return who + ": not an .npy file (bad magic)";
  const int major = data[6];
  size_t header_len, header_start;
  if (major == 1) {
    header_len = rd16(data + 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) return who + ": header is truncated";
    header_len = rd32(data + 8);
    header_start = 12;
  } else {
    return who + ": unsupported .npy format version " + std::to_string(major);
  }
  if (header_len > size - header_start) return who + ": header is truncated";
  Lexer lx{reinterpret_cast<const char*>(data + header_start),
           reinterpret_cast<const char*>(data + header_start + header_len)};
  std::string descr;
  bool have_descr = false, have_order = false, have_shape = false, fortran = false;
  std::vector<int64_t> shape;
  if (!lx.eat('{')) return who + ": header is not a dict";
  while (!lx.eat('}')) {
    std::string key;
    if (!lx.string(&key) || !lx.eat(':')) return who + ": malformed header";
    if (key == "descr") {
      lx.skip();
      if (lx.p < lx.end && *lx.p == '[') return who + ": structured dtypes are not supported";
      if (!lx.string(&descr)) return who + ": malformed descr";
      have_descr = true;
    } else if (key == "fortran_order") {
      if (lx.word("True")) fortran = true;
      else if (lx.word("False")) fortran = false;
      else return who + ": malformed fortran_order";
      have_order = true;
    } else if (key == "shape") {
      if (!lx.eat('(')) return who + ": malformed shape";
      while (!lx.eat(')')) {
        int64_t v;
        if (!lx.integer(&v)) return who + ": malformed shape";
        if (shape.size() >= kMaxDims) return who + ": too many dimensions";
        shape.push_back(v);
        if (!lx.eat(',')) {
          if (!lx.eat(')')) return who + ": malformed shape";
          break;
        }
      }
      have_shape = true;
    } else {
      return who + ": unexpected header key '" + printable(key) + "'";
    }
    if (!lx.eat(',')) {
      if (!lx.eat('}')) return who + ": malformed header";
      break;
    }
  }
  if (!have_descr || !have_order || !have_shape) return who + ": header lacks descr, fortran_order or shape";
  TensorRef t;
  t.name = name;
  if (!parse_descr(descr, &t.dtype, &t.big_endian)) {
    if (descr.find('O') != std::string::npos)
      return who + ": object arrays are refused (loading them would unpickle arbitrary objects)";
    return who + ": unsupported dtype '" + printable(descr) + "' (supported: <f4, <f8, <f2 and integer types)";
  }
  uint64_t numel = 1;
  for (int64_t s : shape) {
    if (s != 0 && numel > kMaxElements / static_cast<uint64_t>(s)) return who + ": shape is too large";
    numel *= static_cast<uint64_t>(s);
  }
  t.shape = shape;
  t.strides = contiguous_strides(shape);
  if (fortran) {  // column-major: the first index varies fastest
    uint64_t s = 1;
    for (size_t i = 0; i < shape.size(); ++i) {
      t.strides[i] = static_cast<int64_t>(s);
      s *= static_cast<uint64_t>(shape[i] > 0 ? shape[i] : 1);
    }
  }
  const size_t data_start = header_start + header_len;
  const uint64_t nbytes = numel * dtype_size(t.dtype);
  if (size - data_start != nbytes)
    return who + ": holds " + std::to_string(size - data_start) + " data bytes, shape " + std::to_string(numel) +
           " x " + std::to_string(dtype_size(t.dtype)) + " needs " + std::to_string(nbytes) +
           (size - data_start < nbytes ? " (truncated)" : "");
  t.data = data + data_start;
  t.storage_elems = numel;
  t.offset = 0;
  const std::string err = check_view(name, t.shape, t.strides, 0, numel);
  if (!err.empty()) return err;
  out->tensors.push_back(std::move(t));
  return "";
}

std::string parse_npz(const uint8_t* data, size_t size, Checkpoint* out) {
  std::vector<ZipEntry> entries;
  std::string err = zip_list(data, size, &entries);
  if (!err.empty()) return "npz: " + err;
  for (const ZipEntry& e : entries) {
    if (e.name.size() < 4 || e.name.compare(e.name.size() - 4, 4, ".npy") != 0)
      return "npz: member '" + printable(e.name) + "' is not an .npy array";
    const uint8_t* member;
    size_t n;
    err = zip_read(data, size, e, out, &member, &n);
    if (!err.empty()) return "npz: " + err;
    err = parse_npy(member, n, e.name.substr(0, e.name.size() - 4), out);
    if (!err.empty()) return "npz: " + err;
  }
  return "";
}

}  // namespace md::convert::detail

namespace md::convert {

std::string read_npy(const uint8_t* data, size_t size, Checkpoint* out, const std::string& name) {
  if (data == nullptr && size > 0) return "null input";
  Checkpoint ck;
  ck.format = "npy";
  const uint8_t* own = ck.own(data, size);
  const std::string err = detail::parse_npy(own, size, name, &ck);
  if (!err.empty()) return err;
  *out = std::move(ck);
  return "";
}

std::string read_npz(const uint8_t* data, size_t size, Checkpoint* out) {
  if (data == nullptr && size > 0) return "null input";
  Checkpoint ck;
  ck.format = "npz";
  const uint8_t* own = ck.own(data, size);
  const std::string err = detail::parse_npz(own, size, &ck);
  if (!err.empty()) return err;
  *out = std::move(ck);
  return "";
}

}  // namespace md::convert
