// HessianAccumulator (hessian.h): rank-1 updates of the lower triangle, rows in tiles so a tile
// of x stays in cache while every thread sweeps its rows of the sum. Threads own whole rows of
// the sum and each entry adds the tile's rows in order, so the bits never depend on the schedule.
#include "quant/calib/hessian.h"

#include <cmath>

#include "autograd/error.h"

namespace mxqat::quant::calib {
namespace {
constexpr int64_t kTileRows = 64;
}

HessianAccumulator::HessianAccumulator(int64_t dim) : dim_(dim) {
  MXQAT_CHECK(dim >= 1, "Hessian accumulator: dimension ", dim, " must be >= 1 (the layer's in-features)");
  sum_.assign(static_cast<size_t>(dim * dim), 0.0);
}

void HessianAccumulator::add(const float* x, int64_t M, int64_t K, const char* what) {
  MXQAT_CHECK(K == dim_, what, ": rows have ", K, " features but the Hessian is ", dim_, " x ", dim_,
              "; pass the inputs of the layer this Hessian belongs to");
  MXQAT_CHECK(M >= 0 && (M == 0 || x), what, ": ", M, " rows at a null pointer");
  for (int64_t i = 0; i < M * K; ++i)
    MXQAT_CHECK(std::isfinite(x[i]), what, ": element (", i / K, ", ", i % K, ") is ", x[i],
                "; calibration inputs must be finite");
  const int64_t D = dim_;
  double* s = sum_.data();
  for (int64_t m0 = 0; m0 < M; m0 += kTileRows) {
    const int64_t m1 = std::min(M, m0 + kTileRows);
#pragma omp parallel for schedule(dynamic, 8)
    for (int64_t i = 0; i < D; ++i) {
      double* si = s + i * D;
      for (int64_t m = m0; m < m1; ++m) {
        const float* xm = x + m * D;
        const double xi = xm[i];
        if (xi == 0.0) continue;  // adds exact zeros only: skipping keeps the bits
        for (int64_t j = 0; j <= i; ++j) si[j] += xi * static_cast<double>(xm[j]);
      }
    }
  }
  samples_ += M;
}

void HessianAccumulator::add(const autograd::Tensor& x, const char* what) {
  add(x.data(), x.rows(), x.cols(), what);
}

Hessian HessianAccumulator::hessian() const {
  MXQAT_CHECK(samples_ > 0, "Hessian accumulator: no calibration rows were added; run the "
              "calibration batches through the layer first");
  Hessian h;
  h.dim = dim_;
  h.samples = samples_;
  h.h.assign(sum_.size(), 0.0);
  const double f = 2.0 / static_cast<double>(samples_);
  for (int64_t i = 0; i < dim_; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      const double v = sum_[static_cast<size_t>(i * dim_ + j)] * f;
      h.h[static_cast<size_t>(i * dim_ + j)] = v;
      h.h[static_cast<size_t>(j * dim_ + i)] = v;
    }
  return h;
}

}  // namespace mxqat::quant::calib
