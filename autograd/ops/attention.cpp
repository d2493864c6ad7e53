// Attention ops: fused causal multi-head attention (scores, mask, softmax and the value
// product in one node, with its own backward) and rotary position embedding. Both read the
// heads in place from [B, T, C] activations (C = heads * D), so no permute copies are made.
// Not here: the projections (linear / the quant hook), swiglu (gated.cpp), the modules (layers/gpt).
// Work is split by (batch, head) pair or by row, never by thread count: same bits for any.
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "autograd/kernels.h"
#include "autograd/ops.h"
#include "autograd/ops/row_kernels.h"

namespace mxqat::autograd {

namespace {
struct AttnDims {
  int64_t B, T, C, H, D;
  // The [T, D] slice of head h in batch row b: rows C floats apart.
  const float* head(const Tensor& t, int64_t b, int64_t h) const {
    return t.data() + b * T * C + h * D;
  }
  float* head(Tensor& t, int64_t b, int64_t h) const { return t.data() + b * T * C + h * D; }
};

AttnDims attn_dims(const Var& q, const Var& k, const Var& v, int64_t heads) {
  const Shape& s = q.shape();
  MXQAT_CHECK(s.size() == 3, "causal_attention: q must be [B, T, C], got ", shape_str(s));
  MXQAT_CHECK(k.shape() == s && v.shape() == s, "causal_attention: q ", shape_str(s), ", k ",
              shape_str(k.shape()), " and v ", shape_str(v.shape()), " must have one shape");
  MXQAT_CHECK(heads > 0 && s[2] % heads == 0, "causal_attention: ", s[2],
              " channels do not split into ", heads, " heads; make d_model a multiple of heads");
  return {s[0], s[1], s[2], heads, s[2] / heads};
}

// Row i of the scores keeps columns j <= i: P[i, j] = exp(s S[i, j] - m_i) / sum_{j<=i} (...),
// with m_i the row's max of s S[i, j], and P[i, j > i] = 0. S is [T, T], row-major.
void causal_softmax_rows(float* s, int64_t T, float scale) {
  for (int64_t i = 0; i < T; ++i) {
    float* r = s + i * T;
    const int64_t n = i + 1;
    ArrMap a(r, n);
    a *= scale;
    const float m = detail::row_max(r, n);
    a = (a - m).exp();
    a *= 1.f / detail::row_sum(r, n);
    std::fill(r + n, r + T, 0.f);
  }
}
// The rotary cos/sin table [T, D/2] for positions pos0 .. pos0 + T - 1, in double then rounded:
// one value per (position, pair). A training step asks for the same table twice per layer, so
// the last one made on this thread is kept (its thousands of pow/cos/sin are serial work).
std::shared_ptr<const std::vector<float>> rope_table(int64_t T, int64_t D, int64_t pos0, float theta) {
  struct Key {
    int64_t T = -1, D = -1, pos0 = -1;
    float theta = 0;
    bool operator==(const Key& o) const { return T == o.T && D == o.D && pos0 == o.pos0 && theta == o.theta; }
  };
  thread_local Key last;
  thread_local std::shared_ptr<const std::vector<float>> cached;
  const Key key{T, D, pos0, theta};
  if (cached && key == last) return cached;
  const int64_t half = D / 2;
  auto table = std::make_shared<std::vector<float>>(static_cast<size_t>(2 * T * half));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < half; ++i) {
      const double a = static_cast<double>(pos0 + t) *
                       std::pow(static_cast<double>(theta), -2.0 * static_cast<double>(i) / double(D));
      (*table)[static_cast<size_t>(2 * (t * half + i))] = static_cast<float>(std::cos(a));
      (*table)[static_cast<size_t>(2 * (t * half + i) + 1)] = static_cast<float>(std::sin(a));
    }
  last = key;
  cached = std::move(table);
  return cached;
}
}  // namespace

