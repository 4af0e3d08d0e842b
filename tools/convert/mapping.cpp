// From named tensors to the runtime's layer list: the presets (tutorial,
// default), mapping files, shape inference and strict checking, and the
// whole conversion to a .mdw file.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "convert/convert.h"
#include "convert/internal.h"
#include "microdiffusion/weights.h"

namespace md::convert {
namespace {

using detail::printable;

bool activation_from_name(const std::string& s, Activation* a) {
  for (uint32_t i = 0; i < kActivationCount; ++i)
    if (s == activation_name(static_cast<Activation>(i))) {
      *a = static_cast<Activation>(i);
      return true;
    }
  if (s == "gelu") {  // nn.GELU() default
    *a = Activation::kGeluErf;
    return true;
  }
  return false;
}

bool parse_u32(const std::string& s, uint32_t lo, uint32_t hi, uint32_t* v) {
  if (s.empty() || s.size() > 9) return false;
  uint32_t x = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    x = x * 10 + static_cast<uint32_t>(c - '0');
  }
  if (x < lo || x > hi) return false;
  *v = x;
  return true;
}

bool parse_float(const std::string& s, float* v) {
  if (s.empty()) return false;
  char* end = nullptr;
  const double d = std::strtod(s.c_str(), &end);
  if (*end != '\0' || !std::isfinite(d) || std::fabs(d) > 3e38) return false;
  *v = static_cast<float>(d);
  return true;
}

std::vector<std::string> split_ws(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

bool matches(const std::string& pattern, const std::string& name) {
  if (!pattern.empty() && pattern.back() == '*')
    return name.compare(0, pattern.size() - 1, pattern, 0, pattern.size() - 1) == 0;
  return pattern == name;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "(";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + (s.size() == 1 ? ",)" : ")");
}

}  // namespace

// ---- mapping file ---------------------------------------------------------------

std::string parse_map(const std::string& text, const std::string& name, ModelSpec* out) {
  ModelSpec spec;
  spec.arch = "map";
  std::istringstream in(text);
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    const size_t hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    const std::vector<std::string> w = split_ws(line);
    if (w.empty()) continue;
    const std::string at = name + ":" + std::to_string(line_no) + ": ";
    const std::string& kind = w[0];
    if (kind == "D" || kind == "T") {
      uint32_t v;
      if (w.size() != 2 || !parse_u32(w[1], 1, kind == "D" ? kMaxDataDim : kMaxTimesteps, &v))
        return at + kind + " needs one positive integer";
      (kind == "D" ? spec.D : spec.T) = v;
      continue;
    }
    if (kind == "ignore") {
      if (w.size() < 2) return at + "ignore needs at least one tensor name or prefix*";
      spec.ignore.insert(spec.ignore.end(), w.begin() + 1, w.end());
      continue;
    }
    LayerSpec L;
    L.line = line_no;
    size_t first_option = 1;
    if (kind == "embed") {
      L.desc.kind = LayerKind::kEmbed;
    } else if (kind == "linear") {
      L.desc.kind = LayerKind::kLinear;
    } else if (kind == "activation" || kind == "residual") {
      L.desc.kind = kind == "activation" ? LayerKind::kActivation : LayerKind::kResidual;
      if (w.size() < 2 || !activation_from_name(w[1], &L.desc.act))
        return at + kind + " needs an activation: identity, relu, silu, gelu_tanh, gelu_erf (or gelu), softplus, tanh";
      first_option = 2;
    } else if (kind == "time_gate") {
      L.desc.kind = LayerKind::kTimeGate;
    } else if (kind == "time_add") {
      L.desc.kind = LayerKind::kTimeAdd;
    } else if (kind == "label_add") {
      L.desc.kind = LayerKind::kLabelAdd;
    } else {
      return at + "unknown line '" + printable(kind) +
             "' (expected D, T, ignore, embed, linear, activation, residual, time_gate, time_add or label_add)";
    }
    const bool has_weight = L.desc.kind == LayerKind::kLinear || L.desc.kind == LayerKind::kResidual ||
                            L.desc.kind == LayerKind::kTimeGate;
    const bool has_table = L.desc.kind == LayerKind::kTimeGate || L.desc.kind == LayerKind::kTimeAdd ||
                           L.desc.kind == LayerKind::kLabelAdd;
    std::set<std::string> seen;
    for (size_t i = first_option; i < w.size(); ++i) {
      const size_t eq = w[i].find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == w[i].size())
        return at + "expected key=value, got '" + printable(w[i]) + "'";
      const std::string key = w[i].substr(0, eq), value = w[i].substr(eq + 1);
      if (!seen.insert(key).second) return at + key + " given twice";
      bool ok = false;
      if (L.desc.kind == LayerKind::kEmbed) {
        if (key == "x_raw") ok = parse_u32(value, 0, 1, &L.desc.x_raw);
        else if (key == "x_sin") ok = parse_u32(value, 0, kMaxWidth, &L.desc.x_sin_dim) && L.desc.x_sin_dim % 2 == 0;
        else if (key == "t_sin") ok = parse_u32(value, 0, kMaxWidth, &L.desc.t_sin_dim) && L.desc.t_sin_dim % 2 == 0;
        else if (key == "x_scale") ok = parse_float(value, &L.desc.x_scale);
        else return at + "embed takes x_raw, x_sin, t_sin and x_scale, not '" + printable(key) + "'";
        if (!ok) return at + "bad value for " + key + ": '" + printable(value) + "' (sinusoid widths are even)";
        continue;
      }
      if (key == "weight" && has_weight) L.weight = value;
      else if (key == "bias" && has_weight) L.bias = value;
      else if (key == "table" && has_table) L.table = value;
      else if (key == "layout" && has_weight) {
        if (value == "in_out") L.weight_in_out = true;
        else if (value != "out_in") return at + "layout must be out_in (nn.Linear) or in_out";
      } else {
        return at + kind + " does not take '" + printable(key) + "'";
      }
    }
    if (has_weight && (L.weight.empty() || L.bias.empty())) return at + kind + " needs weight=NAME and bias=NAME (or bias=none)";
    if (has_table && L.table.empty()) return at + kind + " needs table=NAME";
    if (L.desc.kind == LayerKind::kEmbed && !spec.layers.empty()) return at + "embed must be the first layer";
    if (L.desc.kind != LayerKind::kEmbed && spec.layers.empty()) return at + "the first layer must be embed";
    if (spec.layers.size() >= kMaxLayers) return at + "more than 16 layers";
    spec.layers.push_back(L);
  }
  if (spec.layers.size() < 2) return name + ": a mapping needs an embed line and at least one more layer";
  *out = std::move(spec);
  return "";
}

