#include "cli/common.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "plot/png.h"

namespace md::cli {

std::string describe(const Status& s) {
  std::string m = std::string(status_code_name(s.code)) + ": " + s.message;
  if (s.code == StatusCode::kOutOfMemory)
    return m + " (needed " + std::to_string(s.needed) + " bytes, have " + std::to_string(s.available) + ")";
  if (s.needed || s.available)
    m += " [" + std::to_string(s.needed) + ", " + std::to_string(s.available) + "]";
  return m;
}

int fail(const char* cmd, const std::string& message, int code) {
  std::fprintf(stderr, "microdiffusion %s: %s\n", cmd, message.c_str());
  return code;
}

bool read_file(const std::string& path, AlignedBuffer* out, std::string* error) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    *error = "cannot open '" + path + "': " + std::strerror(errno);
    return false;
  }
  std::vector<uint8_t> bytes;
  uint8_t buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) bytes.insert(bytes.end(), buf, buf + n);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) {
    *error = "cannot read '" + path + "'";
    return false;
  }
  out->resize(bytes.size());
  if (!bytes.empty()) std::memcpy(out->data(), bytes.data(), bytes.size());
  return true;
}

bool load_model_file(const std::string& path, AlignedBuffer* buffer, LoadedWeights* w, std::string* error) {
  if (!read_file(path, buffer, error)) return false;
  const Status s = load_weights(buffer->data(), buffer->size, w);
  if (!s.ok()) {
    *error = "'" + path + "' is not a usable weight file: " + describe(s);
    return false;
  }
  return true;
}

bool write_bytes(const std::string& path, const std::vector<uint8_t>& bytes, std::string* error) {
  return tools::write_file_atomic(path, bytes, error);
}
bool write_text(const std::string& path, const std::string& text, std::string* error) {
  return write_bytes(path, std::vector<uint8_t>(text.begin(), text.end()), error);
}

bool read_betas(const std::string& path, std::vector<float>* out, std::string* error) {
  AlignedBuffer file;
  if (!read_file(path, &file, error)) return false;
  const std::string text(file.data(), file.data() + file.size);
  std::vector<float> betas;
  size_t line = 1;
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (c == '\n') ++line;
    if (c == '#') {
      while (i < text.size() && text[i] != '\n') ++i;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ',') {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < text.size() && !std::strchr(" \t\r\n,#", text[end])) ++end;
    const std::string token = text.substr(i, end - i);
    char* stop = nullptr;
    const double v = std::strtod(token.c_str(), &stop);
    const std::string where = "'" + path + "' line " + std::to_string(line);
    if (stop != token.c_str() + token.size() || token.empty())
      return *error = where + ": '" + token + "' is not a number", false;
    const float f = static_cast<float>(v);
    if (!(f > 0.0f && f < 1.0f))
      return *error = where + ": beta " + token + " is not in (0, 1)", false;
    if (betas.size() >= kMaxTimesteps)
      return *error = "'" + path + "' holds more than " + std::to_string(kMaxTimesteps) + " betas", false;
    betas.push_back(f);
    i = end;
  }
  if (betas.empty()) return *error = "'" + path + "' holds no betas", false;
  *out = std::move(betas);
  return true;
}

DataSpec parse_data_spec(const std::string& arg) {
  DataSpec d;
  if (dataset_from_name(arg.c_str(), &d.dataset)) {
    d.builtin = true;
    d.label = arg;
  } else {
    d.path = arg;
    const size_t slash = arg.find_last_of('/');
    d.label = "csv:" + (slash == std::string::npos ? arg : arg.substr(slash + 1));
  }
  return d;
}

bool load_points(const DataSpec& spec, uint64_t seed, uint32_t n_builtin, Table* out, std::string* error) {
  if (spec.builtin) {
    out->rows = n_builtin;
    out->cols = kDatasetDim;
    out->values.assign(static_cast<size_t>(n_builtin) * kDatasetDim, 0.0f);
    make_dataset(spec.dataset, seed, 0, n_builtin, out->values.data());
    return true;
  }
  return read_csv(spec.path, out, error);
}

}  // namespace md::cli
