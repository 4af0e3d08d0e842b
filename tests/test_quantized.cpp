// Reduced-precision weight files (f16, int8 per output column): the half
// conversions, the network on quantized weights against an f32 network
// holding the dequantized values, the quantization error bound, the reader's
// checks, and `convert --dtype` through the command line.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "cli_util.h"
#include "kernels/half.h"
#include "microdiffusion/microdiffusion.h"

namespace {

using md::kernels::float_to_half;
using md::kernels::half_to_float;

TEST(Half, EveryHalfRoundTripsAndConversionRoundsToNearestEven) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = half_to_float(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE((h & 0x7C00u) == 0x7C00u && (h & 0x3FFu) != 0) << h;
      continue;
    }
    ASSERT_EQ(float_to_half(f), h) << "half " << h << " = " << f;
    if ((h & 0x7FFFu) < 0x7C00u && (h & 0x7FFFu) > 0) {  // finite, nonzero: the value from its fields
      const int e = (h >> 10) & 0x1F, m = h & 0x3FF;
      const double v = e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25);
      EXPECT_EQ(std::fabs(static_cast<double>(f)), v) << h;
    }
  }
  // Random floats: the result is a nearest half; ties go to the even one.
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-70000.0f, 70000.0f);
  for (int i = 0; i < 200000; ++i) {
    float f = u(rng);
    if (i % 3 == 0) f = std::ldexp(f, -20);  // the subnormal range too
    const uint16_t h = float_to_half(f);
    const double got = half_to_float(h);
    if (std::fabs(f) >= 65520.0f) {
      EXPECT_TRUE(std::isinf(got)) << f;
      continue;
    }
    const double err = std::fabs(got - f);
    for (int d : {-1, 1}) {
      const uint16_t n = static_cast<uint16_t>(h + d);
      if ((n & 0x7C00u) == 0x7C00u || ((h & 0x7FFFu) == 0 && d < 0)) continue;
      const double other = std::fabs(static_cast<double>(half_to_float(n)) - f);
      EXPECT_LE(err, other) << f;
      if (err == other) EXPECT_EQ(h & 1u, 0u) << "tie not to even: " << f;
    }
  }
}

struct Quantized {
  md::ModelDesc desc = md::preset_default(2, 40, 32, 8, 2);
  std::vector<float> params;
  md::ScheduleDesc sched = md::linear_schedule(40);
  Quantized() {
    const md::ParamLayout lay = md::param_layout(desc);
    params.assign(lay.total_floats, 0.0f);
    std::mt19937 rng(3);
    std::normal_distribution<float> g(0.0f, 0.3f);
    for (uint32_t i = 0; i < lay.n_tensors; ++i)
      for (uint32_t j = 0; j < lay.tensors[i].count(); ++j) params[lay.tensors[i].offset + j] = g(rng);
  }
  // Writes a file with weights as `dt` into `storage` (64-byte aligned) and loads it.
  md::Status write(md::TensorDType dt, std::vector<uint64_t>* storage, md::LoadedWeights* w, size_t* size) const {
    md::WeightsMeta meta;
    meta.weight_dtype = dt;
    storage->assign(md::weights_file_bytes(desc, dt) / 8 + 16, 0);
    uint8_t* p = reinterpret_cast<uint8_t*>(storage->data());
    p += (64 - reinterpret_cast<uintptr_t>(p) % 64) % 64;
    md::Status s = md::write_weights(desc, sched, meta, params.data(), p, md::weights_file_bytes(desc, dt), size);
    if (!s.ok()) return s;
    return md::load_weights(p, *size, w);
  }
};

