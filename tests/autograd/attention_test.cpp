// The transformer ops (attention.cpp, gated.cpp) against plain references: fused causal attention
// vs the same computation composed of permute/matmul/mask/softmax (values and gradients), rope vs
// its formula in double, swiglu vs silu * mul; causality; same bits for 1, 2 and 3 threads.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <tuple>

#include "autograd/kernels.h"
#include "autograd/ops.h"
#include "autograd/ops/row_kernels.h"

namespace mxqat::autograd {
namespace {

Tensor random(const Shape& s, uint32_t seed, float scale = 1.f) {
  Tensor t(s);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  for (int64_t i = 0; i < t.size(); ++i) t[i] = u(rng);
  return t;
}

float max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  float m = 0;
  for (int64_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

// The reference: heads split by permute, scores by matmul, the mask added as -1e30 above the
// diagonal, softmax, matmul with V, heads merged back.
Var composed_attention(const Var& q, const Var& k, const Var& v, int64_t heads) {
  const int64_t B = q.shape()[0], T = q.shape()[1], C = q.shape()[2], D = C / heads;
  auto split = [&](const Var& x) {
    return reshape(permute(reshape(x, {B, T, heads, D}), {0, 2, 1, 3}), {B * heads, T, D});
  };
  Tensor mask({T, T});
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = i + 1; j < T; ++j) mask[i * T + j] = -1e30f;
  Var s = add(mul_scalar(matmul(split(q), split(k), false, true), 1.f / std::sqrt(float(D))), Var(mask));
  Var o = matmul(softmax(s), split(v));  // [B*H, T, D]
  return reshape(permute(reshape(o, {B, heads, T, D}), {0, 2, 1, 3}), {B, T, C});
}

TEST(Attention, FusedMatchesComposedReference) {
  for (auto [B, T, C, H] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{2, 7, 12, 3}, {1, 33, 64, 2}}) {
    SCOPED_TRACE("T=" + std::to_string(T));
    const Tensor qv = random({B, T, C}, 1, 2.f), kv = random({B, T, C}, 2, 2.f),
                 vv = random({B, T, C}, 3), dy = random({B, T, C}, 4);
    Var q(qv, true), k(kv, true), v(vv, true), q2(qv, true), k2(kv, true), v2(vv, true);
    Var y = causal_attention(q, k, v, H);
    Var r = composed_attention(q2, k2, v2, H);
    y.backward(dy);
    r.backward(dy);
    EXPECT_LT(max_abs_diff(y.value(), r.value()), 1e-5f);
    EXPECT_LT(max_abs_diff(q.grad(), q2.grad()), 1e-5f);
    EXPECT_LT(max_abs_diff(k.grad(), k2.grad()), 1e-5f);
    EXPECT_LT(max_abs_diff(v.grad(), v2.grad()), 1e-5f);
  }
}

// Causal skipping drops only exact zeros: per head, the fused op has the bits of whole products
// (gemm_reference over the full inner dimension) with the same row formulas. T = 70 ends in a
// ragged tile.
TEST(Attention, CausalBlocksHaveTheBitsOfWholeProducts) {
  const int64_t B = 2, T = 70, C = 24, H = 2, D = C / H;
  const float scale = 1.f / std::sqrt(float(D));
  const Tensor qv = random({B, T, C}, 41, 2.f), kv = random({B, T, C}, 42, 2.f),
               vv = random({B, T, C}, 43), dy = random({B, T, C}, 44);
  Var q(qv, true), k(kv, true), v(vv, true);
  Var y = causal_attention(q, k, v, H);
  y.backward(dy);
  Tensor ry({B, T, C}), rdq({B, T, C}), rdk({B, T, C}), rdv({B, T, C});
  // Products into tensors: aligned as the op's buffers, since Eigen's exp path depends on it.
  auto mm = [](const Tensor& a, bool ta, const Tensor& b, bool tb, int64_t m, int64_t n,
               int64_t k) {
    Tensor c({m, n});
    gemm_reference(a.data(), ta, b.data(), tb, c.data(), m, n, k);
    return c;
  };
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      auto slice = [&](const Tensor& t) {
        Tensor out({T, D});
        for (int64_t i = 0; i < T; ++i)
          std::copy_n(t.data() + (b * T + i) * C + h * D, D, out.data() + i * D);
        return out;
      };
      auto put = [&](const Tensor& src, Tensor& t) {
        for (int64_t i = 0; i < T; ++i)
          std::copy_n(src.data() + i * D, D, t.data() + (b * T + i) * C + h * D);
      };
      const Tensor Q = slice(qv), K = slice(kv), V = slice(vv), dO = slice(dy);
      Tensor P = mm(Q, false, K, true, T, T, D);
      for (int64_t i = 0; i < T; ++i) {
        float* r = P.data() + i * T;
        ArrMap a(r, i + 1);
        a *= scale;
        const float m = detail::row_max(r, i + 1);
        a = (a - m).exp();
        a *= 1.f / detail::row_sum(r, i + 1);
        std::fill(r + i + 1, r + T, 0.f);
      }
      put(mm(P, false, V, false, T, D, T), ry);
      put(mm(P, true, dO, false, T, D, T), rdv);
      Tensor dS = mm(dO, false, V, true, T, T, D);
      for (int64_t i = 0; i < T; ++i) {
        float* r = dS.data() + i * T;
        const float c = detail::row_dot(r, P.data() + i * T, i + 1);
        const ConstArrMap p(P.data() + i * T, i + 1);
        ArrMap(r, i + 1) = p * (ConstArrMap(r, i + 1) - c) * scale;
        std::fill(r + i + 1, r + T, 0.f);
      }
      put(mm(dS, false, K, false, T, D, T), rdq);
      put(mm(dS, true, Q, false, T, D, T), rdk);
    }
  EXPECT_TRUE(y.value().same_bits(ry));
  EXPECT_TRUE(q.grad().same_bits(rdq));
  EXPECT_TRUE(k.grad().same_bits(rdk));
  EXPECT_TRUE(v.grad().same_bits(rdv));
}

