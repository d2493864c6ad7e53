// Reductions over axes: sum and mean (mean is sum composed with a scale, no backward of its own).
// Not here: softmax-style row reductions (softmax.cpp). Deterministic: see broadcast.h.
#include <algorithm>

#include "autograd/ops.h"
#include "autograd/ops/broadcast.h"

namespace mxqat::autograd {

namespace {
// Which axes of `shape` an axes list names ({} = all); negative axes count from the end.
std::vector<bool> reduced_axes(const char* op, const Shape& shape, const std::vector<int>& axes) {
  const int nd = static_cast<int>(shape.size());
  std::vector<bool> reduced(shape.size(), axes.empty());
  for (int a : axes) {
    const int k = a < 0 ? a + nd : a;
    MXQAT_CHECK(k >= 0 && k < nd, op, ": axis ", a, " out of range for shape ", shape_str(shape));
    MXQAT_CHECK(!reduced[static_cast<size_t>(k)], op, ": axis ", a, " listed twice");
    reduced[static_cast<size_t>(k)] = true;
  }
  return reduced;
}
}  // namespace

// y = sum of x over `axes`     dx = dy broadcast back over the summed axes
Var sum(const Var& x, std::vector<int> axes, bool keepdim) {
  const Shape& xs = x.shape();
  const std::vector<bool> reduced = reduced_axes("sum", xs, axes);
  Shape kept_shape, keep_shape;  // without / with the summed axes as 1
  for (size_t i = 0; i < xs.size(); ++i) {
    if (!reduced[i]) kept_shape.push_back(xs[i]);
    keep_shape.push_back(reduced[i] ? 1 : xs[i]);
  }
  Tensor y(keepdim ? keep_shape : kept_shape);
  detail::reduce_sum(x.value().data(), xs, reduced, y.data());
  return make_node("sum", std::move(y), {x},
                   [xs, keep_shape](const Tensor& dy, GradSink& g) {
                     g.add(0, detail::expand_to(dy.reshaped(keep_shape), xs));
                   });
}

// y = sum(x, axes) / (number of elements summed)
Var mean(const Var& x, std::vector<int> axes, bool keepdim) {
  const std::vector<bool> reduced = reduced_axes("mean", x.shape(), axes);
  int64_t count = 1;
  for (size_t i = 0; i < reduced.size(); ++i) count *= reduced[i] ? x.shape()[i] : 1;
  return mul_scalar(sum(x, std::move(axes), keepdim), 1.f / static_cast<float>(count));
}

}  // namespace mxqat::autograd
