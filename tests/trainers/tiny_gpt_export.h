// A gpt export made in memory for the interop tests: 2 layers, d_model 64, heads 2 (head size
// 32), mlp_hidden 96, random weights; attention projections under `attn_codec`, MLP projections
// under `mlp_codec`, the head MXFP8, every input activation under its layer's weight codec, the
// embedding and norms float32.
#pragma once
#include <string>
#include <vector>

#include "layers/gpt.h"
#include "quant/codec/codec.h"
#include "trainers/io/export.h"

namespace mxqat::trainers {

// Our parameter names with their llama.cpp (GGUF) and Hugging Face names.
struct GptNameCase {
  const char *ours, *gguf, *hf;
};
inline const std::vector<GptNameCase>& gpt_name_cases() {
  static const std::vector<GptNameCase> cases = {
      {"tok_emb.weight", "token_embd.weight", "model.embed_tokens.weight"},
      {"blocks.0.attn_norm.weight", "blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight"},
      {"blocks.12.attn.q.weight", "blk.12.attn_q.weight", "model.layers.12.self_attn.q_proj.weight"},
      {"blocks.11.attn.k.weight", "blk.11.attn_k.weight", "model.layers.11.self_attn.k_proj.weight"},
      {"blocks.1.attn.v.weight", "blk.1.attn_v.weight", "model.layers.1.self_attn.v_proj.weight"},
      {"blocks.1.attn.o.weight", "blk.1.attn_output.weight", "model.layers.1.self_attn.o_proj.weight"},
      {"blocks.2.mlp_norm.weight", "blk.2.ffn_norm.weight",
       "model.layers.2.post_attention_layernorm.weight"},
      {"blocks.2.mlp.gate.weight", "blk.2.ffn_gate.weight", "model.layers.2.mlp.gate_proj.weight"},
      {"blocks.3.mlp.up.weight", "blk.3.ffn_up.weight", "model.layers.3.mlp.up_proj.weight"},
      {"blocks.3.mlp.down.weight", "blk.3.ffn_down.weight", "model.layers.3.mlp.down_proj.weight"},
      {"norm.weight", "output_norm.weight", "model.norm.weight"},
      {"head.weight", "output.weight", "lm_head.weight"}};
  return cases;
}

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