// ---- presets --------------------------------------------------------------------

namespace {

LayerSpec embed(uint32_t x_raw, uint32_t x_sin, float scale, uint32_t t_sin) {
  LayerSpec L;
  L.desc.kind = LayerKind::kEmbed;
  L.desc.x_raw = x_raw;
  L.desc.x_sin_dim = x_sin;
  L.desc.x_scale = scale;
  L.desc.t_sin_dim = t_sin;
  return L;
}
LayerSpec weighted(LayerKind kind, const std::string& w, const std::string& b, const std::string& table = "",
                   Activation act = Activation::kIdentity) {
  LayerSpec L;
  L.desc.kind = kind;
  L.desc.act = act;
  L.weight = w;
  L.bias = b;
  L.table = table;
  return L;
}
LayerSpec activation(Activation a) {
  LayerSpec L;
  L.desc.kind = LayerKind::kActivation;
  L.desc.act = a;
  return L;
}

bool looks_tutorial(const Checkpoint& ck) { return ck.find("lin1.lin.weight") && ck.find("lin4.weight"); }
bool looks_default(const Checkpoint& ck) { return ck.find("input.weight") && ck.find("output.weight"); }

}  // namespace

std::string preset_spec(const std::string& arch_in, const Checkpoint& ck, ModelSpec* out) {
  std::string arch = arch_in;
  if (arch == "auto") {
    if (looks_tutorial(ck)) {
      arch = "tutorial";
    } else if (looks_default(ck)) {
      arch = "default";
    } else {
      // Wrapped checkpoints: suggest --key.
      std::set<std::string> hints;
      for (const TensorRef& t : ck.tensors) {
        for (const char* tail : {".lin1.lin.weight", ".input.weight"}) {
          const std::string s(tail);
          if (t.name.size() > s.size() && t.name.compare(t.name.size() - s.size(), s.size(), s) == 0)
            hints.insert(t.name.substr(0, t.name.size() - s.size()));
        }
      }
      std::string msg = "cannot recognise the architecture: expected the tutorial model's lin1.lin.weight ... "
                        "lin4.weight or the default model's input.weight ... output.weight";
      if (!hints.empty()) {
        msg += "; the state_dict seems to be wrapped, try";
        for (const std::string& h : hints) msg += " --key " + printable(h);
      } else {
        msg += "; give --map FILE for other networks (--list shows the tensors)";
      }
      return msg;
    }
  }
  ModelSpec spec;
  spec.arch = arch;
  if (arch == "tutorial") {
    // ConditionalModel: lin1..lin3 = ConditionalLinear (lin: nn.Linear, embed: nn.Embedding), softplus; lin4.
    spec.layers.push_back(embed(1, 0, 1.0f, 0));
    for (int i = 1; i <= 3; ++i) {
      const std::string p = "lin" + std::to_string(i) + ".";
      spec.layers.push_back(weighted(LayerKind::kTimeGate, p + "lin.weight", p + "lin.bias", p + "embed.weight"));
      spec.layers.push_back(activation(Activation::kSoftplus));
    }
    spec.layers.push_back(weighted(LayerKind::kLinear, "lin4.weight", "lin4.bias"));
  } else if (arch == "default") {
    // tools/python/microdiffusion_torch.py DefaultModel: input, blocks.N.ff, output.
    const TensorRef* in = ck.find("input.weight");
    const TensorRef* outw = ck.find("output.weight");
    uint32_t emb = 32;
    if (in && outw && in->shape.size() == 2 && outw->shape.size() == 2 && outw->shape[0] > 0) {
      const int64_t D = outw->shape[0], width = in->shape[1];
      if (width % (D + 1) != 0 || (width / (D + 1)) % 2 != 0 || width / (D + 1) > kMaxWidth)
        return "input.weight has " + std::to_string(width) + " inputs, which is not emb x (D + 1) with an even emb "
               "for D = " + std::to_string(D) + " (from output.weight)";
      emb = static_cast<uint32_t>(width / (D + 1));
    }
    spec.layers.push_back(embed(0, emb, 25.0f, emb));
    spec.layers.push_back(weighted(LayerKind::kLinear, "input.weight", "input.bias"));
    spec.layers.push_back(activation(Activation::kGeluTanh));
    for (uint32_t i = 0; i + 3 < kMaxLayers; ++i) {
      const std::string p = "blocks." + std::to_string(i) + ".ff.";
      if (!ck.find(p + "weight") && !ck.find(p + "bias")) break;
      spec.layers.push_back(weighted(LayerKind::kResidual, p + "weight", p + "bias", "", Activation::kGeluTanh));
    }
    spec.layers.push_back(weighted(LayerKind::kLinear, "output.weight", "output.bias"));
  } else {
    return "unknown --arch '" + printable(arch) + "' (auto, tutorial or default)";
  }
  *out = std::move(spec);
  return "";
}

