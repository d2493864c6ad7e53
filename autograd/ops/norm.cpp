// layernorm and rmsnorm over the last axis, forward and backward fused per row.
// Not here: the LayerNorm/RMSNorm modules (layers/) that own gamma and beta.
// Rows run in parallel; dgamma/dbeta sum over rows with sum_rows (fixed column chunks), so the
// bits never depend on the thread count.
#include <cmath>

#include "autograd/kernels.h"
#include "autograd/ops.h"
#include "autograd/ops/row_kernels.h"

namespace mxqat::autograd {

namespace {
struct NormSaved {
  Tensor xhat;  // [rows, C] normalised input
  Tensor rstd;  // [rows]
};

void check_param(const char* op, const char* what, const Var& p, const Shape& xs) {
  if (!p.defined()) return;
  MXQAT_CHECK(p.value().size() == xs.back(), op, ": ", what, " has shape ", shape_str(p.shape()),
              " but the input ", shape_str(xs), " has ", xs.back(), " features in its last axis");
}

// Per row: xhat = (x - mu) rstd (mu = 0 when !center), y = xhat gamma + beta.
Tensor norm_forward(const Tensor& x, const Var& gamma, const Var& beta, float eps, bool center,
                    NormSaved& s) {
  const int64_t rows = x.rows(), C = x.cols();
  Tensor y = Tensor::uninit(x.shape());
  s.xhat = Tensor::uninit(Shape{rows, C});
  s.rstd = Tensor(Shape{rows});
  const float inv_c = 1.f / static_cast<float>(C);
  detail::for_rows(rows, C, [&](int64_t r) {
    const float* xr = x.data() + r * C;
    const float mu = center ? detail::row_sum(xr, C) * inv_c : 0.f;
    const float var = detail::row_sq_dev(xr, mu, C) * inv_c;
    const float rstd = 1.f / std::sqrt(var + eps);
    s.rstd[r] = rstd;
    ArrMap xh(s.xhat.data() + r * C, C), yr(y.data() + r * C, C);
    xh = (ConstArrMap(xr, C) - mu) * rstd;
    if (gamma.defined()) yr = xh * gamma.value().arr();
    else yr = xh;
    if (beta.defined()) yr += beta.value().arr();
  });
  return y;
}

// dxhat = dy gamma;  dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat))  (no mean(dxhat)
// term when !center);  dgamma = sum over rows of dy xhat;  dbeta = sum over rows of dy.
void norm_backward(const Tensor& dy, const NormSaved& s, const Var& gamma, bool center,
                   GradSink& g) {
  const int64_t rows = s.xhat.rows(), C = s.xhat.cols();
  const float inv_c = 1.f / static_cast<float>(C);
  if (g.wants(0)) {
    Tensor dx = Tensor::uninit(dy.shape());
    detail::for_rows(rows, C, [&](int64_t r) {
      float* dxr = dx.data() + r * C;
      const float* xh = s.xhat.data() + r * C;
      ArrMap d(dxr, C);
      if (gamma.defined()) d = ConstArrMap(dy.data() + r * C, C) * gamma.value().arr();
      else d = ConstArrMap(dy.data() + r * C, C);
      const float m1 = center ? detail::row_sum(dxr, C) * inv_c : 0.f;
      const float m2 = detail::row_dot(dxr, xh, C) * inv_c;
      d = (d - m1 - ConstArrMap(xh, C) * m2) * s.rstd[r];
    });
    g.add(0, std::move(dx));
  }
  if (g.wants(1)) {
    Tensor t = Tensor::uninit(s.xhat.shape()), dgamma(Shape{C});
    detail::for_chunks(t.size(), [&](int64_t i0, int64_t i1) {
      ArrMap(t.data() + i0, i1 - i0) =
          ConstArrMap(dy.data() + i0, i1 - i0) * ConstArrMap(s.xhat.data() + i0, i1 - i0);
    });
    sum_rows(t.data(), rows, C, dgamma.data());
    g.add(1, std::move(dgamma));
  }
  if (g.wants(2)) {
    Tensor dbeta(Shape{C});
    sum_rows(dy.data(), rows, C, dbeta.data());
    g.add(2, std::move(dbeta));
  }
}

Var norm_op(const char* op, const Var& x, const Var& gamma, const Var& beta, float eps,
            bool center) {
  const Shape& xs = x.shape();
  MXQAT_CHECK(!xs.empty() && xs.back() > 0, op, ": input must have a non-empty last axis, got ",
              shape_str(xs));
  check_param(op, "gamma", gamma, xs);
  check_param(op, "beta", beta, xs);
  auto saved = std::make_shared<NormSaved>();
  Tensor y = norm_forward(x.value(), gamma, beta, eps, center, *saved);
  // Undefined gamma/beta are passed as constant leaves so that input indices stay fixed.
  const Var none(Tensor(Shape{0}));
  return make_node(op, std::move(y), {x, gamma.defined() ? gamma : none, beta.defined() ? beta : none},
                   [saved, gamma, center](const Tensor& dy, GradSink& g) {
                     norm_backward(dy, *saved, gamma, center, g);
                   });
}
}  // namespace

// y = (x - mean) / sqrt(var + eps) * gamma + beta, var biased (as torch.nn.LayerNorm)
Var layernorm(const Var& x, const Var& gamma, const Var& beta, float eps) {
  return norm_op("layernorm", x, gamma, beta, eps, true);
}

// y = x / sqrt(mean(x^2) + eps) * gamma
Var rmsnorm(const Var& x, const Var& gamma, float eps) {
  return norm_op("rmsnorm", x, gamma, Var(), eps, false);
}

}  // namespace mxqat::autograd
