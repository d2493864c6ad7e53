// PTQ algorithms over the codec table: rtn is the codec's cast; mse never loses to rtn on any
// block and wins on outliers; every result lies on the codec grid (decode(encoded) == weight);
// gptq lowers the layer-output error on correlated inputs, equals rtn when H is diagonal, is
// bitwise independent of its lazy-batch width and the thread count, zeroes dead inputs, and
// rejects bad input by name.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <random>

#include "quant/calib/hessian.h"
#include "quant/ptq/ptq.h"
#include "tests/test_util.h"

namespace mxqat::quant::ptq {
namespace {

using autograd::Tensor;
using mxqat::testing::expect_error;

// [N, K] heavy-tailed weights: Gaussian with a few large outliers.
Tensor weights(int64_t N, int64_t K, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 0.05f);
  std::uniform_int_distribution<int> pick(0, 40);
  Tensor w({N, K});
  for (int64_t i = 0; i < w.size(); ++i) w[i] = pick(rng) == 0 ? 6.0f * n(rng) : n(rng);
  return w;
}

GptqOptions options(double percdamp, int64_t batch) {
  GptqOptions o;
  o.percdamp = percdamp;
  o.batch = batch;
  return o;
}

std::vector<Codec> codecs() {
  std::vector<Codec> cs;
  for (const std::string& name : Codec::names()) cs.push_back(Codec::make(name));
  cs.push_back(Codec::make("int4_sym", {ScaleRule::kFloor, 32, std::nullopt}));
  cs.push_back(Codec::make("int4_asym", {ScaleRule::kFloor, 32, std::nullopt}));
  cs.push_back(Codec::make("mxfp4", {ScaleRule::kRceil, 0, std::nullopt}));
  return cs;
}
std::string label(const Codec& c, int64_t K) {
  return c.name() + "/" + scale_rule_name(c.options().scale_rule) + "/G" + std::to_string(c.block_size(K));
}

void expect_on_grid(const Codec& c, const PtqResult& r, const std::string& what) {
  Tensor y(r.weight.shape());
  c.decode(r.encoded, y.data());
  EXPECT_TRUE(y.same_bits(r.weight)) << what << ": decode(encoded) != weight";
}

// Per-block squared errors [N * nb].
std::vector<double> block_errors(const Codec& c, const Tensor& w, const Tensor& q) {
  const int64_t N = w.dim(0), K = w.dim(1), G = c.block_size(K), nb = c.num_blocks(K);
  std::vector<double> e(static_cast<size_t>(N * nb), 0.0);
  for (int64_t r = 0; r < N; ++r)
    for (int64_t j = 0; j < K; ++j)
      e[static_cast<size_t>(r * nb + j / G)] += std::pow(static_cast<double>(w[r * K + j]) - q[r * K + j], 2);
  return e;
}

TEST(Ptq, RtnIsFakeQuant) {
  const Tensor w = weights(6, 80, 1);
  for (const Codec& c : codecs()) {
    const PtqResult r = rtn(w, c);
    Tensor fq(w.shape());
    c.fake_quant(w.data(), 6, 80, fq.data());
    EXPECT_TRUE(r.weight.same_bits(fq)) << label(c, 80);
    expect_on_grid(c, r, "rtn " + label(c, 80));
  }
}

TEST(Ptq, MseNeverLosesABlockAndWinsOnOutliers) {
  const int64_t N = 12, K = 96;
  const Tensor w = weights(N, K, 2);
  for (const Codec& c : codecs()) {
    const std::string what = label(c, K);
    const PtqResult base = rtn(w, c), best = mse(w, c);
    expect_on_grid(c, best, "mse " + what);
    const std::vector<double> eb = block_errors(c, w, base.weight), em = block_errors(c, w, best.weight);
    int64_t better = 0;
    for (size_t b = 0; b < eb.size(); ++b) {
      EXPECT_LE(em[b], eb[b]) << what << " block " << b;
      better += em[b] < eb[b];
    }
    if (c.element_bits() < 8) {
      EXPECT_GT(better, 0) << what << ": no block improved";
    }
    EXPECT_LE(best.weight_sq_error, base.weight_sq_error) << what;
  }
  // MX: one outlier just above the FLOOR grid's max (E2M1 6 < v < 8 saturates): s + 1 wins.
  const Codec fp4 = Codec::make("mxfp4");
  Tensor x({1, 32}, 0.0f);
  x[0] = 7.9f;
  x[1] = 4.0f;
  const PtqResult r = mse(x, fp4);
  EXPECT_EQ(r.encoded.scale_codes[0], 0x80);
  EXPECT_EQ(r.weight[0], 8.0f);
  EXPECT_EQ(rtn(x, fp4).weight[0], 6.0f);
}

// X = Z L (correlated inputs) and its Hessian.
struct Calib {
  Tensor x;  // [M, K]
  calib::Hessian h;
};
Calib correlated_inputs(int64_t M, int64_t K, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  Tensor z({M, K}), l({K, K});
  for (int64_t i = 0; i < z.size(); ++i) z[i] = n(rng);
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = 0; j < K; ++j) l[i * K + j] = (i == j ? 1.0f : 0.0f) + 0.4f * n(rng);
  Calib c{Tensor({M, K}), {}};
  c.x.mat() = z.mat() * l.mat();
  calib::HessianAccumulator acc(K);
  acc.add(c.x);
  c.h = acc.hessian();
  return c;
}

