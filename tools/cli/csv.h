// CSV of numbers: one point per line, D comma-separated values, no header
// ('#' lines and blank lines are skipped). Errors name the line and column.
#pragma once
#include <string>
#include <vector>

namespace md::cli {

struct Table {
  size_t rows = 0;
  size_t cols = 0;
  std::vector<float> values;  // rows x cols, row-major
};

bool read_csv(const std::string& path, Table* out, std::string* error);
bool parse_csv(const std::string& text, const std::string& name, Table* out, std::string* error);
// Formats rows with enough digits to round-trip a float.
std::string format_csv(const float* values, size_t rows, size_t cols);

}  // namespace md::cli