// The f32 parameters a quantized file stands for, from its own bytes.
std::vector<float> dequantized(const md::LoadedWeights& w) {
  const md::ParamLayout& lay = w.model.layout;
  std::vector<float> p(lay.total_floats, 0.0f);
  for (uint32_t i = 0; i < lay.n_tensors; ++i) {
    const md::TensorDesc& t = lay.tensors[i];
    for (uint32_t j = 0; j < t.count(); ++j) {
      float v;
      switch (w.model.dtypes[i]) {
        case md::TensorDType::kF16: v = half_to_float(static_cast<const uint16_t*>(w.model.stored[i])[j]); break;
        case md::TensorDType::kInt8: {
          const float* scales = static_cast<const float*>(w.model.stored[i]);
          const int8_t* q = reinterpret_cast<const int8_t*>(scales + t.cols);
          v = scales[j % t.cols] * q[j];
          break;
        }
        default: v = w.model.tensors[i][j];
      }
      p[t.offset + j] = v;
    }
  }
  return p;
}

TEST(Quantized, NetworkOnStoredWeightsMatchesTheDequantizedF32Network) {
  const Quantized q;
  for (md::TensorDType dt : {md::TensorDType::kF16, md::TensorDType::kInt8}) {
    SCOPED_TRACE(static_cast<int>(dt));
    std::vector<uint64_t> storage;
    md::LoadedWeights w;
    size_t size = 0;
    ASSERT_TRUE(q.write(dt, &storage, &w, &size).ok());
    EXPECT_EQ(size, md::weights_file_bytes(q.desc, dt));
    EXPECT_EQ(w.meta.weight_dtype, dt);
    EXPECT_FALSE(w.model.all_f32());
    EXPECT_EQ(w.model.tensor(1, md::TensorRole::kWeight), nullptr);  // weights live only as stored bytes
    const std::vector<float> deq = dequantized(w);
    // The quantization error: f16 within half an ulp, int8 within half a step of its column.
    const md::ParamLayout& lay = w.model.layout;
    for (uint32_t i = 0; i < lay.n_tensors; ++i) {
      const md::TensorDesc& t = lay.tensors[i];
      for (uint32_t j = 0; j < t.count(); ++j) {
        const float orig = q.params[t.offset + j], got = deq[t.offset + j];
        if (w.model.dtypes[i] == md::TensorDType::kF16) {
          ASSERT_LE(std::fabs(got - orig), std::ldexp(std::fabs(orig), -11) + 3e-8f) << i << " " << j;
        } else if (w.model.dtypes[i] == md::TensorDType::kInt8) {
          const float scale = static_cast<const float*>(w.model.stored[i])[j % t.cols];
          ASSERT_LE(std::fabs(got - orig), 0.5f * scale * 1.0001f) << i << " " << j;
        } else {
          ASSERT_EQ(got, orig);
        }
      }
    }
    const md::Model f32 = md::bind_model(q.desc, deq.data());
    const uint32_t B = 37;
    std::vector<float> x(B * 2), a(B * 2), b(B * 2), scratch(md::forward_scratch_floats(q.desc, B));
    std::vector<int32_t> t(B);
    std::mt19937 rng(5);
    std::normal_distribution<float> g;
    for (float& v : x) v = g(rng);
    for (uint32_t r = 0; r < B; ++r) t[r] = static_cast<int32_t>(r % 40);
    md::model_forward(w.model, x.data(), t.data(), B, a.data(), scratch.data());
    md::model_forward(f32, x.data(), t.data(), B, b.data(), scratch.data());
    double worst = 0, scale = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      worst = std::fmax(worst, std::fabs(a[i] - b[i]));
      scale = std::fmax(scale, std::fabs(b[i]));
    }
    EXPECT_LT(worst, 1e-5 * std::fmax(1.0, scale)) << "the same network, summed in another order";
  }
}

