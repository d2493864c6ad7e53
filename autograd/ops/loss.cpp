// Losses: cross_entropy (fused log-softmax + NLL with label smoothing) and mse. Both return a
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
  Tensor p(x.shape());  // softmax, kept for backward
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
        Tensor dx(p.shape());
        const float scale = dy.item() / static_cast<float>(B);
        detail::for_rows(B, C, [&](int64_t b) {
          ArrMap(dx.data() + b * C, C) = (ConstArrMap(p.data() + b * C, C) - off) * scale;
          dx[b * C + labels[static_cast<size_t>(b)]] -= on * scale;
        });
        g.add(0, std::move(dx));
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
