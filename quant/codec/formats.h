// Element formats (docs/formats.md §1-§3): one table row per format, and the generic scalar
// encode/decode that reads the row. Not the block codecs (codec.h). Depends on nothing of ours
// but autograd/error.h; used by the block codecs, tests and benches.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace mxqat::quant {

enum class FormatKind : uint8_t {
  kFloat,     // sign-magnitude S|E|M, value 2^(E-bias)(1+M/2^m), subnormals at E=0
  kInt,       // two's complement q, value q * 2^-mbits (fixed point, |value| < 2)
  kExponent,  // unsigned biased exponent only (E8M0): value 2^(code-bias)
};

// Which codes are not finite numbers.
enum class Specials : uint8_t {
  kNone,     // every code is a number (FP6, FP4, MXINT8)
  kNanOnly,  // only the all-ones magnitude S.1111.111 is NaN (OFP8 E4M3FN)
  kIeee,     // exponent all ones: M = 0 is Inf, M != 0 is NaN (E5M2)
  kNanCode,  // the all-ones code is NaN (E8M0 0xFF)
};

struct ElementFormat {
  const char* name;   // table key, e.g. "fp8_e4m3"
  const char* role;   // "element" or "scale"
  FormatKind kind;
  int bits;           // code width (codes live in the low bits of a byte when unpacked)
  int ebits;          // exponent field width
  int mbits;          // mantissa field width (kInt: fraction bits)
  int bias;
  float max_normal;   // largest finite magnitude (checked against the fields by the tests)
  Specials specials;
  bool has_neg_zero;  // FP formats keep the sign of zero; integer codes have no -0
};

const std::vector<ElementFormat>& element_formats();                  // the table
const ElementFormat& element_format(const std::string& name);         // throws on unknown name

// Derived properties of a row.
inline uint32_t sign_bit(const ElementFormat& f) {
  return f.kind == FormatKind::kExponent ? 0u : 1u << (f.bits - 1);
}
inline uint32_t code_mask(const ElementFormat& f) { return (1u << f.bits) - 1u; }
int emin(const ElementFormat& f);            // exponent of the smallest normal (kInt: 0)
int emax(const ElementFormat& f);            // exponent of max_normal (floor(log2(max)))
uint32_t max_code(const ElementFormat& f);   // positive code of max_normal
float max_from_fields(const ElementFormat& f);  // max normal computed from the fields alone

// Standalone conversion, spec §2: RNE, saturating to +-max (Inf -> +-max), sign of zero kept
// where the format has -0; NaN -> NaN code | sign (formats without NaN: code 0 - callers never
// pass NaN). E8M0: FLOOR to a power of two, clamped to [2^-127, 2^127]; NaN/Inf -> 0xFF.
uint32_t encode_element(const ElementFormat& f, float v);
// Every code decodes to its exact value; NaN codes give 0x7FC00000, Inf codes +-Inf.
float decode_element(const ElementFormat& f, uint32_t code);
// 2^bits floats: lut[code] == decode_element(f, code) bitwise. Built once, never freed.
const float* decode_lut(const ElementFormat& f);

// ---- float32 bit helpers (spec §0: exponents from bits, never log2f/powf) ----
constexpr uint32_t kCanonicalNan = 0x7FC00000u;
inline uint32_t f2u(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float u2f(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
inline float canonical_nan() { return u2f(kCanonicalNan); }
// 2^k exactly for k in [-149, 127] (subnormal results included); +Inf above, 0 below.
inline float pow2f(int k) {
  if (k > 127) return u2f(0x7F800000u);
  if (k >= -126) return u2f(static_cast<uint32_t>(k + 127) << 23);
  if (k >= -149) return u2f(1u << (k + 149));
  return 0.0f;
}
inline bool is_nonfinite_bits(uint32_t u) { return (u & 0x7F800000u) == 0x7F800000u; }

}  // namespace mxqat::quant
