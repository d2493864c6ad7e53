// Shared by the step benchmarks: the MXFP4 W+A quantizer that bench_qat_step and bench_gpt_step
// attach, so both time the same QAT configuration.
#pragma once
#include <memory>
#include <vector>

#include "layers/module.h"
#include "quant/codec/codec.h"
#include "quant/fake/qgemm.h"

namespace mxqat::bench {

// Attaches one MXFP4 QuantGemm (weights and input activations, FLOOR scale, clipped STE) to every
// GEMM layer of `model`; returns how many (their quantizers are appended to `out` when given).
// `product` picks the forward product (docs/formats.md §14): fp32_chain (the default) or mx_native.
// `sr_backward`: the backward of recipes/kjv_gpt_mxfp4_sr.yaml too, every operand of dX and dW in
// MXFP4 (dY, and W, X requantized along the backward's reduction axes) with stochastic rounding,
// each layer its own random stream; the backward products are then `product` as well (§14.3).
inline int quantize_mxfp4(layers::Module& model,
                          quant::Product product = quant::Product::kFp32Chain,
                          bool sr_backward = false,
                          std::vector<std::shared_ptr<quant::QuantGemm>>* out = nullptr) {
  int n = 0;
  for (auto& [name, m] : model.named_modules()) {
    auto* g = dynamic_cast<layers::GemmLayer*>(m);
    if (!g) continue;
    quant::GemmQuantSpec spec;
    spec.weight = quant::make_codec_or_none("mxfp4");
    spec.input = quant::make_codec_or_none("mxfp4");
    spec.ste = quant::Ste::kClipped;
    spec.product = product;
    if (sr_backward) {
      spec.grad_output = quant::make_codec_or_none("mxfp4");
      spec.grad_rounding = quant::Rounding::kStochastic;
      spec.requantize_backward = true;
      spec.sr_seed = 1;
      spec.sr_stream = static_cast<uint64_t>(n);
      spec.backward_product = product;
    }
    auto q = std::make_shared<quant::QuantGemm>(spec);
    g->set_quantizer(q);
    if (out) out->push_back(q);
    ++n;
  }
  return n;
}

}  // namespace mxqat::bench
