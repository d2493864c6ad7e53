// Learned weight scales (quant/fake/lsq.h) and the qgemm that trains them: offsets 0 are the
// codec's own quantization bit for bit; the forward equals decode(encode_with_scales(...)) (what
// export stores); the scales move as documented; the gradient passes a central-difference check
// against LSQ's straight-through surrogate; the bits do not depend on the thread count.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "quant/codec/transform/hadamard.h"
#include "quant/fake/lsq.h"
#include "quant/fake/qgemm.h"
#include "tests/quant/qgemm_test_util.h"
#include "tests/test_util.h"

namespace mxqat::quant {
namespace {

using autograd::Tensor;
using autograd::Var;

const std::vector<std::string> kLsqCodecs = {"mxfp4", "mxfp6_e2m3", "mxfp8_e4m3", "nvfp4", "int4_sym", "int8_sym"};

Codec make(const std::string& name) {
  CodecOptions o;
  o.group_size = 32;  // INT: groups of 32 (MX and NVFP4 ignore it)
  return Codec::make(name, o);
}

// Offsets in [-2.4, 2.4], none within 0.1 of a half (MX rounds them).
std::vector<float> offsets(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> whole(-2, 2);
  std::uniform_real_distribution<float> frac(-0.4f, 0.4f);
  std::vector<float> s(static_cast<size_t>(n));
  for (float& v : s) v = static_cast<float>(whole(rng)) + frac(rng);
  return s;
}

int64_t differing(const float* a, const float* b, int64_t n) {
  int64_t d = 0;
  for (int64_t i = 0; i < n; ++i) d += std::memcmp(a + i, b + i, sizeof(float)) != 0;
  return d;
}

TEST(LearnedScale, ZeroOffsetsAreTheCodecsOwnQuantization) {
  const int64_t N = 7, K = 96;
  const Tensor w = random_tensor({N, K}, 1, 0.05f);
  const std::vector<float> zero(N, 0.f);
  for (const std::string& name : kLsqCodecs) {
    const Codec c = make(name);
    Tensor ref(w.shape()), y(w.shape());
    std::vector<uint8_t> mref(N * K), m(N * K);
    c.fake_quant(w.data(), N, K, ref.data(), mref.data());
    lsq_fake_quant(c, w.data(), N, K, zero.data(), y.data(), m.data(), nullptr);
    EXPECT_EQ(differing(y.data(), ref.data(), N * K), 0) << name;
    EXPECT_EQ(m, mref) << name;
  }
}

TEST(LearnedScale, ForwardIsTheDecodeOfTheExportedEncoding) {
  const int64_t N = 9, K = 80;  // K = 80: MX and INT end in a partial block
  const Tensor w = random_tensor({N, K}, 2, 0.05f);
  const std::vector<float> s = offsets(N, 3);
  for (const std::string& name : kLsqCodecs) {
    const Codec c = make(name);
    const EncodedTensor scales = lsq_scales(c, w.data(), N, K, s.data());
    std::vector<uint8_t> mref(N * K), m(N * K);
    const EncodedTensor e = c.encode_with_scales(w.data(), N, K, scales, mref.data());
    Tensor ref(w.shape()), y(w.shape()), resid(w.shape()), own(w.shape());
    c.decode(e, ref.data());
    lsq_fake_quant(c, w.data(), N, K, s.data(), y.data(), m.data(), resid.data());
    EXPECT_EQ(differing(y.data(), ref.data(), N * K), 0) << name;
    EXPECT_EQ(m, mref) << name;
    for (int64_t i = 0; i < N * K; ++i)
      ASSERT_EQ(resid[i], y[i] - (m[size_t(i)] ? w[i] : 0.f)) << name << " element " << i;
    c.fake_quant(w.data(), N, K, own.data());
    EXPECT_GT(differing(y.data(), own.data(), N * K), N * K / 20) << name << ": the offsets changed nothing";
  }
}

TEST(LearnedScale, ScalesMoveAsDocumented) {
  const int64_t N = 4, K = 64;
  const Tensor w = random_tensor({N, K}, 4, 0.05f);
  const std::vector<float> s = {1.3f, -0.6f, 0.f, 2.5f};  // MX: +1, -1, 0, +2 (half to even)
  const int shift[] = {1, -1, 0, 2};
  const Codec mx = make("mxfp4");
  const EncodedTensor rule = mx.encode(w.data(), N, K), got = lsq_scales(mx, w.data(), N, K, s.data());
  for (int64_t i = 0; i < N * 2; ++i)
    EXPECT_EQ(int(got.scale_codes[size_t(i)]), int(rule.scale_codes[size_t(i)]) + shift[i / 2]) << i;
  const Codec in = make("int4_sym");
  const EncodedTensor ri = in.encode(w.data(), N, K), gi = lsq_scales(in, w.data(), N, K, s.data());
  for (int64_t i = 0; i < N * 2; ++i)
    EXPECT_EQ(gi.scales[size_t(i)], ri.scales[size_t(i)] * std::exp2(s[size_t(i / 2)])) << i;
  const Codec nv = make("nvfp4");
  const EncodedTensor rn = nv.encode(w.data(), N, K), gn = lsq_scales(nv, w.data(), N, K, s.data());
  EXPECT_EQ(gn.global_decode_scale, rn.global_decode_scale);
  for (int64_t i = 8; i < 12; ++i) EXPECT_EQ(gn.scale_codes[size_t(i)], rn.scale_codes[size_t(i)]) << i;  // row 2: 0
  EXPECT_GT(gn.scale_codes[0], rn.scale_codes[0]);  // row 0: a larger scale
  EXPECT_LT(gn.scale_codes[4], rn.scale_codes[4]);  // row 1: a smaller one
  // Huge offsets saturate the E8M0 code instead of wrapping; a NaN offset is named.
  const std::vector<float> big = {1e9f, -1e9f, 0.f, 0.f};
  const EncodedTensor gb = lsq_scales(mx, w.data(), N, K, big.data());
  EXPECT_EQ(int(gb.scale_codes[0]), std::min(254, int(rule.scale_codes[0]) + 16));
  EXPECT_EQ(int(gb.scale_codes[2]), std::max(0, int(rule.scale_codes[2]) - 16));
  const std::vector<float> nan = {NAN, 0.f, 0.f, 0.f};
  mxqat::testing::expect_error([&] { lsq_scales(mx, w.data(), N, K, nan.data()); }, {"offset", "nan"});
  mxqat::testing::expect_error([&] { lsq_scales(make("int4_asym"), w.data(), N, K, s.data()); },
                               {"int4_asym", "symmetric"});
  EXPECT_TRUE(parse_learned_scale("lsq"));
  EXPECT_FALSE(parse_learned_scale("none"));
  mxqat::testing::expect_error([] { parse_learned_scale("lsqq"); }, {"lsqq", "none, lsq"});
}

TEST(LearnedScale, SameBitsForOneAndTwoThreads) {
  const int64_t N = 300, K = 160;  // large enough for the parallel loop
  const Tensor w = random_tensor({N, K}, 5, 0.05f);
  const std::vector<float> s = offsets(N, 6);
  for (const std::string name : {"mxfp4", "nvfp4", "int4_sym"}) {
    const Codec c = make(name);
    Tensor a(w.shape()), b(w.shape());
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    lsq_fake_quant(c, w.data(), N, K, s.data(), a.data(), nullptr, nullptr);
    omp_set_num_threads(2);
    lsq_fake_quant(c, w.data(), N, K, s.data(), b.data(), nullptr, nullptr);
    omp_set_num_threads(saved);
    EXPECT_EQ(differing(a.data(), b.data(), N * K), 0) << name;
  }
}

// LSQ's gradient is the exact derivative of its straight-through surrogate at the point (w0, s0):
//   Q~(w, s)_nk = m_nk w_nk + 2^(s_n - s0_n) (Q(w0)_nk - m_nk w0_nk),  m the in-range mask at w0,
// times LSQ's gradient scale g for the offsets. The check: the loss sum(r * (x Q~(w, s)^T + b)),
// in double, central differences for every element of x, w, b and s, against qgemm's backward.
double surrogate_loss(const Tensor& x, const Tensor& w, const Tensor& b, const std::vector<double>& s,
                      const Tensor& w0, const std::vector<float>& s0, const Tensor& q0,
                      const std::vector<uint8_t>& m, const Tensor& r) {
  const int64_t M = x.rows(), K = x.cols(), N = w.rows();
  double loss = 0;
  for (int64_t n = 0; n < N; ++n) {
    const double ratio = std::exp2(s[size_t(n)] - double(s0[size_t(n)]));
    std::vector<double> q(static_cast<size_t>(K));
    for (int64_t k = 0; k < K; ++k) {
      const size_t i = size_t(n * K + k);
      q[size_t(k)] = (m[i] ? double(w[n * K + k]) : 0.0) + ratio * (double(q0[n * K + k]) - (m[i] ? double(w0[n * K + k]) : 0.0));
    }
    for (int64_t a = 0; a < M; ++a) {
      double y = b[n];
      for (int64_t k = 0; k < K; ++k) y += double(x[a * K + k]) * q[size_t(k)];
      loss += double(r[a * N + n]) * y;
    }
  }
  return loss;
}

TEST(LearnedScale, GradientPassesGradcheckOnTheSurrogate) {
  const int64_t M = 5, K = 64, N = 4;
  const Tensor x0 = random_tensor({M, K}, 7), w0 = random_tensor({N, K}, 8, 0.05f);
  const Tensor b0 = random_tensor({N}, 9), r = random_tensor({M, N}, 10);
  const std::vector<float> s0 = {-1.3f, 0.3f, 0.8f, -0.2f};
  for (const std::string name : {"mxfp4", "nvfp4", "int4_sym"}) {
    const Codec c = make(name);
    GemmQuantSpec spec{c, std::nullopt, std::nullopt, Ste::kClipped};
    spec.learned_scale = true;
    std::vector<Var> in{Var(x0, true), Var(w0, true), Var(b0, true), Var(Tensor(autograd::Shape{N}), true)};
    std::copy(s0.begin(), s0.end(), in[3].value().data());
    qgemm(in[0], in[1], in[2], spec, 0, 0, in[3]).backward(r);
    Tensor q0(w0.shape());
    std::vector<uint8_t> m(size_t(N * K));
    lsq_fake_quant(c, w0.data(), N, K, s0.data(), q0.data(), m.data(), nullptr);
    ASSERT_NE(std::count(m.begin(), m.end(), 0), 0) << name << ": no element clipped, the mask is untested";
    const double g = lsq_grad_scale(c, K);
    EXPECT_NEAR(g, 1.0 / std::sqrt(K * (name == "int4_sym" ? 7.0 : 6.0)), 1e-7);
    Tensor x = x0, w = w0, b = b0;
    std::vector<double> s(s0.begin(), s0.end());
    const double h = 1e-2;
    auto numeric = [&](auto& slot) {
      const auto orig = slot;
      slot = orig + h;
      const double up = surrogate_loss(x, w, b, s, w0, s0, q0, m, r);
      slot = orig - h;
      const double down = surrogate_loss(x, w, b, s, w0, s0, q0, m, r);
      slot = orig;
      return (up - down) / (2 * h);
    };
    auto check = [&](double analytic, double num, const std::string& what) {
      EXPECT_NEAR(analytic, num, 2e-3 * std::max(1.0, std::fabs(num))) << name << " " << what;
    };
    for (int64_t i = 0; i < x.size(); ++i) check(in[0].grad()[i], numeric(x[i]), "x " + std::to_string(i));
    for (int64_t i = 0; i < w.size(); ++i) check(in[1].grad()[i], numeric(w[i]), "w " + std::to_string(i));
    for (int64_t i = 0; i < b.size(); ++i) check(in[2].grad()[i], numeric(b[i]), "b " + std::to_string(i));
    for (int64_t i = 0; i < N; ++i) {
      ASSERT_NE(in[3].grad()[i], 0.f) << name;
      check(in[3].grad()[i] / g, numeric(s[size_t(i)]), "s " + std::to_string(i));
    }
  }
}

// Under the Hadamard rotation the weight is rotated before its learned scales, as the codec path
// does: y = Q_in(x R^T) lsq(w R^T)^T + b, and dW rotates back.
TEST(LearnedScale, RotatedGemmEqualsExplicitReference) {
  const int64_t M = 6, K = 64, N = 5;
  const Tensor x = random_tensor({M, K}, 11), w = random_tensor({N, K}, 12, 0.05f), b = random_tensor({N}, 13);
  const std::vector<float> s = offsets(N, 14);
  const Codec c = make("mxfp4");
  GemmQuantSpec spec{c, c, std::nullopt, Ste::kIdentity, Hadamard{3}};
  spec.learned_scale = true;
  Tensor st(autograd::Shape{N});
  std::copy(s.begin(), s.end(), st.data());
  autograd::NoGradGuard ng;
  const Tensor y = qgemm(Var(x), Var(w), Var(b), spec, 0, 0, Var(st)).value();
  Tensor xr(x.shape()), wr(w.shape()), xq(x.shape()), wq(w.shape());
  hadamard_rows(Hadamard{3}, x.data(), M, K, xr.data());
  hadamard_rows(Hadamard{3}, w.data(), N, K, wr.data());
  c.fake_quant(xr.data(), M, K, xq.data());
  lsq_fake_quant(c, wr.data(), N, K, s.data(), wq.data(), nullptr, nullptr);
  const Tensor ref = autograd::linear(Var(xq), Var(wq), Var(b)).value();
  EXPECT_EQ(differing(y.data(), ref.data(), y.size()), 0);
  // A spec that asks for learned scales without offsets is refused, naming the parameter.
  mxqat::testing::expect_error([&] { qgemm(Var(x), Var(w), Var(b), spec); }, {"weight_scale_offset"});
  mxqat::testing::expect_error([&] { qgemm(Var(x), Var(w), Var(b), spec, 0, 0, Var(Tensor(autograd::Shape{N + 1}))); },
                               {"6 learned scale offsets", "5 rows"});
}

}  // namespace
}  // namespace mxqat::quant
