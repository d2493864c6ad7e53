// GemmQuantizer: the one point where a GEMM-bearing layer (Linear, Conv2d) hands its operands to
// quantization. A layer with no quantizer runs in full precision. quant/fake implements it with
// codecs; layers never see a codec. Each operand is blocked along the reduction axis of the GEMM
// it feeds (STYLE.md §6), which is why the quantizer owns the whole GEMM (forward and backward):
// the output gradient, if quantized, is blocked differently for dX (along N) and dW (along tokens).
#pragma once
#include <string>

#include "autograd/ops.h"

namespace mxqat::quant {

class GemmQuantizer {
 public:
  virtual ~GemmQuantizer() = default;
  // y = Q(x) Q(w)^T + b with x [..., K] (conv: im2col patches [B*Ho*Wo, C*kh*kw]) and
  // w [N, K] (conv: [O, C*kh*kw]); both blocked along K.
  virtual autograd::Var linear(const autograd::Var& x, const autograd::Var& w,
                               const autograd::Var& bias) = 0;
  // The same with the layer's learned weight-scale offsets, scale [N] (quant.learned_scale: lsq,
  // quant/fake/lsq.h), a parameter of the layer. A quantizer that does not quantize the weight
  // (inference on decoded weights) ignores them.
  virtual autograd::Var linear_scaled(const autograd::Var& x, const autograd::Var& w,
                                      const autograd::Var& bias, const autograd::Var& /*scale*/) {
    return linear(x, w, bias);
  }
  virtual std::string describe() const = 0;  // for the policy table, e.g. "w=mxfp4 a=mxfp4"
};

}  // namespace mxqat::quant
