// libFuzzer target: md::cli::Args::parse and its typed getters
// (tools/cli/args.h). The input is split into argv at NUL bytes.
//
// Checks, besides "no crash, no sanitizer report": an accepted integer is a
// plain run of decimal digits inside [lo, hi] (so " -1" is not read as
// 2^64 - 1), an accepted number is finite and inside [lo, hi], and every
// refusal comes with a message that names the flag.
#include <stddef.h>
#include <stdint.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cli/args.h"
#include "fuzz_check.h"

namespace {

// A flag table shaped like the CLI's: value flags and switches, short and
// long names, names that are prefixes of others.
const std::vector<md::cli::FlagSpec> kSpecs = {
    {"n", "N", "count"},          {"seed", "N", "seed"},         {"steps", "N", "steps"},
    {"lr", "X", "rate"},          {"ema", "X", "decay"},         {"out", "FILE", "output"},
    {"data", "NAME", "data"},     {"T", "N", "timesteps"},       {"quiet", nullptr, "switch"},
    {"no-ema", nullptr, "switch"}, {"help", nullptr, "help"},
};

struct URange { unsigned long long lo, hi; };
struct FRange { double lo, hi; };
const URange kURanges[] = {{0, ~0ull}, {1, 100000000}, {2, 100000}, {0, 0}};
const FRange kFRanges[] = {{1e-8, 1.0}, {0.0, 0.999999}, {-1e300, 1e300}, {0.0, 0.0}};

bool all_digits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // argv: the pieces between NUL bytes (an empty piece is an empty argument).
  std::vector<std::string> pieces(1);
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0) pieces.emplace_back();
    else pieces.back().push_back(static_cast<char>(data[i]));
  }
  if (size == 0) pieces.clear();
  std::vector<char*> argv;
  for (std::string& p : pieces) argv.push_back(&p[0]);
  argv.push_back(nullptr);

  md::cli::Args args;
  std::string error;
  if (!args.parse(static_cast<int>(pieces.size()), argv.data(), kSpecs, &error)) {
    FUZZ_CHECK(!error.empty());
    return 0;
  }
  FUZZ_CHECK(error.empty());
  for (const std::string& p : args.positional()) FUZZ_CHECK(p.size() < 2 || p[0] != '-');

  for (const md::cli::FlagSpec& spec : kSpecs) {
    const std::string name = spec.name;
    const bool present = args.has(name);
    const std::string raw = args.str(name, "<absent>");
    if (present && spec.value != nullptr) FUZZ_CHECK(!raw.empty());
    if (present && spec.value == nullptr) FUZZ_CHECK(raw == "1");
    for (const URange& r : kURanges) {
      unsigned long long v = 12345;
      std::string err;
      if (args.u64(name, r.lo, r.lo, r.hi, &v, &err)) {
        FUZZ_CHECK(v >= r.lo && v <= r.hi);
        if (present) FUZZ_CHECK(all_digits(raw));
        if (present) FUZZ_CHECK(std::to_string(v) == raw.substr(raw.find_first_not_of('0') == std::string::npos
                                                                 ? raw.size() - 1
                                                                 : raw.find_first_not_of('0')));
      } else {
        FUZZ_CHECK(present);
        FUZZ_CHECK(err.find("--" + name + " ") == 0);
      }
    }
    for (const FRange& r : kFRanges) {
      double v = 0.5;
      std::string err;
      if (args.f64(name, r.lo, r.lo, r.hi, &v, &err)) {
        FUZZ_CHECK(std::isfinite(v) && v >= r.lo && v <= r.hi);
      } else {
        FUZZ_CHECK(present);
        FUZZ_CHECK(err.find("--" + name + " ") == 0);
      }
    }
  }
  const std::string help = md::cli::format_help("fuzz [options]", "A fuzzed command.", kSpecs);
  FUZZ_CHECK(help.find("--no-ema") != std::string::npos);
  return 0;
}
