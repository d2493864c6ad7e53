// Element formats (spec §1-§3, §10 E-vectors): every test loops over the format table, so a new
// row is covered without new test code. Values are checked against an independent statement
// of §1 (double arithmetic) and the encoder against a brute-force nearest-value search.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <map>
#include <random>

#include "autograd/error.h"
#include "quant/codec/block_formats.h"
#include "quant/codec/formats.h"

namespace mxqat::quant {
namespace {

bool is_number_format(const ElementFormat& f) { return f.kind != FormatKind::kExponent; }

// §1 written independently in double: the value of a code, or NaN / +-Inf.
double spec_value(const ElementFormat& f, uint32_t c) {
  if (f.kind == FormatKind::kExponent) return c == 255 ? NAN : std::ldexp(1.0, static_cast<int>(c) - f.bias);
  if (f.kind == FormatKind::kInt) {
    const int q = c >= (1u << (f.bits - 1)) ? static_cast<int>(c) - (1 << f.bits) : static_cast<int>(c);
    return std::ldexp(static_cast<double>(q), -f.mbits);
  }
  const bool neg = (c >> (f.bits - 1)) & 1;
  const uint32_t e = (c >> f.mbits) & ((1u << f.ebits) - 1), m = c & ((1u << f.mbits) - 1);
  const uint32_t e_all = (1u << f.ebits) - 1, m_all = (1u << f.mbits) - 1;
  double v;
  if (f.specials == Specials::kNanOnly && e == e_all && m == m_all) return NAN;
  if (f.specials == Specials::kIeee && e == e_all) {
    if (m != 0) return NAN;
    v = INFINITY;
  } else if (e == 0) {
    v = std::ldexp(static_cast<double>(m), 1 - f.bias - f.mbits);
  } else {
    v = std::ldexp(1.0 + std::ldexp(static_cast<double>(m), -f.mbits), static_cast<int>(e) - f.bias);
  }
  return neg ? -v : v;
}

// The code that encode(decode(c)) must give (spec §2 rules): NaN codes -> the positive NaN code
// (decode gives the canonical NaN 0x7FC00000), Inf codes -> +-max (standalone casts saturate),
// MXINT8 0x80 (-2.0) -> 0x81 (clamped to -127); every other code -> itself.
uint32_t expected_reencode(const ElementFormat& f, uint32_t c) {
  const double v = spec_value(f, c);
  if (std::isnan(v)) return f.kind == FormatKind::kExponent ? 0xFFu : (code_mask(f) & ~sign_bit(f));
  if (std::isinf(v)) return max_code(f) | (v < 0 ? sign_bit(f) : 0u);
  if (f.kind == FormatKind::kInt && c == sign_bit(f)) return c + 1;
  return c;
}

TEST(CodecFormats, TableHasEightRowsWithConsistentFields) {
  ASSERT_EQ(element_formats().size(), 8u);
  for (const ElementFormat& f : element_formats()) {
    SCOPED_TRACE(f.name);
    EXPECT_EQ(f2u(max_from_fields(f)), f2u(f.max_normal)) << "max_normal column disagrees with the fields";
    EXPECT_EQ(decode_element(f, max_code(f)), f.max_normal);
    if (f.kind == FormatKind::kInt) {
      EXPECT_LT(f.max_normal, 2.0f) << "fast rounding assumes |value| < 2";
    }
    EXPECT_EQ(&element_format(f.name), &f);
  }
  EXPECT_THROW(element_format("fp5_e2m2"), Error);
}

TEST(CodecFormats, SpecTableConstants) {  // §1 table: max / min normal / subnormal codes, emax
  struct Row { const char* name; int emax; uint32_t max, min_norm, max_sub, min_sub; double min_norm_v, min_sub_v; };
  const Row rows[] = {
      {"fp8_e4m3", 8, 0x7E, 0x08, 0x07, 0x01, 0x1p-6, 0x1p-9},
      {"fp8_e5m2", 15, 0x7B, 0x04, 0x03, 0x01, 0x1p-14, 0x1p-16},
      {"fp6_e3m2", 4, 0x1F, 0x04, 0x03, 0x01, 0.25, 0.0625},
      {"fp6_e2m3", 2, 0x1F, 0x08, 0x07, 0x01, 1.0, 0.125},
      {"fp4_e2m1", 2, 0x7, 0x2, 0x1, 0x1, 1.0, 0.5},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    const ElementFormat& f = element_format(r.name);
    EXPECT_EQ(emax(f), r.emax);
    EXPECT_EQ(max_code(f), r.max);
    EXPECT_EQ(decode_element(f, r.min_norm), r.min_norm_v);
    EXPECT_EQ(decode_element(f, r.min_sub), r.min_sub_v);
    EXPECT_EQ(decode_element(f, r.max_sub), r.min_norm_v - r.min_sub_v);
  }
  EXPECT_EQ(emax(element_format("mxint8")), 0);
  EXPECT_EQ(decode_element(element_format("mxint8"), 0x7F), 127.0f / 64);
  EXPECT_EQ(decode_element(element_format("mxint8"), 0x80), -2.0f);
}

TEST(CodecFormats, SpecVectorsE1toE23) {
  struct V { const char* id; const char* fmt; float v; uint32_t code; };
  const V vs[] = {
      {"E1", "fp8_e4m3", 17.0f, 0x58},         {"E2", "fp8_e4m3", 19.0f, 0x5A},
      {"E3", "fp8_e4m3", 448.0f, 0x7E},        {"E4", "fp8_e4m3", 464.0f, 0x7E},
      {"E5", "fp8_e4m3", 1e30f, 0x7E},         {"E6", "fp8_e4m3", 0x1p-10f, 0x00},
      {"E7", "fp8_e4m3", 3 * 0x1p-10f, 0x02},  {"E8", "fp8_e4m3", -0x1p-11f, 0x80},
      {"E9", "fp8_e5m2", 61440.0f, 0x7B},      {"E10", "fp8_e5m2", 0x1p-17f, 0x00},
      {"E11", "fp6_e2m3", 7.75f, 0x1F},        {"E12", "fp6_e2m3", 0.0625f, 0x00},
      {"E13", "fp6_e3m2", 30.0f, 0x1F},        {"E14", "fp6_e3m2", 0.03125f, 0x00},
      {"E15", "fp4_e2m1", 0.25f, 0x0},         {"E16", "fp4_e2m1", 0.75f, 0x2},
      {"E17", "fp4_e2m1", 1.25f, 0x2},         {"E18", "fp4_e2m1", 1.75f, 0x4},
      {"E19", "fp4_e2m1", 2.5f, 0x4},          {"E20", "fp4_e2m1", 3.5f, 0x6},
      {"E21", "fp4_e2m1", 5.0f, 0x6},          {"E22", "fp4_e2m1", -5.000001f, 0xF},
      {"E23", "fp4_e2m1", -0.0f, 0x8},
  };
  for (const V& t : vs) EXPECT_EQ(encode_element(element_format(t.fmt), t.v), t.code) << t.id;
}

TEST(CodecFormats, ExhaustiveDecodeThenEncode) {
  for (const ElementFormat& f : element_formats()) {
    SCOPED_TRACE(f.name);
    const float* lut = decode_lut(f);
    for (uint32_t c = 0; c < (1u << f.bits); ++c) {
      const float y = decode_element(f, c);
      const double want = spec_value(f, c);
      if (std::isnan(want)) {
        EXPECT_EQ(f2u(y), kCanonicalNan) << "code " << c;
      } else {
        EXPECT_EQ(static_cast<double>(y), want) << "code " << c;
        EXPECT_EQ(std::signbit(y), std::signbit(want)) << "sign of zero, code " << c;
      }
      EXPECT_EQ(f2u(lut[c]), f2u(y)) << "LUT, code " << c;
      EXPECT_EQ(encode_element(f, y), expected_reencode(f, c)) << "code " << c;
    }
  }
}

TEST(CodecFormats, E8M0EveryCode) {  // spec §3
  const ElementFormat& f = element_format("e8m0");
  for (uint32_t c = 0; c < 256; ++c) {
    const uint32_t want = c == 255 ? kCanonicalNan : (c == 0 ? 0x00400000u : c << 23);
    EXPECT_EQ(f2u(decode_element(f, c)), want) << c;
    EXPECT_EQ(encode_element(f, decode_element(f, c)), c) << c;
  }
}

// Brute force of §2: nearest finite magnitude, ties to the even code, saturation, sign rules.
uint32_t brute_force_encode(const ElementFormat& f, const std::vector<std::pair<double, uint32_t>>& grid, float v) {
  const double a = std::fabs(static_cast<double>(v));
  uint32_t mag;
  if (a >= grid.back().first) {
    mag = grid.back().second;
  } else {
    auto hi = std::lower_bound(grid.begin(), grid.end(), std::make_pair(a, 0u));
    if (hi->first == a) {
      mag = hi->second;
    } else {
      auto lo = hi - 1;
      const double dl = a - lo->first, dh = hi->first - a;
      mag = dl < dh ? lo->second : dh < dl ? hi->second : ((lo->second & 1) == 0 ? lo->second : hi->second);
    }
  }
  if (f.kind == FormatKind::kInt) {
    const int q = static_cast<int>(mag);
    return static_cast<uint32_t>(std::signbit(v) ? -q : q) & code_mask(f);
  }
  return mag | (std::signbit(v) ? sign_bit(f) : 0u);
}

TEST(CodecFormats, EncodeEqualsBruteForceNearest) {
  std::mt19937 rng(1234);
  for (const ElementFormat& f : element_formats()) {
    if (!is_number_format(f)) continue;
    SCOPED_TRACE(f.name);
    std::vector<std::pair<double, uint32_t>> grid;  // finite non-negative values, ascending
    for (uint32_t c = 0; c <= max_code(f); ++c) grid.emplace_back(spec_value(f, c), c);
    std::vector<float> inputs;
    for (size_t i = 0; i < grid.size(); ++i) {
      const float v = static_cast<float>(grid[i].first);
      inputs.insert(inputs.end(), {v, std::nextafter(v, 0.0f), std::nextafter(v, INFINITY)});
      if (i + 1 < grid.size()) {
        const float mid = static_cast<float>((grid[i].first + grid[i + 1].first) / 2);  // exact
        inputs.insert(inputs.end(), {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, INFINITY)});
      }
    }
    inputs.insert(inputs.end(), {0x1p-149f, 0x1p-126f, 0x1p-140f, 1e30f, FLT_MAX, INFINITY});
    std::uniform_real_distribution<float> uni(0.0f, 1.2f * f.max_normal);
    std::uniform_int_distribution<uint32_t> any_bits(0, 0x7F7FFFFF);
    for (int i = 0; i < 20000; ++i) inputs.push_back(uni(rng));
    for (int i = 0; i < 20000; ++i) inputs.push_back(u2f(any_bits(rng)));
    for (float v : inputs)
      for (float s : {v, -v}) ASSERT_EQ(encode_element(f, s), brute_force_encode(f, grid, s)) << "v = " << s;
  }
}

TEST(CodecFormats, NanAndInfStandaloneCast) {  // §2 last paragraph
  EXPECT_EQ(encode_element(element_format("fp8_e4m3"), NAN), 0x7Fu);
  EXPECT_EQ(encode_element(element_format("fp8_e4m3"), -NAN), 0xFFu);
  EXPECT_EQ(encode_element(element_format("fp8_e5m2"), NAN), 0x7Fu);
  EXPECT_EQ(encode_element(element_format("fp8_e5m2"), -INFINITY), 0xFBu);
  EXPECT_EQ(encode_element(element_format("fp4_e2m1"), INFINITY), 0x7u);
  EXPECT_EQ(f2u(decode_element(element_format("fp8_e5m2"), 0x7C)), 0x7F800000u);
  EXPECT_EQ(f2u(decode_element(element_format("fp8_e5m2"), 0xFC)), 0xFF800000u);
  EXPECT_EQ(f2u(decode_element(element_format("fp8_e4m3"), 0xFF)), kCanonicalNan);
}

TEST(CodecFormats, RceilConstantsOfSpec) {  // §4.3 table: R_elem = RN32(1 / max_elem)
  const std::map<std::string, uint32_t> want = {{"fp8_e4m3", 0x3B124925}, {"fp8_e5m2", 0x37924925},
                                               {"fp6_e2m3", 0x3E088889}, {"fp6_e3m2", 0x3D124925},
                                               {"fp4_e2m1", 0x3E2AAAAB}, {"mxint8", 0x3F010204}};
  for (const auto& [name, b] : want) EXPECT_EQ(f2u(mx_rceil_constant(element_format(name))), b) << name;
}

}  // namespace
}  // namespace mxqat::quant
