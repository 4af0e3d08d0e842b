// Raw DEFLATE decoder (RFC 1951): stored, fixed and dynamic Huffman blocks.
// Canonical Huffman decoding by code-length counts (the method of Mark Adler's
// puff.c), one bit at a time: simple to check, fast enough for checkpoints.
// Every read is bounds-checked; the output never exceeds max_out.
#include <cstring>
#include <string>
#include <vector>

#include "convert/convert.h"

namespace md::convert {
namespace {

constexpr int kMaxBits = 15;
constexpr int kMaxLitLen = 286;
constexpr int kMaxDist = 30;
constexpr int kFixedLitLen = 288;

struct Huffman {
  short count[kMaxBits + 1];
  short symbol[kFixedLitLen];
};

struct State {
  const uint8_t* in;
  size_t n;
  size_t pos = 0;
  uint32_t bitbuf = 0;
  int bitcnt = 0;
  std::vector<uint8_t>* out;
  size_t max_out;
  std::string error;
};

// need <= 16 bits; false at the end of the input.
bool bits(State& s, int need, int* value) {
  uint32_t val = s.bitbuf;
  while (s.bitcnt < need) {
    if (s.pos >= s.n) {
      s.error = "deflate stream is truncated";
      return false;
    }
    val |= static_cast<uint32_t>(s.in[s.pos++]) << s.bitcnt;
    s.bitcnt += 8;
  }
  s.bitbuf = val >> need;
  s.bitcnt -= need;
  *value = static_cast<int>(val & ((1u << need) - 1u));
  return true;
}

// Returns the number of unused codes (0: complete), negative if over-subscribed.
int construct(Huffman* h, const short* length, int n) {
  for (int len = 0; len <= kMaxBits; ++len) h->count[len] = 0;
  for (int sym = 0; sym < n; ++sym) h->count[length[sym]]++;
  if (h->count[0] == n) return 0;  // no codes: complete, but decoding fails
  int left = 1;
  for (int len = 1; len <= kMaxBits; ++len) {
    left <<= 1;
    left -= h->count[len];
    if (left < 0) return left;
  }
  short offs[kMaxBits + 1];
  offs[1] = 0;
  for (int len = 1; len < kMaxBits; ++len) offs[len + 1] = static_cast<short>(offs[len] + h->count[len]);
  for (int sym = 0; sym < n; ++sym)
    if (length[sym] != 0) h->symbol[offs[length[sym]]++] = static_cast<short>(sym);
  return left;
}

// Decodes one symbol; -1 on error (s.error set).
int decode(State& s, const Huffman& h) {
  int code = 0, first = 0, index = 0;
  for (int len = 1; len <= kMaxBits; ++len) {
    int bit;
    if (!bits(s, 1, &bit)) return -1;
    code |= bit;
    const int count = h.count[len];
    if (code - count < first) return h.symbol[index + (code - first)];
    index += count;
    first += count;
    first <<= 1;
    code <<= 1;
  }
  s.error = "deflate stream has an invalid Huffman code";
  return -1;
}

bool emit(State& s, uint8_t byte) {
  if (s.out->size() >= s.max_out) {
    s.error = "deflate output exceeds the expected " + std::to_string(s.max_out) + " bytes";
    return false;
  }
  s.out->push_back(byte);
  return true;
}

bool stored(State& s) {
  s.bitbuf = 0;
  s.bitcnt = 0;
  if (s.n - s.pos < 4) {
    s.error = "deflate stored block header is truncated";
    return false;
  }
  const unsigned len = s.in[s.pos] | (s.in[s.pos + 1] << 8);
  const unsigned nlen = s.in[s.pos + 2] | (s.in[s.pos + 3] << 8);
  s.pos += 4;
  if (len != (~nlen & 0xFFFFu)) {
    s.error = "deflate stored block length check failed";
    return false;
  }
  if (s.n - s.pos < len) {
    s.error = "deflate stored block is truncated";
    return false;
  }
  if (s.max_out - s.out->size() < len) {
    s.error = "deflate output exceeds the expected " + std::to_string(s.max_out) + " bytes";
    return false;
  }
  s.out->insert(s.out->end(), s.in + s.pos, s.in + s.pos + len);
  s.pos += len;
  return true;
}

constexpr short kLenBase[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
constexpr short kLenExtra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
constexpr short kDistBase[30] = {1,   2,   3,   4,   5,   7,    9,    13,   17,   25,   33,   49,   65,    97,    129,
                                 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
constexpr short kDistExtra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

bool codes(State& s, const Huffman& lencode, const Huffman& distcode) {
  while (true) {
    int sym = decode(s, lencode);
    if (sym < 0) return false;
    if (sym < 256) {
      if (!emit(s, static_cast<uint8_t>(sym))) return false;
      continue;
    }
    if (sym == 256) return true;
    sym -= 257;
    if (sym >= 29) {
      s.error = "deflate stream has an invalid length symbol";
      return false;
    }
    int extra;
    if (!bits(s, kLenExtra[sym], &extra)) return false;
    const size_t len = static_cast<size_t>(kLenBase[sym] + extra);
    int dsym = decode(s, distcode);
    if (dsym < 0) return false;
    if (dsym >= 30) {
      s.error = "deflate stream has an invalid distance symbol";
      return false;
    }
    if (!bits(s, kDistExtra[dsym], &extra)) return false;
    const size_t dist = static_cast<size_t>(kDistBase[dsym] + extra);
    if (dist > s.out->size()) {
      s.error = "deflate distance points before the start of the output";
      return false;
    }
    if (s.max_out - s.out->size() < len) {
      s.error = "deflate output exceeds the expected " + std::to_string(s.max_out) + " bytes";
      return false;
    }
    for (size_t i = 0; i < len; ++i) s.out->push_back((*s.out)[s.out->size() - dist]);
  }
}

struct FixedCodes {
  Huffman lencode, distcode;
  FixedCodes() {
    short lengths[kFixedLitLen];
    int sym = 0;
    for (; sym < 144; ++sym) lengths[sym] = 8;
    for (; sym < 256; ++sym) lengths[sym] = 9;
    for (; sym < 280; ++sym) lengths[sym] = 7;
    for (; sym < kFixedLitLen; ++sym) lengths[sym] = 8;
    construct(&lencode, lengths, kFixedLitLen);
    for (sym = 0; sym < kMaxDist; ++sym) lengths[sym] = 5;
    construct(&distcode, lengths, kMaxDist);
  }
};

bool fixed(State& s) {
  static const FixedCodes kFixed;  // thread-safe initialisation
  return codes(s, kFixed.lencode, kFixed.distcode);
}

bool dynamic(State& s) {
  static const short kOrder[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
  int nlen, ndist, ncode;
  if (!bits(s, 5, &nlen) || !bits(s, 5, &ndist) || !bits(s, 4, &ncode)) return false;
  nlen += 257;
  ndist += 1;
  ncode += 4;
  if (nlen > kMaxLitLen || ndist > kMaxDist) {
    s.error = "deflate dynamic block has too many length or distance codes";
    return false;
  }
  short lengths[kMaxLitLen + kMaxDist];
  int index = 0;
  for (; index < ncode; ++index) {
    int v;
    if (!bits(s, 3, &v)) return false;
    lengths[kOrder[index]] = static_cast<short>(v);
  }
  for (; index < 19; ++index) lengths[kOrder[index]] = 0;
  Huffman lencode, distcode;
  if (construct(&lencode, lengths, 19) != 0) {
    s.error = "deflate code-length code is incomplete or over-subscribed";
    return false;
  }
  index = 0;
  while (index < nlen + ndist) {
    int sym = decode(s, lencode);
    if (sym < 0) return false;
    if (sym < 16) {
      lengths[index++] = static_cast<short>(sym);
      continue;
    }
    short len = 0;
    int rep;
    if (sym == 16) {
      if (index == 0) {
        s.error = "deflate repeats a code length before the first one";
        return false;
      }
      len = lengths[index - 1];
      if (!bits(s, 2, &rep)) return false;
      rep += 3;
    } else if (sym == 17) {
      if (!bits(s, 3, &rep)) return false;
      rep += 3;
    } else {
      if (!bits(s, 7, &rep)) return false;
      rep += 11;
    }
    if (index + rep > nlen + ndist) {
      s.error = "deflate code lengths overflow the code table";
      return false;
    }
    while (rep--) lengths[index++] = len;
  }
  if (lengths[256] == 0) {
    s.error = "deflate dynamic block has no end-of-block code";
    return false;
  }
  int err = construct(&lencode, lengths, nlen);
  if (err < 0 || (err > 0 && nlen - lencode.count[0] != 1)) {
    s.error = "deflate literal/length code is incomplete or over-subscribed";
    return false;
  }
  err = construct(&distcode, lengths + nlen, ndist);
  if (err < 0 || (err > 0 && ndist - distcode.count[0] != 1)) {
    s.error = "deflate distance code is incomplete or over-subscribed";
    return false;
  }
  return codes(s, lencode, distcode);
}

}  // namespace

std::string inflate_raw(const uint8_t* data, size_t size, size_t max_out, std::vector<uint8_t>* out,
                        size_t* consumed) {
  out->clear();
  if (data == nullptr && size > 0) return "deflate: null input";
  State s;
  s.in = data;
  s.n = size;
  s.out = out;
  s.max_out = max_out;
  int last = 0;
  do {
    int type;
    if (!bits(s, 1, &last) || !bits(s, 2, &type)) return s.error;
    bool ok = false;
    switch (type) {
      case 0: ok = stored(s); break;
      case 1: ok = fixed(s); break;
      case 2: ok = dynamic(s); break;
      default: s.error = "deflate block type 3 is invalid"; break;
    }
    if (!ok) return s.error;
  } while (!last);
  if (consumed) *consumed = s.pos;
  return "";
}

}  // namespace md::convert