double output_error(const Tensor& x, const Tensor& w, const Tensor& q) {
  const int64_t M = x.dim(0), K = x.dim(1), N = w.dim(0);
  double s = 0;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t o = 0; o < N; ++o) {
      double d = 0;
      for (int64_t k = 0; k < K; ++k) d += static_cast<double>(x[m * K + k]) * (static_cast<double>(w[o * K + k]) - q[o * K + k]);
      s += d * d;
    }
  return s;
}

TEST(Ptq, GptqLowersTheLayerOutputError) {
  const int64_t M = 256, K = 96, N = 16;
  const Calib cal = correlated_inputs(M, K, 3);
  const Tensor w = weights(N, K, 4);
  for (const Codec& c : {Codec::make("mxfp4"), Codec::make("mxfp6_e2m3"), Codec::make("int4_sym"),
                         Codec::make("int4_sym", {ScaleRule::kFloor, 32, std::nullopt}),
                         Codec::make("int4_asym"), Codec::make("nvfp4")}) {
    const std::string what = label(c, K);
    const PtqResult r = rtn(w, c);
    const GptqResult g = gptq(w, cal.h, c);
    expect_on_grid(c, g, "gptq " + what);
    const double er = output_error(cal.x, w, r.weight), eg = output_error(cal.x, w, g.weight);
    EXPECT_LT(eg, 0.8 * er) << what << ": gptq " << eg << " vs rtn " << er;
    // hessian_error is (2/n) of the same quantity.
    EXPECT_NEAR(hessian_error(w, g.weight, cal.h), 2.0 * eg / M, 1e-9 * eg);
    EXPECT_GT(g.loss, 0.0);
    EXPECT_EQ(g.dead_inputs, 0);
  }
}

TEST(Ptq, GptqWithDiagonalHessianIsRtn) {
  const int64_t K = 80;
  calib::Hessian h{K, 1, std::vector<double>(static_cast<size_t>(K * K), 0.0)};
  for (int64_t i = 0; i < K; ++i) h.h[static_cast<size_t>(i * K + i)] = 1.0 + 0.01 * i;
  const Tensor w = weights(5, K, 5);
  for (const Codec& c : codecs()) {
    const GptqResult g = gptq(w, h, c);
    EXPECT_TRUE(g.weight.same_bits(rtn(w, c).weight)) << label(c, K);
    expect_on_grid(c, g, "gptq diagonal " + label(c, K));
  }
}

TEST(Ptq, GptqWithMseScales) {
  const int64_t K = 80;
  calib::Hessian h{K, 1, std::vector<double>(static_cast<size_t>(K * K), 0.0)};
  for (int64_t i = 0; i < K; ++i) h.h[static_cast<size_t>(i * K + i)] = 2.0;
  const Tensor w = weights(5, K, 11);
  GptqOptions opt;
  opt.mse_scales = true;
  for (const Codec& c : codecs()) {  // diagonal H: no feedback, so the blocks are mse's
    const GptqResult g = gptq(w, h, c, opt);
    EXPECT_TRUE(g.weight.same_bits(mse(w, c).weight)) << label(c, K);
    expect_on_grid(c, g, "gptq mse diagonal " + label(c, K));
  }
  const Calib cal = correlated_inputs(256, 96, 3);
  const Tensor w2 = weights(16, 96, 4);
  for (const Codec& c : {Codec::make("int4_sym"), Codec::make("mxfp4")}) {
    const GptqResult g = gptq(w2, cal.h, c, opt);
    expect_on_grid(c, g, "gptq mse " + label(c, 96));
    EXPECT_LT(output_error(cal.x, w2, g.weight), 0.8 * output_error(cal.x, w2, mse(w2, c).weight)) << label(c, 96);
  }
}

