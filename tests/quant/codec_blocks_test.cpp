// Block codecs: spec §10 M/N/I/P vectors verbatim, and the properties of §4-§8 (all-zero
// blocks, one outlier, powers of two, NaN/Inf, ragged K, per-group INT), looping over the codec
// table. Every case goes through run_all, so fast and reference paths are compared too.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <random>

#include "autograd/error.h"
#include "codec_test_util.h"

namespace mxqat::quant {
namespace {

using testing::run_all;

std::vector<float> block32(std::initializer_list<float> head, int64_t n = 32) {
  std::vector<float> x(static_cast<size_t>(n), 0.0f);
  std::copy(head.begin(), head.end(), x.begin());
  return x;
}
Codec mx(const char* name, ScaleRule rule = ScaleRule::kFloor) {
  CodecOptions o;
  o.scale_rule = rule;
  return Codec::make(name, o);
}
bool is_mx(const Codec& c) { return c.block_format().scheme == BlockScheme::kMx; }

TEST(CodecBlocks, SpecM1M2ZeroBlocks) {
  auto r1 = run_all(mx("mxfp8_e4m3"), block32({}), 1, 32);
  EXPECT_EQ(r1.e.scale_codes[0], 0x00);
  for (auto c : r1.codes) EXPECT_EQ(c, 0x00);
  std::vector<float> neg0(32, -0.0f);
  auto r2 = run_all(mx("mxfp4"), neg0, 1, 32);
  EXPECT_EQ(r2.e.scale_codes[0], 0x00);
  for (auto c : r2.codes) EXPECT_EQ(c, 0x8);
  for (float y : r2.y) EXPECT_EQ(f2u(y), 0x80000000u);
}

TEST(CodecBlocks, SpecM3M4NonFiniteBlocks) {
  auto r3 = run_all(mx("mxfp8_e4m3"), block32({1.0f, NAN}), 1, 32);
  EXPECT_EQ(r3.e.scale_codes[0], 0xFF);
  for (auto c : r3.codes) EXPECT_EQ(c, 0x00);
  for (float y : r3.y) EXPECT_EQ(f2u(y), kCanonicalNan);
  for (auto m : r3.mask) EXPECT_EQ(m, 0);
  std::vector<float> x4(32, 1.0f);
  x4[31] = -INFINITY;
  EXPECT_EQ(run_all(mx("mxfp6_e3m2"), x4, 1, 32).e.scale_codes[0], 0xFF);
}

TEST(CodecBlocks, SpecM5M6SaturationFloorVsRceil) {
  std::vector<float> x(32, 1.0f);
  x[0] = 500.0f;
  auto f = run_all(mx("mxfp8_e4m3"), x, 1, 32);
  EXPECT_EQ(f.e.scale_codes[0], 0x7F);
  EXPECT_EQ(f.codes[0], 0x7E);
  EXPECT_EQ(f.y[0], 448.0f);
  EXPECT_EQ(f.mask[0], 0);
  EXPECT_EQ(f.mask[1], 1);
  auto r = run_all(mx("mxfp8_e4m3", ScaleRule::kRceil), x, 1, 32);
  EXPECT_EQ(r.e.scale_codes[0], 0x80);
  EXPECT_EQ(r.codes[0], 0x78);
  EXPECT_EQ(r.y[0], 512.0f);
  EXPECT_EQ(r.mask[0], 1);
}

TEST(CodecBlocks, SpecM7M8M9Fp4) {
  auto m7 = run_all(mx("mxfp4"), block32({6.0f}), 1, 32);
  EXPECT_EQ(m7.e.scale_codes[0], 0x7F);
  EXPECT_EQ(m7.codes[0], 0x7);
  auto m8 = run_all(mx("mxfp4"), block32({7.0f}), 1, 32);
  EXPECT_EQ(m8.e.scale_codes[0], 0x7F);
  EXPECT_EQ(m8.y[0], 6.0f);
  auto m9 = run_all(mx("mxfp4", ScaleRule::kRceil), block32({7.0f}), 1, 32);
  EXPECT_EQ(m9.e.scale_codes[0], 0x80);
  EXPECT_EQ(m9.codes[0], 0x6);
  EXPECT_EQ(m9.y[0], 8.0f);
}

TEST(CodecBlocks, SpecM10M11ExponentFromBits) {
  auto m10 = run_all(mx("mxfp8_e4m3"), block32({0x1p-140f}), 1, 32);
  EXPECT_EQ(m10.e.scale_codes[0], 0x00);
  EXPECT_EQ(m10.codes[0], 0x00);
  std::vector<float> x(32, 1.0f);
  x[0] = u2f(0x497FFFFF);
  auto m11 = run_all(mx("mxfp8_e4m3"), x, 1, 32);
  EXPECT_EQ(m11.e.scale_codes[0], 138);
  EXPECT_EQ(m11.y[0], 917504.0f);
}

TEST(CodecBlocks, SpecM12M13Mxint8) {
  auto m12 = run_all(mx("mxint8"), block32({1.0f + 0x1p-7f, 1.0f}), 1, 32);
  EXPECT_EQ(m12.e.scale_codes[0], 0x7F);
  EXPECT_EQ(m12.codes[0], 64);
  auto m13 = run_all(mx("mxint8"), block32({-1.9999f}), 1, 32);
  EXPECT_EQ(m13.codes[0], 0x81);
}

TEST(CodecBlocks, SpecM14RaggedRow) {
  std::vector<float> x(35, 1.0f);
  x[32] = 100.0f, x[33] = -3.0f, x[34] = 0.5f;
  const Codec c = mx("mxfp8_e4m3");
  EXPECT_EQ(c.bytes_per_row(35), 64);
  auto r = run_all(c, x, 1, 35);
  ASSERT_EQ(r.e.scale_codes.size(), 2u);
  EXPECT_EQ(r.e.scale_codes[0], 119);  // floor(log2 1) - 8 = -8
  EXPECT_EQ(r.e.scale_codes[1], 125);
}

TEST(CodecBlocks, SpecN1N2Nvfp4) {
  const Codec c = Codec::make("nvfp4");
  auto n1 = run_all(c, std::vector<float>(16, 0.0f), 1, 16);
  EXPECT_EQ(n1.e.global_encode_scale, 1.0f);
  EXPECT_EQ(n1.e.scale_codes[0], 0x00);
  for (auto code : n1.codes) EXPECT_EQ(code, 0);
  for (float y : n1.y) EXPECT_EQ(f2u(y), 0u);
  auto n2 = run_all(c, block32({2688.0f}, 16), 1, 16);
  EXPECT_EQ(n2.e.global_encode_scale, 1.0f);
  EXPECT_EQ(n2.e.scale_codes[0], 0x7E);
  EXPECT_EQ(n2.codes[0], 0x7);
  EXPECT_EQ(n2.y[0], 2688.0f);
}

TEST(CodecBlocks, SpecI1I2I3Int) {
  auto i1 = run_all(Codec::make("int4_sym"), {7.0f, 3.5f, -2.5f, 0.5f}, 1, 4);
  EXPECT_EQ(i1.e.scales[0], 1.0f);
  EXPECT_EQ(i1.codes, (std::vector<uint8_t>{0x7, 0x4, 0xE, 0x0}));
  auto i2 = run_all(Codec::make("int8_sym"), std::vector<float>(8, 0.0f), 1, 8);
  EXPECT_EQ(i2.e.scales[0], 0x1p-23f);
  for (auto code : i2.codes) EXPECT_EQ(code, 0);
  auto i3 = run_all(Codec::make("int4_asym"), {-1.0f, 2.0f, 0.0f, 0.7f}, 1, 4);
  EXPECT_EQ(i3.e.scales[0], 0.2f);
  EXPECT_EQ(i3.e.zero_points[0], 5);
  EXPECT_EQ(i3.codes, (std::vector<uint8_t>{0, 15, 5, 9}));
}

TEST(CodecBlocks, SpecP1P2Packing) {
  const uint8_t p1[] = {1, 2, 3, 4}, p2[] = {1, 2, 3, 63};
  uint8_t out[3];
  for (auto pack : {pack_codes, pack_codes_reference}) {
    pack(p1, 4, 4, out);
    EXPECT_EQ(out[0], 0x21);
    EXPECT_EQ(out[1], 0x43);
    pack(p2, 4, 6, out);
    EXPECT_EQ(out[0], 0x81);
    EXPECT_EQ(out[1], 0x30);
    EXPECT_EQ(out[2], 0xFC);
  }
}

TEST(CodecBlocks, PackersEqualBitStreamReference) {
  std::mt19937 rng(7);
  for (int bits : {4, 6, 8})
    for (int64_t n : {1, 2, 3, 4, 5, 7, 31, 32, 33, 100}) {
      std::vector<uint8_t> codes(n), back(n), back_ref(n);
      for (auto& c : codes) c = static_cast<uint8_t>(rng() & ((1u << bits) - 1));
      std::vector<uint8_t> a(packed_bytes(n, bits)), b(a.size());
      pack_codes(codes.data(), n, bits, a.data());
      pack_codes_reference(codes.data(), n, bits, b.data());
      EXPECT_EQ(a, b) << bits << "-bit, n = " << n;
      unpack_codes(a.data(), n, bits, back.data());
      unpack_codes_reference(a.data(), n, bits, back_ref.data());
      EXPECT_EQ(back, codes);
      EXPECT_EQ(back_ref, codes);
    }
}

TEST(CodecBlocks, UnknownCodecListsKnownNames) {
  try {
    Codec::make("mxfp5");
    FAIL() << "no throw";
  } catch (const Error& e) {
    for (const std::string& n : Codec::names()) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << n;
  }
  EXPECT_EQ(Codec::names().size(), 11u);
  CodecOptions bad;
  bad.global_amax = NAN;
  EXPECT_THROW(Codec::make("nvfp4", bad), Error);
  bad.global_amax.reset();
  bad.group_size = -1;
  EXPECT_THROW(Codec::make("int8_sym", bad), Error);
}

TEST(CodecBlocks, BytesPerRowSpec8) {
  EXPECT_EQ(Codec::make("mxfp8_e5m2").bytes_per_row(64), 64);
  EXPECT_EQ(Codec::make("mxfp6_e2m3").bytes_per_row(33), 48);
  EXPECT_EQ(Codec::make("mxfp4").bytes_per_row(32), 16);
  EXPECT_EQ(Codec::make("nvfp4").bytes_per_row(17), 16);
  CodecOptions g;
  g.group_size = 32;
  EXPECT_EQ(Codec::make("int8_sym", g).bytes_per_row(100), 128);
  g.group_size = 5;
  EXPECT_EQ(Codec::make("int4_asym", g).bytes_per_row(7), 5);  // ceil(5 * 2 / 2)
  g.group_size = 3;
  EXPECT_EQ(Codec::make("int4_sym", g).bytes_per_row(3), 2);  // odd G * ng: one more 0 nibble
  EXPECT_EQ(Codec::make("int4_sym").bytes_per_row(9), 5);
}

// Every finite code of an MX element survives a block whose maximum is max_normal (s = 0).
TEST(CodecBlocks, MxEveryCodeInAScaleZeroBlock) {
  for (const std::string& name : Codec::names()) {
    const Codec c = Codec::make(name);
    if (!is_mx(c)) continue;
    const ElementFormat& f = *c.element_format();
    std::vector<uint32_t> codes;
    for (uint32_t code = 0; code < (1u << f.bits); ++code)
      if (std::isfinite(decode_element(f, code)) && !(f.kind == FormatKind::kInt && code == sign_bit(f)))
        codes.push_back(code);
    const int64_t R = static_cast<int64_t>((codes.size() + 30) / 31);
    std::vector<float> x(static_cast<size_t>(R * 32), 0.0f);
    for (int64_t r = 0; r < R; ++r) x[r * 32] = f.max_normal;
    for (size_t i = 0; i < codes.size(); ++i) x[(i / 31) * 32 + 1 + i % 31] = decode_element(f, codes[i]);
    auto res = run_all(c, x, R, 32);
    for (int64_t r = 0; r < R; ++r) EXPECT_EQ(res.e.scale_codes[r], 127) << name;
    for (size_t i = 0; i < codes.size(); ++i) {
      const size_t j = (i / 31) * 32 + 1 + i % 31;
      EXPECT_EQ(res.codes[j], codes[i]) << name << " code " << codes[i];
      EXPECT_EQ(f2u(res.y[j]), f2u(x[j])) << name << " code " << codes[i];
      EXPECT_EQ(res.mask[j], 1);
    }
  }
}

// Just below / at / above max normal after scaling, for every MX element (FLOOR, s = 0).
TEST(CodecBlocks, MxAroundMaxNormal) {
  for (const std::string& name : Codec::names()) {
    const Codec c = Codec::make(name);
    if (!is_mx(c)) continue;
    const float mx_v = c.element_format()->max_normal;
    const float top = std::nextafter(std::ldexp(1.0f, emax(*c.element_format()) + 1), 0.0f);
    auto r = run_all(c, block32({top, std::nextafter(mx_v, 0.0f), mx_v, std::nextafter(mx_v, 1e9f), -top}), 1, 32);
    EXPECT_EQ(r.e.scale_codes[0], 127) << name;
    EXPECT_EQ(r.y[0], mx_v) << name;
    EXPECT_EQ(r.y[4], -mx_v) << name;
    EXPECT_EQ(r.y[2], mx_v) << name;
    EXPECT_EQ(r.mask[0], 0) << name;
    EXPECT_EQ(r.mask[1], 1) << name;
    EXPECT_EQ(r.mask[2], 1) << name;
    EXPECT_EQ(r.mask[3], 0) << name;
  }
}

TEST(CodecBlocks, MxTiesToEvenInsideABlock) {  // E15-E21 scaled by 2^5 in an MXFP4 block
  auto r = run_all(mx("mxfp4"), block32({192.0f, 8.0f, 24.0f, 40.0f, 56.0f, 80.0f, 112.0f, 160.0f}), 1, 32);
  EXPECT_EQ(r.e.scale_codes[0], 127 + 5);  // floor(log2 192) = 7, 7 - 2 = 5
  const uint8_t want[] = {0x7, 0x0, 0x2, 0x2, 0x4, 0x4, 0x6, 0x6};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(r.codes[i], want[i]) << i;
}

TEST(CodecBlocks, MxOneOutlier) {
  std::vector<float> x(32, 1.0f);
  x[5] = 1000.0f;
  auto r = run_all(mx("mxfp4"), x, 1, 32);
  EXPECT_EQ(r.e.scale_codes[0], 127 + 7);  // floor(log2 1000) = 9, 9 - 2
  EXPECT_EQ(r.y[5], 768.0f);              // 1000 / 128 = 7.8 saturates to 6
  EXPECT_EQ(r.mask[5], 0);
  for (int i = 0; i < 32; ++i) {
    if (i != 5) {
      EXPECT_EQ(r.y[i], 0.0f) << i;  // 2^-7 rounds to 0 in E2M1
    }
  }
}

// Exact shared exponents: FLOOR = floor(log2 amax) - emax; RCEIL = ceil(log2(amax / max)),
// both clamped; computed here by exact comparisons in double, for amax at and around 2^k.
TEST(CodecBlocks, MxScaleAtAndAroundPowersOfTwo) {
  for (const std::string& name : Codec::names()) {
    const Codec cf = Codec::make(name);
    if (!is_mx(cf)) continue;
    const Codec cr = mx(name.c_str(), ScaleRule::kRceil);
    const ElementFormat& f = *cf.element_format();
    std::vector<float> amaxes;
    for (int k = -149; k <= 127; ++k) {
      const float p = std::ldexp(1.0f, k);
      amaxes.insert(amaxes.end(), {p, std::nextafter(p, 0.0f), std::nextafter(p, INFINITY)});
    }
    amaxes.push_back(FLT_MAX);
    const int64_t R = static_cast<int64_t>(amaxes.size());
    std::vector<float> x(static_cast<size_t>(R * 32), 0.0f);
    for (int64_t r = 0; r < R; ++r) x[r * 32 + r % 32] = (r % 2 ? -1.0f : 1.0f) * amaxes[r];
    auto rf = run_all(cf, x, R, 32);
    auto rr = run_all(cr, x, R, 32);
    for (int64_t r = 0; r < R; ++r) {
      const double a = amaxes[r];
      int fl = -200;
      while (std::ldexp(1.0, fl + 1) <= a) ++fl;  // floor(log2 a), exactly
      int ce = -300;
      while (a > std::ldexp(static_cast<double>(f.max_normal), ce)) ++ce;  // ceil(log2(a / max))
      EXPECT_EQ(rf.e.scale_codes[r], std::max(fl - emax(f), -127) + 127) << name << " amax " << a;
      EXPECT_EQ(rr.e.scale_codes[r], std::min(std::max(ce, -127), 127) + 127) << name << " amax " << a;
    }
  }
}

// Spec §11.3: where the normative binary32 RCEIL is one below the exact ceil.
TEST(CodecBlocks, RceilBoundaryValuesOfSpec11_3) {
  struct B { const char* codec; uint32_t amax_bits; int exact_s; };
  std::vector<B> cases = {{"mxfp8_e4m3", 0x04600001, -126}, {"mxfp8_e5m2", 0x07E00001, -126},
                          {"mxfp6_e2m3", 0x01700001, -126}, {"mxfp6_e3m2", 0x02600001, -126},
                          {"mxfp4", 0x01400001, -126}};
  for (int e : {-127, -100, -1, 0, 1, 60, 126})
    cases.push_back({"mxint8", f2u(std::nextafter(std::ldexp(127.0f / 64, e), INFINITY)), e + 1});
  for (const B& b : cases) {
    auto r = run_all(mx(b.codec, ScaleRule::kRceil), block32({u2f(b.amax_bits)}), 1, 32);
    EXPECT_EQ(r.e.scale_codes[0], b.exact_s - 1 + 127) << b.codec << " " << std::hex << b.amax_bits;
    const float mx_elem = Codec::make(b.codec).element_format()->max_normal;
    EXPECT_EQ(r.y[0], std::ldexp(mx_elem, b.exact_s - 1)) << "encodes as +max";
    EXPECT_EQ(r.mask[0], 0) << "block maximum exceeds max_elem * 2^s by < 1 ulp, saturates";
  }
}

TEST(CodecBlocks, NonFiniteBlockIsIsolatedEveryCodec) {
  for (const std::string& name : Codec::names()) {
    CodecOptions o;
    o.group_size = 16;
    const Codec c = Codec::make(name, o);
    for (float bad : {NAN, INFINITY, -INFINITY}) {
      std::vector<float> x(64);
      for (int i = 0; i < 64; ++i) x[i] = 0.1f * (i - 20);
      x[37] = bad;
      auto r = run_all(c, x, 1, 64);
      const int64_t G = c.block_size(64), bad_block = 37 / G;
      for (int i = 0; i < 64; ++i) {
        const bool in_bad = i / G == bad_block;
        EXPECT_EQ(std::isnan(r.y[i]), in_bad) << name << " i=" << i;
        if (in_bad) {
          EXPECT_EQ(f2u(r.y[i]), kCanonicalNan) << name;
        }
        if (in_bad) {
          EXPECT_EQ(r.mask[i], 0) << name;
        }
      }
    }
  }
}

TEST(CodecBlocks, RaggedRowsEveryCodec) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  for (const std::string& name : Codec::names())
    for (int64_t K : {1, 31, 33, 100}) {
      std::vector<float> x(static_cast<size_t>(3 * K));
      for (auto& v : x) v = nd(rng);
      const Codec c = Codec::make(name);
      auto r = run_all(c, x, 3, K);
      EXPECT_EQ(r.e.codes.size(), static_cast<size_t>(3 * c.bytes_per_row(K)));
      // A ragged block equals the same elements encoded alone (padding never influences scales).
      const int64_t G = c.block_size(K), last = (c.num_blocks(K) - 1) * G;
      if (c.block_format().scheme != BlockScheme::kNvfp4) {
        std::vector<float> tail(x.begin() + last, x.begin() + K);
        auto t = run_all(c, tail, 1, K - last);
        for (int64_t i = 0; i < K - last; ++i) EXPECT_EQ(f2u(t.y[i]), f2u(r.y[last + i])) << name << " K=" << K;
      }
    }
}

TEST(CodecBlocks, IntPerGroupRaggedGroups) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> ud(-3.0f, 5.0f);
  for (const char* name : {"int8_sym", "int4_sym", "int8_asym", "int4_asym"})
    for (int64_t G : {7, 32, 64}) {
      CodecOptions o;
      o.group_size = G;
      const Codec c = Codec::make(name, o);
      const int64_t K = 100, ng = (K + G - 1) / G;
      std::vector<float> x(2 * K);
      for (auto& v : x) v = ud(rng);
      auto r = run_all(c, x, 2, K);
      ASSERT_EQ(r.e.scales.size(), static_cast<size_t>(2 * ng));
      for (int64_t row = 0; row < 2; ++row)
        for (int64_t g = 0; g < ng; ++g) {  // each group equals its elements quantized per-channel
          const int64_t lo = g * G, n = std::min(G, K - lo);
          std::vector<float> part(x.begin() + row * K + lo, x.begin() + row * K + lo + n);
          auto p = run_all(Codec::make(name), part, 1, n);
          EXPECT_EQ(f2u(p.e.scales[0]), f2u(r.e.scales[row * ng + g])) << name << " G=" << G;
          if (!r.e.zero_points.empty()) {
            EXPECT_EQ(p.e.zero_points[0], r.e.zero_points[row * ng + g]);
          }
          for (int64_t i = 0; i < n; ++i) EXPECT_EQ(f2u(p.y[i]), f2u(r.y[row * K + lo + i])) << name;
        }
    }
}

