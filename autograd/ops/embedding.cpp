// embedding: rows of a weight table gathered by integer ids; backward scatters them back.
// Not here: the Embedding module (layers/). The scatter runs over column chunks, each adding the
// rows in id order, so repeated ids accumulate the same way for any thread count.
#include <algorithm>

#include "autograd/ops.h"
#include "autograd/ops/row_kernels.h"

namespace mxqat::autograd {

// y[i, :] = W[ids[i], :]      dW[v, :] = sum over i with ids[i] == v of dy[i, :]
Var embedding(const Var& weight, const std::vector<int32_t>& ids, Shape out_shape) {
  const Tensor& w = weight.value();
  MXQAT_CHECK(w.ndim() == 2, "embedding: weight must be [V, D], got ", shape_str(w.shape()));
  const int64_t V = w.dim(0), D = w.dim(1), n = static_cast<int64_t>(ids.size());
  for (int64_t i = 0; i < n; ++i) {
    const int32_t id = ids[static_cast<size_t>(i)];
    MXQAT_CHECK(id >= 0 && id < V, "embedding: id ", id, " at position ", i,
                " is out of range [0, ", V, "); check the tokenizer's vocabulary against the model");
  }
  if (out_shape.empty()) out_shape = {n};
  MXQAT_CHECK(numel_of(out_shape) == n, "embedding: out_shape ", shape_str(out_shape), " holds ",
              numel_of(out_shape), " ids but ", n, " were given");
  out_shape.push_back(D);
  Tensor y = Tensor::uninit(out_shape);  // every row copied below
  detail::for_rows(n, D, [&](int64_t i) {
    const float* src = w.data() + ids[static_cast<size_t>(i)] * D;
    std::copy(src, src + D, y.data() + i * D);
  });
  return make_node("embedding", std::move(y), {weight}, [ids, V, D](const Tensor& dy, GradSink& g) {
    constexpr int64_t kCols = 16;  // one vector wide: 16 parallel chunks for d_model 256
    const int64_t n = static_cast<int64_t>(ids.size()), chunks = (D + kCols - 1) / kCols;
    Tensor dw(Shape{V, D});
#pragma omp parallel for schedule(static) if (chunks > 1 && n * D > detail::kParallelMin)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t c0 = c * kCols, c1 = std::min(D, c0 + kCols);
      for (int64_t i = 0; i < n; ++i) {
        float* dst = dw.data() + ids[static_cast<size_t>(i)] * D;
        const float* src = dy.data() + i * D;
        for (int64_t j = c0; j < c1; ++j) dst[j] += src[j];
      }
    }
    g.add(0, std::move(dw));
  });
}

}  // namespace mxqat::autograd
