// torch.save checkpoints, read by a restricted pickle virtual machine.
//
// The VM implements the opcodes (protocols 0-5) needed to rebuild what a
// state_dict holds: dicts and OrderedDicts, lists, tuples, ints, floats,
// strings, bytes, bools, None, the memo, persistent IDs for storages, and
// REDUCE of exactly these callables:
//   collections.OrderedDict            -> an empty dict
//   torch._utils._rebuild_tensor_v2    -> a tensor view of a storage
//   torch._utils._rebuild_tensor       -> the same (older files)
//   torch._utils._rebuild_parameter    -> its tensor
// plus the storage types torch.{Float,Double,Half,BFloat16}Storage (and the
// integer ones, so integer buffers can be listed) as persistent-ID tags.
// Any other GLOBAL/STACK_GLOBAL, any other opcode, is an error naming it.
// Nothing is ever imported or executed. Objects live in one pool addressed by
// index, so reference cycles a hostile file builds cost nothing to free.
//
// Formats:
//   zip (PyTorch >= 1.6): <dir>/data.pkl, storages in <dir>/data/<key>,
//     persistent ID ('storage', StorageType, key, location, numel);
//   legacy (_use_new_zipfile_serialization=False): pickles of the magic
//     number, the protocol version (1001) and sys_info, then the object
//     (persistent ID ('storage', StorageType, key, location, numel, None)),
//     then a pickled list of storage keys, then per key: u64 numel + raw data.
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "convert/convert.h"
#include "convert/internal.h"

namespace md::convert::detail {
namespace {

constexpr uint32_t kMaxObjects = 1u << 22;
constexpr int kMaxFlattenDepth = 64;
constexpr uint64_t kMaxFlattenVisits = 1u << 20;

enum class VK : uint8_t { kNone, kBool, kInt, kBigInt, kFloat, kStr, kBytes, kTuple, kList, kDict, kGlobal, kStorage, kTensor };

const char* kind_name(VK k) {
  switch (k) {
    case VK::kNone: return "None";
    case VK::kBool: return "bool";
    case VK::kInt: return "int";
    case VK::kBigInt: return "int";
    case VK::kFloat: return "float";
    case VK::kStr: return "str";
    case VK::kBytes: return "bytes";
    case VK::kTuple: return "tuple";
    case VK::kList: return "list";
    case VK::kDict: return "dict";
    case VK::kGlobal: return "global";
    case VK::kStorage: return "storage";
    case VK::kTensor: return "tensor";
  }
  return "?";
}

enum class Callable : uint8_t { kOrderedDict, kRebuildTensorV2, kRebuildTensor, kRebuildParameter, kStorageType };

struct AllowedGlobal {
  const char* module;
  const char* name;
  Callable call;
  DType dtype;
};
constexpr AllowedGlobal kAllowed[] = {
    {"collections", "OrderedDict", Callable::kOrderedDict, DType::kF32},
    {"torch._utils", "_rebuild_tensor_v2", Callable::kRebuildTensorV2, DType::kF32},
    {"torch._utils", "_rebuild_tensor", Callable::kRebuildTensor, DType::kF32},
    {"torch._utils", "_rebuild_parameter", Callable::kRebuildParameter, DType::kF32},
    {"torch", "FloatStorage", Callable::kStorageType, DType::kF32},
    {"torch", "DoubleStorage", Callable::kStorageType, DType::kF64},
    {"torch", "HalfStorage", Callable::kStorageType, DType::kF16},
    {"torch", "BFloat16Storage", Callable::kStorageType, DType::kBF16},
    {"torch", "LongStorage", Callable::kStorageType, DType::kI64},
    {"torch", "IntStorage", Callable::kStorageType, DType::kI32},
    {"torch", "ShortStorage", Callable::kStorageType, DType::kI16},
    {"torch", "CharStorage", Callable::kStorageType, DType::kI8},
    {"torch", "ByteStorage", Callable::kStorageType, DType::kU8},
    {"torch", "BoolStorage", Callable::kStorageType, DType::kBool},
};

struct Value {
  VK kind = VK::kNone;
  Callable call = Callable::kOrderedDict;  // kGlobal
  DType dtype = DType::kF32;               // kGlobal (storage types), kStorage
  int64_t i = 0;                           // int/bool; storage: numel; tensor: offset
  double f = 0.0;
  std::string s;                 // str, bytes, big int bytes, global name, storage key
  std::vector<uint32_t> items;   // tuple/list; dict: key, value, key, value...; tensor: [storage]
  std::vector<int64_t> shape, stride;  // tensor
  const uint8_t* data = nullptr;       // storage
  bool resolved = false;               // storage: data points at numel elements
};

struct OpName {
  uint8_t op;
  const char* name;
};
constexpr OpName kOpNames[] = {
    {'(', "MARK"}, {'.', "STOP"}, {'0', "POP"}, {'1', "POP_MARK"}, {'2', "DUP"}, {'F', "FLOAT"}, {'I', "INT"},
    {'J', "BININT"}, {'K', "BININT1"}, {'L', "LONG"}, {'M', "BININT2"}, {'N', "NONE"}, {'P', "PERSID"},
    {'Q', "BINPERSID"}, {'R', "REDUCE"}, {'S', "STRING"}, {'T', "BINSTRING"}, {'U', "SHORT_BINSTRING"},
    {'V', "UNICODE"}, {'X', "BINUNICODE"}, {'a', "APPEND"}, {'b', "BUILD"}, {'c', "GLOBAL"}, {'d', "DICT"},
    {'}', "EMPTY_DICT"}, {'e', "APPENDS"}, {'g', "GET"}, {'h', "BINGET"}, {'i', "INST"}, {'j', "LONG_BINGET"},
    {'l', "LIST"}, {']', "EMPTY_LIST"}, {'o', "OBJ"}, {'p', "PUT"}, {'q', "BINPUT"}, {'r', "LONG_BINPUT"},
    {'s', "SETITEM"}, {'t', "TUPLE"}, {')', "EMPTY_TUPLE"}, {'u', "SETITEMS"}, {'G', "BINFLOAT"},
    {0x80, "PROTO"}, {0x81, "NEWOBJ"}, {0x82, "EXT1"}, {0x83, "EXT2"}, {0x84, "EXT4"}, {0x85, "TUPLE1"},
    {0x86, "TUPLE2"}, {0x87, "TUPLE3"}, {0x88, "NEWTRUE"}, {0x89, "NEWFALSE"}, {0x8a, "LONG1"}, {0x8b, "LONG4"},
    {'B', "BINBYTES"}, {'C', "SHORT_BINBYTES"}, {0x8c, "SHORT_BINUNICODE"}, {0x8d, "BINUNICODE8"},
    {0x8e, "BINBYTES8"}, {0x8f, "EMPTY_SET"}, {0x90, "ADDITEMS"}, {0x91, "FROZENSET"}, {0x92, "NEWOBJ_EX"},
    {0x93, "STACK_GLOBAL"}, {0x94, "MEMOIZE"}, {0x95, "FRAME"}, {0x96, "BYTEARRAY8"}, {0x97, "NEXT_BUFFER"},
    {0x98, "READONLY_BUFFER"},
};

std::string op_desc(uint8_t op) {
  char buf[48];
  for (const OpName& o : kOpNames)
    if (o.op == op) {
      std::snprintf(buf, sizeof(buf), "%s (0x%02x)", o.name, op);
      return buf;
    }
  std::snprintf(buf, sizeof(buf), "0x%02x (not a pickle opcode)", op);
  return buf;
}

class Unpickler {
 public:
  // Called for BINPERSID with the persistent ID; returns an error or sets *out.
  using PersistentLoad = std::function<std::string(uint32_t pid, uint32_t* out)>;

