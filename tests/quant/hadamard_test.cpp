// Block Hadamard rotation (quant/codec/transform/hadamard.h) and its use in qgemm: the fast transform equals
// the dense matrix product within float rounding, is orthogonal (inverse(forward(x)) = x, R R^T =
// I), leaves tails shorter than 32 alone, draws its signs from the seed; rotating both GEMM
// operands keeps the product, spreads an outlier so MXFP4 W4A4 loses less, gives gradients of the
// same function, and is bitwise independent of the thread count; the codecs' fake_quant can run
// in place (what the rotation relies on to cost no pass of its own).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <random>

#include "autograd/ops.h"
#include "quant/codec/transform/hadamard.h"
#include "quant/fake/qgemm.h"

namespace mxqat::quant {
namespace {

using autograd::Tensor;
using autograd::Var;

Tensor randn(int64_t R, int64_t K, uint32_t seed, float sd = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, sd);
  Tensor t({R, K});
  for (int64_t i = 0; i < t.size(); ++i) t[i] = n(rng);
  return t;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  double d = 0;
  for (int64_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(double(a[i]) - b[i]));
  return d;
}

TEST(Hadamard, FastEqualsDenseAndIsOrthogonal) {
  const int64_t R = 5, K = 80;  // two full blocks and a tail of 16
  const Tensor x = randn(R, K, 1);
  for (uint64_t seed : {0ull, 7ull}) {
    const Hadamard h{seed};
    Tensor fast(x.shape()), dense(x.shape()), back(x.shape());
    hadamard_rows(h, x.data(), R, K, fast.data());
    hadamard_rows_dense(h, x.data(), R, K, dense.data());
    EXPECT_LT(max_abs_diff(fast, dense), 1e-5) << seed;
    hadamard_rows(h, fast.data(), R, K, back.data(), /*inverse=*/true);
    EXPECT_LT(max_abs_diff(back, x), 1e-5) << seed;
    for (int64_t r = 0; r < R; ++r)
      for (int64_t j = 64; j < K; ++j) EXPECT_EQ(fast[r * K + j], x[r * K + j]);  // the tail
    // in place gives the same bits
    Tensor inplace = x;
    hadamard_rows(h, inplace.data(), R, K, inplace.data());
    EXPECT_TRUE(inplace.same_bits(fast));
    // R R^T = I: the rotated unit vectors are orthonormal
    Tensor eye({32, 32}), rows({32, 32});
    for (int i = 0; i < 32; ++i) eye[i * 32 + i] = 1.0f;
    hadamard_rows(h, eye.data(), 32, 32, rows.data());
    for (int i = 0; i < 32; ++i)
      for (int j = 0; j < 32; ++j) {
        double dot = 0;
        for (int k = 0; k < 32; ++k) dot += double(rows[i * 32 + k]) * rows[j * 32 + k];
        EXPECT_NEAR(dot, i == j ? 1.0 : 0.0, 1e-6) << i << " " << j;
      }
  }
  const auto s0 = Hadamard{0}.signs(), s7 = Hadamard{7}.signs(), s8 = Hadamard{8}.signs();
  for (float v : s0) EXPECT_EQ(v, 1.0f);
  EXPECT_NE(s7, s8);
  EXPECT_EQ(s7, Hadamard{7}.signs());
}

TEST(Hadamard, FakeQuantInPlaceEqualsOutOfPlace) {
  const Tensor x = randn(7, 96, 2);
  for (const std::string& name : Codec::names()) {
    const Codec c = Codec::make(name);
    Tensor y(x.shape()), z = x;
    c.fake_quant(x.data(), 7, 96, y.data());
    c.fake_quant(z.data(), 7, 96, z.data());
    EXPECT_TRUE(y.same_bits(z)) << name;
  }
}

// x [M, K] with one outlier channel per block: the case rotation is for.
Tensor outlier_input(int64_t M, int64_t K, uint32_t seed) {
  Tensor x = randn(M, K, seed);
  for (int64_t r = 0; r < M; ++r) x[r * K + 5] *= 40.0f, x[r * K + 37] *= 40.0f;
  return x;
}

TEST(Hadamard, QgemmKeepsTheProductAndCutsTheW4A4Error) {
  const int64_t M = 64, K = 128, N = 24;
  const Tensor xv = outlier_input(M, K, 3), wv = randn(N, K, 4, 0.05f);
  const Codec c = Codec::make("mxfp4");
  autograd::NoGradGuard ng;
  const Tensor exact = qgemm(Var(xv), Var(wv), Var(), {}).value();
  GemmQuantSpec rot_only;
  rot_only.rotation = Hadamard{3};
  EXPECT_LT(max_abs_diff(qgemm(Var(xv), Var(wv), Var(), rot_only).value(), exact), 1e-4);
  GemmQuantSpec q{c, c, std::nullopt, Ste::kClipped, std::nullopt, false};
  GemmQuantSpec qr = q;
  qr.rotation = Hadamard{3};
  auto sq = [&](const Tensor& y) {
    double s = 0;
    for (int64_t i = 0; i < y.size(); ++i) s += std::pow(double(y[i]) - exact[i], 2);
    return s;
  };
  const double e_plain = sq(qgemm(Var(xv), Var(wv), Var(), q).value());
  const double e_rot = sq(qgemm(Var(xv), Var(wv), Var(), qr).value());
  EXPECT_LT(e_rot, 0.7 * e_plain) << e_rot << " vs " << e_plain;
  // The weight stored rotated (export, PTQ): only the input is rotated, same bits.
  Tensor wr(wv.shape());
  hadamard_rows(Hadamard{3}, wv.data(), N, K, wr.data());
  GemmQuantSpec stored = qr;
  stored.weight_rotated = true;
  EXPECT_TRUE(qgemm(Var(xv), Var(wr), Var(), stored).value().same_bits(qgemm(Var(xv), Var(wv), Var(), qr).value()));
}

TEST(Hadamard, GradientsAreThoseOfTheSameFunction) {
  const int64_t M = 6, K = 64, N = 5;
  const Tensor xv = randn(M, K, 5), wv = randn(N, K, 6), gy = randn(M, N, 7);
  GemmQuantSpec rot;
  rot.rotation = Hadamard{9};
  Tensor g_plain[2], g_rot[2];
  for (int pass = 0; pass < 2; ++pass) {
    Var x(xv, true), w(wv, true);
    Var y = qgemm(x, w, Var(), pass ? rot : GemmQuantSpec{});
    autograd::sum(autograd::mul(y, Var(gy))).backward();
    (pass ? g_rot : g_plain)[0] = x.grad();
    (pass ? g_rot : g_plain)[1] = w.grad();
  }
  EXPECT_LT(max_abs_diff(g_rot[0], g_plain[0]), 1e-4);
  EXPECT_LT(max_abs_diff(g_rot[1], g_plain[1]), 1e-4);
  // with codecs (identity STE) the gradient is rotated back: dx = (dy Q(W R^T)) R
  const Codec c = Codec::make("mxfp4");
  GemmQuantSpec qr{c, c, std::nullopt, Ste::kIdentity, Hadamard{9}, false};
  Var x(xv, true), w(wv, true);
  autograd::sum(autograd::mul(qgemm(x, w, Var(), qr), Var(gy))).backward();
  Tensor wr(wv.shape()), wq(wv.shape()), dxr({M, K}), dx({M, K});
  hadamard_rows(Hadamard{9}, wv.data(), N, K, wr.data());
  c.fake_quant(wr.data(), N, K, wq.data());
  for (int64_t i = 0; i < M; ++i)
    for (int64_t k = 0; k < K; ++k) {
      double s = 0;
      for (int64_t n = 0; n < N; ++n) s += double(gy[i * N + n]) * wq[n * K + k];
      dxr[i * K + k] = float(s);
    }
  hadamard_rows(Hadamard{9}, dxr.data(), M, K, dx.data(), /*inverse=*/true);
  EXPECT_LT(max_abs_diff(x.grad(), dx), 1e-4);
}

TEST(Hadamard, QgemmBitsDoNotDependOnThreads) {
  const int64_t M = 300, K = 256, N = 64;
  const Tensor xv = outlier_input(M, K, 8), wv = randn(N, K, 9, 0.05f);
  for (const char* name : {"mxfp4", "nvfp4"}) {
    const Codec c = Codec::make(name);
    GemmQuantSpec qr{c, c, std::nullopt, Ste::kClipped, Hadamard{11}, false};
    Tensor out[2];
    const int saved = omp_get_max_threads();
    for (int t = 1; t <= 2; ++t) {
      omp_set_num_threads(t);
      autograd::NoGradGuard ng;
      out[t - 1] = qgemm(Var(xv), Var(wv), Var(), qr).value();
    }
    omp_set_num_threads(saved);
    EXPECT_TRUE(out[0].same_bits(out[1])) << name;
  }
}

}  // namespace
}  // namespace mxqat::quant
