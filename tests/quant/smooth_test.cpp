// Smoothing (quant/ptq/smooth.h): on a GEMM whose input has outlier channels, SmoothQuant's and
// AWQ's scales lower the W4A4 output error below round-to-nearest's; AWQ never does worse than no
// smoothing (alpha = 0 is its first candidate); the rewrite X W^T = (X / s)(W s)^T holds; the
// statistics and scales follow their definitions; bad input is refused by name.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "autograd/kernels.h"
#include "quant/ptq/smooth.h"
#include "tests/test_util.h"

namespace mxqat::quant::ptq {
namespace {

using autograd::Tensor;
using mxqat::testing::expect_error;

Tensor gaussian(int64_t N, int64_t K, uint32_t seed, float sd) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, sd);
  Tensor w({N, K});
  for (int64_t i = 0; i < w.size(); ++i) w[i] = n(rng);
  return w;
}

// x [M, K] unit Gaussian with every 29th channel (from 3) 30x larger: the activation outliers of LLMs.
Tensor outlier_input(int64_t M, int64_t K, uint32_t seed) {
  Tensor x = gaussian(M, K, seed, 1.0f);
  for (int64_t r = 0; r < M; ++r)
    for (int64_t j = 3; j < K; j += 29) x[r * K + j] *= 30.0f;
  return x;
}

std::vector<float> ones(int64_t K) { return std::vector<float>(static_cast<size_t>(K), 1.0f); }

TEST(Smooth, ChannelStatsAreMaxAndMeanOfAbs) {
  ChannelStats st(3);
  st.add(Tensor({2, 3}, {1, -2, 0, -3, 1, 0}));
  st.add(Tensor({1, 3}, {2, 0.5f, 0}));
  EXPECT_EQ(st.rows(), 3);
  EXPECT_EQ(st.absmax(), (std::vector<double>{3, 2, 0}));
  const std::vector<double> m = st.absmean();
  EXPECT_DOUBLE_EQ(m[0], 2.0);
  EXPECT_DOUBLE_EQ(m[1], 3.5 / 3);
  EXPECT_DOUBLE_EQ(m[2], 0.0);
  expect_error([&] { st.add(Tensor({1, 2}, {1, 2})); }, {"channels"});
  expect_error([&] { st.add(Tensor({1, 3}, {1, NAN, 2})); }, {"finite"});
}

TEST(Smooth, SmoothQuantScalesFollowTheFormula) {
  const Tensor w({2, 3}, {0.5f, -4, 0, 1, 2, 0});
  const std::vector<double> wmax = column_absmax({&w});
  EXPECT_EQ(wmax, (std::vector<double>{1, 4, 0}));
  const std::vector<float> s = smoothquant_scales({16, 1, 5}, wmax, 0.5);
  EXPECT_FLOAT_EQ(s[0], 4.0f);   // 16^0.5 / 1^0.5
  EXPECT_FLOAT_EQ(s[1], 0.5f);   // 1 / 4^0.5
  EXPECT_FLOAT_EQ(s[2], 1.0f);   // no weight: left alone
  const std::vector<float> s0 = smoothquant_scales({16, 1, 5}, wmax, 0.0);
  EXPECT_FLOAT_EQ(s0[1], 0.25f);  // alpha 0: 1 / max|W|
  expect_error([&] { smoothquant_scales({1}, {1}, 1.5); }, {"alpha"});
  expect_error([&] { smoothquant_scales({1, 2}, {1}, 0.5); }, {"same channels"});
}

TEST(Smooth, RewriteKeepsTheExactProduct) {
  const int64_t M = 16, K = 64, N = 8;
  const Tensor x = outlier_input(M, K, 1);
  const Tensor w = gaussian(N, K, 2, 0.1f);
  ChannelStats st(K);
  st.add(x);
  const std::vector<float> s = smoothquant_scales(st.absmax(), column_absmax({&w}), 0.5);
  // Without any codec the smoothed product is the exact one up to float rounding.
  const std::vector<AwqGemm> exact = {{&w, nullptr, nullptr}};
  Tensor ws = w;
  scale_columns(ws, s);
  for (int64_t j = 0; j < K; ++j) EXPECT_FLOAT_EQ(ws[j], w[j] * s[static_cast<size_t>(j)]);
  Tensor y(autograd::Shape{M, N}), ys(autograd::Shape{M, N}), xs(x.shape());
  for (int64_t i = 0; i < x.size(); ++i) xs[i] = x[i] / s[static_cast<size_t>(i % K)];
  autograd::gemm(x.data(), false, w.data(), true, y.data(), M, N, K);
  autograd::gemm(xs.data(), false, ws.data(), true, ys.data(), M, N, K);
  double ref = 0, diff = 0;
  for (int64_t i = 0; i < y.size(); ++i) ref = std::max(ref, std::fabs(double(y[i]))), diff = std::max(diff, std::fabs(double(y[i]) - ys[i]));
  EXPECT_LT(diff, 1e-5 * ref);
  const Codec c = Codec::make("mxfp4");
  // weight-only: a codec on W only; the error is the quantized-weight error of the product
  EXPECT_GT(smoothed_output_error(x, ones(K), {{&w, &c, nullptr}}), 0.0);
  EXPECT_LT(smoothed_output_error(x, s, exact), 1e-8 * ref * ref * double(M * N));
}

