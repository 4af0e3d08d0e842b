#include "cli/csv.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace md::cli {

bool read_csv(const std::string& path, Table* out, std::string* error) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    *error = "cannot open '" + path + "': " + std::strerror(errno);
    return false;
  }
  std::string text;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) text.append(buf, n);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) {
    *error = "cannot read '" + path + "'";
    return false;
  }
  return parse_csv(text, path, out, error);
}

bool parse_csv(const std::string& text, const std::string& name, Table* out, std::string* error) {
  Table t;
  size_t line_no = 0, pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    size_t first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    size_t cols = 0, p = 0;
    while (true) {
      size_t comma = line.find(',', p);
      std::string field = line.substr(p, comma == std::string::npos ? std::string::npos : comma - p);
      const size_t a = field.find_first_not_of(" \t"), b = field.find_last_not_of(" \t");
      field = a == std::string::npos ? "" : field.substr(a, b - a + 1);
      char* stop = nullptr;
      errno = 0;
      const double v = field.empty() ? 0.0 : std::strtod(field.c_str(), &stop);
      // The whole field must be the number: a NUL byte inside it must not end it early.
      if (field.empty() || stop != field.c_str() + field.size() || errno == ERANGE) {
        *error = name + ":" + std::to_string(line_no) + ": field " + std::to_string(cols + 1) +
                 " is not a number: '" + field + "'";
        return false;
      }
      // Refuse only what does not round to a finite float (FLT_MAX + half an ulp
      // and beyond): FLT_MAX written as "%.9g", 3.40282347e+38, must read back.
      if (!std::isfinite(v) || std::fabs(v) >= 3.4028235677973366e38) {
        *error = name + ":" + std::to_string(line_no) + ": field " + std::to_string(cols + 1) +
                 " is not a finite float: '" + field + "'";
        return false;
      }
      t.values.push_back(static_cast<float>(v));
      ++cols;
      if (comma == std::string::npos) break;
      p = comma + 1;
    }
    if (t.rows == 0) {
      t.cols = cols;
    } else if (cols != t.cols) {
      *error = name + ":" + std::to_string(line_no) + ": has " + std::to_string(cols) +
               " fields, earlier rows have " + std::to_string(t.cols);
      return false;
    }
    ++t.rows;
  }
  if (t.rows == 0) {
    *error = name + ": no data rows";
    return false;
  }
  *out = std::move(t);
  return true;
}

std::string format_csv(const float* values, size_t rows, size_t cols) {
  std::string s;
  s.reserve(rows * cols * 14);
  char buf[32];
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < cols; ++c) {
      std::snprintf(buf, sizeof(buf), c + 1 < cols ? "%.9g," : "%.9g\n", values[r * cols + c]);
      s += buf;
    }
  }
  return s;
}

}  // namespace md::cli