  Unpickler(const uint8_t* data, size_t size) : d_(data), n_(size) {}

  std::vector<Value> pool;

  uint32_t make(VK kind) {
    pool.emplace_back();
    pool.back().kind = kind;
    return static_cast<uint32_t>(pool.size() - 1);
  }

  // Runs one pickle starting at `pos`; *end receives the offset after STOP.
  std::string load(size_t pos, const PersistentLoad& persistent_load, uint32_t* result, size_t* end) {
    pos_ = pos;
    stack_.clear();
    marks_.clear();
    memo_.clear();
    while (true) {
      if (pool.size() >= kMaxObjects) return fail("the pickle builds too many objects");
      if (pos_ >= n_) return fail("the pickle is truncated (no STOP opcode)");
      op_pos_ = pos_;
      const uint8_t op = d_[pos_++];
      std::string err;
      switch (op) {
        case 0x80: {  // PROTO
          uint8_t v;
          if (!u8(&v)) return truncated(op);
          if (v > 5) return fail("unsupported pickle protocol " + std::to_string(v));
          break;
        }
        case 0x95: {  // FRAME: only a length hint
          if (n_ - pos_ < 8) return truncated(op);
          pos_ += 8;
          break;
        }
        case '.': {  // STOP
          if (stack_.empty()) return fail("STOP with an empty stack");
          *result = stack_.back();
          *end = pos_;
          return "";
        }
        case '(': marks_.push_back(stack_.size()); break;
        case '0':  // POP
          if (!stack_.empty() && (marks_.empty() || marks_.back() < stack_.size())) {
            stack_.pop_back();
          } else if (!marks_.empty()) {
            marks_.pop_back();
          } else {
            return fail("POP from an empty stack");
          }
          break;
        case '1': {  // POP_MARK
          std::vector<uint32_t> discard;
          if (!pop_mark(&discard)) return fail("POP_MARK without a MARK");
          break;
        }
        case '2':  // DUP
          if (stack_.empty()) return fail("DUP on an empty stack");
          stack_.push_back(stack_.back());
          break;
        case 'N': push(make(VK::kNone)); break;
        case 0x88:
        case 0x89: {
          const uint32_t v = make(VK::kBool);
          pool[v].i = op == 0x88;
          push(v);
          break;
        }
        case 'I': {  // INT (text): "I01\n" is True, "I00\n" False
          std::string line;
          if (!read_line(&line)) return truncated(op);
          const uint32_t v = make(VK::kInt);
          if (line == "00" || line == "01") {
            pool[v].kind = VK::kBool;
            pool[v].i = line == "01";
          } else if (!parse_int(line, &pool[v].i)) {
            return fail("INT with a malformed value");
          }
          push(v);
          break;
        }
        case 'J': {
          if (n_ - pos_ < 4) return truncated(op);
          const uint32_t v = make(VK::kInt);
          pool[v].i = static_cast<int32_t>(rd32(d_ + pos_));
          pos_ += 4;
          push(v);
          break;
        }
        case 'K': {
          uint8_t b;
          if (!u8(&b)) return truncated(op);
          const uint32_t v = make(VK::kInt);
          pool[v].i = b;
          push(v);
          break;
        }
        case 'M': {
          if (n_ - pos_ < 2) return truncated(op);
          const uint32_t v = make(VK::kInt);
          pool[v].i = rd16(d_ + pos_);
          pos_ += 2;
          push(v);
          break;
        }
        case 0x8a:    // LONG1
        case 0x8b: {  // LONG4
          uint64_t len;
          if (op == 0x8a) {
            uint8_t b;
            if (!u8(&b)) return truncated(op);
            len = b;
          } else {
            if (n_ - pos_ < 4) return truncated(op);
            const int32_t l = static_cast<int32_t>(rd32(d_ + pos_));
            pos_ += 4;
            if (l < 0) return fail("LONG4 with a negative length");
            len = static_cast<uint64_t>(l);
          }
          if (n_ - pos_ < len) return truncated(op);
          const uint32_t v = make(VK::kInt);
          if (len <= 8) {
            uint64_t x = 0;
            for (uint64_t k = 0; k < len; ++k) x |= static_cast<uint64_t>(d_[pos_ + k]) << (8 * k);
            if (len > 0 && len < 8 && (d_[pos_ + len - 1] & 0x80)) x |= ~0ull << (8 * len);  // sign-extend
            pool[v].i = static_cast<int64_t>(x);
          } else {
            pool[v].kind = VK::kBigInt;
            pool[v].s.assign(reinterpret_cast<const char*>(d_ + pos_), static_cast<size_t>(len));
          }
          pos_ += static_cast<size_t>(len);
          push(v);
          break;
        }
        case 'G': {  // BINFLOAT: big-endian double
          if (n_ - pos_ < 8) return truncated(op);
          uint64_t x = 0;
          for (int k = 0; k < 8; ++k) x = (x << 8) | d_[pos_ + k];
          pos_ += 8;
          const uint32_t v = make(VK::kFloat);
          std::memcpy(&pool[v].f, &x, 8);
          push(v);
          break;
        }
        case 'X':     // BINUNICODE
        case 0x8c:    // SHORT_BINUNICODE
        case 0x8d:    // BINUNICODE8
        case 'T':     // BINSTRING
        case 'U':     // SHORT_BINSTRING
        case 'B':     // BINBYTES
        case 'C':     // SHORT_BINBYTES
        case 0x8e: {  // BINBYTES8
          uint64_t len;
          if (op == 0x8c || op == 'U' || op == 'C') {
            uint8_t b;
            if (!u8(&b)) return truncated(op);
            len = b;
          } else if (op == 0x8d || op == 0x8e) {
            if (n_ - pos_ < 8) return truncated(op);
            len = rd64(d_ + pos_);
            pos_ += 8;
          } else {
            if (n_ - pos_ < 4) return truncated(op);
            len = rd32(d_ + pos_);
            pos_ += 4;
            if (op == 'T' && len > 0x7FFFFFFFu) return fail("BINSTRING with a negative length");
          }
          if (n_ - pos_ < len) return truncated(op);
          const bool bytes = op == 'B' || op == 'C' || op == 0x8e;
          const uint32_t v = make(bytes ? VK::kBytes : VK::kStr);
          pool[v].s.assign(reinterpret_cast<const char*>(d_ + pos_), static_cast<size_t>(len));
          pos_ += static_cast<size_t>(len);
          push(v);
          break;
        }
        case ')': push(make(VK::kTuple)); break;
        case ']': push(make(VK::kList)); break;
        case '}': push(make(VK::kDict)); break;
        case 't':
        case 'l': {  // TUPLE, LIST
          std::vector<uint32_t> items;
          if (!pop_mark(&items)) return fail(op_desc(op) + " without a MARK");
          const uint32_t v = make(op == 't' ? VK::kTuple : VK::kList);
          pool[v].items = std::move(items);
          push(v);
          break;
        }
        case 'd': {  // DICT
          std::vector<uint32_t> items;
          if (!pop_mark(&items)) return fail("DICT without a MARK");
          if (items.size() % 2) return fail("DICT with an odd number of items");
          const uint32_t v = make(VK::kDict);
          for (size_t k = 0; k < items.size(); k += 2) set_item(v, items[k], items[k + 1]);
          push(v);
          break;
        }
        case 0x85:
        case 0x86:
        case 0x87: {  // TUPLE1..3
          const size_t k = op - 0x84u;
          if (stack_.size() < k || (!marks_.empty() && stack_.size() - marks_.back() < k))
            return fail(op_desc(op) + " with too few items on the stack");
          const uint32_t v = make(VK::kTuple);
          pool[v].items.assign(stack_.end() - static_cast<ptrdiff_t>(k), stack_.end());
          stack_.resize(stack_.size() - k);
          push(v);
          break;
        }
        case 'a': {  // APPEND
          uint32_t item, list;
          if (!pop(&item) || !top(&list)) return fail("APPEND with too few items on the stack");
          if (pool[list].kind != VK::kList) return fail(std::string("APPEND to a ") + kind_name(pool[list].kind));
          pool[list].items.push_back(item);
          break;
        }
        case 'e': {  // APPENDS
          std::vector<uint32_t> items;
          uint32_t list;
          if (!pop_mark(&items) || !top(&list)) return fail("APPENDS without a MARK or a list");
          if (pool[list].kind != VK::kList) return fail(std::string("APPENDS to a ") + kind_name(pool[list].kind));
          pool[list].items.insert(pool[list].items.end(), items.begin(), items.end());
          break;
        }
        case 's': {  // SETITEM
          uint32_t value, key, dict;
          if (!pop(&value) || !pop(&key) || !top(&dict)) return fail("SETITEM with too few items on the stack");
          if (pool[dict].kind != VK::kDict) return fail(std::string("SETITEM on a ") + kind_name(pool[dict].kind));
          set_item(dict, key, value);
          break;
        }
        case 'u': {  // SETITEMS
          std::vector<uint32_t> items;
          uint32_t dict;
          if (!pop_mark(&items) || !top(&dict)) return fail("SETITEMS without a MARK or a dict");
          if (pool[dict].kind != VK::kDict) return fail(std::string("SETITEMS on a ") + kind_name(pool[dict].kind));
          if (items.size() % 2) return fail("SETITEMS with an odd number of items");
          for (size_t k = 0; k < items.size(); k += 2) set_item(dict, items[k], items[k + 1]);
          break;
        }
        case 'p':     // PUT (text)
        case 'q':     // BINPUT
        case 'r':     // LONG_BINPUT
        case 0x94: {  // MEMOIZE
          uint64_t idx;
          if (op == 'p') {
            std::string line;
            int64_t v;
            if (!read_line(&line)) return truncated(op);
            if (!parse_int(line, &v) || v < 0) return fail("PUT with a malformed index");
            idx = static_cast<uint64_t>(v);
          } else if (op == 'q') {
            uint8_t b;
            if (!u8(&b)) return truncated(op);
            idx = b;
          } else if (op == 'r') {
            if (n_ - pos_ < 4) return truncated(op);
            idx = rd32(d_ + pos_);
            pos_ += 4;
          } else {
            idx = memo_.size();
          }
          if (stack_.empty()) return fail(op_desc(op) + " with an empty stack");
          memo_[idx] = stack_.back();
          break;
        }
        case 'g':
        case 'h':
        case 'j': {  // GET, BINGET, LONG_BINGET
          uint64_t idx;
          if (op == 'g') {
            std::string line;
            int64_t v;
            if (!read_line(&line)) return truncated(op);
            if (!parse_int(line, &v) || v < 0) return fail("GET with a malformed index");
            idx = static_cast<uint64_t>(v);
          } else if (op == 'h') {
            uint8_t b;
            if (!u8(&b)) return truncated(op);
            idx = b;
          } else {
            if (n_ - pos_ < 4) return truncated(op);
            idx = rd32(d_ + pos_);
            pos_ += 4;
          }
          const auto it = memo_.find(idx);
          if (it == memo_.end()) return fail(op_desc(op) + " of memo entry " + std::to_string(idx) + ", which was never stored");
          push(it->second);
          break;
        }
        case 'c': {  // GLOBAL "module\nname\n"
          std::string module, name;
          if (!read_line(&module) || !read_line(&name)) return truncated(op);
          err = global(module, name, "GLOBAL");
          if (!err.empty()) return err;
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          uint32_t name, module;
          if (!pop(&name) || !pop(&module)) return fail("STACK_GLOBAL with too few items on the stack");
          if (pool[name].kind != VK::kStr || pool[module].kind != VK::kStr)
            return fail("STACK_GLOBAL with non-string module or name");
          err = global(pool[module].s, pool[name].s, "STACK_GLOBAL");
          if (!err.empty()) return err;
          break;
        }
        case 'R':     // REDUCE
        case 0x81: {  // NEWOBJ
          uint32_t args, fn;
          if (!pop(&args) || !pop(&fn)) return fail(op_desc(op) + " with too few items on the stack");
          uint32_t v;
          err = reduce(op, fn, args, &v);
          if (!err.empty()) return err;
          push(v);
          break;
        }
        case 'b': {  // BUILD: only the OrderedDict's attributes (state_dict._metadata)
          uint32_t state, obj;
          if (!pop(&state) || !top(&obj)) return fail("BUILD with too few items on the stack");
          if (pool[obj].kind != VK::kDict && pool[obj].kind != VK::kTensor)
            return fail(std::string("BUILD on a ") + kind_name(pool[obj].kind) + " is not supported");
          break;
        }
        case 'Q': {  // BINPERSID
          uint32_t pid, v;
          if (!pop(&pid)) return fail("BINPERSID with an empty stack");
          if (!persistent_load) return fail("BINPERSID where no storages are expected");
          err = persistent_load(pid, &v);
          if (!err.empty()) return fail(err);
          push(v);
          break;
        }
        default:
          return fail("opcode " + op_desc(op) + " is not supported (only what a state_dict needs is)");
      }
    }
  }