TEST(Quantized, ReaderRefusesBadReducedPrecisionTensors) {
  const Quantized q;
  std::vector<uint64_t> storage;
  md::LoadedWeights w;
  size_t size = 0;
  ASSERT_TRUE(q.write(md::TensorDType::kF16, &storage, &w, &size).ok());
  uint8_t* file = reinterpret_cast<uint8_t*>(storage.data());
  file += (64 - reinterpret_cast<uintptr_t>(file) % 64) % 64;
  const std::vector<uint8_t> good(file, file + size);
  auto restore = [&] { std::memcpy(file, good.data(), size); };
  auto resign_header = [&] {
    const uint32_t n_layers = q.desc.n_layers, n_tensors = md::param_layout(q.desc).n_tensors;
    uint32_t c = md::crc32(file, 124);
    c = md::crc32(file + 128, 32 * (n_layers + n_tensors), c);
    std::memcpy(file + 124, &c, 4);
  };
  const size_t first_tensor_rec = 128 + 32 * q.desc.n_layers;
  // A bias (tensor 1: the first linear layer's bias) may not claim f16.
  std::memcpy(file + first_tensor_rec + 32 * 1 + 8, "\x01\0\0\0", 4);
  resign_header();
  md::Status s = md::load_weights(file, size, &w);
  EXPECT_EQ(s.code, md::StatusCode::kBadFormat);
  EXPECT_NE(std::strstr(s.message, "unsupported tensor dtype"), nullptr) << s.message;
  restore();
  // An unknown dtype.
  std::memcpy(file + first_tensor_rec + 8, "\x03\0\0\0", 4);
  resign_header();
  EXPECT_EQ(md::load_weights(file, size, &w).code, md::StatusCode::kBadFormat);
  restore();
  // An f16 infinity in the weights, with its CRC fixed: refused as non-finite.
  uint64_t offset;
  std::memcpy(&offset, file + first_tensor_rec + 24, 8);
  file[offset] = 0x00;
  file[offset + 1] = 0x7C;
  uint32_t rows, cols;
  std::memcpy(&rows, file + first_tensor_rec + 12, 4);
  std::memcpy(&cols, file + first_tensor_rec + 16, 4);
  const uint32_t crc = md::crc32(file + offset, 2ull * rows * cols);
  std::memcpy(file + first_tensor_rec + 20, &crc, 4);
  resign_header();
  EXPECT_EQ(md::load_weights(file, size, &w).code, md::StatusCode::kNonFinite);
  restore();
  ASSERT_TRUE(md::load_weights(file, size, &w).ok());
  // Training needs f32 weights.
  md::TrainConfig cfg;
  cfg.batch = 2;
  std::vector<unsigned char> buf(md::training_arena_bytes(q.desc, 2));
  md::Arena arena(buf.data(), buf.size());
  md::Trainer trainer;
  ASSERT_TRUE(trainer.init(q.desc, q.sched, cfg, arena).ok());
  EXPECT_EQ(trainer.set_parameters(w.model.tensors[0], trainer.param_floats()).code, md::StatusCode::kInvalidArgument);
}

TEST(Quantized, ConvertDtypeThroughTheCommandLine) {
  char tmpl[] = "/tmp/md_quant_XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl, shipped = std::string(MD_SOURCE_DIR) + "/weights/swissroll.mdw";
  for (const char* dt : {"f16", "int8"}) {
    const std::string out = dir + "/" + dt + ".mdw";
    md_test::CliResult r = md_test::run_cli("convert " + shipped + " --dtype " + dt + " --out " + out);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("largest output change on a 256-row probe"), std::string::npos) << r.out;
    r = md_test::run_cli("inspect " + out);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find(std::string("(128, 128) ") + dt), std::string::npos) << r.out;
    r = md_test::run_cli("sample --model " + out + " --n 500 --sampler ddim --steps 20 --out " + dir + "/s.csv");
    ASSERT_EQ(r.code, 0) << r.out;
    double ed = 1.0;
    const size_t at = r.out.find("energy_distance=");
    ASSERT_NE(at, std::string::npos) << r.out;
    ed = std::strtod(r.out.c_str() + at + 16, nullptr);
    EXPECT_LT(ed, 0.01) << dt;
    // Converting again from a reduced-precision file is refused.
    r = md_test::run_cli("convert " + out + " --dtype f16 --out " + dir + "/again.mdw");
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find("already holds reduced-precision weights"), std::string::npos) << r.out;
  }
  const md_test::CliResult bad = md_test::run_cli("convert " + shipped + " --dtype f8 --out " + dir + "/x.mdw");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.out.find("--dtype must be f32, f16 or int8"), std::string::npos) << bad.out;
  EXPECT_FALSE(md_test::file_exists(dir + "/x.mdw"));
  std::system(("rm -rf " + dir).c_str());
}

}  // namespace
