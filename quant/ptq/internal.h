// Helpers shared by the PTQ algorithms (rtn_mse.cpp, gptq.cpp). Internal to quant/ptq.
#pragma once
#include <string>

#include "autograd/tensor.h"
#include "quant/codec/codec.h"
#include "quant/ptq/ptq.h"

namespace mxqat::quant::ptq::detail {

// w must be 2-D [N, K] with N, K >= 1 and finite; throws naming `method` and `name`.
void check_weight(const autograd::Tensor& w, const std::string& method, const std::string& name);
// weight = decode(e) with w's shape, and Σ (w - weight)².
PtqResult finish(const autograd::Tensor& w, const Codec& codec, EncodedTensor e);

}  // namespace mxqat::quant::ptq::detail