TEST(CodecBlocks, IntZeroGroupsAndNoNegativeZero) {
  for (const char* name : {"int8_sym", "int4_sym", "int8_asym", "int4_asym", "mxint8"}) {
    std::vector<float> x(32, -0.0f);
    x[0] = 1.0f;
    x[3] = -1e-30f;
    x[4] = -0.001f;
    auto r = run_all(Codec::make(name), x, 1, 32);
    for (int i = 1; i < 32; ++i) EXPECT_EQ(f2u(r.y[i]), 0u) << name << " " << i;  // no -0 codes
  }
}

// Rows at the top of float32's range: RN32(FLT_MAX / qmax) rounds up, so the spec's scale would
// decode qmax codes to +Inf; the scale steps down instead and every output stays finite (and
// within one scale step of the input). Fast, reference and portable paths agree (run_all).
TEST(CodecBlocks, IntRowsOfFltMaxDecodeFinite) {
  for (const char* name : {"int8_sym", "int4_sym", "int8_asym", "int4_asym"}) {
    for (float sign : {1.0f, -1.0f}) {
      std::vector<float> x(64, sign * FLT_MAX);
      x[5] = sign * std::nextafter(FLT_MAX, 0.0f);
      auto r = run_all(Codec::make(name), x, 2, 32);
      for (size_t i = 0; i < x.size(); ++i) {
        ASSERT_TRUE(std::isfinite(r.y[i])) << name << " " << sign << " element " << i << " = " << r.y[i];
        EXPECT_EQ(std::signbit(r.y[i]), std::signbit(x[i])) << name << " " << i;
      }
      EXPECT_GT(std::fabs(r.y[0]), 0.9f * FLT_MAX) << name;
    }
  }
}

