// Packers for 4-, 6- and 8-bit codes (spec §8) and the bit-by-bit reference they must equal.
#include "quant/codec/pack.h"

#include <cstring>

#include "autograd/error.h"

namespace mxqat::quant {

void pack_codes_reference(const uint8_t* codes, int64_t n, int bits, uint8_t* out) {
  std::memset(out, 0, static_cast<size_t>(packed_bytes(n, bits)));
  for (int64_t j = 0; j < n; ++j)
    for (int t = 0; t < bits; ++t) {
      const int64_t i = j * bits + t;  // stream bit
      out[i / 8] |= static_cast<uint8_t>(((codes[j] >> t) & 1u) << (i % 8));
    }
}

void unpack_codes_reference(const uint8_t* in, int64_t n, int bits, uint8_t* codes) {
  for (int64_t j = 0; j < n; ++j) {
    uint8_t c = 0;
    for (int t = 0; t < bits; ++t) {
      const int64_t i = j * bits + t;
      c |= static_cast<uint8_t>(((in[i / 8] >> (i % 8)) & 1u) << t);
    }
    codes[j] = c;
  }
}

void pack_codes(const uint8_t* codes, int64_t n, int bits, uint8_t* out) {
  switch (bits) {
    case 8:
      std::memcpy(out, codes, static_cast<size_t>(n));
      return;
    case 4: {
      int64_t j = 0;
      for (; j + 1 < n; j += 2)
        out[j / 2] = static_cast<uint8_t>((codes[j] & 0xF) | ((codes[j + 1] & 0xF) << 4));
      if (j < n) out[j / 2] = codes[j] & 0xF;
      return;
    }
    case 6: {
      int64_t j = 0;
      uint8_t* o = out;
      for (; j + 4 <= n; j += 4, o += 3) {
        const uint32_t w = (codes[j] & 0x3Fu) | (codes[j + 1] & 0x3Fu) << 6 |
                           (codes[j + 2] & 0x3Fu) << 12 | (codes[j + 3] & 0x3Fu) << 18;
        o[0] = static_cast<uint8_t>(w);
        o[1] = static_cast<uint8_t>(w >> 8);
        o[2] = static_cast<uint8_t>(w >> 16);
      }
      if (j < n) pack_codes_reference(codes + j, n - j, 6, o);  // 4-aligned: starts on a byte
      return;
    }
    default:
      MXQAT_FAIL("pack_codes: ", bits, "-bit codes are not packed by spec §8 (4, 6 or 8)");
  }
}

void unpack_codes(const uint8_t* in, int64_t n, int bits, uint8_t* codes) {
  switch (bits) {
    case 8:
      std::memcpy(codes, in, static_cast<size_t>(n));
      return;
    case 4: {
      int64_t j = 0;
      for (; j + 1 < n; j += 2) {
        codes[j] = in[j / 2] & 0xF;
        codes[j + 1] = in[j / 2] >> 4;
      }
      if (j < n) codes[j] = in[j / 2] & 0xF;
      return;
    }
    case 6: {
      int64_t j = 0;
      const uint8_t* p = in;
      for (; j + 4 <= n; j += 4, p += 3) {
        const uint32_t w = p[0] | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16;
        codes[j] = w & 0x3F;
        codes[j + 1] = (w >> 6) & 0x3F;
        codes[j + 2] = (w >> 12) & 0x3F;
        codes[j + 3] = (w >> 18) & 0x3F;
      }
      if (j < n) unpack_codes_reference(p, n - j, 6, codes + j);
      return;
    }
    default:
      MXQAT_FAIL("unpack_codes: ", bits, "-bit codes are not packed by spec §8 (4, 6 or 8)");
  }
}

}  // namespace mxqat::quant
