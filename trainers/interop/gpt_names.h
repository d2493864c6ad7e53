// Renaming our gpt's parameters into another runtime's names: one table per target, one function.
#pragma once
#include <string>

namespace mxqat::trainers {

// Target names of one layout. `block_prefix` + N + "." + the block part + ".weight" names a
// parameter of block N; the block parts follow our order: attn_norm, attn.q, attn.k, attn.v,
// attn.o, mlp_norm, mlp.gate, mlp.up, mlp.down.
struct GptNameTable {
  const char* layout;  // for the error: "llama.cpp's llama architecture", "a LlamaForCausalLM"
  const char* tok_emb;
  const char* norm;
  const char* head;
  const char* block_prefix;
  const char* block[9];
};

// tok_emb.weight, norm.weight, head.weight and blocks.N.<part>.weight under table `t`; any other
// name is an mxqat::Error naming it and the layout.
std::string rename_gpt_param(const std::string& name, const GptNameTable& t);

}  // namespace mxqat::trainers
