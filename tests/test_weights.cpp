// The .mdw weight file: round trip in place, and every kind of corruption
// refused with a specific status.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "microdiffusion/microdiffusion.h"

namespace {

struct alignas(64) Block {
  uint8_t b[64];
};

struct WeightFile {
  md::ModelDesc desc = md::preset_tutorial(2, 10, 8);
  md::ScheduleDesc schedule = md::linear_schedule(10);
  std::vector<float> params;
  std::vector<Block> storage;
  size_t size = 0;
  uint8_t* bytes() { return reinterpret_cast<uint8_t*>(storage.data()); }

  WeightFile() {
    const md::ParamLayout lay = md::param_layout(desc);
    params.assign(lay.total_floats, 0.0f);
    for (uint32_t i = 0; i < lay.n_tensors; ++i)
      for (uint32_t j = 0; j < lay.tensors[i].count(); ++j)
        params[lay.tensors[i].offset + j] = 0.01f * (i + 1) + 0.001f * j;
    storage.resize(md::weights_file_bytes(desc) / 64 + 2);
    md::WeightsMeta meta;
    std::strcpy(meta.dataset, "swissroll");
    meta.train_steps = 77;
    EXPECT_TRUE(md::write_weights(desc, schedule, meta, params.data(), bytes(), storage.size() * 64, &size).ok());
  }
};

TEST(Weights, RoundTripBindsTensorsInPlace) {
  WeightFile f;
  EXPECT_EQ(f.size, md::weights_file_bytes(f.desc));
  md::LoadedWeights w;
  ASSERT_TRUE(md::load_weights(f.bytes(), f.size, &w).ok());
  EXPECT_EQ(w.model.desc.D, 2u);
  EXPECT_EQ(w.model.desc.n_layers, f.desc.n_layers);
  EXPECT_EQ(w.schedule.T, 10u);
  EXPECT_EQ(w.schedule.beta_end, f.schedule.beta_end);
  EXPECT_STREQ(w.meta.dataset, "swissroll");
  EXPECT_EQ(w.meta.train_steps, 77u);
  const md::ParamLayout lay = md::param_layout(f.desc);
  for (uint32_t i = 0; i < lay.n_tensors; ++i) {
    const uint8_t* p = reinterpret_cast<const uint8_t*>(w.model.tensors[i]);
    EXPECT_GE(p, f.bytes());
    EXPECT_LT(p, f.bytes() + f.size);  // points into the buffer: no copy
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
    EXPECT_EQ(0, std::memcmp(p, f.params.data() + lay.tensors[i].offset, 4 * lay.tensors[i].count()));
  }
  // The tensor region is byte for byte the flat parameter block.
  EXPECT_EQ(0, std::memcmp(f.bytes() + md::weights_header_bytes(f.desc), f.params.data(), 4 * f.params.size()));
}

TEST(Weights, TruncationAtEveryHeaderByteIsRefused) {
  WeightFile f;
  for (size_t n = 0; n < f.size; n += (n < md::weights_header_bytes(f.desc) ? 1 : 61)) {
    md::LoadedWeights w;
    const md::Status s = md::load_weights(f.bytes(), n, &w);
    ASSERT_FALSE(s.ok()) << "accepted a file truncated to " << n << " bytes";
    EXPECT_EQ(s.code, n < md::kWeightsFixedHeaderBytes && n >= 8 ? md::StatusCode::kTruncated : s.code);
  }
}

TEST(Weights, EveryFlippedHeaderBitIsDetected) {
  WeightFile f;
  const size_t header = md::weights_header_bytes(f.desc);
  for (size_t byte = 0; byte < header; ++byte) {
    for (int bit = 0; bit < 8; bit += 3) {
      f.bytes()[byte] ^= static_cast<uint8_t>(1u << bit);
      md::LoadedWeights w;
      const md::Status s = md::load_weights(f.bytes(), f.size, &w);
      f.bytes()[byte] ^= static_cast<uint8_t>(1u << bit);
      // Padding after the tables is not covered by the CRC and not read.
      const size_t tables_end = md::kWeightsFixedHeaderBytes + 32 * (f.desc.n_layers + md::param_layout(f.desc).n_tensors);
      if (byte >= tables_end) continue;
      EXPECT_FALSE(s.ok()) << "flip of byte " << byte << " bit " << bit << " accepted";
    }
  }
}

TEST(Weights, FlippedTensorBitIsAChecksumMismatch) {
  WeightFile f;
  const size_t header = md::weights_header_bytes(f.desc);
  f.bytes()[header + 5] ^= 0x10;
  md::LoadedWeights w;
  const md::Status s = md::load_weights(f.bytes(), f.size, &w);
  EXPECT_EQ(s.code, md::StatusCode::kChecksumMismatch);
  EXPECT_EQ(s.needed, 0u);  // tensor index 0
}

TEST(Weights, NaNWeightsAreRefusedOnWriteAndRead) {
  WeightFile f;
  std::vector<float> p = f.params;
  p[3] = std::nanf("");
  std::vector<Block> out(f.storage.size());
  size_t n = 0;
  EXPECT_EQ(md::write_weights(f.desc, f.schedule, md::WeightsMeta{}, p.data(), reinterpret_cast<uint8_t*>(out.data()), out.size() * 64, &n).code,
            md::StatusCode::kNonFinite);
  // A NaN with a matching CRC (a file made elsewhere) is refused on read.
  const size_t header = md::weights_header_bytes(f.desc);
  const float inf = INFINITY;
  std::memcpy(f.bytes() + header + 4, &inf, 4);
  const uint32_t crc = md::crc32(f.bytes() + header, 4 * md::param_layout(f.desc).tensors[0].count());
  // Tensor record 0 keeps its CRC at offset 20 of the first tensor record.
  uint8_t* rec = f.bytes() + md::kWeightsFixedHeaderBytes + 32 * f.desc.n_layers;
  for (int i = 0; i < 4; ++i) rec[20 + i] = static_cast<uint8_t>(crc >> (8 * i));
  // Refresh the header CRC over the edited table.
  const size_t tables_end = md::kWeightsFixedHeaderBytes + 32 * (f.desc.n_layers + md::param_layout(f.desc).n_tensors);
  uint32_t hc = md::crc32(f.bytes(), 124);
  hc = md::crc32(f.bytes() + 128, tables_end - 128, hc);
  for (int i = 0; i < 4; ++i) f.bytes()[124 + i] = static_cast<uint8_t>(hc >> (8 * i));
  md::LoadedWeights w;
  EXPECT_EQ(md::load_weights(f.bytes(), f.size, &w).code, md::StatusCode::kNonFinite);
}

TEST(Weights, VersionAndMagicAreChecked) {
  WeightFile f;
  md::LoadedWeights w;
  f.bytes()[8] = 2;  // major version 2
  md::Status s = md::load_weights(f.bytes(), f.size, &w);
  EXPECT_EQ(s.code, md::StatusCode::kUnsupportedVersion);
  EXPECT_EQ(s.needed, 2u);
  EXPECT_EQ(s.available, 1u);
  f.bytes()[8] = 1;
  f.bytes()[0] = 'X';
  EXPECT_EQ(md::load_weights(f.bytes(), f.size, &w).code, md::StatusCode::kBadFormat);
  f.bytes()[0] = 'M';
  EXPECT_TRUE(md::load_weights(f.bytes(), f.size, &w).ok());
  EXPECT_EQ(md::load_weights(f.bytes() + 1, f.size - 1, &w).code, md::StatusCode::kBadFormat);
}

TEST(Weights, OutputBufferTooSmallSaysHowMuchIsNeeded) {
  WeightFile f;
  std::vector<Block> out(2);
  size_t n = 0;
  const md::Status s = md::write_weights(f.desc, f.schedule, md::WeightsMeta{}, f.params.data(), out[0].b, 128, &n);
  EXPECT_EQ(s.code, md::StatusCode::kOutOfMemory);
  EXPECT_EQ(s.needed, md::weights_file_bytes(f.desc));
  EXPECT_EQ(s.available, 128u);
}

TEST(Crc32, KnownAnswer) {
  EXPECT_EQ(md::crc32("123456789", 9), 0xCBF43926u);
  EXPECT_EQ(md::crc32("", 0), 0u);
  EXPECT_EQ(md::crc32("56789", 5, md::crc32("1234", 4)), 0xCBF43926u);
}

}  // namespace
