// Tiny Hugging Face llama checkpoints written by the tests themselves (config.json + safetensors,
// single file or sharded with model.safetensors.index.json), never downloaded.
#pragma once
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "trainers/interop/safetensors.h"
#include "trainers/util/json_write.h"

namespace mxqat::testing {

using trainers::SafetensorsWriter;
using trainers::write_file_atomic;

struct LlamaSpec {
  int64_t vocab = 300, layers = 2, d_model = 64, heads = 4, kv_heads = 2, mlp_hidden = 160;
  int64_t max_pos = 64;
  double rope_theta = 10000.0, eps = 1e-6;
  bool tied = false;
  std::string dtype = "F32";  // F32 | F16 | BF16
  int shards = 1;             // > 1: model-0000k-of-0000n.safetensors + index
  uint64_t seed = 1;
  std::string extra_config;   // appended to config.json's object, e.g. ", \"rope_scaling\": {}"
};

// name -> (shape, values) in Hugging Face naming and layout, seeded.
inline std::vector<std::pair<std::string, std::pair<std::vector<int64_t>, std::vector<float>>>>
llama_tensors(const LlamaSpec& s) {
  std::mt19937_64 rng(s.seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  const int64_t C = s.d_model, D = C / s.heads, KV = s.kv_heads * D, I = s.mlp_hidden, V = s.vocab;
  std::vector<std::pair<std::string, std::pair<std::vector<int64_t>, std::vector<float>>>> out;
  auto add = [&](const std::string& n, std::vector<int64_t> shape, float stdev, float mean = 0.f) {
    int64_t count = 1;
    for (int64_t d : shape) count *= d;
    std::vector<float> v(static_cast<size_t>(count));
    for (auto& x : v) x = mean + stdev * nd(rng);
    out.push_back({n, {std::move(shape), std::move(v)}});
  };
  const float wc = 1.f / std::sqrt(float(C)), wi = 1.f / std::sqrt(float(I));
  add("model.embed_tokens.weight", {V, C}, 1.f);
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {C}, 0.1f, 1.f);
    add(p + "self_attn.q_proj.weight", {C, C}, 2.f * wc);  // peaked attention: rope matters
    add(p + "self_attn.k_proj.weight", {KV, C}, 2.f * wc);
    add(p + "self_attn.v_proj.weight", {KV, C}, wc);
    add(p + "self_attn.o_proj.weight", {C, C}, wc);
    add(p + "post_attention_layernorm.weight", {C}, 0.1f, 1.f);
    add(p + "mlp.gate_proj.weight", {I, C}, wc);
    add(p + "mlp.up_proj.weight", {I, C}, wc);
    add(p + "mlp.down_proj.weight", {C, I}, wi);
  }
  add("model.norm.weight", {C}, 0.1f, 1.f);
  if (!s.tied) add("lm_head.weight", {V, C}, wc);
  return out;
}

inline std::string llama_config_json(const LlamaSpec& s) {
  std::ostringstream os;
  os.precision(17);
  os << "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"model_type\": \"llama\",\n"
     << "  \"hidden_size\": " << s.d_model << ",\n  \"intermediate_size\": " << s.mlp_hidden
     << ",\n  \"num_hidden_layers\": " << s.layers << ",\n  \"num_attention_heads\": " << s.heads
     << ",\n  \"num_key_value_heads\": " << s.kv_heads << ",\n  \"vocab_size\": " << s.vocab
     << ",\n  \"max_position_embeddings\": " << s.max_pos << ",\n  \"rms_norm_eps\": " << s.eps
     << ",\n  \"rope_theta\": " << s.rope_theta << ",\n  \"rope_scaling\": null,\n"
     << "  \"hidden_act\": \"silu\",\n  \"attention_bias\": false,\n  \"tie_word_embeddings\": "
     << (s.tied ? "true" : "false") << ",\n  \"torch_dtype\": \"float32\"" << s.extra_config
     << "\n}\n";
  return os.str();
}

// Writes config.json and the weights into `dir` (created); returns dir.
inline std::string write_llama(const std::string& dir, const LlamaSpec& s) {
  namespace fs = std::filesystem;
  fs::remove_all(dir);
  fs::create_directories(dir);
  write_file_atomic(dir + "/config.json", llama_config_json(s));
  const auto tensors = llama_tensors(s);
  std::vector<SafetensorsWriter> files(size_t(s.shards));
  std::string index = "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {";
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, t] = tensors[i];
    const size_t f = i * files.size() / tensors.size();
    if (s.dtype == "F32") files[f].add_f32(name, t.first, t.second.data());
    else if (s.dtype == "F16") files[f].add_f16(name, t.first, t.second.data());
    else files[f].add_bf16(name, t.first, t.second.data());
    char shard[64];
    std::snprintf(shard, sizeof shard, "model-%05zu-of-%05d.safetensors", f + 1, s.shards);
    index += (i ? ", \"" : "\"") + name + "\": \"" + shard + "\"";
  }
  for (auto& f : files) f.set_metadata("format", "pt");
  if (s.shards == 1) {
    files[0].write(dir + "/model.safetensors");
    return dir;
  }
  for (size_t f = 0; f < files.size(); ++f) {
    char shard[64];
    std::snprintf(shard, sizeof shard, "model-%05zu-of-%05d.safetensors", f + 1, s.shards);
    files[f].write(dir + "/" + shard);
  }
  write_file_atomic(dir + "/model.safetensors.index.json", index + "}}\n");
  return dir;
}

}  // namespace mxqat::testing
