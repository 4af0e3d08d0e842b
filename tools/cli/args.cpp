#include "cli/args.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace md::cli {

bool Args::parse(int argc, char** argv, const std::vector<FlagSpec>& specs, std::string* error) {
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a.size() < 2 || a[0] != '-' || a == "-") {
      positional_.push_back(a);
      continue;
    }
    std::string name = a.substr(a[1] == '-' ? 2 : 1);
    std::string value;
    bool has_value = false;
    const size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    const FlagSpec* spec = nullptr;
    for (const FlagSpec& s : specs)
      if (name == s.name) spec = &s;
    if (spec == nullptr) {
      *error = "unknown option '" + a + "' (see --help)";
      return false;
    }
    if (spec->value == nullptr) {
      if (has_value) {
        *error = "option --" + name + " takes no value";
        return false;
      }
      values_[name] = "1";
      continue;
    }
    if (!has_value) {
      if (i + 1 >= argc) {
        *error = "option --" + name + " needs a value " + spec->value;
        return false;
      }
      value = argv[++i];
    }
    if (value.empty()) {
      *error = "option --" + name + " has an empty value";
      return false;
    }
    values_[name] = value;
  }
  return true;
}

std::string Args::str(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

bool Args::u64(const std::string& name, unsigned long long fallback, unsigned long long lo,
               unsigned long long hi, unsigned long long* out, std::string* error) const {
  auto it = values_.find(name);
  if (it == values_.end()) {
    *out = fallback;
    return true;
  }
  const std::string& s = it->second;
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  // Digits only: strtoull would skip leading blanks and negate a '-' (" -1" -> 2^64 - 1).
  if (s.empty() || s[0] < '0' || s[0] > '9' || errno != 0 || *end != '\0' || v < lo || v > hi) {
    *error = "--" + name + " must be an integer in [" + std::to_string(lo) + ", " +
             std::to_string(hi) + "], got '" + s + "'";
    return false;
  }
  *out = v;
  return true;
}

bool Args::f64(const std::string& name, double fallback, double lo, double hi, double* out,
               std::string* error) const {
  auto it = values_.find(name);
  if (it == values_.end()) {
    *out = fallback;
    return true;
  }
  const std::string& s = it->second;
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || errno != 0 || *end != '\0' || !std::isfinite(v) || v < lo || v > hi) {
    char range[96];
    std::snprintf(range, sizeof(range), "[%g, %g]", lo, hi);
    *error = "--" + name + " must be a number in " + range + ", got '" + s + "'";
    return false;
  }
  *out = v;
  return true;
}

std::string format_help(const char* usage, const char* summary, const std::vector<FlagSpec>& specs) {
  std::string h = std::string("usage: ") + usage + "\n\n" + summary + "\n\noptions:\n";
  for (const FlagSpec& s : specs) {
    std::string left = std::string("  --") + s.name + (s.value ? std::string(" ") + s.value : "");
    if (left.size() < 26) left.resize(26, ' ');
    else left += "  ";
    h += left + s.help + "\n";
  }
  return h;
}

bool Args::merge_config(const std::string& text, const std::string& file, const std::vector<std::string>& allowed,
                        std::string* error) {
  size_t pos = 0, line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    const size_t hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    for (char& c : line)
      if (c == '=' || c == '\t' || c == '\r') c = ' ';
    const size_t a = line.find_first_not_of(' ');
    if (a == std::string::npos) continue;
    const size_t b = line.find(' ', a);
    const size_t c = b == std::string::npos ? std::string::npos : line.find_first_not_of(' ', b);
    const size_t d = c == std::string::npos ? std::string::npos : line.find(' ', c);
    const std::string where = file + ":" + std::to_string(line_no) + ": ";
    if (c == std::string::npos || (d != std::string::npos && line.find_first_not_of(' ', d) != std::string::npos)) {
      *error = where + "expected 'name value'";
      return false;
    }
    const std::string name = line.substr(a, b - a), value = line.substr(c, d == std::string::npos ? d : d - c);
    bool ok = false;
    for (const std::string& n : allowed) ok = ok || n == name;
    if (!ok) {
      std::string list;
      for (const std::string& n : allowed) list += (list.empty() ? "" : ", ") + n;
      *error = where + "unknown setting '" + name + "' (known: " + list + ")";
      return false;
    }
    if (!values_.count(name)) values_[name] = value;
  }
  return true;
}

}  // namespace md::cli
