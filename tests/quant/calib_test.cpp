// Calibration: observers on known distributions (exact min/max, percentiles against a sorted
// reference, the MSE range of a Gaussian with an outlier), invariance of the histogram to batch
// order and splitting, and the Hessian accumulator against a plain double reference, bitwise
// invariant to the thread count and to how the rows are split into batches.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "quant/calib/hessian.h"
#include "quant/calib/observer.h"
#include "tests/test_util.h"

namespace mxqat::quant::calib {
namespace {

using mxqat::testing::expect_error;

std::vector<float> gaussian(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(n);
  for (float& v : x) v = d(rng);
  return x;
}

// numpy.percentile(x, 100 q) ("linear"), from a full sort.
double exact_quantile(std::vector<float> x, double q) {
  std::sort(x.begin(), x.end());
  const double pos = q * static_cast<double>(x.size() - 1);
  const auto i = static_cast<size_t>(std::floor(pos));
  const double f = pos - static_cast<double>(i);
  return i + 1 < x.size() ? x[i] + f * (static_cast<double>(x[i + 1]) - x[i]) : x[i];
}

TEST(Calib, MinMaxIsExactAndOrderFree) {
  std::vector<float> x = gaussian(1000, 1);
  x[17] = -5.5f;
  x[900] = 7.25f;
  MinMaxObserver a, b;
  a.observe(x.data(), 1000);
  std::reverse(x.begin(), x.end());
  b.observe(x.data(), 300);
  b.observe(x.data() + 300, 700);
  EXPECT_EQ(a.range().lo, -5.5f);
  EXPECT_EQ(a.range().hi, 7.25f);
  EXPECT_EQ(b.range().lo, -5.5f);
  EXPECT_EQ(b.range().hi, 7.25f);
  EXPECT_EQ(b.histogram().count(), 1000);
  std::vector<float> bad = {1.0f, NAN};
  expect_error([&] { a.observe(bad.data(), 2); }, {"min/max observer", "value 1", "finite"});
  expect_error([] { MinMaxObserver().range(); }, {"no data"});
}

TEST(Calib, PercentileOnAUniformGrid) {
  // 0, 0.0001, ..., 1 shuffled: the percentiles are the grid values themselves.
  std::vector<float> x(10001);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i) / 10000.0f;
  std::shuffle(x.begin(), x.end(), std::mt19937(3));
  PercentileObserver p99({99.99});
  p99.observe(x.data(), 4000);
  p99.observe(x.data() + 4000, 6001);
  EXPECT_NEAR(p99.range().hi, 0.9999, 1e-7);  // the largest value of its bin: exact
  EXPECT_NEAR(p99.range().lo, 0.0001, 1e-7);
  PercentileObserver p90({90.0});
  p90.observe(x.data(), 10001);
  EXPECT_NEAR(p90.range().hi, 0.9, 2e-5);  // inside a crowded bin: interpolated
  EXPECT_NEAR(p90.range().lo, 0.1, 2e-5);
  expect_error([] { PercentileObserver({101.0}); }, {"percentile 101", "[50, 100]"});
}

TEST(Calib, PercentileOfAGaussianAgainstSortedReference) {
  const std::vector<float> x = gaussian(200000, 5);
  PercentileObserver a({99.9}), b({99.9});
  a.observe(x.data(), 200000);
  for (size_t i = 200000; i > 0; i -= 40000) b.observe(x.data() + i - 40000, 40000);  // batches reversed
  EXPECT_EQ(f2u(a.range().hi), f2u(b.range().hi));  // order-free, bit for bit
  EXPECT_EQ(f2u(a.range().lo), f2u(b.range().lo));
  EXPECT_NEAR(a.range().hi, 3.0902, 0.06);  // Φ⁻¹(0.999)
  EXPECT_NEAR(a.range().lo, -3.0902, 0.06);
  for (double q : {0.5, 0.9, 0.999, 0.99999}) {
    const double ref = exact_quantile(x, q), got = a.histogram().quantile(q);
    EXPECT_LE(std::fabs(got - ref), std::fabs(ref) * 0x1p-7 + 1e-6) << "q = " << q;
  }
}

TEST(Calib, MseRangeClipsTheOutlierOfAGaussian) {
  std::vector<float> x = gaussian(100000, 7);
  x[123] = 20.0f;
  MseObserver obs;
  obs.observe(x.data(), static_cast<int64_t>(x.size()));
  const Codec c = Codec::make("int4_sym");
  const MseRange r = obs.range(c);
  EXPECT_EQ(r.range.lo, -r.range.hi);
  // The MSE-optimal clip of a unit Gaussian for 15 uniform levels is about 2.6 sigma.
  EXPECT_GT(r.range.hi, 2.2f);
  EXPECT_LT(r.range.hi, 3.2f);
  EXPECT_LT(r.mse, 0.25 * r.mse_minmax);
  // The true MSE over the data agrees with the histogram estimate and beats min/max.
  const auto true_mse = [&](Range rg) {
    const BlockQuantizer q = c.int_quantizer(c.int_scale(rg.lo, rg.hi));
    double s = 0;
    for (float v : x) s += std::pow(static_cast<double>(v) - q.dequant(v), 2);
    return s / static_cast<double>(x.size());
  };
  EXPECT_NEAR(true_mse(r.range), r.mse, 0.02 * r.mse);
  EXPECT_LT(true_mse(r.range), 0.25 * true_mse({-20.0f, 20.0f}));
  // Asymmetric codec on positive data: the range stays inside [0, max] and zero is kept.
  std::vector<float> u(5000);
  for (size_t i = 0; i < u.size(); ++i) u[i] = static_cast<float>(i) / 5000.0f;
  MseObserver pos;
  pos.observe(u.data(), 5000);
  const MseRange ru = pos.range(Codec::make("int8_asym"));
  EXPECT_EQ(ru.range.lo, 0.0f);
  EXPECT_GT(ru.ratio, 0.95);  // uniform data: hardly any clipping pays
  EXPECT_LE(ru.mse, ru.mse_minmax);
  expect_error([&] { obs.range(Codec::make("mxfp4")); }, {"mxfp4", "not an INT codec"});
}

// (2/n) XᵀX by the definition, double.
std::vector<double> reference_hessian(const std::vector<float>& x, int64_t M, int64_t K) {
  std::vector<double> h(static_cast<size_t>(K * K), 0.0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t i = 0; i < K; ++i)
      for (int64_t j = 0; j < K; ++j)
        h[static_cast<size_t>(i * K + j)] += static_cast<double>(x[m * K + i]) * x[m * K + j];
  for (double& v : h) v *= 2.0 / static_cast<double>(M);
  return h;
}

TEST(Calib, HessianMatchesDefinitionAndIsInvariant) {
  const int64_t M = 150, K = 40;
  std::vector<float> x = gaussian(static_cast<size_t>(M * K), 9);
  for (int64_t m = 0; m < M; m += 3) x[static_cast<size_t>(m * K + 5)] = 0.0f;  // sparse input
  const std::vector<double> ref = reference_hessian(x, M, K);
  const auto run = [&](int threads, std::vector<int64_t> splits) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    HessianAccumulator acc(K);
    int64_t m0 = 0;
    for (int64_t n : splits) {
      acc.add(x.data() + m0 * K, n, K);
      m0 += n;
    }
    omp_set_num_threads(saved);
    EXPECT_EQ(m0, M);
    return acc.hessian();
  };
  const Hessian h1 = run(1, {M});
  EXPECT_EQ(h1.dim, K);
  EXPECT_EQ(h1.samples, M);
  for (size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(h1.h[i], ref[i], 1e-12 * (1 + std::fabs(ref[i]))) << i;
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = 0; j < K; ++j) ASSERT_EQ(h1.at(i, j), h1.at(j, i));
  // Same rows in the same order: bitwise equal for any thread count and batch split.
  for (const auto& [threads, splits] : std::vector<std::pair<int, std::vector<int64_t>>>{
           {3, {M}}, {1, {1, 63, 64, 22}}, {2, {100, 50}}, {4, {7, 7, 7, 129}}}) {
    const Hessian h2 = run(threads, splits);
    EXPECT_EQ(h2.h, h1.h) << threads << " threads, " << splits.size() << " batches";
  }
  HessianAccumulator acc(K);
  expect_error([&] { acc.add(x.data(), 2, K + 1, "fc1 input"); }, {"fc1 input", "41 features", "40 x 40"});
  x[3] = INFINITY;
  expect_error([&] { acc.add(x.data(), 2, K); }, {"element (0, 3)", "finite"});
  expect_error([&] { acc.hessian(); }, {"no calibration rows"});
}

}  // namespace
}  // namespace mxqat::quant::calib