// Per batch b and head h, with Q, K, V the [T, D] slices of q, k, v and s = 1/sqrt(D):
//   S = s Q K^T,  P = softmax over j <= i of S[i, j] (0 for j > i),  O = P V
//   dV = P^T dO   dP = dO V^T   dS = P (dP - rowsum(dP P))   dQ = s dS K   dK = s dS^T Q
// Every product is autograd::gemm's (one fma chain per element over the whole inner dimension),
// computed on the causal half only (autograd::Causal), so the bits do not depend on how a
// library blocks a 128 x 128 product. P [B, H, T, T] is saved for backward (4 T^2 bytes per
// batch row and head).
Var causal_attention(const Var& q, const Var& k, const Var& v, int64_t heads) {
  const AttnDims d = attn_dims(q, k, v, heads);
  const float scale = 1.f / std::sqrt(static_cast<float>(d.D));
  // P is kept only when a backward will run (not under no_grad, e.g. evaluation).
  const bool keep = grad_enabled() && (q.needs_grad() || k.needs_grad() || v.needs_grad());
  auto probs = std::make_shared<Tensor>(Tensor::uninit(keep ? Shape{d.B, d.H, d.T, d.T} : Shape{0}));
  Tensor y = Tensor::uninit(q.shape());
  const int64_t pairs = d.B * d.H, T = d.T, C = d.C, D = d.D;
#pragma omp parallel if (pairs > 1 && pairs * T * T * D > detail::kParallelMin)
  {
    // The scores of every pair go through one aligned [T, T] buffer: Eigen's exp takes its
    // scalar or vector path by a row's alignment, so the buffer's alignment is part of the bits
    // and must not depend on the pair or on whether P is kept.
    Tensor scores = Tensor::uninit({T, T});
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < pairs; ++bh) {
      const int64_t b = bh / d.H, h = bh % d.H;
      float* s = scores.data();
      const float *qh = d.head(q.value(), b, h), *kh = d.head(k.value(), b, h),
                  *vh = d.head(v.value(), b, h);
      float* yh = d.head(y, b, h);
      gemm_serial(qh, C, false, kh, C, true, s, T, T, T, D, false, Causal::kUpperUnwritten);
      causal_softmax_rows(s, T, scale);
      gemm_serial(s, T, false, vh, C, false, yh, C, T, D, T, false, Causal::kStepsUpToRow);
      if (keep) std::copy(s, s + T * T, probs->data() + bh * T * T);
    }
  }
  return make_node("causal_attention", std::move(y), {q, k, v},
                   [q, k, v, d, scale, probs](const Tensor& dy, GradSink& g) {
    const bool want_qk = g.wants(0) || g.wants(1);
    Tensor dq = Tensor::uninit(q.shape()), dk = Tensor::uninit(q.shape()),
           dv = Tensor::uninit(q.shape());
    const int64_t pairs = d.B * d.H, T = d.T, C = d.C, D = d.D;
#pragma omp parallel if (pairs > 1 && pairs * T * T * D > detail::kParallelMin)
    {
      Tensor ds = Tensor::uninit(want_qk ? Shape{T, T} : Shape{0});
#pragma omp for schedule(static)
      for (int64_t bh = 0; bh < pairs; ++bh) {
        const int64_t b = bh / d.H, h = bh % d.H;
        const float* p = probs->data() + bh * T * T;
        const float* dyh = d.head(dy, b, h);
        if (g.wants(2))
          gemm_serial(p, T, true, dyh, C, false, d.head(dv, b, h), C, T, D, T, false,
                      Causal::kStepsFromRow);
        if (!want_qk) continue;
        gemm_serial(dyh, C, false, d.head(v.value(), b, h), C, true, ds.data(), T, T, T, D, false,
                    Causal::kUpperUnwritten);
        for (int64_t i = 0; i < T; ++i) {
          float* r = ds.data() + i * T;
          const float* pr = p + i * T;
          const int64_t n = i + 1;  // P is 0 beyond the diagonal, so is dS
          const float c = detail::row_dot(r, pr, n);
          ArrMap(r, n) = ConstArrMap(pr, n) * (ConstArrMap(r, n) - c) * scale;
          std::fill(r + n, r + T, 0.f);
        }
        if (g.wants(0))
          gemm_serial(ds.data(), T, false, d.head(k.value(), b, h), C, false, d.head(dq, b, h), C,
                      T, D, T, false, Causal::kStepsUpToRow);
        if (g.wants(1))
          gemm_serial(ds.data(), T, true, d.head(q.value(), b, h), C, false, d.head(dk, b, h), C,
                      T, D, T, false, Causal::kStepsFromRow);
      }
    }
    if (g.wants(0)) g.add(0, std::move(dq));
    if (g.wants(1)) g.add(1, std::move(dk));
    if (g.wants(2)) g.add(2, std::move(dv));
  });
}

// Rotary embedding on adjacent pairs (x[2i], x[2i+1]) of each head (the layout llama.cpp's
// LLAMA rope uses), position p = pos0 + t, angle a = p theta^(-2i/D):
//   y[2i] = x[2i] cos a - x[2i+1] sin a      y[2i+1] = x[2i] sin a + x[2i+1] cos a
// The map is a rotation, so backward rotates by -a:
//   dx[2i] = dy[2i] cos a + dy[2i+1] sin a   dx[2i+1] = -dy[2i] sin a + dy[2i+1] cos a
Var rope(const Var& x, int64_t heads, int64_t pos0, float theta) {
  const Shape& s = x.shape();
  MXQAT_CHECK(s.size() >= 2, "rope: x must be [..., T, C], got ", shape_str(s));
  const int64_t T = s[s.size() - 2], C = s.back();
  MXQAT_CHECK(heads > 0 && C % heads == 0 && (C / heads) % 2 == 0, "rope: ", C,
              " channels must split into ", heads, " heads of an even size; check d_model and heads");
  MXQAT_CHECK(pos0 >= 0 && theta > 0.f, "rope: pos0 ", pos0, " and theta ", theta, " must be >= 0 and > 0");
  const int64_t D = C / heads, half = D / 2;
  const auto table = rope_table(T, D, pos0, theta);
  // sign = +1 rotates by a (forward), -1 by -a (backward).
  auto rotate = [T, C, D, half, table](const Tensor& in, Tensor& out, float sign) {
    const int64_t rows = in.size() / C;
    detail::for_rows(rows, C, [&](int64_t r) {
      const float* cs = table->data() + 2 * (r % T) * half;
      const float* xr = in.data() + r * C;
      float* yr = out.data() + r * C;
      for (int64_t h0 = 0; h0 < C; h0 += D)
        for (int64_t i = 0; i < half; ++i) {
          const int64_t j = h0 + 2 * i;
          const float c = cs[2 * i], sn = sign * cs[2 * i + 1];
          yr[j] = xr[j] * c - xr[j + 1] * sn;
          yr[j + 1] = xr[j] * sn + xr[j + 1] * c;
        }
    });
  };
  Tensor y = Tensor::uninit(s);
  rotate(x.value(), y, 1.f);
  return make_node("rope", std::move(y), {x}, [rotate](const Tensor& dy, GradSink& g) {
    Tensor dx = Tensor::uninit(dy.shape());
    rotate(dy, dx, -1.f);
    g.add(0, std::move(dx));
  });
}

}  // namespace mxqat::autograd
