// Helpers shared by the subcommands: aligned file buffers (weight files are
// bound in place), status messages, atomic writes, and data specs.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cli/csv.h"
#include "microdiffusion/microdiffusion.h"

namespace md::cli {

// A 64-byte aligned byte buffer, so weight files are bound in place.
struct AlignedBuffer {
  struct alignas(64) Block {
    uint8_t bytes[64];
  };
  std::vector<Block> blocks;
  size_t size = 0;
  void resize(size_t n) {
    blocks.assign((n + 63) / 64 + 1, Block{});
    size = n;
  }
  uint8_t* data() { return blocks.empty() ? nullptr : blocks[0].bytes; }
};

// "code: message [numbers]" for a runtime Status.
std::string describe(const Status& s);
// Prints "microdiffusion CMD: MESSAGE" and returns `code` (1 failure, 2 usage).
int fail(const char* cmd, const std::string& message, int code = 1);

bool read_file(const std::string& path, AlignedBuffer* out, std::string* error);
// Reads and validates a weight file, binding `w` into `buffer`.
bool load_model_file(const std::string& path, AlignedBuffer* buffer, LoadedWeights* w, std::string* error);
// Atomic writes: temporary file, fsync, rename.
bool write_bytes(const std::string& path, const std::vector<uint8_t>& bytes, std::string* error);
bool write_text(const std::string& path, const std::string& text, std::string* error);

// A custom noise schedule's betas: numbers separated by whitespace, commas or
// newlines, '#' starts a comment; each must be in (0, 1) as a float. At most
// kMaxTimesteps of them. Errors name the line.
bool read_betas(const std::string& path, std::vector<float>* out, std::string* error);

// A built-in dataset name or a CSV path.
struct DataSpec {
  bool builtin = false;
  Dataset dataset = Dataset::kSwissRoll;
  std::string path;
  std::string label;  // what the weight file records
};
DataSpec parse_data_spec(const std::string& arg);
// n_builtin points of a built-in set (from `seed`), or every row of the CSV.
bool load_points(const DataSpec& spec, uint64_t seed, uint32_t n_builtin, Table* out, std::string* error);

}  // namespace md::cli