// The bar of the method: on a layer with outlier input channels at W4A4, both smoothings beat
// round-to-nearest on the layer-output error, for MXFP4, NVFP4 and INT4 (groups of 32).
TEST(Smooth, AwqAndSmoothQuantBeatRtnOnOutlierChannels) {
  const int64_t M = 256, K = 128, N = 48;
  const Tensor x = outlier_input(M, K, 3);
  const Tensor w1 = gaussian(N, K, 4, 0.05f), w2 = gaussian(N / 2, K, 5, 0.05f);
  ChannelStats st(K);
  st.add(x);
  for (const Codec& c : {Codec::make("mxfp4"), Codec::make("nvfp4"), Codec::make("int4_sym", {ScaleRule::kFloor, 32, {}})}) {
    const std::vector<AwqGemm> g = {{&w1, &c, &c}, {&w2, &c, &c}};
    const double e_rtn = smoothed_output_error(x, ones(K), g);
    const double e_sq = smoothed_output_error(x, smoothquant_scales(st.absmax(), column_absmax({&w1, &w2}), 0.5), g);
    const AwqResult awq = awq_search(x, st.absmean(), g, {20}, {"test"});
    EXPECT_DOUBLE_EQ(awq.error_identity, e_rtn) << c.name();
    EXPECT_DOUBLE_EQ(smoothed_output_error(x, awq.scales, g), awq.error) << c.name();
    EXPECT_LT(e_sq, 0.8 * e_rtn) << c.name();
    EXPECT_LT(awq.error, 0.8 * e_rtn) << c.name();
    EXPECT_GT(awq.alpha, 0.0) << c.name();
    // ptq.smoothquant_grid: the searched alpha is the grid point (or no smoothing) of least error
    const std::vector<double> wmax = column_absmax({&w1, &w2});
    const AwqResult sq = smoothquant_search(x, st.absmax(), wmax, g, 20, "test");
    EXPECT_DOUBLE_EQ(sq.error_identity, e_rtn) << c.name();
    EXPECT_DOUBLE_EQ(sq.error, smoothed_output_error(x, sq.scales, g)) << c.name();
    EXPECT_EQ(sq.scales, smoothquant_scales(st.absmax(), wmax, sq.alpha)) << c.name();
    for (int k = 0; k <= 20; ++k)
      EXPECT_LE(sq.error, smoothed_output_error(x, smoothquant_scales(st.absmax(), wmax, k / 20.0), g)) << c.name() << " " << k;
    EXPECT_LE(sq.error, e_sq) << c.name();  // alpha 0.5 is a grid point
  }
}

// Both searches keep s = 1 where no candidate beats it (AWQ's alpha = 0, SmoothQuant's NaN).
TEST(Smooth, AwqNeverLosesToNoSmoothing) {
  // Weights with their own outliers on the channels where the inputs are small: smoothing can
  // only hurt here, so the search keeps s = 1.
  const int64_t M = 64, K = 64, N = 16;
  const Tensor x = gaussian(M, K, 6, 1.0f);
  const Tensor w = gaussian(N, K, 7, 0.05f);
  const Codec c = Codec::make("mxfp4");
  const AwqResult r = awq_search(x, ChannelStats(K).absmean(), {{&w, &c, &c}}, {4}, {"flat"});
  EXPECT_LE(r.error, r.error_identity);
  if (r.alpha == 0.0) {
    EXPECT_EQ(r.scales, ones(K));
  }
  Tensor wo = w;  // weight outliers on a channel: smoothing by max|W| can only hurt there
  for (int64_t n = 0; n < N; ++n) wo[n * K + 5] *= 40.0f;
  ChannelStats st(K);
  st.add(x);
  const AwqResult sq = smoothquant_search(x, st.absmax(), column_absmax({&wo}), {{&wo, &c, &c}}, 4, "flat");
  EXPECT_LE(sq.error, sq.error_identity);
  if (std::isnan(sq.alpha)) {
    EXPECT_EQ(sq.scales, ones(K));
  }
}

TEST(Smooth, BadInputIsRefusedByName) {
  const Tensor x = gaussian(4, 8, 1, 1.0f), w = gaussian(2, 8, 2, 1.0f), w_bad = gaussian(2, 6, 2, 1.0f);
  const Codec c = Codec::make("mxfp4");
  const std::vector<double> m(8, 1.0);
  expect_error([&] { awq_search(x, m, {{&w_bad, &c, nullptr}}, {}, "g1"); }, {"\"g1\""});
  expect_error([&] { awq_search(x, m, {}, {}, "g2"); }, {"no GEMM"});
  expect_error([&] { awq_search(x, m, {{&w, &c, nullptr}}, {0}, "g3"); }, {"grid"});
  expect_error([&] { awq_search(x, std::vector<double>(3, 1.0), {{&w, &c, nullptr}}, {}, "g4"); }, {"channel means"});
  Tensor xn = x;
  xn[5] = INFINITY;
  expect_error([&] { awq_search(xn, m, {{&w, &c, nullptr}}, {}, "g5"); }, {"finite"});
  expect_error([&] { smoothquant_search(x, m, m, {{&w, &c, &c}}, 0, "g6"); }, {"\"g6\"", "grid"});
  expect_error([&] { smoothquant_search(x, {1.0}, m, {{&w, &c, &c}}, 4, "g7"); }, {"\"g7\"", "maxima"});
  Tensor wr = w;
  expect_error([&] { scale_columns(wr, std::vector<float>(3, 1.0f)); }, {"scaled channels"});
}

}  // namespace
}  // namespace mxqat::quant::ptq
