// Command-line flags: `--name value` or `--name=value`, validated against a
// per-command list so a typo is an error, not a silently ignored flag.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace md::cli {

struct FlagSpec {
  const char* name;   // without the leading dashes
  const char* value;  // placeholder shown in help; nullptr for a switch
  const char* help;
};

class Args {
 public:
  // Parses argv; false with *error set on an unknown flag or a missing value.
  bool parse(int argc, char** argv, const std::vector<FlagSpec>& specs, std::string* error);

  bool has(const std::string& name) const { return values_.count(name) != 0; }
  std::string str(const std::string& name, const std::string& fallback = "") const;
  const std::vector<std::string>& positional() const { return positional_; }

  // Typed getters: false with *error naming the flag when the value is not a
  // number in [lo, hi]. The fallback is used when the flag is absent.
  bool u64(const std::string& name, unsigned long long fallback, unsigned long long lo,
           unsigned long long hi, unsigned long long* out, std::string* error) const;
  bool f64(const std::string& name, double fallback, double lo, double hi, double* out,
           std::string* error) const;
  // Reads `name value` (or `name = value`) lines of a config file ('#'
  // comments, blank lines) for flags not given on the command line, which
  // wins. Only `allowed` names; false with *error naming the file and line.
  bool merge_config(const std::string& text, const std::string& file, const std::vector<std::string>& allowed,
                    std::string* error);

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

std::string format_help(const char* usage, const char* summary, const std::vector<FlagSpec>& specs);

}  // namespace md::cli