TEST(Ptq, GptqIsBitwiseIndependentOfBatchAndThreads) {
  const int64_t K = 72, N = 20;
  const Calib cal = correlated_inputs(128, K, 6);
  const Tensor w = weights(N, K, 7);
  for (const Codec& c : {Codec::make("mxfp4"), Codec::make("int4_sym"), Codec::make("nvfp4"),
                         Codec::make("int4_asym", {ScaleRule::kFloor, 24, std::nullopt})}) {
    const GptqResult ref = gptq(w, cal.h, c, options(0.01, 1));
    const int saved = omp_get_max_threads();
    for (const auto& [batch, threads] : std::vector<std::pair<int64_t, int>>{{7, 1}, {32, 2}, {128, 3}, {1000, 2}}) {
      omp_set_num_threads(threads);
      const GptqResult g = gptq(w, cal.h, c, options(0.01, batch));
      omp_set_num_threads(saved);
      EXPECT_TRUE(g.weight.same_bits(ref.weight)) << label(c, K) << " batch " << batch << " threads " << threads;
      EXPECT_EQ(g.encoded.codes, ref.encoded.codes) << label(c, K);
      EXPECT_EQ(g.loss, ref.loss) << label(c, K);
    }
  }
}

TEST(Ptq, GptqDeadInputsKeptOrZeroed) {
  const int64_t M = 64, K = 40;
  Calib cal = correlated_inputs(M, K, 8);
  for (int64_t m = 0; m < M; ++m) cal.x[m * K + 9] = 0.0f;
  calib::HessianAccumulator acc(K);
  acc.add(cal.x);
  const Tensor w = weights(4, K, 9);
  GptqOptions zero;
  zero.zero_dead_inputs = true;
  const GptqResult g = gptq(w, acc.hessian(), Codec::make("mxfp4"), zero);
  EXPECT_EQ(g.dead_inputs, 1);
  for (int64_t r = 0; r < 4; ++r) EXPECT_EQ(g.weight[r * K + 9], 0.0f);
  expect_on_grid(Codec::make("mxfp4"), g, "gptq dead");
  // Kept (the default): the dead column is the weight rounded under its block's scale, not 0.
  const GptqResult k = gptq(w, acc.hessian(), Codec::make("mxfp4"));
  EXPECT_EQ(k.dead_inputs, 1);
  int64_t nonzero = 0;
  for (int64_t r = 0; r < 4; ++r) nonzero += k.weight[r * K + 9] != 0.0f;
  EXPECT_GT(nonzero, 0);
  expect_on_grid(Codec::make("mxfp4"), k, "gptq dead kept");
}

TEST(Ptq, BadInputIsRejectedByName) {
  const Codec c = Codec::make("mxfp4");
  const Tensor w = weights(4, 8, 10);
  calib::Hessian h{8, 10, std::vector<double>(64, 0.0)};
  for (int64_t i = 0; i < 8; ++i) h.h[static_cast<size_t>(i * 9)] = 1.0;
  calib::Hessian h6{6, 10, std::vector<double>(36, 0.0)};
  expect_error([&] { gptq(w, h6, c, {}, "fc1.weight"); }, {"gptq \"fc1.weight\"", "K = 8", "6 x 6"});
  expect_error([&] { rtn(Tensor({2, 2, 2}), c, "conv.weight"); }, {"conv.weight", "[2, 2, 2]", "C*kh*kw"});
  Tensor bad = w;
  bad[5] = NAN;
  expect_error([&] { mse(bad, c, {}, "fc2.weight"); }, {"mse \"fc2.weight\"", "element (0, 5)"});
  calib::Hessian indefinite = h;
  indefinite.h[1] = indefinite.h[8] = 3.0;  // [[1, 3], [3, 1]] block: eigenvalue -2
  expect_error([&] { gptq(w, indefinite, c, options(0.0, 128)); }, {"not positive definite", "percdamp"});
  calib::Hessian nan_h = h;
  nan_h.h[3] = NAN;
  expect_error([&] { gptq(w, nan_h, c); }, {"Hessian entry (0, 3)"});
  expect_error([&] { mse(w, c, {1, 8, 0.0, 50}); }, {"int_min_ratio 0"});
}

}  // namespace
}  // namespace mxqat::quant::ptq
