// The element-format table (spec §1, §3) and the generic scalar encode/decode driven by a row
// (spec §2). Adding a format = one row here + one golden file from scripts/gen_codec_golden.py;
// tests/quant loops over this table. No block logic here (see block_formats.cpp).
#include "quant/codec/formats.h"

#include <array>
#include <cmath>
#include <iterator>
#include <mutex>

#include "autograd/error.h"

namespace mxqat::quant {
namespace {

using K = FormatKind;
using S = Specials;

// clang-format off
constexpr ElementFormat kTable[] = {
//  name          role       kind        bits ebits mbits bias  max_normal     specials      neg0
  { "fp8_e4m3",  "element", K::kFloat,     8,   4,    3,    7,  448.0f,        S::kNanOnly,  true  },
  { "fp8_e5m2",  "element", K::kFloat,     8,   5,    2,   15,  57344.0f,      S::kIeee,     true  },
  { "fp6_e2m3",  "element", K::kFloat,     6,   2,    3,    1,  7.5f,          S::kNone,     true  },
  { "fp6_e3m2",  "element", K::kFloat,     6,   3,    2,    3,  28.0f,         S::kNone,     true  },
  { "fp4_e2m1",  "element", K::kFloat,     4,   2,    1,    1,  6.0f,          S::kNone,     true  },
  { "mxint8",    "element", K::kInt,       8,   0,    6,    0,  127.0f / 64,   S::kNone,     false },
  { "e8m0",      "scale",   K::kExponent,  8,   8,    0,  127,  0x1p127f,      S::kNanCode,  false },
  { "ue4m3",     "scale",   K::kFloat,     8,   4,    3,    7,  448.0f,        S::kNanOnly,  true  },
};
// clang-format on
constexpr size_t kNumFormats = sizeof(kTable) / sizeof(kTable[0]);
// A new row needs its golden file (scripts/gen_codec_golden.py) and, for an element format, a
// block-codec row in block_formats.cpp; then bump this count.
static_assert(kNumFormats == 8, "new element format: add its golden file and block-codec row");

}  // namespace

const std::vector<ElementFormat>& element_formats() {
  static const std::vector<ElementFormat> rows(std::begin(kTable), std::end(kTable));
  return rows;
}

const ElementFormat& element_format(const std::string& name) {
  std::string known;
  for (const ElementFormat& f : element_formats()) {
    if (name == f.name) return f;
    known += (known.empty() ? "" : ", ") + std::string(f.name);
  }
  MXQAT_FAIL("unknown element format \"", name, "\"; known: ", known,
             " (add rows in quant/codec/formats.cpp)");
  __builtin_unreachable();  // MXQAT_FAIL throws
}

int emin(const ElementFormat& f) { return f.kind == K::kFloat ? 1 - f.bias : (f.kind == K::kInt ? 0 : -f.bias); }

int emax(const ElementFormat& f) { return static_cast<int>((f2u(f.max_normal) >> 23) & 0xFF) - 127; }

uint32_t max_code(const ElementFormat& f) {
  const uint32_t mag = (1u << (f.ebits + f.mbits)) - 1u;  // all ones below the sign
  switch (f.kind) {
    case K::kInt: return (1u << (f.bits - 1)) - 1u;       // +127
    case K::kExponent: return code_mask(f) - 1u;           // 254
    case K::kFloat: break;
  }
  switch (f.specials) {
    case S::kNanOnly: return mag - 1u;                     // S.1111.110
    case S::kIeee: return mag - (1u << f.mbits);           // S.11110.11
    default: return mag;
  }
}

float max_from_fields(const ElementFormat& f) { return decode_element(f, max_code(f)); }

uint32_t encode_element(const ElementFormat& f, float v) {
  const uint32_t u = f2u(v);
  const uint32_t sign = u >> 31;
  const uint32_t a_bits = u & 0x7FFFFFFFu;
  const bool is_nan = a_bits > 0x7F800000u;
  if (f.kind == K::kExponent) {  // FLOOR to a power of two
    if (is_nonfinite_bits(u)) return code_mask(f);
    if (sign && a_bits != 0) return 0;  // no negative values: clamp to the smallest code
    return a_bits >> 23;                 // zero/subnormal -> 0 (2^-127)
  }
  if (f.kind == K::kInt) {
    if (is_nan) return 0;
    const float qmax = static_cast<float>(max_code(f));
    float t = v * pow2f(f.mbits);  // exact (power of two), or +-Inf which the clamp catches
    t = std::fmin(std::fmax(t, -qmax), qmax);
    const int q = static_cast<int>(std::nearbyint(t));
    return static_cast<uint32_t>(q) & code_mask(f);
  }
  const uint32_t sbit = sign ? sign_bit(f) : 0u;
  if (is_nan) return f.specials == S::kNone ? 0u : (code_mask(f) & ~sign_bit(f)) | sbit;
  if (u2f(a_bits) >= f.max_normal) return max_code(f) | sbit;  // saturate (Inf included)
  const uint32_t emin_biased = static_cast<uint32_t>(emin(f) + 127);
  uint32_t mag;
  if ((a_bits >> 23) >= emin_biased) {
    // Normal target: round the float32 mantissa to mbits, ties to even; a carry bumps E.
    const int shift = 23 - f.mbits;
    const uint32_t r = (a_bits + (1u << (shift - 1)) - 1u + ((a_bits >> shift) & 1u)) >> shift;
    mag = r - (static_cast<uint32_t>(127 - f.bias) << f.mbits);
  } else {
    // Subnormal target: multiples of 2^(emin-mbits); scaling by a power of two is exact here.
    mag = static_cast<uint32_t>(std::nearbyint(u2f(a_bits) * pow2f(f.mbits - emin(f))));
  }
  return mag | sbit;
}

float decode_element(const ElementFormat& f, uint32_t code) {
  code &= code_mask(f);
  if (f.kind == K::kExponent) {
    if (code == code_mask(f)) return canonical_nan();
    return code == 0 ? u2f(0x00400000u) : u2f(code << 23);
  }
  if (f.kind == K::kInt) {
    const int q = static_cast<int>(code) - ((code & sign_bit(f)) ? (1 << f.bits) : 0);
    return static_cast<float>(q) * pow2f(-f.mbits);
  }
  const bool neg = (code & sign_bit(f)) != 0;
  const uint32_t mag = code & ~sign_bit(f);
  const uint32_t e = mag >> f.mbits;
  const uint32_t m = mag & ((1u << f.mbits) - 1u);
  const uint32_t e_ones = (1u << f.ebits) - 1u;
  if (f.specials == S::kNanOnly && mag == ((1u << (f.ebits + f.mbits)) - 1u)) return canonical_nan();
  if (f.specials == S::kIeee && e == e_ones) {
    if (m != 0) return canonical_nan();
    return neg ? -INFINITY : INFINITY;
  }
  float val;
  if (e == 0) {
    val = static_cast<float>(m) * pow2f(emin(f) - f.mbits);  // exact
  } else {
    val = u2f(((e - f.bias + 127) << 23) | (m << (23 - f.mbits)));
  }
  return neg ? -val : val;
}

const float* decode_lut(const ElementFormat& f) {
  static std::array<std::array<float, 256>, kNumFormats> luts;
  static std::once_flag once;
  const std::vector<ElementFormat>& rows = element_formats();
  std::call_once(once, [&rows] {
    for (size_t i = 0; i < rows.size(); ++i)
      for (uint32_t c = 0; c < 256; ++c) luts[i][c] = decode_element(rows[i], c);
  });
  size_t idx = 0;
  while (idx < rows.size() && &rows[idx] != &f) ++idx;
  MXQAT_CHECK(idx < rows.size(), "decode_lut: format \"", f.name, "\" is not a table row");
  return luts[idx].data();
}

}  // namespace mxqat::quant
