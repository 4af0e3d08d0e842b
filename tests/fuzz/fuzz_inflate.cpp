// libFuzzer target: md::convert::inflate_raw, the converter's own raw DEFLATE
// decoder (RFC 1951; .npz members and deflated PyTorch zip members go through
// it). The input is the compressed stream; the output limit is 1 MiB.
//
// Besides "no crash, no sanitizer report, no leak", it checks:
//   - the output never exceeds the limit, and *consumed never exceeds the input;
//   - a decoded stream decodes again, to the same bytes, from only its first
//     *consumed bytes and with a limit of exactly its size; one byte less room
//     is an error, and so is one compressed byte less (every consumed byte is
//     needed: the decoder reads lazily);
//   - with zlib (found by CMake: MD_FUZZ_HAVE_ZLIB), the same stream through
//     zlib's raw inflate: when both decode, the bytes and the consumed count
//     agree; the converter decodes no stream zlib refuses but the one kind
//     puff.c also accepts (below), and refuses none that zlib decodes within
//     the limit.
//
// Build and run: .ci/fuzz.sh (docs/BAD_INPUT.md). Reproduce one input:
//   build/fuzz/fuzz_inflate path/to/crash-file
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "convert/convert.h"
#include "fuzz_check.h"

#ifdef MD_FUZZ_HAVE_ZLIB
#include <zlib.h>
#endif

namespace {

namespace cv = md::convert;

constexpr size_t kMaxOut = 1u << 20;

#ifdef MD_FUZZ_HAVE_ZLIB
// zlib's raw inflate (windowBits -15) with the same output limit. Returns true
// when the stream ends (Z_STREAM_END) within the limit; *msg is zlib's reason
// otherwise ("" when it only ran out of input or room).
bool zlib_inflate(const uint8_t* data, size_t size, std::vector<uint8_t>* out, size_t* consumed, bool* over_limit,
                  std::string* msg) {
  static std::vector<uint8_t> buf(kMaxOut + 1);  // one spare byte tells "over the limit" from "at it"
  z_stream z;
  memset(&z, 0, sizeof(z));
  if (inflateInit2(&z, -15) != Z_OK) std::abort();
  z.next_in = const_cast<Bytef*>(data);
  z.avail_in = static_cast<uInt>(size);
  z.next_out = buf.data();
  z.avail_out = static_cast<uInt>(buf.size());
  const int rc = inflate(&z, Z_FINISH);
  out->assign(buf.data(), buf.data() + z.total_out);
  *consumed = z.total_in;
  *over_limit = z.total_out > kMaxOut;
  *msg = rc == Z_DATA_ERROR && z.msg ? z.msg : "";
  inflateEnd(&z);
  return rc == Z_STREAM_END && !*over_limit;
}
#endif

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> out;
  size_t consumed = size + 1;
  const std::string err = cv::inflate_raw(data, size, kMaxOut, &out, &consumed);
  FUZZ_CHECK(out.size() <= kMaxOut);
  if (err.empty()) {
    FUZZ_CHECK(consumed <= size);
    std::vector<uint8_t> again;
    size_t consumed2 = 0;
    // Only the consumed bytes, exactly enough room.
    FUZZ_CHECK(cv::inflate_raw(data, consumed, out.size(), &again, &consumed2).empty());
    FUZZ_CHECK(again == out && consumed2 == consumed);
    if (!out.empty()) {
      const std::string e = cv::inflate_raw(data, consumed, out.size() - 1, &again);
      FUZZ_CHECK(!e.empty() && again.size() <= out.size() - 1);
    }
    if (consumed > 0) FUZZ_CHECK(!cv::inflate_raw(data, consumed - 1, kMaxOut, &again).empty());
  } else {
    FUZZ_CHECK(err.compare(0, 8, "deflate ") == 0);
  }

#ifdef MD_FUZZ_HAVE_ZLIB
  std::vector<uint8_t> ref;
  size_t ref_consumed = 0;
  bool over_limit = false;
  std::string zmsg;
  const bool ref_ok = zlib_inflate(data, size, &ref, &ref_consumed, &over_limit, &zmsg);
  if (err.empty() && ref_ok) {
    FUZZ_CHECK(out == ref);
    FUZZ_CHECK(consumed == ref_consumed);
  } else if (err.empty()) {
    // The one deliberate difference (puff.c's rule against zlib's): a dynamic
    // block whose literal/length or distance code is incomplete with a single
    // symbol. The converter accepts it with a code of any length, zlib only
    // with a 1-bit code, and calls the set invalid otherwise.
    if (zmsg != "invalid literal/lengths set" && zmsg != "invalid distances set") {
      std::fprintf(stderr, "fuzz_inflate: the converter decodes %zu bytes, zlib refuses: %s\n", out.size(),
                   zmsg.c_str());
      FUZZ_CHECK(!"the converter decodes a stream zlib refuses");
    }
  } else if (ref_ok) {
    std::fprintf(stderr, "fuzz_inflate: zlib decodes %zu bytes, the converter refuses: %s\n", ref.size(),
                 err.c_str());
    FUZZ_CHECK(!"zlib decodes a stream the converter refuses");
  }
#endif
  return 0;
}