// ---- building the model ------------------------------------------------------------

std::string build_model(const ModelSpec& spec, const Checkpoint& ck, uint32_t T_flag, Converted* out) {
  if (spec.layers.size() < 2 || spec.layers[0].desc.kind != LayerKind::kEmbed)
    return "the layer list must start with embed and have at least two layers";
  if (spec.layers.size() > kMaxLayers) return "more than 16 layers";
  const std::string where = spec.arch == "map" ? "" : " (--arch " + spec.arch + ")";
  auto layer_name = [&](size_t l) {
    const LayerSpec& L = spec.layers[l];
    std::string s = "layer " + std::to_string(l) + " (" + layer_kind_name(L.desc.kind);
    if (L.line) s += ", line " + std::to_string(L.line);
    return s + ")";
  };

  // Which tensors the layers reference, and which exist.
  std::vector<std::string> missing, mismatched, unexpected;
  std::set<std::string> used;
  auto lookup = [&](const std::string& n) -> const TensorRef* {
    if (n.empty() || n == "none") return nullptr;
    used.insert(n);
    const TensorRef* t = ck.find(n);
    if (!t && std::find(missing.begin(), missing.end(), n) == missing.end()) missing.push_back(n);
    return t;
  };
  struct Bound {
    const TensorRef *w = nullptr, *b = nullptr, *table = nullptr;
  };
  std::vector<Bound> bound(spec.layers.size());
  for (size_t l = 0; l < spec.layers.size(); ++l) {
    bound[l].w = lookup(spec.layers[l].weight);
    bound[l].b = lookup(spec.layers[l].bias);
    bound[l].table = lookup(spec.layers[l].table);
  }
  for (const TensorRef& t : ck.tensors) {
    if (used.count(t.name)) continue;
    bool ignored = false;
    for (const std::string& p : spec.ignore) ignored = ignored || matches(p, t.name);
    if (!ignored) unexpected.push_back(t.name);
  }

  // Data dimension: the explicit D, else the last weighted layer's output width.
  uint32_t D = spec.D;
  if (D == 0) {
    for (size_t l = spec.layers.size(); l-- > 0 && D == 0;) {
      const LayerSpec& L = spec.layers[l];
      const Bound& b = bound[l];
      if (b.w && b.w->shape.size() == 2) D = static_cast<uint32_t>(b.w->shape[L.weight_in_out ? 1 : 0]);
      else if (b.table && b.table->shape.size() == 2) D = static_cast<uint32_t>(b.table->shape[1]);
      if (L.desc.kind == LayerKind::kLinear || L.desc.kind == LayerKind::kTimeGate) break;
    }
  }
  // T: the tables' rows, which must agree with each other and with --T.
  uint32_t T = spec.T ? spec.T : T_flag;
  std::string T_source = spec.T ? "T in the mapping" : "--T";
  for (size_t l = 0; l < spec.layers.size(); ++l) {
    const TensorRef* t = bound[l].table;
    if (spec.layers[l].desc.kind == LayerKind::kLabelAdd) continue;  // rows are classes, not timesteps
    if (!t || t->shape.size() != 2 || t->shape[0] < 1) continue;
    const uint32_t rows = static_cast<uint32_t>(t->shape[0] > kMaxTimesteps ? kMaxTimesteps + 1 : t->shape[0]);
    if (T == 0) {
      T = rows;
      T_source = "'" + t->name + "'";
    } else if (rows != T) {
      mismatched.push_back("'" + printable(t->name) + "' has " + std::to_string(t->shape[0]) + " rows (timesteps) but " +
                           T_source + " gives T = " + std::to_string(T));
    }
  }

  // Classes of a conditional model: label tables have classes + 1 rows (the last: "no label").
  uint32_t classes = 0;
  std::string classes_source;
  for (size_t l = 0; l < spec.layers.size(); ++l) {
    const TensorRef* t = bound[l].table;
    if (spec.layers[l].desc.kind != LayerKind::kLabelAdd || !t || t->shape.size() != 2) continue;
    if (t->shape[0] < 2 || t->shape[0] > 65537) {
      mismatched.push_back("'" + printable(t->name) + "' has " + std::to_string(t->shape[0]) +
                           " rows; a label table has classes + 1 rows (1 to 65536 classes, the last row is \"no label\")");
      continue;
    }
    const uint32_t c = static_cast<uint32_t>(t->shape[0] - 1);
    if (classes == 0) {
      classes = c;
      classes_source = t->name;
    } else if (c != classes) {
      mismatched.push_back("'" + printable(t->name) + "' has " + std::to_string(c + 1) + " rows but '" +
                           printable(classes_source) + "' has " + std::to_string(classes + 1));
    }
  }

  ModelDesc desc;
  desc.D = D;
  desc.T = T;
  desc.n_classes = classes;
  desc.n_layers = static_cast<uint32_t>(spec.layers.size());
  uint32_t width = D;
  bool chain_ok = D > 0 && D <= kMaxDataDim;
  for (size_t l = 0; l < spec.layers.size() && chain_ok; ++l) {
    const LayerSpec& L = spec.layers[l];
    const Bound& b = bound[l];
    LayerDesc d = L.desc;
    d.in = width;
    switch (d.kind) {
      case LayerKind::kEmbed: {
        const uint64_t w = static_cast<uint64_t>(D) * (d.x_raw + d.x_sin_dim) + d.t_sin_dim;
        if (w > kMaxWidth) {
          mismatched.push_back(layer_name(l) + " would output " + std::to_string(w) + " values (at most 8192)");
          chain_ok = false;
        }
        d.out = static_cast<uint32_t>(w);
        break;
      }
      case LayerKind::kActivation:
        d.out = width;
        break;
      case LayerKind::kLinear:
      case LayerKind::kResidual:
      case LayerKind::kTimeGate: {
        if (!b.w) {  // missing: listed already; the chain cannot continue
          chain_ok = false;
          break;
        }
        if (b.w->shape.size() != 2) {
          mismatched.push_back("'" + printable(b.w->name) + "' for " + layer_name(l) + " has shape " + b.w->shape_string() +
                               ", expected 2 dimensions");
          chain_ok = false;
          break;
        }
        const int64_t win = b.w->shape[L.weight_in_out ? 0 : 1], wout = b.w->shape[L.weight_in_out ? 1 : 0];
        const int64_t want_out = d.kind == LayerKind::kResidual ? width : wout;
        if (win != width || wout != want_out || wout < 1 || wout > kMaxWidth) {
          const std::vector<int64_t> want =
              L.weight_in_out ? std::vector<int64_t>{width, want_out} : std::vector<int64_t>{want_out, width};
          mismatched.push_back("size mismatch for '" + printable(b.w->name) + "' (" + layer_name(l) + "): the checkpoint has " +
                               b.w->shape_string() + ", the model needs " + shape_str(want) +
                               (L.weight_in_out ? " (in, out)" : " (out, in) as nn.Linear"));
          if (win != width) {
            chain_ok = false;
            break;
          }
        }
        d.out = static_cast<uint32_t>(wout);
        if (b.b && !(b.b->shape.size() == 1 && b.b->shape[0] == wout))
          mismatched.push_back("size mismatch for '" + printable(b.b->name) + "' (" + layer_name(l) + "): the checkpoint has " +
                               b.b->shape_string() + ", the model needs (" + std::to_string(wout) + ",)");
        if (b.table && !(b.table->shape.size() == 2 && b.table->shape[1] == wout && b.table->shape[0] == T))
          mismatched.push_back("size mismatch for '" + printable(b.table->name) + "' (" + layer_name(l) +
                               "): the checkpoint has " + b.table->shape_string() + ", the model needs (" +
                               std::to_string(T) + ", " + std::to_string(wout) + ") (T, out)");
        break;
      }
      case LayerKind::kLabelAdd:
        d.out = width;
        if (b.table && !(b.table->shape.size() == 2 && b.table->shape[1] == width))
          mismatched.push_back("size mismatch for '" + printable(b.table->name) + "' (" + layer_name(l) +
                               "): the checkpoint has " + b.table->shape_string() + ", the model needs (classes + 1, " +
                               std::to_string(width) + ")");
        break;
      default:
        mismatched.push_back(layer_name(l) + " is a layer kind the converter does not know");
        chain_ok = false;
        break;
      case LayerKind::kTimeAdd:
        d.out = width;
        if (b.table && !(b.table->shape.size() == 2 && b.table->shape[1] == width && b.table->shape[0] == T))
          mismatched.push_back("size mismatch for '" + printable(b.table->name) + "' (" + layer_name(l) +
                               "): the checkpoint has " + b.table->shape_string() + ", the model needs (" +
                               std::to_string(T) + ", " + std::to_string(width) + ") (T, width)");
        break;
    }
    desc.layers[l] = d;
    width = d.out;
  }
  if (chain_ok && width != D)
    mismatched.push_back("the last layer outputs " + std::to_string(width) + " values but D = " + std::to_string(D));

  if (!missing.empty() || !unexpected.empty() || !mismatched.empty()) {
    std::string msg = "error(s) in loading the state_dict" + where + ":";
    auto list = [&](const char* title, const std::vector<std::string>& v, bool quote) {
      if (v.empty()) return;
      msg += std::string("\n  ") + title;
      size_t shown = 0;
      for (const std::string& s : v) {
        if (shown++ == 50) {
          msg += " ... (" + std::to_string(v.size() - 50) + " more)";
          break;
        }
        msg += (shown > 1 ? (quote ? ", " : "\n    ") : (quote ? " " : "\n    ")) +
               (quote ? "\"" + printable(s) + "\"" : s);
      }
      if (quote) msg += ".";
    };
    list("Missing key(s) in state_dict:", missing, true);
    list("Unexpected key(s) in state_dict:", unexpected, true);
    list("Shape problems:", mismatched, false);
    return msg;
  }
  if (T == 0)
    return "T is unknown: this model has no per-timestep tables, so give --T (the number of diffusion steps it was "
           "trained with) and the schedule flags";
  if (D == 0) return "cannot infer the data dimension D";
  const Status s = validate_model(desc);
  if (!s.ok()) return std::string("the mapped model is not valid: ") + s.message;

  // Fill the flat parameter block.
  const ParamLayout layout = param_layout(desc);
  std::vector<float> params(layout.total_floats, 0.0f);
  std::vector<float> src;
  for (uint32_t i = 0; i < layout.n_tensors; ++i) {
    const TensorDesc& td = layout.tensors[i];
    const Bound& b = bound[td.layer];
    const LayerSpec& L = spec.layers[td.layer];
    const TensorRef* t = td.role == TensorRole::kWeight ? b.w : td.role == TensorRole::kBias ? b.b : b.table;
    float* dst = params.data() + td.offset;
    if (!t) continue;  // bias=none: zeros
    const std::string err = tensor_to_f32(*t, &src);
    if (!err.empty()) return err;
    if (src.size() != td.count()) return "internal: element count of '" + printable(t->name) + "'";
    for (size_t k = 0; k < src.size(); ++k)
      if (!std::isfinite(src[k]))
        return "tensor '" + printable(t->name) + "' holds NaN or Inf (element " + std::to_string(k) + ")";
    if (td.role == TensorRole::kWeight && !L.weight_in_out) {
      // nn.Linear (out, in) -> runtime (in, out)
      const uint32_t in = td.rows, o = td.cols;
      for (uint32_t r = 0; r < o; ++r)
        for (uint32_t c = 0; c < in; ++c) dst[static_cast<size_t>(c) * o + r] = src[static_cast<size_t>(r) * in + c];
    } else {
      std::copy(src.begin(), src.end(), dst);
    }
  }
  out->desc = desc;
  out->params = std::move(params);
  return "";
}