  std::string fail(const std::string& m) const { return "pickle: " + m + " (at byte " + std::to_string(op_pos_) + ")"; }

 private:
  std::string truncated(uint8_t op) const { return fail("truncated " + op_desc(op) + " argument"); }
  bool u8(uint8_t* v) {
    if (pos_ >= n_) return false;
    *v = d_[pos_++];
    return true;
  }
  bool read_line(std::string* out) {
    const size_t start = pos_;
    while (pos_ < n_ && d_[pos_] != '\n') {
      if (pos_ - start > 4096) return false;
      ++pos_;
    }
    if (pos_ >= n_) return false;
    out->assign(reinterpret_cast<const char*>(d_ + start), pos_ - start);
    ++pos_;
    return true;
  }
  static bool parse_int(const std::string& s, int64_t* v) {
    if (s.empty() || s.size() > 18) return false;
    size_t k = 0;
    bool neg = false;
    if (s[0] == '-' || s[0] == '+') {
      neg = s[0] == '-';
      k = 1;
    }
    if (k == s.size()) return false;
    int64_t x = 0;
    for (; k < s.size(); ++k) {
      if (s[k] < '0' || s[k] > '9') return false;
      x = x * 10 + (s[k] - '0');
    }
    *v = neg ? -x : x;
    return true;
  }
  void push(uint32_t v) { stack_.push_back(v); }
  bool pop(uint32_t* v) {
    if (stack_.empty() || (!marks_.empty() && marks_.back() >= stack_.size())) return false;
    *v = stack_.back();
    stack_.pop_back();
    return true;
  }
  bool top(uint32_t* v) const {
    if (stack_.empty() || (!marks_.empty() && marks_.back() >= stack_.size())) return false;
    *v = stack_.back();
    return true;
  }
  bool pop_mark(std::vector<uint32_t>* items) {
    if (marks_.empty()) return false;
    const size_t k = marks_.back();
    marks_.pop_back();
    items->assign(stack_.begin() + static_cast<ptrdiff_t>(k), stack_.end());
    stack_.resize(k);
    return true;
  }
  // Dict keys compare by value for str/int/bool/None, by identity otherwise.
  std::string key_of(uint32_t k) const {
    const Value& v = pool[k];
    switch (v.kind) {
      case VK::kStr:  // long keys (never in a state_dict) compare by identity: hashing stays cheap
        return v.s.size() <= 1024 ? "s" + v.s : "o" + std::to_string(k);
      case VK::kInt:
      case VK::kBool: return "i" + std::to_string(v.i);
      case VK::kNone: return "n";
      default: return "o" + std::to_string(k);
    }
  }
  void set_item(uint32_t dict, uint32_t key, uint32_t value) {
    auto& index = dict_index_[dict];
    const std::string k = key_of(key);
    const auto it = index.find(k);
    if (it != index.end()) {
      pool[dict].items[it->second + 1] = value;
      return;
    }
    index[k] = pool[dict].items.size();
    pool[dict].items.push_back(key);
    pool[dict].items.push_back(value);
  }
  std::string global(const std::string& module, const std::string& name, const char* op) {
    for (const AllowedGlobal& g : kAllowed) {
      if (module == g.module && name == g.name) {
        const uint32_t v = make(VK::kGlobal);
        pool[v].call = g.call;
        pool[v].dtype = g.dtype;
        pool[v].s = module + "." + name;
        push(v);
        return "";
      }
    }
    std::string hint;
    if (module.compare(0, 9, "__torch__") == 0)
      hint = "; this looks like a TorchScript archive (torch.jit.save): save model.state_dict() with torch.save";
    else if (module == "__main__" || module.find("torch.nn") == 0)
      hint = "; the file pickles a whole Python object: save model.state_dict() instead";
    return fail(std::string(op) + " '" + printable(module) + "." + printable(name) +
                "' is not allowed: a state_dict only needs collections.OrderedDict, "
                "torch._utils._rebuild_tensor_v2 and torch.*Storage; nothing was imported or executed" +
                hint);
  }
  bool is_int(uint32_t v) const { return pool[v].kind == VK::kInt || pool[v].kind == VK::kBool; }
  bool int_tuple(uint32_t v, std::vector<int64_t>* out) const {
    if (pool[v].kind != VK::kTuple && pool[v].kind != VK::kList) return false;
    if (pool[v].items.size() > kMaxDims) return false;
    out->clear();
    for (uint32_t e : pool[v].items) {
      if (pool[e].kind != VK::kInt) return false;
      out->push_back(pool[e].i);
    }
    return true;
  }
  std::string reduce(uint8_t op, uint32_t fn, uint32_t args, uint32_t* out) {
    if (pool[fn].kind != VK::kGlobal) return fail(op_desc(op) + " of a " + kind_name(pool[fn].kind) + ", not a callable");
    if (pool[args].kind != VK::kTuple) return fail(op_desc(op) + " with arguments that are not a tuple");
    if (pool[args].items.size() > 7) return fail(op_desc(op) + " of " + pool[fn].s + " with too many arguments");
    const std::vector<uint32_t> a = pool[args].items;  // copy: make() may reallocate the pool
    const std::string fname = pool[fn].s;
    const Callable call = pool[fn].call;
    if (op == 0x81 && call != Callable::kOrderedDict) return fail("NEWOBJ of " + fname + " is not supported");
    switch (call) {
      case Callable::kOrderedDict:
        if (!a.empty()) return fail("collections.OrderedDict called with arguments");
        *out = make(VK::kDict);
        return "";
      case Callable::kRebuildParameter:
        if (a.size() < 1 || a.size() > 4 || pool[a[0]].kind != VK::kTensor)
          return fail("torch._utils._rebuild_parameter with unexpected arguments");
        *out = a[0];
        return "";
      case Callable::kRebuildTensor:
      case Callable::kRebuildTensorV2: {
        const bool v2 = call == Callable::kRebuildTensorV2;
        if (v2 ? (a.size() != 6 && a.size() != 7) : a.size() != 4)
          return fail(fname + " with " + std::to_string(a.size()) + " arguments");
        if (pool[a[0]].kind != VK::kStorage) return fail(fname + ": the first argument is not a storage");
        if (!is_int(a[1]) || pool[a[1]].i < 0) return fail(fname + ": bad storage offset");
        std::vector<int64_t> shape, stride;
        if (!int_tuple(a[2], &shape) || !int_tuple(a[3], &stride) || shape.size() != stride.size())
          return fail(fname + ": bad size or stride");
        const Value& st = pool[a[0]];
        const std::string err = check_view("(pickled)", shape, stride, static_cast<uint64_t>(pool[a[1]].i),
                                           static_cast<uint64_t>(st.i));
        if (!err.empty()) return fail(err);
        const uint32_t v = make(VK::kTensor);
        pool[v].items = {a[0]};
        pool[v].i = pool[a[1]].i;
        pool[v].shape = shape;
        pool[v].stride = stride;
        *out = v;
        return "";
      }
      case Callable::kStorageType:
        return fail(fname + " cannot be called");
    }
    return fail("unknown callable");
  }

