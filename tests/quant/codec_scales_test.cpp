// Quantization under given scales (Codec::encode_with_scales, block_quantizer, int_scale): with
// the scales encode chooses it is encode, bit for bit, for every codec of the table; with other
// scales it follows the codec's rounding and saturation; bad scales are rejected by name.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <random>

#include "codec_test_util.h"
#include "tests/test_util.h"

namespace mxqat::quant {
namespace {

using testing::bits_of;
using testing::expect_same_encoded;

// [R, K] with ragged blocks, an all-zero block, a -0.0 block, outliers and tiny values.
std::vector<float> awkward(int64_t R, int64_t K, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(R * K));
  for (float& v : x) v = n(rng);
  for (int64_t j = 0; j < std::min<int64_t>(K, 16); ++j) x[static_cast<size_t>(j)] = 0.0f;
  if (R > 1)
    for (int64_t j = 0; j < std::min<int64_t>(K, 16); ++j) x[static_cast<size_t>(K + j)] = -0.0f;
  x[static_cast<size_t>(R * K / 2)] = 300.0f;
  x[static_cast<size_t>(R * K / 3)] = -1e-30f;
  x[static_cast<size_t>(R * K - 1)] = 7e-3f;
  return x;
}

std::vector<Codec> all_codecs() {
  std::vector<Codec> cs;
  for (const std::string& name : Codec::names()) {
    cs.push_back(Codec::make(name));
    const BlockScheme s = cs.back().block_format().scheme;
    CodecOptions o;
    if (s == BlockScheme::kMx) o.scale_rule = ScaleRule::kRceil;
    if (s == BlockScheme::kIntSym || s == BlockScheme::kIntAsym) o.group_size = 32;
    if (s == BlockScheme::kNvfp4) o.global_amax = 50.0f;  // below the outlier: saturating scales
    cs.push_back(Codec::make(name, o));
  }
  return cs;
}

std::vector<float> decoded(const Codec& c, const EncodedTensor& e) {
  std::vector<float> y(static_cast<size_t>(e.rows * e.cols));
  c.decode(e, y.data());
  return y;
}

TEST(CodecScales, OwnScalesReproduceEncodeForEveryCodec) {
  const int64_t R = 5, K = 70;
  for (const Codec& c : all_codecs()) {
    std::vector<float> x = awkward(R, K, 11);
    x[static_cast<size_t>(2 * K + 40)] = NAN;  // a non-finite block: NaN scale, codes 0
    const std::string what = c.name() + "/" + scale_rule_name(c.options().scale_rule) + "/G" +
                             std::to_string(c.block_size(K));
    std::vector<uint8_t> mask(x.size(), 7), mask_ref(x.size(), 7);
    const EncodedTensor e = c.encode_reference(x.data(), R, K, mask_ref.data());
    const EncodedTensor w = c.encode_with_scales(x.data(), R, K, c.encode(x.data(), R, K), mask.data());
    expect_same_encoded(w, e, what);
    EXPECT_EQ(mask, mask_ref) << what << ": mask";
    // The per-block quantizer gives decode's values, element by element.
    const std::vector<float> y = decoded(c, e);
    const int64_t G = c.block_size(K);
    for (int64_t r = 0; r < R; ++r)
      for (int64_t j = 0; j < K; ++j) {
        const BlockQuantizer q = c.block_quantizer(e, r, j / G);
        const float xv = x[static_cast<size_t>(r * K + j)];
        const float yq = q.nan_block ? canonical_nan() : q.dequant(xv);
        ASSERT_EQ(f2u(yq), f2u(y[static_cast<size_t>(r * K + j)])) << what << " at (" << r << ", " << j << ")";
      }
  }
}

TEST(CodecScales, MxOtherExponentsRoundAndSaturate) {
  const Codec c = Codec::make("mxfp4");
  std::vector<float> x(32, 0.0f);
  x[0] = 6.0f;  // FLOOR: s = 0, code 0x7
  x[1] = 0.25f;
  EncodedTensor s = c.encode(x.data(), 1, 32);
  ASSERT_EQ(s.scale_codes[0], 0x7F);
  s.scale_codes[0] = 0x80;  // s = 1: 6 -> 3 (0x5), 0.25 -> 0.125 -> 0 (tie to even)
  std::vector<uint8_t> mask(32);
  std::vector<float> y = decoded(c, c.encode_with_scales(x.data(), 1, 32, s, mask.data()));
  EXPECT_EQ(y[0], 6.0f);
  EXPECT_EQ(y[1], 0.0f);
  EXPECT_EQ(mask[0], 1);
  s.scale_codes[0] = 0x7E;  // s = -1: 6 -> 12 saturates to 6 -> output 3; 0.25 -> 0.5 exact
  y = decoded(c, c.encode_with_scales(x.data(), 1, 32, s, mask.data()));
  EXPECT_EQ(y[0], 3.0f);
  EXPECT_EQ(y[1], 0.25f);
  EXPECT_EQ(mask[0], 0);
  EXPECT_EQ(mask[1], 1);
  const BlockQuantizer q = c.block_quantizer(s, 0, 0);
  EXPECT_EQ(q.code(-6.0f), 0xFu);
  EXPECT_EQ(q.dequant(-6.0f), -3.0f);
  EXPECT_EQ(q.dequant(0.3f), 0.25f);
}

TEST(CodecScales, Nvfp4OtherBlockScale) {
  const Codec c = Codec::make("nvfp4");
  std::vector<float> x(16, 0.0f);
  x[0] = 2688.0f;  // spec N2: S_enc = 1, block scale 0x7E (448), output 2688
  EncodedTensor s = c.encode(x.data(), 1, 16);
  ASSERT_EQ(s.scale_codes[0], 0x7E);
  s.scale_codes[0] = 0x76;  // 224: D_b = 224, 2688 / 224 = 12 saturates to 6 -> 1344
  EXPECT_EQ(decoded(c, c.encode_with_scales(x.data(), 1, 16, s))[0], 1344.0f);
  s.scale_codes[0] = 0x00;  // S_b = 0: r = 0, everything to zero
  EXPECT_EQ(decoded(c, c.encode_with_scales(x.data(), 1, 16, s))[0], 0.0f);
  s.scale_codes[0] = 0x90;
  mxqat::testing::expect_error([&] { c.encode_with_scales(x.data(), 1, 16, s); },
                               {"nvfp4", "negative", "0x90"});
}

TEST(CodecScales, IntScaleFromRangeMatchesEncode) {
  for (const char* name : {"int4_sym", "int8_sym", "int4_asym", "int8_asym"}) {
    const Codec c = Codec::make(name);
    const std::vector<float> x = {-1.0f, 2.0f, 0.0f, 0.7f, -0.3f};
    const EncodedTensor e = c.encode(x.data(), 1, 5);
    const IntScale s = c.int_scale(-1.0f, 2.0f);
    EXPECT_EQ(f2u(s.scale), f2u(e.scales[0])) << name;
    EXPECT_EQ(s.zero_point, e.zero_points.empty() ? 0 : e.zero_points[0]) << name;
    // A clipped range [-0.5, 1]: the quantizer clamps what lies outside.
    const BlockQuantizer q = c.int_quantizer(c.int_scale(-0.5f, 1.0f));
    EXPECT_FALSE(q.in_range(2.0f)) << name;
    EXPECT_TRUE(q.in_range(0.7f)) << name;
    EXPECT_LE(q.dequant(2.0f), 1.0f + 1e-6f) << name;
  }
  // Spec I3: int4_asym [-1, 2, 0, 0.7] -> s = RN32(0.2), z = 5, codes 0, 15, 5, 9.
  const Codec c = Codec::make("int4_asym");
  const BlockQuantizer q = c.int_quantizer(c.int_scale(-1.0f, 2.0f));
  EXPECT_EQ(q.dec, 0.2f);
  EXPECT_EQ(q.zero, 5.0f);
  EXPECT_EQ(q.code(-1.0f), 0u);
  EXPECT_EQ(q.code(2.0f), 15u);
  EXPECT_EQ(q.code(0.0f), 5u);
  EXPECT_EQ(q.code(0.7f), 9u);
  EXPECT_TRUE(c.int_quantizer(c.int_scale(0.0f, INFINITY)).nan_block);
}

TEST(CodecScales, BadScalesAreRejectedByName) {
  const Codec c = Codec::make("mxfp4");
  std::vector<float> x(64, 1.0f);
  const EncodedTensor s = c.encode(x.data(), 2, 32);
  using mxqat::testing::expect_error;
  expect_error([&] { c.encode_with_scales(x.data(), 1, 64, s); }, {"mxfp4", "[2, 32]", "[1, 64]"});
  expect_error([&] { Codec::make("mxfp6_e2m3").encode_with_scales(x.data(), 2, 32, s); },
               {"mxfp6_e2m3", "\"mxfp4\""});
  x[3] = INFINITY;
  expect_error([&] { c.encode_with_scales(x.data(), 2, 32, s); }, {"element (0, 3)", "NaN scale"});
  expect_error([&] { c.block_quantizer(s, 2, 0); }, {"block (2, 0)"});
  const Codec i4 = Codec::make("int4_sym", {ScaleRule::kFloor, 16, std::nullopt});
  EncodedTensor si = i4.encode(x.data() + 32, 1, 32);
  EXPECT_EQ(si.block_size, 16);
  expect_error([&] { Codec::make("int4_sym").encode_with_scales(x.data() + 32, 1, 32, si); },
               {"block size 16", "group_size"});
  si.scales[1] = -1.0f;
  expect_error([&] { i4.encode_with_scales(x.data() + 32, 1, 32, si); }, {"group scale -1"});
}

}  // namespace
}  // namespace mxqat::quant
