// Shared by the step benchmarks: the MXFP4 W+A quantizer that bench_qat_step and bench_gpt_step
// attach, so both time the same QAT configuration.
#pragma once
#include <memory>

#include "layers/module.h"
#include "quant/codec/codec.h"
#include "quant/fake/qgemm.h"

namespace mxqat::bench {

// Attaches one MXFP4 QuantGemm (weights and input activations, FLOOR scale, clipped STE) to every
// GEMM layer of `model`; returns how many.
// `product` picks the forward product (docs/formats.md §14): fp32_chain (the default) or mx_native.
inline int quantize_mxfp4(layers::Module& model,
                          quant::Product product = quant::Product::kFp32Chain) {
  int n = 0;
  for (auto& [name, m] : model.named_modules()) {
    auto* g = dynamic_cast<layers::GemmLayer*>(m);
    if (!g) continue;
    quant::GemmQuantSpec spec;
    spec.weight = quant::make_codec_or_none("mxfp4");
    spec.input = quant::make_codec_or_none("mxfp4");
    spec.ste = quant::Ste::kClipped;
    spec.product = product;
    g->set_quantizer(std::make_shared<quant::QuantGemm>(spec));
    ++n;
  }
  return n;
}

}  // namespace mxqat::bench
