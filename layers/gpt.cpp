// The gpt model: a flat recipe of Linear, RMSNorm, Embedding and the attention ops.
#include "layers/gpt.h"

namespace mxqat::layers {

using namespace autograd;

void check_gpt_config(const GptConfig& c) {
  MXQAT_CHECK(c.vocab > 0 && c.layers > 0 && c.d_model > 0 && c.heads > 0 && c.context > 0 &&
                  c.mlp_hidden > 0,
              "gpt: sizes must be positive, got vocab ", c.vocab, ", layers ", c.layers,
              ", d_model ", c.d_model, ", heads ", c.heads, ", context ", c.context,
              ", mlp_hidden ", c.mlp_hidden);
  MXQAT_CHECK(c.d_model % c.heads == 0, "gpt: d_model ", c.d_model, " is not divisible by heads ",
              c.heads, "; set model.d_model to a multiple of model.heads (e.g. ",
              (c.d_model / c.heads + 1) * c.heads, ")");
  MXQAT_CHECK(c.kv_heads >= 0 && c.kv_heads <= c.heads && c.heads % c.kv_head_count() == 0,
              "gpt: kv_heads ", c.kv_heads, " must divide heads ", c.heads,
              " (grouped-query attention: each key/value head serves heads / kv_heads query "
              "heads); set model.kv_heads to a divisor of model.heads, or 0 for kv_heads = heads");
  MXQAT_CHECK((c.d_model / c.heads) % 2 == 0, "gpt: the head size d_model / heads = ",
              c.d_model / c.heads, " must be even for the rotary embedding; change model.heads");
}

Attention::Attention(const GptConfig& c, std::mt19937_64& rng)
    : heads_(c.heads), kv_heads_(c.kv_head_count()), theta_(c.rope_theta) {
  q_ = add_module("q", std::make_shared<Linear>(c.d_model, c.d_model, false, rng));
  k_ = add_module("k", std::make_shared<Linear>(c.d_model, c.kv_dim(), false, rng));
  v_ = add_module("v", std::make_shared<Linear>(c.d_model, c.kv_dim(), false, rng));
  o_ = add_module("o", std::make_shared<Linear>(c.d_model, c.d_model, false, rng));
}

namespace {
// [B, T, G * D] -> [B, T, G * r * D]: each of the G heads repeated r times in place (head h of
// the result is head h / r of x), differentiable (the gradient sums over the copies).
Var repeat_heads(const Var& x, int64_t G, int64_t r) {
  if (r == 1) return x;
  const Shape& s = x.shape();
  const int64_t D = s[2] / G;
  Var x4 = reshape(x, {s[0] * s[1], G, 1, D});
  return reshape(concat(std::vector<Var>(size_t(r), x4), 2), {s[0], s[1], G * r * D});
}
}  // namespace

Var Attention::forward(const Var& x) {
  Var q = rope(q_->forward(x), heads_, 0, theta_);
  Var k = rope(k_->forward(x), kv_heads_, 0, theta_);
  const int64_t r = heads_ / kv_heads_;
  return o_->forward(causal_attention(q, repeat_heads(k, kv_heads_, r),
                                      repeat_heads(v_->forward(x), kv_heads_, r), heads_));
}

Var Attention::forward_cached(const Var& x, KvCache& cache, int64_t layer) {
  const int64_t pos0 = cache.length();
  Var q = rope(q_->forward(x), heads_, pos0, theta_);
  Var k = rope(k_->forward(x), kv_heads_, pos0, theta_);
  cache.store(layer, k.value(), v_->forward(x).value());
  return o_->forward(Var(cache.attend(layer, q.value())));
}

SwiGluMlp::SwiGluMlp(int64_t d_model, int64_t hidden, std::mt19937_64& rng) {
  gate_ = add_module("gate", std::make_shared<Linear>(d_model, hidden, false, rng));
  up_ = add_module("up", std::make_shared<Linear>(d_model, hidden, false, rng));
  down_ = add_module("down", std::make_shared<Linear>(hidden, d_model, false, rng));
}

Var SwiGluMlp::forward(const Var& x) {
  return down_->forward(swiglu(gate_->forward(x), up_->forward(x)));
}

GptBlock::GptBlock(const GptConfig& c, std::mt19937_64& rng) {
  attn_norm_ = add_module("attn_norm", std::make_shared<RMSNorm>(c.d_model, c.norm_eps));
  attn_ = add_module("attn", std::make_shared<Attention>(c, rng));
  mlp_norm_ = add_module("mlp_norm", std::make_shared<RMSNorm>(c.d_model, c.norm_eps));
  mlp_ = add_module("mlp", std::make_shared<SwiGluMlp>(c.d_model, c.mlp_hidden, rng));
}

Var GptBlock::forward(const Var& x) {
  Var h = add(x, attn_->forward(attn_norm_->forward(x)));
  return add(h, mlp_->forward(mlp_norm_->forward(h)));
}

Var GptBlock::forward_cached(const Var& x, KvCache& cache, int64_t layer) {
  Var h = add(x, attn_->forward_cached(attn_norm_->forward(x), cache, layer));
  return add(h, mlp_->forward(mlp_norm_->forward(h)));
}

Gpt::Gpt(const GptConfig& c, uint64_t seed) : cfg_(c) {
  check_gpt_config(c);
  std::mt19937_64 rng(seed);
  tok_emb_ = add_module("tok_emb", std::make_shared<Embedding>(c.vocab, c.d_model, rng));
  blocks_ = add_module("blocks", std::make_shared<Sequential>());
  for (int64_t i = 0; i < c.layers; ++i)
    block_list_.push_back(blocks_->add(std::to_string(i), std::make_shared<GptBlock>(c, rng)));
  norm_ = add_module("norm", std::make_shared<RMSNorm>(c.d_model, c.norm_eps));
  head_ = add_module("head", std::make_shared<Linear>(c.d_model, c.vocab, false, rng));
}

Var Gpt::forward(const Var& ids) {
  MXQAT_CHECK(ids.value().ndim() == 2, "gpt: input ids must be [B, T], got ", shape_str(ids.shape()));
  MXQAT_CHECK(ids.value().dim(1) <= cfg_.context, "gpt: a sequence of ", ids.value().dim(1),
              " tokens is longer than the model's context of ", cfg_.context,
              "; shorten the input or train with a larger model.context");
  return forward_embedded(tok_emb_->forward(ids));
}

Var Gpt::forward_ids(const std::vector<int32_t>& ids, int64_t T) {
  const int64_t n = static_cast<int64_t>(ids.size());
  MXQAT_CHECK(T > 0 && n % T == 0, "gpt: ", n, " ids do not form sequences of ", T, " tokens");
  MXQAT_CHECK(T <= cfg_.context, "gpt: a sequence of ", T,
              " tokens is longer than the model's context of ", cfg_.context,
              "; shorten the input or train with a larger model.context");
  return forward_embedded(tok_emb_->lookup(ids, {n / T, T}));
}

Var Gpt::forward_cached(const std::vector<int32_t>& ids, KvCache& cache) {
  NoGradGuard no_grad;
  const int64_t n = static_cast<int64_t>(ids.size());
  MXQAT_CHECK(n > 0, "gpt: forward_cached needs at least one token");
  MXQAT_CHECK(cache.capacity() <= cfg_.context, "gpt: a KV cache of ", cache.capacity(),
              " positions is longer than the model's context of ", cfg_.context);
  cache.check_room(n);
  Var x = tok_emb_->lookup(ids, {n});
  for (size_t i = 0; i < block_list_.size(); ++i)
    x = block_list_[i]->forward_cached(x, cache, static_cast<int64_t>(i));
  cache.commit(n);
  return head_->forward(norm_->forward(x));
}

Var Gpt::forward_embedded(const Var& x) {
  return head_->forward(norm_->forward(blocks_->forward(x)));
}

}  // namespace mxqat::layers
