// GemmQuantizer: the one point where a GEMM-bearing layer (Linear, Conv2d) hands its operands to
// quantization. A layer with no quantizer runs in full precision. quant/fake implements it with
// codecs (weight blocked along the reduction axis, input likewise); layers never see a codec.
#pragma once
#include <string>

#include "autograd/var.h"

namespace mxqat::quant {

class GemmQuantizer {
 public:
  virtual ~GemmQuantizer() = default;
  // w [N, K] (conv: [O, C*kh*kw]), blocked along K. Called once per forward.
  virtual autograd::Var weight(const autograd::Var& w) = 0;
  // x [..., K] (conv: im2col patches [B*Ho*Wo, C*kh*kw]), blocked along K.
  virtual autograd::Var input(const autograd::Var& x) = 0;
  virtual std::string describe() const = 0;  // for the policy table, e.g. "w=mxfp4 a=mxfp4"
};

}  // namespace mxqat::quant