TEST(Attention, FutureTokensDoNotChangeEarlierOutputs) {
  const int64_t T = 9, C = 8;
  Tensor qv = random({1, T, C}, 5), kv = random({1, T, C}, 6), vv = random({1, T, C}, 7);
  const Tensor y0 = causal_attention(Var(qv), Var(kv), Var(vv), 2).value();
  for (int64_t c = 0; c < C; ++c) {  // change token 5 everywhere
    qv[5 * C + c] += 1.f, kv[5 * C + c] -= 2.f, vv[5 * C + c] += 3.f;
  }
  const Tensor y1 = causal_attention(Var(qv), Var(kv), Var(vv), 2).value();
  for (int64_t i = 0; i < 5 * C; ++i) EXPECT_EQ(y0[i], y1[i]) << "element " << i;
  bool later_changed = false;
  for (int64_t i = 5 * C; i < T * C; ++i) later_changed |= y0[i] != y1[i];
  EXPECT_TRUE(later_changed);
}

TEST(Attention, BadShapesAreRefused) {
  Var a(random({2, 3, 6}, 1)), b(random({2, 3, 4}, 2));
  EXPECT_THROW(causal_attention(a, a, a, 4), Error);  // 6 channels, 4 heads
  EXPECT_THROW(causal_attention(a, b, a, 2), Error);
  EXPECT_THROW(rope(a, 2), Error);  // head size 3 is odd
}

TEST(Rope, MatchesFormulaInDouble) {
  const int64_t B = 2, T = 5, H = 2, D = 6, C = H * D, pos0 = 3;
  const double theta = 500.0;
  const Tensor x = random({B, T, C}, 8);
  const Tensor y = rope(Var(x), H, pos0, static_cast<float>(theta)).value();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < D / 2; ++i) {
          const int64_t j = (b * T + t) * C + h * D + 2 * i;
          const double a = double(pos0 + t) * std::pow(theta, -2.0 * double(i) / double(D));
          EXPECT_NEAR(y[j], x[j] * std::cos(a) - x[j + 1] * std::sin(a), 1e-6);
          EXPECT_NEAR(y[j + 1], x[j] * std::sin(a) + x[j + 1] * std::cos(a), 1e-6);
        }
}

TEST(Swiglu, EqualsSiluTimesUp) {
  const Tensor g = random({5, 37}, 9, 4.f), u = random({5, 37}, 10), dy = random({5, 37}, 11);
  Var g1(g, true), u1(u, true), g2(g, true), u2(u, true);
  Var y1 = swiglu(g1, u1), y2 = mul(silu(g2), u2);
  y1.backward(dy);
  y2.backward(dy);
  EXPECT_LT(max_abs_diff(y1.value(), y2.value()), 1e-6f);
  EXPECT_LT(max_abs_diff(g1.grad(), g2.grad()), 1e-6f);
  EXPECT_LT(max_abs_diff(u1.grad(), u2.grad()), 1e-6f);
}

// Output and gradients with 1 thread, then with 2 and 3: the same bits (sizes above the
// parallel thresholds).
TEST(Attention, SameBitsForAnyThreadCount) {
  using Fn = std::function<Var(const std::vector<Var>&)>;
  const std::vector<std::pair<const char*, Fn>> ops = {
      {"causal_attention", [](const std::vector<Var>& v) { return causal_attention(v[0], v[1], v[2], 4); }},
      {"rope", [](const std::vector<Var>& v) { return rope(add(v[0], add(v[1], v[2])), 4); }},
      {"swiglu", [](const std::vector<Var>& v) { return swiglu(v[0], mul(v[1], v[2])); }},
  };
  const int saved = omp_get_max_threads();
  for (const auto& [name, f] : ops) {
    SCOPED_TRACE(name);
    std::vector<std::vector<Tensor>> runs;
    for (int threads : {1, 2, 3}) {
      omp_set_num_threads(threads);
      std::vector<Var> xs;
      for (uint32_t i = 0; i < 3; ++i) xs.emplace_back(random({4, 64, 128}, 20 + i), true);
      Var y = f(xs);
      y.backward(random(y.shape(), 30));
      runs.push_back({y.value(), xs[0].grad(), xs[1].grad(), xs[2].grad()});
    }
    for (size_t r = 1; r < runs.size(); ++r)
      for (size_t i = 0; i < runs[0].size(); ++i)
        EXPECT_TRUE(runs[0][i].same_bits(runs[r][i])) << "tensor " << i << ", " << r + 1 << " threads";
  }
  omp_set_num_threads(saved);
}

}  // namespace
}  // namespace mxqat::autograd
