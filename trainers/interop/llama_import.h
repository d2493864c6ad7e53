// Import of a Hugging Face llama checkpoint (LlamaForCausalLM: config.json + model.safetensors,
// or shards listed by model.safetensors.index.json) into our gpt model.
//
// Names: model.embed_tokens -> tok_emb, model.layers.N.{input_layernorm -> attn_norm,
// self_attn.{q,k,v,o}_proj -> attn.{q,k,v,o}, post_attention_layernorm -> mlp_norm,
// mlp.{gate,up,down}_proj -> mlp.{gate,up,down}}, model.norm -> norm, lm_head -> head. A tied
// checkpoint (tie_word_embeddings, no lm_head) gets head.weight = a copy of the embedding: our
// model keeps the two as separate parameters, so QAT may move them apart.
// Rotary layout: Hugging Face rotates the pairs (i, i + D/2) of each head (rotate_half); our rope
// rotates adjacent pairs (2i, 2i + 1), as llama.cpp and Meta's original llama. The rows of q_proj
// and k_proj are permuted per head on import, row i -> 2i and row i + D/2 -> 2i + 1, so that every
// query-key product, and hence the logits, stay the same.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.h"
#include "layers/module.h"
#include "trainers/recipe/recipe.h"

namespace mxqat::trainers {

struct LlamaCheckpoint {
  std::string dir;
  // type gpt and every size from config.json; context = max_position_embeddings.
  ModelCfg model;
  bool tied = false;  // tie_word_embeddings
  // Our parameter names in model order, q/k rows permuted, float32 (F16/BF16 widened exactly).
  std::vector<std::pair<std::string, autograd::Tensor>> params;
  std::string dtypes;  // e.g. "BF16" or "F32, F16", for the log
  int64_t files = 0;   // safetensors files read
};

// Reads config.json only: the gpt model section it describes. Refuses (naming the key and the
// value) any other architecture, an activation other than silu, biases, rope scaling, and a
// head_dim other than hidden_size / num_attention_heads.
ModelCfg read_llama_config(const std::string& dir);

// Reads config.json and every tensor; each tensor's shape is checked against the config, and a
// missing, extra or mis-shaped tensor, or a dtype other than F32/F16/BF16, is an error naming it.
LlamaCheckpoint read_llama(const std::string& dir);

// Every model key of `recipe` that must match the checkpoint (sizes, kv_heads, rope_theta,
// norm_eps) and does not: one error listing them with both values, and the fix. recipe.context
// may be smaller than the checkpoint's max_position_embeddings (training windows), not larger.
void check_llama_model(const ModelCfg& recipe, const LlamaCheckpoint& ck);

// Copies the checkpoint into `model` (a gpt built from a matching recipe), by name and shape.
void load_llama(layers::Module& model, const LlamaCheckpoint& ck);

// `--set` overrides that make a recipe's model section the checkpoint's (read_llama_config):
// every size, model.from = its directory, and model.context = `context` (0 = the
// max_position_embeddings, m.context).
std::vector<std::string> llama_model_overrides(const ModelCfg& m, int64_t context);

}  // namespace mxqat::trainers
