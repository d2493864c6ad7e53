// The llama-style GPT (byte-level by default): token embedding, N blocks of [RMSNorm -> causal
// multi-head attention with rotary embedding (grouped-query when kv_heads < heads) -> residual,
// RMSNorm -> SwiGLU MLP -> residual], final RMSNorm, output head; no biases. Every projection
// (q, k, v, o, gate, up, down, head) is a Linear, so the quant hook applies to each. Parameter names follow llama: tok_emb.weight,
// blocks.0.attn_norm.weight, blocks.0.attn.{q,k,v,o}.weight, blocks.0.mlp_norm.weight,
// blocks.0.mlp.{gate,up,down}.weight, norm.weight, head.weight.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "layers/basic.h"
#include "layers/kv_cache.h"

namespace mxqat::layers {

struct GptConfig {
  int64_t vocab = 256;      // bytes
  int64_t layers = 4;
  int64_t d_model = 256;
  int64_t heads = 4;        // d_model / heads must be an even head size (rope pairs)
  int64_t kv_heads = 0;     // key/value heads (grouped-query attention), dividing heads; 0 = heads
  int64_t context = 128;    // longest sequence the model accepts
  int64_t mlp_hidden = 768;
  float rope_theta = 10000.f;
  float norm_eps = 1e-5f;

  int64_t head_dim() const { return d_model / heads; }
  int64_t kv_head_count() const { return kv_heads > 0 ? kv_heads : heads; }
  int64_t kv_dim() const { return kv_head_count() * head_dim(); }  // width of k and v
};

// Refuses sizes the model cannot be built with (d_model not a multiple of heads, odd head size,
// non-positive sizes, kv_heads not dividing heads), naming the recipe keys.
void check_gpt_config(const GptConfig& c);

// x [B, T, C] -> [B, T, C]: q, k, v projections, rope on q and k, fused causal attention, o.
// With kv_heads < heads, k and v are [B, T, kv_heads * D] and query head h attends with key/value
// head h / (heads / kv_heads), as llama's grouped-query attention.
class Attention : public Module {
 public:
  Attention(const GptConfig& c, std::mt19937_64& rng);
  Var forward(const Var& x) override;
  // Incremental: x [n, C] at positions cache.length() .. + n - 1; stores this layer's rotated
  // keys and values in the cache, attends over everything stored -> [n, C]. No graph.
  Var forward_cached(const Var& x, KvCache& cache, int64_t layer);
  std::string kind() const override { return "Attention"; }

 private:
  int64_t heads_, kv_heads_;
  float theta_;
  std::shared_ptr<Linear> q_, k_, v_, o_;
};

// x [B, T, C] -> [B, T, C]: down(silu(gate(x)) * up(x)).
class SwiGluMlp : public Module {
 public:
  SwiGluMlp(int64_t d_model, int64_t hidden, std::mt19937_64& rng);
  Var forward(const Var& x) override;
  std::string kind() const override { return "SwiGluMlp"; }

 private:
  std::shared_ptr<Linear> gate_, up_, down_;
};

// x + attn(attn_norm(x)), then h + mlp(mlp_norm(h)).
class GptBlock : public Module {
 public:
  GptBlock(const GptConfig& c, std::mt19937_64& rng);
  Var forward(const Var& x) override;
  Var forward_cached(const Var& x, KvCache& cache, int64_t layer);  // x [n, C], as Attention's
  std::string kind() const override { return "GptBlock"; }

 private:
  std::shared_ptr<RMSNorm> attn_norm_, mlp_norm_;
  std::shared_ptr<Attention> attn_;
  std::shared_ptr<SwiGluMlp> mlp_;
};

class Gpt : public Module {
 public:
  Gpt(const GptConfig& c, uint64_t seed);
  // ids [B, T] (byte values held as floats, T <= context) -> logits [B, T, vocab]
  Var forward(const Var& ids) override;
  // The same from integer ids, B = ids.size() / T.
  Var forward_ids(const std::vector<int32_t>& ids, int64_t T);
  // Incremental decoding of one sequence: the next ids (n >= 1; the prompt at once, then one
  // token per step) continue the sequence held by `cache` -> logits [n, vocab] for them, and the
  // cache grows by n. Builds no graph (NoGradGuard inside); projections pass the quant hook as in
  // forward. With a "none" cache the logits equal forward's on the whole prefix up to rounding of
  // the attention sums (the projections are bit-identical: each GEMM row is one fma chain).
  // A cache that would grow past its capacity (the context) is an error naming both lengths.
  Var forward_cached(const std::vector<int32_t>& ids, KvCache& cache);
  std::string kind() const override { return "gpt"; }
  const GptConfig& config() const { return cfg_; }

 private:
  Var forward_embedded(const Var& x);  // [B, T, C] -> logits
  GptConfig cfg_;
  std::vector<std::shared_ptr<GptBlock>> block_list_;  // blocks_ in order, for forward_cached
  std::shared_ptr<Embedding> tok_emb_;
  std::shared_ptr<Sequential> blocks_;
  std::shared_ptr<RMSNorm> norm_;
  std::shared_ptr<Linear> head_;
};

}  // namespace mxqat::layers
