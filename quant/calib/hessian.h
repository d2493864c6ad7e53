// The GPTQ Hessian of a layer's input: H = (2/n) Σ_m x_mᵀ x_m over calibration rows x_m [K]
// (Frantar et al. 2022, the Hessian of the layer-wise loss ||X Wᵀ - X Ŵᵀ||² per output row),
// accumulated in double. Plain float arrays in, a double matrix out; never logs.
// Determinism: each entry is one running double sum over the rows in the order they were added,
// so the result is bitwise independent of the thread count and of how the rows are split into
// batches; it may differ in the last bits when the rows come in a different order.
#pragma once
#include <cstdint>
#include <vector>

#include "autograd/tensor.h"

namespace mxqat::quant::calib {

struct Hessian {
  int64_t dim = 0;        // K
  int64_t samples = 0;    // n, the rows accumulated
  std::vector<double> h;  // [K, K] row-major, symmetric
  double at(int64_t i, int64_t j) const { return h[static_cast<size_t>(i * dim + j)]; }
};

class HessianAccumulator {
 public:
  explicit HessianAccumulator(int64_t dim);  // K >= 1
  // x [M, K] row-major (a Linear's input [tokens, in]; a conv's im2col rows [B·Ho·Wo, C·kh·kw]).
  // Throws on a K mismatch or a non-finite value (naming `what`).
  void add(const float* x, int64_t M, int64_t K, const char* what = "Hessian input");
  // x [..., K], viewed as [rows, K].
  void add(const autograd::Tensor& x, const char* what = "Hessian input");
  int64_t dim() const { return dim_; }
  int64_t samples() const { return samples_; }
  Hessian hessian() const;  // throws when no rows were added

 private:
  int64_t dim_;
  int64_t samples_ = 0;
  std::vector<double> sum_;  // lower triangle of Σ xᵀx, stored [K, K] row-major (j <= i used)
};

}  // namespace mxqat::quant::calib
