// A gpt export made in memory for the interop tests: 2 layers, d_model 64, heads 2 (head size
// 32), mlp_hidden 96, random weights; attention projections under `attn_codec`, MLP projections
// under `mlp_codec`, the head MXFP8, every input activation under its layer's weight codec, the
// embedding and norms float32.
#pragma once
#include <string>

#include "layers/gpt.h"
#include "quant/codec/codec.h"
#include "trainers/io/export.h"

namespace mxqat::trainers {

inline ExportModel tiny_gpt_export(const std::string& attn_codec = "mxfp4",
                                   const std::string& mlp_codec = "mxfp4") {
  layers::GptConfig cfg;
  cfg.layers = 2;
  cfg.d_model = 64;
  cfg.heads = 2;
  cfg.context = 16;
  cfg.mlp_hidden = 96;
  layers::Gpt model(cfg, 4);
  ExportModel m;
  m.source = "tiny.h5";
  m.recipe_text =
      "name: tiny\ndata: {dataset: text, dir: nowhere}\n"
      "model: {type: gpt, layers: 2, d_model: 64, heads: 2, context: 16, mlp_hidden: 96}\n"
      "train: {steps: 1, optimizer: {type: adamw, lr: 1.0e-3}}\n";
  for (const auto& [name, p] : model.named_parameters()) {
    ExportTensor t;
    t.name = name;
    t.shape = p.value().shape();
    const bool attn = name.find(".attn.") != std::string::npos, mlp = name.find(".mlp.") != std::string::npos;
    if (attn || mlp || name == "head.weight") {
      const std::string codec = attn ? attn_codec : mlp ? mlp_codec : "mxfp8_e4m3";
      t.quantized = true;
      t.packed = quant::Codec::make(codec).encode(p.value().data(), t.shape[0], t.shape[1]);
      m.activations.push_back({name.substr(0, name.size() - 7), codec});
    } else {
      t.value = p.value();
    }
    m.tensors.push_back(std::move(t));
  }
  return m;
}

}  // namespace mxqat::trainers