// ---- everything ------------------------------------------------------------------

std::string convert(const uint8_t* data, size_t size, const ConvertOptions& o, ConvertResult* out) {
  Checkpoint ck;
  std::string err = read_checkpoint(data, size, &ck);
  if (!err.empty()) return err;
  err = select_key(&ck, o.key);
  if (!err.empty()) return err;
  ModelSpec spec;
  err = o.map_text.empty() ? preset_spec(o.arch, ck, &spec) : parse_map(o.map_text, o.map_name, &spec);
  if (!err.empty()) return err;
  ConvertResult r;
  r.arch = spec.arch;
  r.format = ck.format;
  const bool custom = o.schedule == ScheduleKind::kCustom;
  if (custom && o.betas.empty()) return "a custom schedule needs its betas";
  err = build_model(spec, ck, o.T == 0 && custom ? static_cast<uint32_t>(o.betas.size()) : o.T, &r.model);
  if (!err.empty()) return err;
  const uint32_t T = r.model.desc.T;
  if (custom && o.betas.size() != T)
    return "the model has T = " + std::to_string(T) + " but the custom schedule lists " +
           std::to_string(o.betas.size()) + " betas";
  // As `microdiffusion train`: cosine_schedule(T), or linear_schedule(T)'s betas for the
  // linear, scaled-linear and sigmoid kinds, overridden by beta_start/beta_end.
  r.schedule = o.schedule == ScheduleKind::kCosine ? cosine_schedule(T) : linear_schedule(T);
  r.schedule.kind = o.schedule;
  if (custom) {
    r.betas = o.betas;
    r.schedule.betas = r.betas.data();  // survives the move into *out: a vector's buffer moves with it
  } else if (o.schedule != ScheduleKind::kCosine) {
    if (o.beta_start > 0.0) r.schedule.beta_start = static_cast<float>(o.beta_start);
    if (o.beta_end > 0.0) r.schedule.beta_end = static_cast<float>(o.beta_end);
  }
  Status s = validate_schedule(r.schedule);
  if (!s.ok()) return std::string("schedule: ") + s.message;
  r.mdw.assign(weights_file_bytes(r.model.desc, r.schedule), 0);
  size_t written = 0;
  s = write_weights(r.model.desc, r.schedule, o.meta, r.model.params.data(), r.mdw.data(), r.mdw.size(), &written);
  if (!s.ok()) return std::string("writing the weight file: ") + s.message;
  r.mdw.resize(written);
  *out = std::move(r);
  return "";
}

}  // namespace md::convert
