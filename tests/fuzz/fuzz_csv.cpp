// libFuzzer target: md::cli::parse_csv (tools/cli/csv.h) on arbitrary text.
//
// Besides "no crash, no sanitizer report", it checks what the CLI relies on:
// a table it accepts is rectangular, non-empty and finite; every accepted
// field is a whole number token (no bytes silently ignored); and what
// format_csv writes (the sample command's --out) reads back bit for bit.
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "cli/csv.h"
#include "fuzz_check.h"

namespace {

// A data line (not blank, not a comment) holds no NUL byte: a field like
// "1\0junk" must not be read as 1.
bool data_lines_have_nul(const std::string& text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    const size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    if (line.find('\0') != std::string::npos) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  md::cli::Table t;
  std::string error;
  if (!md::cli::parse_csv(text, "fuzz.csv", &t, &error)) {
    FUZZ_CHECK(error.rfind("fuzz.csv:", 0) == 0);  // every message names the file
    FUZZ_CHECK(t.rows == 0 && t.values.empty());   // nothing half-filled
    return 0;
  }
  FUZZ_CHECK(error.empty());
  FUZZ_CHECK(t.rows >= 1 && t.cols >= 1);
  FUZZ_CHECK(t.values.size() == t.rows * t.cols);
  for (float v : t.values) FUZZ_CHECK(std::isfinite(v));
  FUZZ_CHECK(!data_lines_have_nul(text));

  // The sample command writes format_csv; train --data must read it back.
  const std::string again = md::cli::format_csv(t.values.data(), t.rows, t.cols);
  md::cli::Table u;
  if (!md::cli::parse_csv(again, "again.csv", &u, &error)) {
    std::fprintf(stderr, "fuzz_csv: format_csv output refused: %s\n", error.c_str());
    std::abort();
  }
  FUZZ_CHECK(u.rows == t.rows && u.cols == t.cols);
  FUZZ_CHECK(memcmp(u.values.data(), t.values.data(), 4 * t.values.size()) == 0);
  return 0;
}