  const uint8_t* d_;
  size_t n_;
  size_t pos_ = 0, op_pos_ = 0;
  std::vector<uint32_t> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, uint32_t> memo_;
  std::unordered_map<uint32_t, std::unordered_map<std::string, size_t>> dict_index_;
};

// Validates a persistent ID ('storage', StorageType, key, location, numel[, view]) and
// returns (creating on first use) the storage object for its key.
struct StorageTable {
  std::map<std::string, uint32_t> by_key;
  std::string get(Unpickler& u, uint32_t pid, bool legacy, uint32_t* out) {
    const Value& p = u.pool[pid];
    if (p.kind != VK::kTuple || p.items.empty()) return "persistent ID is not a tuple";
    const Value& tag = u.pool[p.items[0]];
    if (tag.kind != VK::kStr || tag.s != "storage")
      return "persistent ID of type '" + (tag.kind == VK::kStr ? printable(tag.s) : std::string(kind_name(tag.kind))) +
             "' is not supported (only storages)";
    if (p.items.size() != (legacy ? 6u : 5u)) return "storage persistent ID has " + std::to_string(p.items.size()) + " fields";
    const Value& type = u.pool[p.items[1]];
    const Value& key = u.pool[p.items[2]];
    const Value& numel = u.pool[p.items[4]];
    if (type.kind != VK::kGlobal || type.call != Callable::kStorageType) return "storage persistent ID without a storage type";
    if (key.kind != VK::kStr && key.kind != VK::kInt) return "storage persistent ID with a bad key";
    if (numel.kind != VK::kInt || numel.i < 0 || static_cast<uint64_t>(numel.i) > kMaxElements)
      return "storage persistent ID with a bad element count";
    if (legacy && u.pool[p.items[5]].kind != VK::kNone)
      return "storage views (files from PyTorch before 1.0) are not supported";
    const std::string k = key.kind == VK::kStr ? key.s : std::to_string(key.i);
    const DType dt = type.dtype;
    const int64_t n = numel.i;
    const auto it = by_key.find(k);
    if (it != by_key.end()) {
      const Value& s = u.pool[it->second];
      if (s.dtype != dt || s.i != n) return "storage '" + printable(k) + "' is referenced with different types or sizes";
      *out = it->second;
      return "";
    }
    const uint32_t v = u.make(VK::kStorage);
    u.pool[v].s = k;
    u.pool[v].dtype = dt;
    u.pool[v].i = n;
    by_key[k] = v;
    *out = v;
    return "";
  }
};

// Collects (dotted name, tensor) pairs from the object tree.
struct Flattener {
  const std::vector<Value>& pool;
  std::vector<std::pair<std::string, uint32_t>> out;
  std::vector<uint32_t> path;  // containers being visited (cycle check)
  uint64_t visits = 0;
  uint64_t name_bytes = 0;  // every name built: a shared sub-list (a DAG) repeats its names
  std::string error;

