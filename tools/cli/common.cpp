#include "cli/common.h"

#include <cerrno>
#include <cstdio>
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
