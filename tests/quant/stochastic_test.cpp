// Stochastic rounding of backward operands: the SR codec (unbiased, on the element grid,
// counter-based and so thread-count independent) and qgemm's quantized backward with it.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "quant/codec/formats.h"
#include "quant/codec/transform/stochastic.h"
#include "quant/fake/qgemm.h"
#include "quant/policy/plan.h"
#include "quant/policy/policy.h"
#include "tests/test_util.h"

namespace mxqat::quant {
namespace {

using autograd::Shape;
using autograd::Tensor;
using autograd::Var;
using mxqat::testing::expect_error;

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

// The rceil block exponent of x[0..n), as stochastic.h defines it.
int rceil_exp(const Codec& c, const float* x, int64_t n) {
  float amax = 0;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  const ElementFormat& e = *c.element_format();
  return mx_shared_exp(f2u(amax), emax(e), mx_rceil_constant(e), ScaleRule::kRceil);
}

TEST(Stochastic, EveryValueIsOneOfTheTwoGridNeighbours) {
  for (const char* name : {"mxfp4", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp8_e4m3", "mxfp8_e5m2"}) {
    const Codec c = Codec::make(name);
    const int64_t R = 3, K = 70;  // a ragged last block
    const auto x = randn(size_t(R * K), 7);
    std::vector<float> y(x.size());
    fake_quant_stochastic(c, x.data(), R, K, y.data(), 11);
    const ElementFormat& e = *c.element_format();
    const float* lut = decode_lut(e);
    for (int64_t r = 0; r < R; ++r)
      for (int64_t b = 0; b * 32 < K; ++b) {
        const int64_t k0 = b * 32, k1 = std::min<int64_t>(K, k0 + 32);
        const int s = rceil_exp(c, &x[size_t(r * K + k0)], k1 - k0);
        for (int64_t k = k0; k < k1; ++k) {
          const float v = std::fabs(x[size_t(r * K + k)]) * pow2f(-s);
          const float q = std::fabs(y[size_t(r * K + k)]) * pow2f(-s);
          ASSERT_LE(v, e.max_normal) << name << ": rceil leaves headroom";
          uint32_t lo = 0;
          while (lo < max_code(e) && lut[lo + 1] <= v) ++lo;
          const float hi = lo < max_code(e) ? lut[lo + 1] : lut[lo];
          EXPECT_TRUE(q == lut[lo] || q == hi) << name << " " << v << " -> " << q;
          EXPECT_EQ(std::signbit(y[size_t(r * K + k)]), std::signbit(x[size_t(r * K + k)]));
        }
      }
  }
}

// The fast path (neighbours from the exponent) against the grid search, every MX float codec,
// values across the whole range (tiny, subnormal in the element, at the maximum, zeros, signs).
TEST(Stochastic, FastPathEqualsTheReference) {
  for (const char* name : {"mxfp4", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp8_e4m3", "mxfp8_e5m2"}) {
    const Codec c = Codec::make(name);
    const int64_t R = 64, K = 100;
    std::mt19937 g(17);
    std::uniform_real_distribution<float> ex(-40.0f, 40.0f);
    std::vector<float> x(size_t(R * K));
    for (size_t i = 0; i < x.size(); ++i) x[i] = (g() & 1 ? -1.0f : 1.0f) * std::exp2(ex(g));
    for (size_t i = 0; i < x.size(); i += 37) x[i] = 0.0f;
    for (size_t i = 5; i < x.size(); i += 41) x[i] = -0.0f;
    std::vector<float> a(x.size()), b(x.size());
    fake_quant_stochastic(c, x.data(), R, K, a.data(), 3);
    fake_quant_stochastic_reference(c, x.data(), R, K, b.data(), 3);
    EXPECT_TRUE(same_bits(a, b)) << name;
  }
}

TEST(Stochastic, UnbiasedWhereRoundToNearestIsNot) {
  const Codec c = Codec::make("mxfp4");
  const int64_t K = 32;
  const auto x = randn(K, 3);
  std::vector<double> mean(K, 0.0);
  std::vector<float> y(K), rtn(K);
  const int trials = 4000;
  for (int t = 0; t < trials; ++t) {
    fake_quant_stochastic(c, x.data(), 1, K, y.data(), sr_key(1, 2, uint64_t(t), 0));
    for (int64_t k = 0; k < K; ++k) mean[size_t(k)] += y[size_t(k)] / double(trials);
  }
  Codec::make("mxfp4", {ScaleRule::kRceil, 0, std::nullopt}).fake_quant(x.data(), 1, K, rtn.data());
  double sr_bias = 0, rtn_bias = 0;
  for (int64_t k = 0; k < K; ++k) {
    sr_bias += std::fabs(mean[size_t(k)] - x[size_t(k)]) / K;
    rtn_bias += std::fabs(double(rtn[size_t(k)]) - x[size_t(k)]) / K;
  }
  // 4000 draws: the mean's noise is about spacing / (2 sqrt(4000)), under 1% of a grid step.
  EXPECT_LT(sr_bias, 0.1 * rtn_bias) << "SR " << sr_bias << " vs RTN " << rtn_bias;
}

TEST(Stochastic, GridValuesStayAndNonFiniteBlocksAreNan) {
  const Codec c = Codec::make("mxfp4");
  std::vector<float> x(64);
  for (int k = 0; k < 32; ++k) x[size_t(k)] = float((k % 8) - 4) * 0.5f;  // on the grid at scale 1
  for (int k = 32; k < 64; ++k) x[size_t(k)] = 0.1f * float(k);
  x[40] = NAN;
  std::vector<float> y(64);
  fake_quant_stochastic(c, x.data(), 1, 64, y.data(), 5);
  for (int k = 0; k < 32; ++k) EXPECT_EQ(y[size_t(k)], x[size_t(k)]) << k;
  for (int k = 32; k < 64; ++k) EXPECT_TRUE(std::isnan(y[size_t(k)])) << k;
}

TEST(Stochastic, SameBitsForAnyThreadCountAndKey) {
  const Codec c = Codec::make("mxfp8_e5m2");
  const int64_t R = 300, K = 200;
  const auto x = randn(size_t(R * K), 9);
  std::vector<float> a(x.size()), b(x.size()), d(x.size());
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  fake_quant_stochastic(c, x.data(), R, K, a.data(), 42);
  omp_set_num_threads(3);
  fake_quant_stochastic(c, x.data(), R, K, b.data(), 42);
  fake_quant_stochastic(c, x.data(), R, K, d.data(), 43);
  omp_set_num_threads(saved);
  EXPECT_TRUE(same_bits(a, b));
  EXPECT_FALSE(same_bits(a, d)) << "another key draws other numbers";
}

TEST(Stochastic, RefusesCodecsItDoesNotServe) {
  float x[32] = {}, y[32];
  for (const char* name : {"nvfp4", "mxint8", "int8_sym"})
    expect_error([&] { fake_quant_stochastic(Codec::make(name), x, 1, 32, y, 1); },
                 {"stochastic rounding", name, "MX float codec"});
}

// dX and dW of qgemm with an MXFP4 grad_output, SR and requantized operands, against the same
// products computed here from fake_quant_stochastic with the documented keys.
TEST(Stochastic, QgemmBackwardQuantizesEveryOperandWithItsOwnStream) {
  const int64_t M = 40, K = 64, N = 48;
  GemmQuantSpec spec{Codec::make("mxfp4"), Codec::make("mxfp4"), Codec::make("mxfp4"), Ste::kIdentity};
  spec.grad_rounding = Rounding::kStochastic;
  spec.requantize_backward = true;
  spec.sr_seed = 7, spec.sr_stream = 3;
  const auto xv = randn(size_t(M * K), 1), wv = randn(size_t(N * K), 2, 0.2f), gv = randn(size_t(M * N), 4);
  auto run = [&](uint64_t step) {
    Var x(Tensor(Shape{M, K}, xv), true), w(Tensor(Shape{N, K}, wv), true);
    Var y = qgemm(x, w, Var(), spec, step, 0);
    y.backward(Tensor(Shape{M, N}, gv));
    return std::make_pair(x.grad(), w.grad());
  };
  const auto [dx, dw] = run(5);
  const auto [dx2, dw2] = run(5);
  const auto [dx3, dw3] = run(6);
  EXPECT_TRUE(dx.same_bits(dx2) && dw.same_bits(dw2));
  EXPECT_FALSE(dx.same_bits(dx3)) << "another step draws other numbers";

  const Codec& g = *spec.grad_output;
  auto key = [&](uint64_t role) { return sr_key(7, 3 * 4 + role, 5, 0); };
  auto T = [](const std::vector<float>& a, int64_t R, int64_t C) {
    std::vector<float> t(a.size());
    for (int64_t r = 0; r < R; ++r)
      for (int64_t c = 0; c < C; ++c) t[size_t(c * R + r)] = a[size_t(r * C + c)];
    return t;
  };
  std::vector<float> gq(gv.size()), gtq(gv.size()), wtq(wv.size()), xtq(xv.size());
  fake_quant_stochastic(g, gv.data(), M, N, gq.data(), key(0));
  fake_quant_stochastic(g, T(gv, M, N).data(), N, M, gtq.data(), key(1));
  fake_quant_stochastic(g, T(wv, N, K).data(), K, N, wtq.data(), key(2));
  fake_quant_stochastic(g, T(xv, M, K).data(), K, M, xtq.data(), key(3));
  double worst = 0;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k) {
      double ref = 0;  // dX = Q(dY) Q(W^T)^T
      for (int64_t n = 0; n < N; ++n) ref += double(gq[size_t(m * N + n)]) * wtq[size_t(k * N + n)];
      worst = std::max(worst, std::fabs(ref - dx.data()[m * K + k]) / (1 + std::fabs(ref)));
    }
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      double ref = 0;  // dW = Q(dY^T) Q(X^T)^T
      for (int64_t m = 0; m < M; ++m) ref += double(gtq[size_t(n * M + m)]) * xtq[size_t(k * M + m)];
      worst = std::max(worst, std::fabs(ref - dw.data()[n * K + k]) / (1 + std::fabs(ref)));
    }
  EXPECT_LT(worst, 1e-5);
}

TEST(Stochastic, QgemmBackwardSameBitsOnAnyThreadCount) {
  const int64_t M = 96, K = 96, N = 64;
  GemmQuantSpec spec{Codec::make("mxfp4"), Codec::make("mxfp4"), Codec::make("mxfp8_e5m2"), Ste::kClipped};
  spec.grad_rounding = Rounding::kStochastic;
  spec.requantize_backward = true;
  const auto xv = randn(size_t(M * K), 1), wv = randn(size_t(N * K), 2), gv = randn(size_t(M * N), 4);
  auto run = [&](int threads) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    Var x(Tensor(Shape{M, K}, xv), true), w(Tensor(Shape{N, K}, wv), true);
    qgemm(x, w, Var(), spec, 1, 2).backward(Tensor(Shape{M, N}, gv));
    omp_set_num_threads(saved);
    return std::make_pair(x.grad(), w.grad());
  };
  const auto [a1, b1] = run(1);
  const auto [a3, b3] = run(3);
  EXPECT_TRUE(a1.same_bits(a3));
  EXPECT_TRUE(b1.same_bits(b3));
}

TEST(Stochastic, PolicyTextKeepsTheBackwardSettingsAndChecksThem) {
  PolicyConfig cfg;
  cfg.weight = cfg.input = "mxfp4";
  cfg.grad_output = "mxfp4";
  cfg.grad_rounding = Rounding::kStochastic;
  cfg.requantize_backward = true;
  const ResolvedPolicy p = resolve_policy(cfg, {"fc1", "fc2"});
  const ResolvedPolicy back = ResolvedPolicy::from_text(p.to_text());
  EXPECT_EQ(back.grad_rounding, Rounding::kStochastic);
  EXPECT_TRUE(back.requantize_backward);
  QuantPlan plan(p, 10, 99);
  EXPECT_EQ(plan.quantizer("fc2")->spec().sr_stream, 1u);
  EXPECT_EQ(plan.quantizer("fc2")->spec().sr_seed, 99u);
  EXPECT_EQ(plan.quantizer("fc1")->spec().describe(), "w=mxfp4 a=mxfp4 g=mxfp4 ste=clipped round=stochastic bwd=requantize");
  // The default policy's text is what it always was (no new lines).
  PolicyConfig plain;
  EXPECT_EQ(resolve_policy(plain, {"fc1"}).to_text().find("grad_rounding"), std::string::npos);

  cfg.grad_output = "none";
  expect_error([&] { resolve_policy(cfg, {"fc1"}); }, {"grad_rounding: stochastic", "no effect", "grad_output"});
  cfg.grad_output = "nvfp4";
  expect_error([&] { resolve_policy(cfg, {"fc1"}); }, {"layer fc1", "nvfp4", "MX float codec"});
}

}  // namespace
}  // namespace mxqat::quant