  bool visit(uint32_t v, const std::string& name, int depth) {
    name_bytes += name.size();
    if (++visits > kMaxFlattenVisits || name_bytes > (16u << 20)) {
      error = "the pickled structure is too large to walk";
      return false;
    }
    if (name.size() > 4096) {
      error = "a tensor name is longer than 4096 bytes";
      return false;
    }
    const Value& x = pool[v];
    if (x.kind == VK::kTensor) {
      out.push_back({name, v});
      return true;
    }
    if (x.kind != VK::kDict && x.kind != VK::kList && x.kind != VK::kTuple) return true;
    if (depth > kMaxFlattenDepth) {
      error = "the pickled structure nests more than 64 levels";
      return false;
    }
    for (uint32_t p : path)
      if (p == v) {
        error = "the pickled structure contains a reference cycle at '" + printable(name) + "'";
        return false;
      }
    path.push_back(v);
    const std::string prefix = name.empty() ? "" : name + ".";
    if (x.kind == VK::kDict) {
      for (size_t k = 0; k + 1 < x.items.size(); k += 2) {
        const Value& key = pool[x.items[k]];
        std::string ks;
        if (key.kind == VK::kStr) ks = key.s;
        else if (key.kind == VK::kInt) ks = std::to_string(key.i);
        else continue;  // tensors under other key types cannot be named
        if (!visit(x.items[k + 1], prefix + ks, depth + 1)) return false;
      }
    } else {
      for (size_t k = 0; k < x.items.size(); ++k)
        if (!visit(x.items[k], prefix + std::to_string(k), depth + 1)) return false;
    }
    path.pop_back();
    return true;
  }
};

std::string collect(const Unpickler& u, uint32_t root, bool big_endian, Checkpoint* out) {
  Flattener f{u.pool, {}, {}, 0, 0, ""};
  if (!f.visit(root, "", 0)) return "pickle: " + f.error;
  std::set<std::string> names;
  for (const auto& [name, idx] : f.out) {
    const Value& t = u.pool[idx];
    const Value& s = u.pool[t.items[0]];
    if (!s.resolved) return "storage '" + printable(s.s) + "' of tensor '" + printable(name) + "' is missing from the file";
    if (!names.insert(name).second) return "two tensors are both named '" + printable(name) + "'";
    TensorRef r;
    r.name = name.empty() ? "(root)" : name;
    r.dtype = s.dtype;
    r.shape = t.shape;
    r.strides = t.stride;
    r.data = s.data;
    r.storage_elems = static_cast<uint64_t>(s.i);
    r.offset = static_cast<uint64_t>(t.i);
    r.big_endian = big_endian;
    const std::string err = check_view(r.name, r.shape, r.strides, r.offset, r.storage_elems);
    if (!err.empty()) return err;
    out->tensors.push_back(std::move(r));
  }
  return "";
}

std::string parse_zip_pytorch(const uint8_t* data, size_t size, Checkpoint* out) {
  std::vector<ZipEntry> entries;
  std::string err = zip_list(data, size, &entries);
  if (!err.empty()) return err;
  const ZipEntry* pkl = nullptr;
  std::map<std::string, const ZipEntry*> by_name;
  for (const ZipEntry& e : entries) {
    by_name[e.name] = &e;
    const std::string& n = e.name;
    if (n.size() < 8 || n.compare(n.size() - 8, 8, "data.pkl") != 0) continue;
    const std::string prefix = n.substr(0, n.size() - 8);
    if (!prefix.empty() && (prefix.back() != '/' || prefix.find('/') != prefix.size() - 1)) continue;
    if (pkl) return "PyTorch zip: more than one data.pkl ('" + printable(pkl->name) + "', '" + printable(n) + "')";
    pkl = &e;
  }
  if (!pkl) return "PyTorch zip: no top-level <name>/data.pkl record";
  const std::string prefix = pkl->name.substr(0, pkl->name.size() - 8);
  bool big_endian = false;
  const auto bo = by_name.find(prefix + "byteorder");
  if (bo != by_name.end()) {
    const uint8_t* p;
    size_t n;
    err = zip_read(data, size, *bo->second, out, &p, &n);
    if (!err.empty()) return err;
    const std::string order(reinterpret_cast<const char*>(p), n);
    if (order == "big") big_endian = true;
    else if (order != "little") return "PyTorch zip: byteorder record says '" + printable(order) + "'";
  }
  const uint8_t* pk;
  size_t pk_n;
  err = zip_read(data, size, *pkl, out, &pk, &pk_n);
  if (!err.empty()) return err;
  Unpickler u(pk, pk_n);
  StorageTable storages;
  auto load = [&](uint32_t pid, uint32_t* v) -> std::string {
    std::string e = storages.get(u, pid, false, v);
    if (!e.empty()) return e;
    Value& s = u.pool[*v];
    if (s.resolved) return "";
    const auto it = by_name.find(prefix + "data/" + s.s);
    if (it == by_name.end()) return "storage record '" + printable(prefix + "data/" + s.s) + "' is missing";
    const uint8_t* p;
    size_t n;
    e = zip_read(data, size, *it->second, out, &p, &n);
    if (!e.empty()) return e;
    const uint64_t need = static_cast<uint64_t>(s.i) * dtype_size(s.dtype);
    if (n < need)
      return "storage record '" + printable(it->first) + "' holds " + std::to_string(n) + " bytes, " +
             std::to_string(s.i) + " " + dtype_name(s.dtype) + " elements need " + std::to_string(need);
    s.data = p;
    s.resolved = true;
    return "";
  };
  uint32_t root;
  size_t end;
  err = u.load(0, load, &root, &end);
  if (!err.empty()) return err;
  return collect(u, root, big_endian, out);
}

// 0x1950a86a20f9469cfc6c, little-endian: torch.serialization.MAGIC_NUMBER.
constexpr uint8_t kLegacyMagic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

std::string parse_legacy_pytorch(const uint8_t* data, size_t size, Checkpoint* out) {
  Unpickler u(data, size);
  uint32_t v;
  size_t pos = 0;
  std::string err = u.load(pos, nullptr, &v, &pos);
  if (!err.empty()) return "legacy PyTorch file: magic number: " + err;
  const Value& magic = u.pool[v];
  if (magic.kind != VK::kBigInt || magic.s.size() != 10 || std::memcmp(magic.s.data(), kLegacyMagic, 10) != 0)
    return "not a PyTorch checkpoint: the first pickle is not torch's magic number";
  err = u.load(pos, nullptr, &v, &pos);
  if (!err.empty()) return "legacy PyTorch file: protocol version: " + err;
  if (u.pool[v].kind != VK::kInt || u.pool[v].i != 1001)
    return "legacy PyTorch file: unsupported protocol version (expected 1001)";
  err = u.load(pos, nullptr, &v, &pos);
  if (!err.empty()) return "legacy PyTorch file: sys_info: " + err;
  bool big_endian = false;
  {
    const Value& info = u.pool[v];
    if (info.kind != VK::kDict) return "legacy PyTorch file: sys_info is not a dict";
    for (size_t k = 0; k + 1 < info.items.size(); k += 2) {
      const Value& key = u.pool[info.items[k]];
      const Value& val = u.pool[info.items[k + 1]];
      if (key.kind == VK::kStr && key.s == "little_endian" && (val.kind == VK::kBool || val.kind == VK::kInt))
        big_endian = val.i == 0;
    }
  }
  StorageTable storages;
  auto load = [&](uint32_t pid, uint32_t* s) { return storages.get(u, pid, true, s); };
  uint32_t root;
  err = u.load(pos, load, &root, &pos);
  if (!err.empty()) return err;
  uint32_t keys;
  err = u.load(pos, nullptr, &keys, &pos);
  if (!err.empty()) return "legacy PyTorch file: storage key list: " + err;
  if (u.pool[keys].kind != VK::kList) return "legacy PyTorch file: the storage key list is not a list";
  const std::vector<uint32_t> key_items = u.pool[keys].items;
  for (uint32_t k : key_items) {
    const Value& key = u.pool[k];
    if (key.kind != VK::kStr) return "legacy PyTorch file: a storage key is not a string";
    const auto it = storages.by_key.find(key.s);
    if (it == storages.by_key.end())
      return "legacy PyTorch file: storage '" + printable(key.s) + "' is listed but no tensor uses it";
    Value& s = u.pool[it->second];
    if (s.resolved) return "legacy PyTorch file: storage '" + printable(key.s) + "' is listed twice";
    if (size - pos < 8) return "legacy PyTorch file is truncated in storage '" + printable(key.s) + "'";
    uint64_t numel = 0;
    for (int b = 0; b < 8; ++b) numel |= static_cast<uint64_t>(data[pos + (big_endian ? 7 - b : b)]) << (8 * b);
    pos += 8;
    if (numel != static_cast<uint64_t>(s.i))
      return "legacy PyTorch file: storage '" + printable(key.s) + "' has " + std::to_string(numel) +
             " elements, its tensors expect " + std::to_string(s.i);
    const uint64_t nbytes = numel * dtype_size(s.dtype);
    if (size - pos < nbytes) return "legacy PyTorch file is truncated in storage '" + printable(key.s) + "'";
    s.data = data + pos;
    s.resolved = true;
    pos += static_cast<size_t>(nbytes);
  }
  return collect(u, root, big_endian, out);
}

}  // namespace

std::string parse_pytorch(const uint8_t* data, size_t size, Checkpoint* out) {
  if (is_zip(data, size)) {
    out->format = "pytorch zip";
    return parse_zip_pytorch(data, size, out);
  }
  out->format = "pytorch legacy";
  return parse_legacy_pytorch(data, size, out);
}

}  // namespace md::convert::detail

namespace md::convert {

std::string read_pytorch(const uint8_t* data, size_t size, Checkpoint* out) {
  if (data == nullptr && size > 0) return "null input";
  Checkpoint ck;
  const uint8_t* own = ck.own(data, size);
  const std::string err = detail::parse_pytorch(own, size, &ck);
  if (!err.empty()) return err;
  *out = std::move(ck);
  return "";
}

}  // namespace md::convert
