// matmul and linear: the GEMM-bearing ops, plus sum_rows. The GEMM kernel they share is in gemm.cpp.
#include <omp.h>

#include <algorithm>

#include "autograd/kernels.h"
#include "autograd/ops.h"
#include "autograd/profile.h"

namespace mxqat::autograd {

void sum_rows(const float* x, int64_t rows, int64_t cols, float* out, bool accumulate) {
  constexpr int64_t kColChunk = 16;  // one vector wide: 16 parallel chunks for 256 columns
  const int64_t chunks = (cols + kColChunk - 1) / kColChunk;
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 16))
  for (int64_t ch = 0; ch < chunks; ++ch) {
    const int64_t c0 = ch * kColChunk, c1 = std::min(cols, c0 + kColChunk);
    float acc[kColChunk];
    for (int64_t j = c0; j < c1; ++j) acc[j - c0] = accumulate ? out[j] : 0.f;
    for (int64_t i = 0; i < rows; ++i) {
      const float* row = x + i * cols;
      for (int64_t j = c0; j < c1; ++j) acc[j - c0] += row[j];
    }
    for (int64_t j = c0; j < c1; ++j) out[j] = acc[j - c0];
  }
}

// C = op(A) op(B), optionally batched over a leading axis.
//   dA = dC op(B)^T   (transposed back if trans_a)     dB = op(A)^T dC   (likewise for trans_b)
// A batched A with a 2-D B shares B across the batch, so dB sums over the batch.
Var matmul(const Var& a, const Var& b, bool trans_a, bool trans_b) {
  const Tensor& av = a.value();
  const Tensor& bv = b.value();
  const bool batched = av.ndim() == 3;
  MXQAT_CHECK((av.ndim() == 2 || batched) && (bv.ndim() == 2 || (batched && bv.ndim() == 3)),
              "matmul takes [M, K] x [K, N] or [Bt, M, K] x [Bt|-, K, N], got ",
              shape_str(av.shape()), " x ", shape_str(bv.shape()));
  const int64_t bt = batched ? av.dim(0) : 1;
  const bool b_shared = bv.ndim() == 2;
  MXQAT_CHECK(b_shared || bv.dim(0) == bt, "matmul batch sizes differ: ", shape_str(av.shape()),
              " x ", shape_str(bv.shape()));
  const int64_t m = trans_a ? av.dim(-1) : av.dim(-2), k = trans_a ? av.dim(-2) : av.dim(-1);
  const int64_t kb = trans_b ? bv.dim(-1) : bv.dim(-2), n = trans_b ? bv.dim(-2) : bv.dim(-1);
  MXQAT_CHECK(k == kb, "matmul inner dimensions differ: ", shape_str(av.shape()),
              (trans_a ? "^T" : ""), " x ", shape_str(bv.shape()), (trans_b ? "^T" : ""));
  Tensor y = Tensor::uninit(batched ? Shape{bt, m, n} : Shape{m, n});
  const int64_t sa = m * k, sb = b_shared ? 0 : k * n;
  for (int64_t i = 0; i < bt; ++i)
    gemm(av.data() + i * sa, trans_a, bv.data() + i * sb, trans_b, y.data() + i * m * n, m, n, k);
  return make_node(
      "matmul", std::move(y), {a, b},
      // The inputs are read through their Vars (no copy; see autograd/ops/saved.h).
      [a, b, trans_a, trans_b, bt, m, n, k, sa, sb, b_shared](const Tensor& dy, GradSink& g) {
        const Tensor& av = a.value();
        const Tensor& bv = b.value();
        if (g.wants(0)) {
          Tensor da(Shape{bt * sa});
          for (int64_t i = 0; i < bt; ++i) {
            const float* dyi = dy.data() + i * m * n;
            if (trans_a)  // dA[K, M] = op(B) dC^T
              gemm(bv.data() + i * sb, trans_b, dyi, true, da.data() + i * sa, k, m, n);
            else  // dA[M, K] = dC op(B)^T
              gemm(dyi, false, bv.data() + i * sb, !trans_b, da.data() + i * sa, m, k, n);
          }
          g.add(0, std::move(da));
        }
        if (g.wants(1)) {
          Tensor db(Shape{b_shared ? k * n : bt * k * n});
          for (int64_t i = 0; i < bt; ++i) {
            const float* dyi = dy.data() + i * m * n;
            float* dbi = db.data() + i * sb;
            const bool acc = b_shared && i > 0;
            if (trans_b)  // dB[N, K] = dC^T op(A)
              gemm(dyi, true, av.data() + i * sa, trans_a, dbi, n, k, m, acc);
            else  // dB[K, N] = op(A)^T dC
              gemm(av.data() + i * sa, !trans_a, dyi, false, dbi, k, n, m, acc);
          }
          g.add(1, std::move(db));
        }
      });
}

// y = x w^T + b     dx = dy w     dw = dy^T x     db = sum over rows of dy
Var linear(const Var& x, const Var& w, const Var& bias) {
  const Tensor& xv = x.value();
  const Tensor& wv = w.value();
  MXQAT_CHECK(wv.ndim() == 2, "linear weight must be [N, K], got ", shape_str(wv.shape()));
  const int64_t n = wv.dim(0), k = wv.dim(1);
  MXQAT_CHECK(xv.ndim() >= 1 && xv.dim(-1) == k, "linear: input has ", xv.ndim() ? xv.dim(-1) : 0,
              " features (shape ", shape_str(xv.shape()), ") but weight expects ", k);
  const bool has_bias = bias.defined();
  if (has_bias)
    MXQAT_CHECK(bias.value().size() == n, "linear bias has ", bias.value().size(),
                " values, weight has ", n, " outputs");
  const int64_t m = xv.size() / k;
  Shape ys = xv.shape();
  ys.back() = n;
  Tensor y = Tensor::uninit(ys);
  gemm(xv.data(), false, wv.data(), true, y.data(), m, n, k);
  if (has_bias) y.mat(m, n).rowwise() += bias.value().vec().transpose();
  std::vector<Var> inputs{x, w};
  if (has_bias) inputs.push_back(bias);
  return make_node("linear", std::move(y), std::move(inputs),
                   [x, w, m, n, k](const Tensor& dy, GradSink& g) {  // inputs read, not copied
                     const Tensor& xv = x.value();
                     const Tensor& wv = w.value();
                     if (g.wants(0)) {
                       Tensor dx = Tensor::uninit(Shape{m, k});
                       gemm(dy.data(), false, wv.data(), false, dx.data(), m, k, n);
                       profile::lap("bwd linear dX");
                       g.add(0, std::move(dx));
                     }
                     if (g.wants(1)) {
                       Tensor dw = Tensor::uninit(Shape{n, k});
                       gemm(dy.data(), true, xv.data(), false, dw.data(), n, k, m);
                       profile::lap("bwd linear dW");
                       g.add(1, std::move(dw));
                     }
                     if (g.wants(2)) {
                       Tensor db(Shape{n});
                       sum_rows(dy.data(), m, n, db.data());
                       g.add(2, std::move(db));
                     }
                   });
}

}  // namespace mxqat::autograd