TEST(CodecBlocks, Nvfp4SuppliedGlobalAmaxAndTinyScales) {
  CodecOptions o;
  o.global_amax = 1e-30f;
  std::vector<float> x(64);
  for (int i = 0; i < 64; ++i) x[i] = std::ldexp(1.0f + i / 64.0f, -(i % 40) - 100);
  auto r = run_all(Codec::make("nvfp4", o), x, 2, 32);
  EXPECT_EQ(r.e.global_amax, 1e-30f);
  EXPECT_EQ(r.e.global_encode_scale, std::min(2688.0f / 1e-30f, FLT_MAX));
  auto a = run_all(Codec::make("nvfp4"), x, 2, 32);  // computed A = max |x|
  float amax = 0;
  for (float v : x) amax = std::max(amax, std::fabs(v));
  EXPECT_EQ(a.e.global_amax, amax);
}

TEST(CodecBlocks, Nvfp4GlobalAmaxSkipsNonFinite) {  // spec §5 step 1, small and parallel sizes
  std::mt19937 rng(17);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  for (int64_t K : {int64_t(5), int64_t(1000), int64_t(70001)}) {
    std::vector<float> x(static_cast<size_t>(2 * K));
    for (auto& v : x) v = nd(rng);
    x[1] = INFINITY;
    x[x.size() - 2] = -NAN;
    float want = 0;
    for (float v : x) {
      if (std::isfinite(v)) want = std::max(want, std::fabs(v));
    }
    const Nvfp4Global g = Codec::make("nvfp4").nvfp4_global(x.data(), 2, K);
    EXPECT_EQ(g.amax, want) << K;
    EXPECT_EQ(g.encode_scale, 2688.0f / want);
    EXPECT_EQ(g.decode_scale, 1.0f / (2688.0f / want));
  }
  std::vector<float> none = {NAN, INFINITY};
  EXPECT_EQ(Codec::make("nvfp4").nvfp4_global(none.data(), 1, 2).encode_scale, 1.0f);  // A = 0
}

TEST(CodecBlocks, DecodeRejectsMismatchedTensors) {
  const Codec c = Codec::make("mxfp4");
  std::vector<float> x(64, 1.0f), y(64);
  EncodedTensor e = c.encode(x.data(), 2, 32);
  e.codes.pop_back();
  EXPECT_THROW(c.decode(e, y.data()), Error);
  EXPECT_THROW(Codec::make("mxfp8_e4m3").decode(c.encode(x.data(), 2, 32), y.data()), Error);
  EXPECT_THROW(c.encode(x.data(), 2, 0), Error);
}

}  // namespace
}  // namespace mxqat::quant
