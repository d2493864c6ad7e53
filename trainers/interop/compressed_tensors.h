// Export of a gpt model as a Hugging Face llama directory in the compressed-tensors layout that
// vLLM and llm-compressor load (docs/formats.md §13): DIR/config.json (LlamaForCausalLM with a
// quantization_config) and DIR/model.safetensors. MXFP4 weights become `mxfp4-pack-quantized`
// (weight_packed U8 [out, in/2], element 2i in the low nibble; weight_scale U8 E8M0 [out, in/32]),
// NVFP4 weights `nvfp4-pack-quantized` (weight_packed; weight_scale F8_E4M3 [out, in/16];
// weight_global_scale F32 [1] = S_enc, the divisor); the codes and scales are the export's own,
// copied. Every other tensor is float32 (or bf16), weights under other codecs decoded, and their
// layers listed in `ignore`. Names and the q/k row order are Hugging Face's (rotate_half).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mxqat::trainers {

struct ExportModel;

enum class FloatDtype { kF32, kBF16 };

struct CompressedTensorsSummary {
  int64_t tensors = 0;    // in model.safetensors
  int64_t quantized = 0;  // Linear layers written packed
  int64_t bytes = 0;      // model.safetensors
  std::string format;     // quantization_config.format
};

// Our parameter name -> the Hugging Face llama name (tok_emb.weight -> model.embed_tokens.weight,
// blocks.3.attn.q.weight -> model.layers.3.self_attn.q_proj.weight, head.weight ->
// lm_head.weight, ...); throws for a name a LlamaForCausalLM has no place for.
std::string hf_llama_name(const std::string& ours);

// Row r of a q or k projection in Hugging Face's order (each head's rotate_half halves) is row
// hf_rope_row(r, head_dim) of ours (adjacent pairs): h·D + s·D/2 + i <- h·D + 2i + s.
int64_t hf_rope_row(int64_t r, int64_t head_dim);

// Writes dir/config.json and dir/model.safetensors (the directory is created). Refuses a
// non-gpt export and an export without any mxfp4 / nvfp4 weight (nothing to compress: use
// --format h5 or gguf --weights f32).
CompressedTensorsSummary write_compressed_tensors(const ExportModel& m, const std::string& dir,
                                                  FloatDtype dtype);

}  // namespace mxqat::trainers
