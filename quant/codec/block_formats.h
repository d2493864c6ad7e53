// The block-codec table (element format x scale format x block size) and the per-block scale
// arithmetic of spec §4 (MX), §5 (NVFP4) and §6 (INT), shared by the scalar references and the
// fast paths so both compute scales with the same binary32 operations. Internal to quant/codec
// and its tests; the framework uses codec.h.
#pragma once
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "quant/codec/formats.h"

namespace mxqat::quant {

enum class ScaleRule { kFloor, kRceil };  // MX shared-exponent rule (spec §4.2 / §4.3)
const char* scale_rule_name(ScaleRule r);            // "floor" / "rceil"
ScaleRule parse_scale_rule(const std::string& name);  // throws on anything else

enum class BlockScheme : uint8_t { kMx, kNvfp4, kIntSym, kIntAsym };
// The INT schemes (float32 scale per group, optional zero point) as opposed to MX / NVFP4.
inline bool is_int(BlockScheme s) { return s == BlockScheme::kIntSym || s == BlockScheme::kIntAsym; }

struct BlockFormat {
  std::string name;     // codec name, e.g. "mxfp4" (spec §9 attr `codec`)
  BlockScheme scheme;
  const char* element;  // element-format row (formats.cpp), nullptr for INT
  const char* scale;    // scale-format row, nullptr for INT (float32 scales)
  int block;            // elements per block; 0 = INT group size from CodecOptions
  int element_bits;     // 8, 6 or 4
};

const std::vector<BlockFormat>& block_formats();                  // the table
const BlockFormat* find_block_format(const std::string& name);    // nullptr if unknown

// Everything a kernel needs to know about one codec applied to rows of K elements.
struct KernelSpec {
  BlockScheme scheme;
  const ElementFormat* elem;   // MX / NVFP4 element row, nullptr for INT
  const ElementFormat* scale;  // e8m0 / ue4m3 row, nullptr for INT
  ScaleRule rule;
  int bits;                    // element bits
  int64_t K, G, nb, bytes_per_row;  // row length, block (group) size, blocks per row, packed bytes
};

// ---- MX (spec §4) ----
// Shared exponent s from the bits of amax (finite, >= 0). rceil_r = RN32(1 / max_elem).
inline int mx_shared_exp(uint32_t amax_bits, int elem_emax, float rceil_r, ScaleRule rule) {
  if (rule == ScaleRule::kFloor) {
    const int f = static_cast<int>(amax_bits >> 23);
    return f == 0 ? -127 : std::max(f - 127 - elem_emax, -127);
  }
  const uint32_t d = f2u(u2f(amax_bits) * rceil_r);  // RN32(amax * R_elem)
  const uint32_t f = d >> 23, t = d & 0x7FFFFFu;
  uint32_t code = f > 0 ? f + (t != 0 ? 1u : 0u) : (t > 0x400000u ? 1u : 0u);
  code = std::min(code, 254u);
  return static_cast<int>(code) - 127;
}
inline float mx_rceil_constant(const ElementFormat& elem) { return 1.0f / elem.max_normal; }

// ---- NVFP4 (spec §5) ----
struct Nvfp4Global {
  float amax, encode_scale, decode_scale;  // A, S_enc, S_dec
};
inline Nvfp4Global nvfp4_global_from_amax(float A) {
  const float s_enc = A == 0.0f ? 1.0f : std::min(2688.0f / A, FLT_MAX);
  return {A, s_enc, 1.0f / s_enc};
}
inline float nvfp4_block_scale_mult(const Nvfp4Global& g) { return g.encode_scale * (1.0f / 6.0f); }
struct Nvfp4Block {
  uint32_t scale_code;  // E4M3 code of S_b
  float encode_factor;  // r
  float decode_scale;   // D_b
};
// a_b = block amax (finite); sb_mult = RN32(S_enc * C6); ue4m3 = the E4M3 scale row.
inline Nvfp4Block nvfp4_block(float a_b, float sb_mult, float s_dec, const ElementFormat& ue4m3,
                              const float* ue4m3_lut) {
  const uint32_t code = encode_element(ue4m3, a_b * sb_mult);
  const float s_b = ue4m3_lut[code];
  const float d_b = s_b * s_dec;
  const float r = s_b == 0.0f ? 0.0f : std::min(1.0f / d_b, FLT_MAX);
  return {code, r, d_b};
}

// ---- INT (spec §6) ----
struct IntParams {
  int qmin, qmax;  // sym: [-7, 7] / [-127, 127]; asym: [0, 15] / [0, 255]
  bool asym;
};
inline IntParams int_params(BlockScheme scheme, int bits) {
  const int full = (1 << bits) - 1;
  if (scheme == BlockScheme::kIntAsym) return {0, full, true};
  return {-(full >> 1), full >> 1, false};
}
struct IntGroup {
  float scale, inv;  // s, RN32(1/s)
  float zero;        // z (an integer) as float
  bool nonfinite;
};
constexpr float kIntEps = 0x1p-23f;
// lo/hi: min/max over the group's real elements (sym uses amax = max(|lo|, |hi|)); nonfinite:
// the group held NaN/Inf.
inline IntGroup int_group(const IntParams& p, float lo, float hi, bool nonfinite) {
  if (nonfinite) return {canonical_nan(), canonical_nan(), 0.0f, true};
  float s;
  float z = 0.0f;
  if (!p.asym) {
    const float amax = std::max(std::fabs(lo), std::fabs(hi));
    s = std::max(amax / static_cast<float>(p.qmax), kIntEps);
  } else {
    lo = std::min(lo, 0.0f);
    hi = std::max(hi, 0.0f);
    const float range = hi - lo;
    if (!std::isfinite(range)) return {canonical_nan(), canonical_nan(), 0.0f, true};
    s = std::max(range / static_cast<float>(p.qmax - p.qmin), kIntEps);
    const float zq = static_cast<float>(p.qmin) - std::nearbyint(lo / s);
    z = std::min(std::max(zq, static_cast<float>(p.qmin)), static_cast<float>(p.qmax));
  }
  return {s, 1.0f / s, z, false};
}

}  // namespace mxqat::quant
