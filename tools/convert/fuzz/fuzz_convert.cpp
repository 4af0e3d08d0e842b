// libFuzzer harness for the checkpoint readers (not built by CMake).
//
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -Iruntime/include -Itools \
//     tools/convert/fuzz/fuzz_convert.cpp tools/convert/*.cpp runtime/src/*.cpp runtime/src/kernels/*.cpp \
//     -o fuzz_convert
//   ./fuzz_convert -max_len=65536 -rss_limit_mb=2048 corpus/ tests/convert/
//
// Every reader takes (const uint8_t*, size_t) and returns an error string; the
// whole conversion (mapping, shape checks, .mdw writing) runs on whatever parses.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "convert/convert.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace cv = md::convert;
  cv::Checkpoint ck;
  if (cv::read_checkpoint(data, size, &ck).empty()) {
    std::vector<float> v;
    for (const cv::TensorRef& t : ck.tensors)
      if (t.numel() <= (1u << 22)) cv::tensor_to_f32(t, &v);
    cv::select_key(&ck, "model");
  }
  cv::Checkpoint a, b, c;
  cv::read_safetensors(data, size, &a);
  cv::read_npy(data, size, &b);
  cv::read_pytorch(data, size, &c);
  std::vector<uint8_t> out;
  cv::inflate_raw(data, size, 1u << 20, &out);
  cv::ConvertOptions o;
  o.T = 20;
  cv::ConvertResult r;
  cv::convert(data, size, o, &r);
  o.key = "model";
  cv::convert(data, size, o, &r);
  return 0;
}
