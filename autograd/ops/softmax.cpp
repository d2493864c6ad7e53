// softmax and log_softmax along one axis, numerically stable (the row max is subtracted first).
// Not here: cross_entropy (loss.cpp fuses its own). The axis is viewed as [outer, n, inner];
// with inner == 1 (the last axis) each row is contiguous; otherwise loops run along inner.
// Parallel over independent rows / outer slices, so the bits never depend on the thread count.
#include <cmath>

#include "autograd/ops.h"
#include "autograd/ops/row_kernels.h"
#include "autograd/ops/saved.h"

namespace mxqat::autograd {

namespace {
struct AxisView { int64_t outer, n, inner; };

AxisView axis_view(const char* op, const Shape& s, int axis) {
  const int nd = static_cast<int>(s.size());
  const int a = axis < 0 ? axis + nd : axis;
  MXQAT_CHECK(a >= 0 && a < nd, op, ": axis ", axis, " out of range for shape ", shape_str(s));
  AxisView v{1, s[static_cast<size_t>(a)], 1};
  for (int i = 0; i < a; ++i) v.outer *= s[static_cast<size_t>(i)];
  for (int i = a + 1; i < nd; ++i) v.inner *= s[static_cast<size_t>(i)];
  return v;
}

// y = x - max - log(sum exp(x - max)) if log_out, else exp(x - max) / sum exp(x - max)
void softmax_forward(const Tensor& x, Tensor& y, AxisView v, bool log_out) {
  const int64_t n = v.n, inner = v.inner;
  detail::for_rows(v.outer, n * inner, [&](int64_t o) {
    const float* xo = x.data() + o * n * inner;
    float* yo = y.data() + o * n * inner;
    if (inner == 1) {
      const float m = detail::row_max(xo, n);
      ArrMap yr(yo, n);
      yr = (ConstArrMap(xo, n) - m).exp();
      const float s = detail::row_sum(yo, n);
      if (log_out) yr = (ConstArrMap(xo, n) - m) - std::log(s);  // not x - (m + log s): exact for huge x
      else yr *= 1.f / s;
      return;
    }
    Eigen::ArrayXf m = ConstArrMap(xo, inner), s = Eigen::ArrayXf::Zero(inner);
    for (int64_t k = 1; k < n; ++k) m = m.max(ConstArrMap(xo + k * inner, inner));
    for (int64_t k = 0; k < n; ++k) {
      ArrMap yk(yo + k * inner, inner);
      yk = (ConstArrMap(xo + k * inner, inner) - m).exp();
      s += yk;
    }
    if (log_out) s = s.log();
    else s = s.inverse();
    for (int64_t k = 0; k < n; ++k) {
      ArrMap yk(yo + k * inner, inner);
      if (log_out) yk = (ConstArrMap(xo + k * inner, inner) - m) - s;
      else yk *= s;
    }
  });
}

// softmax: dx = y (dy - sum(dy y))      log_softmax: dx = dy - exp(y) sum(dy)
void softmax_backward(const Tensor& y, const Tensor& dy, Tensor& dx, AxisView v, bool log_out) {
  const int64_t n = v.n, inner = v.inner;
  detail::for_rows(v.outer, n * inner, [&](int64_t o) {
    const float* yo = y.data() + o * n * inner;
    const float* go = dy.data() + o * n * inner;
    float* dxo = dx.data() + o * n * inner;
    if (inner == 1) {
      ConstArrMap yr(yo, n), gr(go, n);
      const float s = log_out ? detail::row_sum(go, n) : detail::row_dot(go, yo, n);
      if (log_out) ArrMap(dxo, n) = gr - yr.exp() * s;
      else ArrMap(dxo, n) = yr * (gr - s);
      return;
    }
    Eigen::ArrayXf s = Eigen::ArrayXf::Zero(inner);
    for (int64_t k = 0; k < n; ++k) {
      ConstArrMap gk(go + k * inner, inner), yk(yo + k * inner, inner);
      if (log_out) s += gk;
      else s += gk * yk;
    }
    for (int64_t k = 0; k < n; ++k) {
      ConstArrMap gk(go + k * inner, inner), yk(yo + k * inner, inner);
      if (log_out) ArrMap(dxo + k * inner, inner) = gk - yk.exp() * s;
      else ArrMap(dxo + k * inner, inner) = yk * (gk - s);
    }
  });
}

Var softmax_op(const char* op, const Var& x, int axis, bool log_out) {
  const AxisView v = axis_view(op, x.shape(), axis);
  Tensor y = Tensor::uninit(x.shape());
  softmax_forward(x.value(), y, v, log_out);
  return detail::make_node_y(op, std::move(y), {x},
                             [v, log_out](const Tensor& y, const Tensor& dy, GradSink& g) {
                               Tensor dx = Tensor::uninit(dy.shape());
                               softmax_backward(y, dy, dx, v, log_out);
                               g.add(0, std::move(dx));
                             });
}
}  // namespace

// y_i = exp(x_i - max) / sum_j exp(x_j - max)          dx = y (dy - sum(dy y))
Var softmax(const Var& x, int axis) { return softmax_op("softmax", x, axis, false); }

// y_i = x_i - max - log sum_j exp(x_j - max)           dx = dy - softmax(x) sum(dy)
Var log_softmax(const Var& x, int axis) { return softmax_op("log_softmax", x, axis, true); }

}  // namespace mxqat::autograd
