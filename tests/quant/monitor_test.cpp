// Tests of quant/monitor on hand-built blocks whose quantization is worked out in the comments
// (MX FLOOR, spec §4.2: s = floor(log2 amax) - emax_elem, emax = 2 for E2M1).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "quant/monitor/monitor.h"

namespace mxqat::quant {
namespace {

using autograd::Shape;
using autograd::Tensor;

const Codec kMxfp4 = Codec::make("mxfp4");

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST(Monitor, SqnrOfAKnownBlock) {
  // amax 1.25: s = 0 - 2 = -2, 1.25 * 4 = 5 ties between E2M1 4 and 6 -> even mantissa 4 -> 1.0.
  // The 31 ones are exact. SQNR = 10 log10((31 + 1.25^2) / 0.25^2).
  Tensor x(Shape{1, 32}, 1.f);
  x[7] = 1.25f;
  Monitor m;
  const TensorStats s = m.observe("w", x, kMxfp4);
  EXPECT_NEAR(s.sqnr_db, 10.0 * std::log10(32.5625 / 0.0625), 1e-9);
  EXPECT_EQ(s.saturated, 0.0);
  EXPECT_EQ(s.flushed, 0.0);
  EXPECT_EQ(s.blocks, 1);
  Tensor exact(Shape{2, 40}, 0.5f);
  EXPECT_EQ(m.observe("exact", exact, kMxfp4).sqnr_db, std::numeric_limits<double>::infinity());
}

// Row 0: amax 7.5 -> s = 0; 7.5 saturates to 6; 0.2 < 0.25 (half the smallest E2M1 0.5) -> 0.
// Row 1: all zeros (a zero block from zero input). Row 2: all 2^-149: s = -127, v = 2^-22 -> 0,
// a block flushed entirely from non-zero input.
Tensor hand_built() {
  Tensor x(Shape{3, 32}, 0.f);
  for (int j = 0; j < 32; ++j) x[j] = 1.f, x[64 + j] = std::numeric_limits<float>::denorm_min();
  x[0] = 7.5f;
  x[1] = 0.2f;
  x[2] = -0.2f;
  return x;
}

TEST(Monitor, SaturationFlushAndZeroBlocks) {
  Monitor m;
  const TensorStats s = m.observe("blk", hand_built(), kMxfp4);
  EXPECT_EQ(s.numel, 96);
  EXPECT_DOUBLE_EQ(s.saturated, 1.0 / 96);
  EXPECT_DOUBLE_EQ(s.flushed, (2.0 + 32.0) / 96);
  EXPECT_EQ(s.zero_blocks, 2);
  EXPECT_EQ(s.flushed_blocks, 1);
  const auto msgs = m.anomalies(s);
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_TRUE(contains(msgs[0], "tensor \"blk\" (mxfp4)")) << msgs[0];
  EXPECT_TRUE(contains(msgs[0], "2 of 3 blocks quantize to all zeros (1 of them from non-zero"))
      << msgs[0];
  EXPECT_TRUE(Monitor::anomalies(s, {0.0, ZeroBlockCheck::kOff}).empty());
}

TEST(Monitor, ScaleExponentHistogram) {
  // K = 64: two blocks per row. Block amax 1 -> s = -2; 100 -> floor(log2 100) - 2 = 4;
  // 7.5 -> 0; zeros -> -127.
  Tensor x(Shape{2, 64}, 0.f);
  x[0] = 1.f, x[40] = 100.f, x[64] = 7.5f, x[100] = 1.f, x[101] = 0.9f;
  Monitor m;
  const TensorStats s = m.observe("h", x, kMxfp4);
  EXPECT_EQ(s.scale_exponents, (std::vector<std::pair<int, int64_t>>{{-2, 2}, {0, 1}, {4, 1}}));
  EXPECT_EQ(s.nan_scales, 0);
  Tensor zeros(Shape{3, 32}, 0.f);
  EXPECT_EQ(m.observe("z", zeros, kMxfp4).scale_exponents,
            (std::vector<std::pair<int, int64_t>>{{-127, 3}}));
  EXPECT_TRUE(m.observe("int", x, Codec::make("int8_sym")).scale_exponents.empty());
}

TEST(Monitor, FlipsCountChangedCodes) {
  for (const char* name : {"mxfp4", "mxfp6_e2m3", "mxfp8_e4m3", "int4_sym"}) {
    const Codec c = Codec::make(name);
    Tensor x(Shape{4, 64}, 1.f);
    for (int64_t i = 0; i < x.size(); i += 32) x[i] = 4.f;  // fixes every block's scale
    Monitor m;
    EXPECT_FALSE(m.observe("w", x, c).flips.has_value()) << name;
    EXPECT_EQ(*m.observe("w", x, c).flips, 0.0) << name;
    for (int64_t j : {5, 6, 7, 70, 255}) {  // 6-bit codes 5 and 6 straddle bytes
      x[j] = 2.f;
      EXPECT_DOUBLE_EQ(*m.observe("w", x, c).flips, 1.0 / 256) << name << " element " << j;
    }
    EXPECT_FALSE(m.observe("w", x, Codec::make("mxfp8_e5m2")).flips.has_value());  // new codec
    EXPECT_FALSE(m.observe("w", x.reshaped({2, 128}), Codec::make("mxfp8_e5m2")).flips);
  }
}

TEST(Monitor, NanAndInfAreReportedByName) {
  Tensor x(Shape{2, 32}, 1.f);
  x[3] = std::numeric_limits<float>::quiet_NaN();
  x[40] = std::numeric_limits<float>::infinity();
  Monitor m;
  const TensorStats s = m.observe("fc1.input", x, kMxfp4);
  EXPECT_EQ(s.nan, 1);
  EXPECT_EQ(s.inf, 1);
  EXPECT_EQ(s.nan_scales, 2);
  EXPECT_EQ(s.sqnr_db, std::numeric_limits<double>::infinity());  // no finite block is left
  const auto msgs = m.anomalies(s);
  ASSERT_FALSE(msgs.empty());
  EXPECT_TRUE(contains(msgs[0], "tensor \"fc1.input\" (mxfp4): 1 NaN and 1 Inf of 64")) << msgs[0];
  EXPECT_EQ(check_finite("loss", x), "tensor \"loss\": 1 NaN and 1 Inf of 64 values");
  EXPECT_FALSE(check_finite("ok", Tensor(Shape{3}, 2.f)).has_value());
}

TEST(Monitor, LowSqnrIsAnAnomaly) {
  Tensor x(Shape{1, 32}, 1.f);
  x[7] = 1.25f;  // 27.2 dB, see SqnrOfAKnownBlock
  Monitor m({30.0, ZeroBlockCheck::kAny});
  const auto msgs = m.anomalies(m.observe("w", x, kMxfp4));
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_TRUE(contains(msgs[0], "below the 30 dB threshold")) << msgs[0];
  EXPECT_TRUE(Monitor::anomalies(m.observe("w", x, kMxfp4), {20.0, ZeroBlockCheck::kAny}).empty());
}

TEST(Monitor, SameStatsForOneAndTwoThreads) {
  Tensor x(Shape{512, 200});
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  for (int64_t i = 0; i < x.size(); ++i) x[i] = nd(rng);
  const int prev = omp_get_max_threads();
  std::vector<std::vector<std::pair<std::string, double>>> out;
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    Monitor m;
    m.observe("w", x, kMxfp4);
    x[17] += 3.f;
    out.push_back(stats_fields(m.observe("w", x, kMxfp4)));
    x[17] -= 3.f;
  }
  omp_set_num_threads(prev);
  ASSERT_EQ(out[0].size(), out[1].size());
  for (size_t i = 0; i < out[0].size(); ++i) {
    EXPECT_EQ(out[0][i].first, out[1][i].first);
    EXPECT_EQ(std::memcmp(&out[0][i].second, &out[1][i].second, sizeof(double)), 0)
        << out[0][i].first;
  }
}

TEST(Monitor, TableAndFields) {
  Monitor m;
  std::vector<TensorStats> all = {m.observe("blocks.0.mlp.fc1.weight", hand_built(), kMxfp4),
                                  m.observe("fc2.input", hand_built(), Codec::make("nvfp4"))};
  all.push_back(m.observe("fc2.input", hand_built(), Codec::make("nvfp4")));
  const std::string t = stats_table(all);
  EXPECT_TRUE(contains(t, "blocks.0.mlp.fc1.weight  mxfp4")) << t;
  EXPECT_TRUE(contains(t, "-127..0 mode -127")) << t;
  EXPECT_TRUE(contains(t, "sqnr_dB")) << t;
  EXPECT_THROW(m.observe("conv.weight", Tensor(Shape{4, 2, 3, 3}), kMxfp4), Error);
  const auto f = stats_fields(all[0]);
  auto get = [&](const std::string& k) {
    for (const auto& [key, v] : f)
      if (key == k) return v;
    return -1.0;
  };
  EXPECT_EQ(get("saturated"), 1.0 / 96);
  EXPECT_EQ(get("zero_blocks"), 2.0);
  EXPECT_EQ(get("scale_exp[-127]"), 2.0);
  EXPECT_EQ(get("scale_exp[0]"), 1.0);
  EXPECT_EQ(get("flips"), -1.0);  // first report: no flips field
  EXPECT_EQ(stats_fields(all[2]).at(9).first, "flips");
}

}  // namespace
}  // namespace mxqat::quant
