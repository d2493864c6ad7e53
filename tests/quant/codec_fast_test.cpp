// Fast paths vs scalar references on random and edge tensors for every codec and option
// (run_all checks encode/decode/fake_quant/portable bitwise), and thread-count independence.
#include <gtest/gtest.h>
#include <omp.h>

#include <cfloat>
#include <cstdlib>
#include <cstring>
#include <cmath>
#include <random>

#include "codec_test_util.h"

namespace mxqat::quant {
namespace {

using testing::run_all;

std::vector<Codec> all_codecs() {
  std::vector<Codec> v;
  for (const std::string& name : Codec::names()) {
    const Codec c = Codec::make(name);
    switch (c.block_format().scheme) {
      case BlockScheme::kMx:
        v.push_back(c);
        v.push_back(Codec::make(name, {ScaleRule::kRceil, 0, std::nullopt}));
        break;
      case BlockScheme::kNvfp4:
        v.push_back(c);
        v.push_back(Codec::make(name, {ScaleRule::kFloor, 0, 3.5f}));
        break;
      default:
        v.push_back(c);
        v.push_back(Codec::make(name, {ScaleRule::kFloor, 32, std::nullopt}));
        v.push_back(Codec::make(name, {ScaleRule::kFloor, 7, std::nullopt}));
    }
  }
  return v;
}

// Inputs that hit every corner: ties on every grid, huge dynamic range, subnormals, +-0,
// values at the saturation edge, and (optionally) NaN/Inf.
std::vector<float> make_input(std::mt19937& rng, int64_t n, int kind) {
  std::vector<float> x(static_cast<size_t>(n));
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_int_distribution<int> small(-64, 64), ex(-12, 12), wide(-149, 127), pick(0, 99);
  std::uniform_int_distribution<uint32_t> bits(0, 0xFFFFFFFFu);
  for (auto& v : x) {
    switch (kind) {
      case 0: v = nd(rng); break;
      case 1: v = std::ldexp(static_cast<float>(small(rng)) / 16, ex(rng)); break;  // exact ties
      case 2: v = std::ldexp(nd(rng), wide(rng)); break;                             // range
      case 3: {
        const uint32_t b = bits(rng);
        v = is_nonfinite_bits(b) ? 0.0f : u2f(b);  // any finite bit pattern
        break;
      }
      default: {
        const int p = pick(rng);
        v = p < 2 ? NAN : p < 3 ? INFINITY : p < 4 ? -INFINITY : p < 8 ? -0.0f : p < 10 ? 0x1p-140f : nd(rng);
      }
    }
  }
  return x;
}

TEST(CodecFast, EveryCodecRandomAndEdgeTensors) {
  std::mt19937 rng(42);
  // MX's 16-block groups: {16, 256} and {3, 544} (51 blocks: 3 groups and 3 left over) over the
  // whole tensor; {4, 1000} and {3, 1100} row by row (a group, 15 or 18 blocks, a partial one)
  const std::pair<int64_t, int64_t> shapes[] = {{1, 1},    {3, 31},  {2, 33},  {5, 100},  {16, 256},
                                                {4, 1000}, {7, 272}, {3, 544}, {3, 1100}};
  for (const Codec& c : all_codecs())
    for (auto [R, K] : shapes)
      for (int kind = 0; kind < 5; ++kind) {
        SCOPED_TRACE(c.name() + " kind " + std::to_string(kind));
        run_all(c, make_input(rng, R * K, kind), R, K);
      }
}

TEST(CodecFast, SameBitsForOneAndTwoThreads) {
  std::mt19937 rng(9);
  // Above kParallelMinElements, so the loops really split; K = 1008 = 63 NVFP4 blocks also takes
  // NVFP4's 16-block groups and their leftover blocks, K = 1056 = 33 MX blocks MX's.
  const int64_t R = 80;
  const int saved = omp_get_max_threads();
  for (const int64_t K : {int64_t(1000), int64_t(1008), int64_t(1056)})
  for (const Codec& c : all_codecs()) {
    const std::vector<float> x = make_input(rng, R * K, 4);
    std::vector<float> y1(R * K), y2(R * K), d1(R * K), d2(R * K);
    std::vector<uint8_t> m1(R * K), m2(R * K);
    omp_set_num_threads(1);
    c.fake_quant(x.data(), R, K, y1.data(), m1.data());
    const EncodedTensor e1 = c.encode(x.data(), R, K);
    c.decode(e1, d1.data());
    omp_set_num_threads(2);
    c.fake_quant(x.data(), R, K, y2.data(), m2.data());
    const EncodedTensor e2 = c.encode(x.data(), R, K);
    c.decode(e2, d2.data());
    EXPECT_BITWISE(y1, y2, c.name() + " fake_quant 1 vs 2 threads");
    EXPECT_BITWISE(d1, d2, c.name() + " decode 1 vs 2 threads");
    EXPECT_BITWISE(y1, d1, c.name() + " fake_quant vs decode(encode)");
    EXPECT_EQ(m1, m2) << c.name();
    testing::expect_same_encoded(e1, e2, c.name() + " encode 1 vs 2 threads");
  }
  omp_set_num_threads(saved);
}

// Large aligned outputs take the streaming-store path of fake_quant; it must give the same bits
// as the portable build (itself tested against the reference above).
// fixed_for: fake_quant of any row range equals those rows of the whole call, for every codec
// (NVFP4's amax sits in the last rows only, so an amax taken per range would differ).
TEST(CodecFast, FixedForGivesTheWholeCallOnRowRanges) {
  const int64_t R = 12, K = 96;
  std::mt19937 rng(77);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> x(static_cast<size_t>(R * K));
  for (float& v : x) v = nd(rng);
  for (int64_t i = (R - 1) * K; i < R * K; i += 7) x[static_cast<size_t>(i)] *= 50.f;
  for (const Codec& c : all_codecs()) {
    std::vector<float> whole(x.size()), parts(x.size());
    std::vector<uint8_t> mw(x.size()), mp(x.size());
    c.fake_quant(x.data(), R, K, whole.data(), mw.data());
    const Codec f = c.fixed_for(x.data(), R, K);
    for (int64_t r0 : {0, 5, 9}) {
      const int64_t r1 = r0 == 0 ? 5 : r0 == 5 ? 9 : R;
      f.fake_quant(x.data() + r0 * K, r1 - r0, K, parts.data() + r0 * K, mp.data() + r0 * K);
    }
    EXPECT_EQ(std::memcmp(whole.data(), parts.data(), whole.size() * sizeof(float)), 0) << c.name();
    EXPECT_EQ(mw, mp) << c.name();
    if (c.block_format().scheme == BlockScheme::kNvfp4 && !c.options().global_amax) {
      c.fake_quant(x.data(), 5, K, parts.data(), nullptr);  // not fixed: rows 0-4 see their own amax
      EXPECT_NE(std::memcmp(whole.data(), parts.data(), 5 * K * sizeof(float)), 0);
    }
  }
}

TEST(CodecFast, LargeAlignedTensorStreamingPath) {
  const int64_t R = 2048, K = 4096, n = R * K;  // 32 MiB of output
  float* y = static_cast<float*>(std::aligned_alloc(64, n * 4));
  std::vector<float> y_port(n);
  std::mt19937 rng(13);
  const std::vector<float> x = make_input(rng, n, 1);
  for (const char* name : {"mxfp4", "mxint8", "nvfp4"}) {
    const Codec c = Codec::make(name);
    c.fake_quant(x.data(), R, K, y);
    c.fake_quant_portable(x.data(), R, K, y_port.data());
    EXPECT_EQ(std::memcmp(y, y_port.data(), n * 4), 0) << name;
  }
  std::free(y);
}

// Decoding arbitrary stored codes (not produced by the encoder): fast == reference, including
// NaN/Inf element codes, NaN scales and overflow to Inf.
TEST(CodecFast, DecodeArbitraryCodes) {
  std::mt19937 rng(11);
  for (const Codec& c : all_codecs()) {
    const int64_t R = 6, K = 70;
    std::vector<float> x(R * K, 1.0f);
    EncodedTensor e = c.encode(x.data(), R, K);
    for (auto& b : e.codes) b = static_cast<uint8_t>(rng());
    for (auto& b : e.scale_codes) b = static_cast<uint8_t>(rng());
    for (auto& b : e.zero_points) b = static_cast<uint8_t>(rng());
    for (auto& s : e.scales) s = std::ldexp(1.0f + (rng() % 100) / 100.0f, static_cast<int>(rng() % 60) - 30);
    if (!e.scales.empty()) e.scales[0] = NAN;
    e.global_decode_scale = 0.37f;
    std::vector<float> y(R * K), y_ref(R * K);
    c.decode(e, y.data());
    c.decode_reference(e, y_ref.data());
    EXPECT_BITWISE(y, y_ref, c.name() + " decode of arbitrary codes");
  }
}

}  // namespace
}  // namespace mxqat::quant
