// safetensors: u64 header length N, N bytes of JSON
//   {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"key": "value"}}
// then the data region; offsets are relative to its start. Checked: JSON
// syntax, offsets inside the data region, end - begin = numel x dtype size,
// no two tensors overlapping, no duplicate names.
#include <algorithm>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "convert/convert.h"
#include "convert/internal.h"

namespace md::convert::detail {
namespace {

constexpr uint64_t kMaxHeader = 100u << 20;
constexpr int kMaxDepth = 32;

struct Json {
  enum Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = kNull;
  bool b = false;
  std::string text;  // string value, or the number's literal text
  std::vector<Json> items;
  std::vector<std::string> keys;  // kObject: keys[i] names items[i]
  const Json* get(const std::string& k) const {
    for (size_t i = 0; i < keys.size(); ++i)
      if (keys[i] == k) return &items[i];
    return nullptr;
  }
};

class JsonParser {
 public:
  JsonParser(const char* p, const char* end) : p_(p), end_(end) {}
  bool parse(Json* out) {
    if (!value(out, 0)) return false;
    ws();
    if (p_ != end_) return fail("trailing characters after the JSON header");
    return true;
  }
  std::string error;
  size_t offset(const char* base) const { return static_cast<size_t>(p_ - base); }

 private:
  bool fail(const std::string& m) {
    if (error.empty()) error = m;
    return false;
  }
  void ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }
  bool lit(const char* w) {
    const size_t n = std::strlen(w);
    if (static_cast<size_t>(end_ - p_) < n || std::memcmp(p_, w, n) != 0) return fail("invalid JSON literal");
    p_ += n;
    return true;
  }
  static void utf8(std::string* s, uint32_t c) {
    if (c < 0x80) {
      s->push_back(static_cast<char>(c));
    } else if (c < 0x800) {
      s->push_back(static_cast<char>(0xC0 | (c >> 6)));
      s->push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
      s->push_back(static_cast<char>(0xE0 | (c >> 12)));
      s->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      s->push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else {
      s->push_back(static_cast<char>(0xF0 | (c >> 18)));
      s->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
      s->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      s->push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  bool hex4(uint32_t* v) {
    if (end_ - p_ < 4) return fail("truncated \\u escape");
    *v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = *p_++;
      *v <<= 4;
      if (c >= '0' && c <= '9') *v |= static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') *v |= static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') *v |= static_cast<uint32_t>(c - 'A' + 10);
      else return fail("invalid \\u escape");
    }
    return true;
  }
  bool string(std::string* out) {
    ++p_;  // opening quote
    out->clear();
    while (true) {
      if (p_ >= end_) return fail("unterminated JSON string");
      const unsigned char c = static_cast<unsigned char>(*p_++);
      if (c == '"') return true;
      if (c < 0x20) return fail("control character in a JSON string");
      if (c != '\\') {
        out->push_back(static_cast<char>(c));
        continue;
      }
      if (p_ >= end_) return fail("unterminated JSON string");
      const char e = *p_++;
      switch (e) {
        case '"': out->push_back('"'); break;
        case '\\': out->push_back('\\'); break;
        case '/': out->push_back('/'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'u': {
          uint32_t cp;
          if (!hex4(&cp)) return false;
          if (cp >= 0xD800 && cp < 0xDC00) {
            uint32_t lo;
            if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return fail("unpaired surrogate in a JSON string");
            p_ += 2;
            if (!hex4(&lo)) return false;
            if (lo < 0xDC00 || lo > 0xDFFF) return fail("unpaired surrogate in a JSON string");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp < 0xE000) {
            return fail("unpaired surrogate in a JSON string");
          }
          utf8(out, cp);
          break;
        }
        default: return fail("invalid escape in a JSON string");
      }
    }
  }
  bool number(Json* out) {
    const char* start = p_;
    if (p_ < end_ && *p_ == '-') ++p_;
    const char* digits = p_;
    while (p_ < end_ && ((*p_ >= '0' && *p_ <= '9') || *p_ == '.' || *p_ == 'e' || *p_ == 'E' || *p_ == '+' ||
                         *p_ == '-'))
      ++p_;
    if (p_ == digits) return fail("invalid JSON number");
    out->kind = Json::kNumber;
    out->text.assign(start, p_);
    return true;
  }
  bool value(Json* out, int depth) {
    if (depth > kMaxDepth) return fail("JSON header nests too deeply");
    ws();
    if (p_ >= end_) return fail("JSON header ends early");
    switch (*p_) {
      case '{': {
        ++p_;
        out->kind = Json::kObject;
        ws();
        if (p_ < end_ && *p_ == '}') {
          ++p_;
          return true;
        }
        std::set<std::string> seen;
        while (true) {
          ws();
          if (p_ >= end_ || *p_ != '"') return fail("expected a string key in a JSON object");
          std::string key;
          if (!string(&key)) return false;
          ws();
          if (p_ >= end_ || *p_ != ':') return fail("expected ':' in a JSON object");
          ++p_;
          Json v;
          if (!value(&v, depth + 1)) return false;
          if (!seen.insert(key).second) return fail("duplicate key '" + printable(key) + "' in the JSON header");
          out->keys.push_back(std::move(key));
          out->items.push_back(std::move(v));
          ws();
          if (p_ < end_ && *p_ == ',') {
            ++p_;
            continue;
          }
          if (p_ < end_ && *p_ == '}') {
            ++p_;
            return true;
          }
          return fail("expected ',' or '}' in a JSON object");
        }
      }
      case '[': {
        ++p_;
        out->kind = Json::kArray;
        ws();
        if (p_ < end_ && *p_ == ']') {
          ++p_;
          return true;
        }
        while (true) {
          Json v;
          if (!value(&v, depth + 1)) return false;
          out->items.push_back(std::move(v));
          ws();
          if (p_ < end_ && *p_ == ',') {
            ++p_;
            continue;
          }
          if (p_ < end_ && *p_ == ']') {
            ++p_;
            return true;
          }
          return fail("expected ',' or ']' in a JSON array");
        }
      }
      case '"':
        out->kind = Json::kString;
        return string(&out->text);
      case 't':
        out->kind = Json::kBool;
        out->b = true;
        return lit("true");
      case 'f':
        out->kind = Json::kBool;
        return lit("false");
      case 'n':
        return lit("null");
      default:
        return number(out);
    }
  }
  const char* p_;
  const char* end_;
};

// A JSON number that is a non-negative integer below 2^62.
bool as_uint(const Json& j, uint64_t* v) {
  if (j.kind != Json::kNumber || j.text.empty() || j.text.size() > 18) return false;
  uint64_t x = 0;
  for (char c : j.text) {
    if (c < '0' || c > '9') return false;
    x = x * 10 + static_cast<uint64_t>(c - '0');
  }
  *v = x;
  return true;
}

bool safetensors_dtype(const std::string& s, DType* d) {
  static const struct {
    const char* name;
    DType d;
  } kTable[] = {{"F32", DType::kF32}, {"F64", DType::kF64}, {"F16", DType::kF16}, {"BF16", DType::kBF16},
                {"I64", DType::kI64}, {"I32", DType::kI32}, {"I16", DType::kI16}, {"I8", DType::kI8},
                {"U8", DType::kU8},   {"BOOL", DType::kBool}};
  for (const auto& e : kTable)
    if (s == e.name) {
      *d = e.d;
      return true;
    }
  return false;
}

}  // namespace

std::string parse_safetensors(const uint8_t* data, size_t size, Checkpoint* out) {
  if (size < 8) return "safetensors: file too short for the header length";
  const uint64_t n = rd64(data);
  if (n > size - 8) return "safetensors: header length " + std::to_string(n) + " exceeds the file (truncated?)";
  if (n > kMaxHeader) return "safetensors: header length " + std::to_string(n) + " is too large";
  const char* base = reinterpret_cast<const char*>(data + 8);
  JsonParser parser(base, base + n);
  Json root;
  if (!parser.parse(&root))
    return "safetensors: bad JSON header at byte " + std::to_string(8 + parser.offset(base)) + ": " + parser.error;
  if (root.kind != Json::kObject) return "safetensors: the header is not a JSON object";
  const uint8_t* region = data + 8 + n;
  const uint64_t region_size = size - 8 - n;
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (size_t i = 0; i < root.keys.size(); ++i) {
    const std::string& name = root.keys[i];
    const Json& e = root.items[i];
    if (name == "__metadata__") {
      if (e.kind != Json::kObject) return "safetensors: __metadata__ is not an object";
      for (const Json& v : e.items)
        if (v.kind != Json::kString) return "safetensors: __metadata__ values must be strings";
      continue;
    }
    const std::string who = "safetensors: tensor '" + printable(name) + "'";
    if (e.kind != Json::kObject) return who + " is not described by an object";
    const Json* dt = e.get("dtype");
    const Json* shape = e.get("shape");
    const Json* offsets = e.get("data_offsets");
    if (!dt || dt->kind != Json::kString || !shape || shape->kind != Json::kArray || !offsets ||
        offsets->kind != Json::kArray || offsets->items.size() != 2)
      return who + " lacks dtype, shape or data_offsets";
    TensorRef t;
    t.name = name;
    if (!safetensors_dtype(dt->text, &t.dtype))
      return who + " has unsupported dtype '" + printable(dt->text) + "' (F32, F64, F16, BF16 and integer types)";
    if (shape->items.size() > kMaxDims) return who + " has too many dimensions";
    uint64_t numel = 1;
    for (const Json& s : shape->items) {
      uint64_t v;
      if (!as_uint(s, &v)) return who + " has a shape entry that is not a non-negative integer";
      if (v != 0 && numel > kMaxElements / v) return who + " is too large";
      numel *= v;
      t.shape.push_back(static_cast<int64_t>(v));
    }
    uint64_t begin, end;
    if (!as_uint(offsets->items[0], &begin) || !as_uint(offsets->items[1], &end))
      return who + " has data_offsets that are not non-negative integers";
    if (begin > end || end > region_size)
      return who + " has data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
             "] outside the data region of " + std::to_string(region_size) + " bytes";
    const uint64_t nbytes = numel * dtype_size(t.dtype);
    if (end - begin != nbytes)
      return who + " spans " + std::to_string(end - begin) + " bytes but shape x dtype needs " + std::to_string(nbytes);
    t.strides = contiguous_strides(t.shape);
    t.data = region + begin;
    t.storage_elems = numel;
    const std::string err = check_view(name, t.shape, t.strides, 0, numel);
    if (!err.empty()) return "safetensors: " + err;
    if (nbytes) spans.push_back({begin, end});
    out->tensors.push_back(std::move(t));
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i)
    if (spans[i].first < spans[i - 1].second) return "safetensors: two tensors overlap in the data region";
  return "";
}

}  // namespace md::convert::detail

namespace md::convert {

std::string read_safetensors(const uint8_t* data, size_t size, Checkpoint* out) {
  if (data == nullptr && size > 0) return "null input";
  Checkpoint ck;
  ck.format = "safetensors";
  const uint8_t* own = ck.own(data, size);
  const std::string err = detail::parse_safetensors(own, size, &ck);
  if (!err.empty()) return err;
  *out = std::move(ck);
  return "";
}

}  // namespace md::convert
