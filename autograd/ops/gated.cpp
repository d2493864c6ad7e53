// Gated activations: swiglu, the SiLU-gated product of a llama MLP (silu(gate) * up) fused into
// one node, saving the two passes and the temporaries of silu followed by mul.
// Not here: the gate/up/down projections (layers/gpt). Fixed chunks: same bits for any threads.
#include "autograd/ops.h"
#include "autograd/ops/row_kernels.h"

namespace mxqat::autograd {

// y = silu(g) u = g sigmoid(g) u, with s = sigmoid(g):
//   dg = dy u s (1 + g (1 - s))      du = dy g s
Var swiglu(const Var& gate, const Var& up) {
  MXQAT_CHECK(gate.shape() == up.shape(), "swiglu: gate ", shape_str(gate.shape()), " and up ",
              shape_str(up.shape()), " must have one shape");
  Tensor y = Tensor::uninit(gate.shape());
  detail::for_chunks(y.size(), [&](int64_t i0, int64_t i1) {
    const ConstArrMap gs(gate.value().data() + i0, i1 - i0), us(up.value().data() + i0, i1 - i0);
    ArrMap(y.data() + i0, i1 - i0) = gs * gs.logistic() * us;
  });
  return make_node("swiglu", std::move(y), {gate, up}, [gate, up](const Tensor& dy, GradSink& g) {
    Tensor dg = Tensor::uninit(dy.shape()), du = Tensor::uninit(dy.shape());
    const bool wg = g.wants(0), wu = g.wants(1);
    detail::for_chunks(dy.size(), [&](int64_t i0, int64_t i1) {
      const int64_t n = i1 - i0;
      const ConstArrMap d(dy.data() + i0, n), gs(gate.value().data() + i0, n),
          us(up.value().data() + i0, n);
      const Eigen::ArrayXf s = gs.logistic();
      if (wg) ArrMap(dg.data() + i0, n) = d * us * s * (1.f + gs * (1.f - s));
      if (wu) ArrMap(du.data() + i0, n) = d * gs * s;
    });
    if (wg) g.add(0, std::move(dg));
    if (wu) g.add(1, std::move(du));
  });
}

}  // namespace mxqat::autograd
