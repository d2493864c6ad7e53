// Losses: cross_entropy (fused log-softmax + NLL with label smoothing), distill_kl (KL divergence
// to a teacher's softened distribution, for distillation) and mse. Each returns a
// 0-D mean. Not here: softmax itself (softmax.cpp). Per-row work is parallel; the final mean
// adds per-row (or per-chunk) partials in a fixed order, so bits never depend on thread count.
#include <cmath>

#include "autograd/ops.h"
#include "autograd/ops/row_kernels.h"
#include "autograd/ops/saved.h"

namespace mxqat::autograd {

// With q = (1 - eps) onehot(label) + eps / C and p = softmax(x) per row b:
//   loss = (1/B) sum_b [ lse(x_b) - (1 - eps) x_b[label_b] - (eps / C) sum_c x_b[c] ]
//   dx_b = dy (p_b - q_b) / B
// (as torch.nn.functional.cross_entropy(x, label, label_smoothing=eps), reduction 'mean').
Var cross_entropy(const Var& logits, const std::vector<int32_t>& labels, float label_smoothing) {
  const Tensor& x = logits.value();
  MXQAT_CHECK(x.ndim() == 2, "cross_entropy: logits must be [B, C], got ", shape_str(x.shape()));
  const int64_t B = x.dim(0), C = x.dim(1);
  MXQAT_CHECK(static_cast<int64_t>(labels.size()) == B, "cross_entropy: logits ",
              shape_str(x.shape()), " have ", B, " rows but ", labels.size(), " labels were given");
  MXQAT_CHECK(label_smoothing >= 0.f && label_smoothing <= 1.f,
              "cross_entropy: label_smoothing must be in [0, 1], got ", label_smoothing);
  for (int64_t b = 0; b < B; ++b)
    MXQAT_CHECK(labels[static_cast<size_t>(b)] >= 0 && labels[static_cast<size_t>(b)] < C,
                "cross_entropy: label ", labels[static_cast<size_t>(b)], " at position ", b,
                " is out of range [0, ", C, "); check the dataset's class count against the model");
  const float eps = label_smoothing, on = 1.f - eps, off = eps / static_cast<float>(C);
  Tensor p = Tensor::uninit(x.shape());  // softmax, kept for backward (every row written)
  std::vector<float> row_loss(static_cast<size_t>(B));
  detail::for_rows(B, C, [&](int64_t b) {
    const float* xb = x.data() + b * C;
    float* pb = p.data() + b * C;
    const float m = detail::row_max(xb, C);
    ArrMap pr(pb, C);
    pr = (ConstArrMap(xb, C) - m).exp();
    const float s = detail::row_sum(pb, C);
    pr *= 1.f / s;
    // lse - on x[label] - off sum(x), written relative to m (on + off C = 1) so that large
    // logits lose no precision.
    float l = std::log(s) - on * (xb[labels[static_cast<size_t>(b)]] - m);
    if (eps != 0.f) l -= off * detail::row_sum_shifted(xb, m, C);
    row_loss[static_cast<size_t>(b)] = l;
  });
  const float loss = detail::row_sum(row_loss.data(), B) / static_cast<float>(B);
  return make_node(
      "cross_entropy", Tensor::scalar(loss), {logits},
      [p = std::move(p), labels, on, off, B, C](const Tensor& dy, GradSink& g) {
        Tensor dx = Tensor::uninit(p.shape());
        const float scale = dy.item() / static_cast<float>(B);
        detail::for_rows(B, C, [&](int64_t b) {
          ArrMap(dx.data() + b * C, C) = (ConstArrMap(p.data() + b * C, C) - off) * scale;
          dx[b * C + labels[static_cast<size_t>(b)]] -= on * scale;
        });
        g.add(0, std::move(dx));
      });
}

// Knowledge distillation (Hinton et al. 2015), with q = softmax(t_b / T) the teacher's and
// p = softmax(x_b / T) the student's softened distributions per row b:
//   loss = (T^2 / B) sum_b KL(q_b || p_b) = (T^2 / B) sum_b sum_c q_bc (log q_bc - log p_bc)
//   dx_b = dy T (p_b - q_b) / B
// The T^2 keeps the gradient's size independent of T. Zero, with zero gradient, when x = t.
Var distill_kl(const Var& logits, const Tensor& teacher, float temperature) {
  const Tensor& x = logits.value();
  MXQAT_CHECK(x.ndim() == 2, "distill_kl: logits must be [B, C], got ", shape_str(x.shape()));
  MXQAT_CHECK(teacher.shape() == x.shape(), "distill_kl: teacher logits ", shape_str(teacher.shape()),
              " differ from the student's ", shape_str(x.shape()),
              "; the teacher must be the same model on the same batch");
  MXQAT_CHECK(temperature > 0.f && std::isfinite(temperature),
              "distill_kl: temperature must be positive, got ", temperature);
  const int64_t B = x.dim(0), C = x.dim(1);
  const float inv_t = 1.f / temperature;
  // p - q, kept for backward; q in a tensor of its own, so that every row's SIMD alignment (and so
  // its bits) is the same whichever thread runs it
  Tensor g = Tensor::uninit(x.shape()), q_all = Tensor::uninit(x.shape());
  std::vector<float> row_loss(static_cast<size_t>(B));
  detail::for_rows(B, C, [&](int64_t b) {
    const float* xb = x.data() + b * C;
    const float* tb = teacher.data() + b * C;
    float* gb = g.data() + b * C;
    float* qb = q_all.data() + b * C;
    ArrMap q(qb, C), p(gb, C);
    const float mt = detail::row_max(tb, C) * inv_t, mx = detail::row_max(xb, C) * inv_t;
    q = (ConstArrMap(tb, C) * inv_t - mt).exp();
    p = (ConstArrMap(xb, C) * inv_t - mx).exp();
    const float sq = detail::row_sum(qb, C), sp = detail::row_sum(gb, C);
    q *= 1.f / sq;
    p *= 1.f / sp;
    // log q - log p = (t - x) / T - mt + mx - log sq + log sp, and sum q = 1:
    //   KL = sum q (t - x) / T + (mx - mt) + (log sp - log sq)
    // (exactly 0 when x = t).
    float acc[detail::kLanes] = {};
    int64_t i = 0;
    for (; i + detail::kLanes <= C; i += detail::kLanes)
      for (int j = 0; j < detail::kLanes; ++j) acc[j] += qb[i + j] * (tb[i + j] - xb[i + j]);
    for (int j = 0; i < C; ++i, ++j) acc[j] += qb[i] * (tb[i] - xb[i]);
    row_loss[static_cast<size_t>(b)] =
        detail::lanes_total(acc) * inv_t + (mx - mt) + (std::log(sp) - std::log(sq));
    p -= q;
  });
  const float t2 = temperature * temperature;
  const float loss = t2 * detail::row_sum(row_loss.data(), B) / static_cast<float>(B);
  return make_node("distill_kl", Tensor::scalar(loss), {logits},
                   [g = std::move(g), temperature, B](const Tensor& dy, GradSink& gs) {
                     Tensor dx = Tensor::uninit(g.shape());
                     const float scale = dy.item() * temperature / static_cast<float>(B);
                     detail::for_chunks(g.size(), [&](int64_t i0, int64_t i1) {
                       ArrMap(dx.data() + i0, i1 - i0) = ConstArrMap(g.data() + i0, i1 - i0) * scale;
                     });
                     gs.add(0, std::move(dx));
                   });
}

// y = mean((a - b)^2)      da = 2 dy (a - b) / n      db = -da
Var mse(const Var& a, const Var& b) {
  MXQAT_CHECK(a.shape() == b.shape(), "mse: prediction shape ", shape_str(a.shape()),
              " differs from target shape ", shape_str(b.shape()));
  const int64_t n = a.value().size();
  Tensor diff(a.shape());
  std::vector<float> part(static_cast<size_t>((n + detail::kChunk - 1) / detail::kChunk));
  detail::for_chunks(n, [&](int64_t i0, int64_t i1) {
    ArrMap(diff.data() + i0, i1 - i0) =
        ConstArrMap(a.value().data() + i0, i1 - i0) - ConstArrMap(b.value().data() + i0, i1 - i0);
    part[static_cast<size_t>(i0 / detail::kChunk)] =
        detail::row_dot(diff.data() + i0, diff.data() + i0, i1 - i0);
  });
  const float loss =
      detail::row_sum(part.data(), static_cast<int64_t>(part.size())) / static_cast<float>(n);
  return make_node("mse", Tensor::scalar(loss), {a, b},
                   [diff = std::move(diff), n](const Tensor& dy, GradSink& g) {
                     Tensor da(diff.shape());
                     const float scale = 2.f * dy.item() / static_cast<float>(n);
                     da.arr() = diff.arr() * scale;
                     if (g.wants(1)) {
                       Tensor db(diff.shape());
                       db.arr() = -da.arr();
                       g.add(1, std::move(db));
                     }
                     g.add(0, std::move(da));
                   });
}

}  // namespace mxqat::autograd
