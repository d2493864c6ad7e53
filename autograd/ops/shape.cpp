// Shape ops: reshape, permute (transpose composes it), slice, concat. Each copies its output
// (Tensor has value semantics); backward moves the gradient back the inverse way.
// Not here: broadcasting (broadcast.h). Copies of independent rows run in parallel.
#include <algorithm>
#include <numeric>

#include "autograd/ops.h"
#include "autograd/ops/row_kernels.h"

namespace mxqat::autograd {

namespace {
int norm_axis(const char* op, int axis, int nd, const Shape& s) {
  const int a = axis < 0 ? axis + nd : axis;
  MXQAT_CHECK(a >= 0 && a < nd, op, ": axis ", axis, " out of range for shape ", shape_str(s));
  return a;
}

// y = x with axes reordered: y.shape[i] = x.shape[dims[i]].
Tensor permuted(const Tensor& x, const std::vector<int>& dims) {
  const int nd = x.ndim();
  int64_t in_stride[4] = {0, 0, 0, 0}, size[4] = {1, 1, 1, 1}, stride[4] = {0, 0, 0, 0};
  int64_t step = 1;
  for (int i = nd - 1; i >= 0; --i) in_stride[i] = step, step *= x.shape()[static_cast<size_t>(i)];
  Shape ys(static_cast<size_t>(nd));
  for (int i = 0; i < nd; ++i) {  // right-aligned into 4 loop levels
    ys[static_cast<size_t>(i)] = x.shape()[static_cast<size_t>(dims[static_cast<size_t>(i)])];
    size[4 - nd + i] = ys[static_cast<size_t>(i)];
    stride[4 - nd + i] = in_stride[dims[static_cast<size_t>(i)]];
  }
  Tensor y(ys);
  const float* src = x.data();
  float* dst = y.data();
  const int64_t outer = size[0] * size[1], plane = size[2] * size[3];
#pragma omp parallel for schedule(static) if (outer > 1 && y.size() > detail::kParallelMin)
  for (int64_t o = 0; o < outer; ++o) {
    const float* s0 = src + (o / size[1]) * stride[0] + (o % size[1]) * stride[1];
    float* d = dst + o * plane;
    for (int64_t i = 0; i < size[2]; ++i, d += size[3]) {
      const float* s = s0 + i * stride[2];
      if (stride[3] == 1) std::copy(s, s + size[3], d);
      else for (int64_t j = 0; j < size[3]; ++j) d[j] = s[j * stride[3]];
    }
  }
  return y;
}

// Copies blocks between a [outer, n, inner] tensor and a [outer, len, inner] one at offset
// `start` along n: to_slice picks the slice out, otherwise it is written back (added into zeros).
void copy_slice(const float* src, float* dst, int64_t outer, int64_t n, int64_t inner,
                int64_t start, int64_t len, bool to_slice) {
  const int64_t block = len * inner;
#pragma omp parallel for schedule(static) if (outer > 1 && outer * block > detail::kParallelMin)
  for (int64_t o = 0; o < outer; ++o) {
    const int64_t full = o * n * inner + start * inner, part = o * block;
    if (to_slice) std::copy(src + full, src + full + block, dst + part);
    else std::copy(src + part, src + part + block, dst + full);
  }
}

void split_at(const Shape& s, int axis, int64_t& outer, int64_t& inner) {
  outer = inner = 1;
  for (int i = 0; i < axis; ++i) outer *= s[static_cast<size_t>(i)];
  for (size_t i = static_cast<size_t>(axis) + 1; i < s.size(); ++i) inner *= s[i];
}
}  // namespace

// y = x viewed with a new shape (same elements, same order)      dx = dy viewed back
Var reshape(const Var& x, Shape shape) {
  Tensor y = Tensor::uninit(x.shape());  // the copy in parallel chunks
  y.reshape_inplace(std::move(shape));
  const float* src = x.value().data();
  float* dst = y.data();
  detail::for_chunks(y.size(), [&](int64_t i0, int64_t i1) { std::copy(src + i0, src + i1, dst + i0); });
  return make_node("reshape", std::move(y), {x},
                   [](const Tensor& dy, GradSink& g) { g.add(0, dy); });  // add() reshapes
}

// y[i0.., ...] = x with axes permuted, y.shape[i] = x.shape[dims[i]]    dx = permute(dy, dims^-1)
Var permute(const Var& x, std::vector<int> dims) {
  const int nd = x.value().ndim();
  std::vector<int> inverse(static_cast<size_t>(nd), -1);
  bool ok = static_cast<int>(dims.size()) == nd;
  for (size_t i = 0; ok && i < dims.size(); ++i) {
    const int d = dims[i] < 0 ? dims[i] + nd : dims[i];
    ok = d >= 0 && d < nd && inverse[static_cast<size_t>(d)] < 0;
    if (ok) inverse[static_cast<size_t>(d)] = static_cast<int>(i), dims[i] = d;
  }
  std::string listed;
  for (int d : dims) listed += (listed.empty() ? "" : ", ") + std::to_string(d);
  MXQAT_CHECK(ok, "permute: dims [", listed, "] are not a permutation of the ", nd,
              " axes of shape ", shape_str(x.shape()));
  return make_node("permute", permuted(x.value(), dims), {x},
                   [inverse](const Tensor& dy, GradSink& g) { g.add(0, permuted(dy, inverse)); });
}

// y = x with axes a and b swapped (a permute, so no backward of its own)
Var transpose(const Var& x, int a, int b) {
  const int nd = x.value().ndim();
  a = norm_axis("transpose", a, nd, x.shape());
  b = norm_axis("transpose", b, nd, x.shape());
  std::vector<int> dims(static_cast<size_t>(nd));
  std::iota(dims.begin(), dims.end(), 0);
  std::swap(dims[static_cast<size_t>(a)], dims[static_cast<size_t>(b)]);
  return permute(x, dims);
}

// y = x[..., start:end, ...] along axis      dx = dy written into zeros at [start, end)
Var slice(const Var& x, int axis, int64_t start, int64_t end) {
  const Shape& xs = x.shape();
  axis = norm_axis("slice", axis, static_cast<int>(xs.size()), xs);
  const int64_t n = xs[static_cast<size_t>(axis)];
  if (start < 0) start += n;
  if (end < 0) end += n;
  MXQAT_CHECK(0 <= start && start <= end && end <= n, "slice: range [", start, ", ", end,
              ") does not fit axis ", axis, " of size ", n, " in shape ", shape_str(xs));
  int64_t outer, inner;
  split_at(xs, axis, outer, inner);
  Shape ys = xs;
  ys[static_cast<size_t>(axis)] = end - start;
  Tensor y(ys);
  copy_slice(x.value().data(), y.data(), outer, n, inner, start, end - start, true);
  return make_node("slice", std::move(y), {x},
                   [xs, outer, n, inner, start, len = end - start](const Tensor& dy, GradSink& g) {
                     Tensor dx(xs);
                     copy_slice(dy.data(), dx.data(), outer, n, inner, start, len, false);
                     g.add(0, std::move(dx));
                   });
}

// y = [x0, x1, ...] joined along axis      dx_k = dy[..., offset_k : offset_k + n_k, ...]
Var concat(const std::vector<Var>& xs, int axis) {
  MXQAT_CHECK(!xs.empty(), "concat: needs at least one input");
  const Shape& s0 = xs[0].shape();
  axis = norm_axis("concat", axis, static_cast<int>(s0.size()), s0);
  Shape ys = s0;
  ys[static_cast<size_t>(axis)] = 0;
  std::vector<int64_t> starts;
  for (size_t k = 0; k < xs.size(); ++k) {
    Shape sk = xs[k].shape(), want = s0;
    bool ok = sk.size() == s0.size();
    if (ok) want[static_cast<size_t>(axis)] = sk[static_cast<size_t>(axis)];
    MXQAT_CHECK(ok && sk == want, "concat: input ", k, " has shape ", shape_str(sk),
                ", input 0 has ", shape_str(s0), "; they may differ only along axis ", axis);
    starts.push_back(ys[static_cast<size_t>(axis)]);
    ys[static_cast<size_t>(axis)] += sk[static_cast<size_t>(axis)];
  }
  int64_t outer, inner;
  split_at(ys, axis, outer, inner);
  const int64_t n = ys[static_cast<size_t>(axis)];
  Tensor y(ys);
  for (size_t k = 0; k < xs.size(); ++k)
    copy_slice(xs[k].value().data(), y.data(), outer, n, inner, starts[k],
               xs[k].shape()[static_cast<size_t>(axis)], false);
  std::vector<Shape> shapes;
  for (const Var& x : xs) shapes.push_back(x.shape());
  return make_node("concat", std::move(y), xs,
                   [shapes, starts, axis, outer, n, inner](const Tensor& dy, GradSink& g) {
                     for (size_t k = 0; k < shapes.size(); ++k) {
                       if (!g.wants(k)) continue;
                       Tensor dx(shapes[k]);
                       copy_slice(dy.data(), dx.data(), outer, n, inner, starts[k],
                                  shapes[k][static_cast<size_t>(axis)], true);
                       g.add(k, std::move(dx));
                     }
                   });
}

}  // namespace mxqat::autograd
