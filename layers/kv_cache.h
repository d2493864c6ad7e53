// The key/value cache of incremental GPT decoding (one sequence): per layer, the rotated keys and
// the values of every position seen so far, [capacity, Ckv] (Ckv = kv_heads * head_dim: a
// grouped-query model stores only its key/value heads), and the attention of new queries
// against them. Optionally quantized with a block codec (quant/codec): each stored row is viewed
// as [heads, head_dim] and fake-quantized with blocks along the head dimension, so no block
// straddles two heads (blocks may be ragged, e.g. 32 + 16 for head_dim 48). No autograd: used
// under NoGradGuard by Gpt::forward_cached (layers/gpt.h) and the generation code in trainers/.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "autograd/tensor.h"
#include "quant/codec/codec.h"

namespace mxqat::layers {

struct GptConfig;

class KvCache {
 public:
  // codec: "none" (float32 rows) or a quant::Codec name (mxfp8_e4m3, int8_sym, ...). capacity
  // 0 = the model's context, the longest sequence the model accepts (and the largest allowed).
  KvCache(const GptConfig& c, const std::string& codec = "none", int64_t capacity = 0);

  static const std::vector<std::string>& codec_names();  // "none" then the codec table

  int64_t length() const { return length_; }  // positions stored (committed)
  int64_t capacity() const { return capacity_; }
  const std::string& codec_name() const { return codec_name_; }
  void clear() { length_ = 0; }

  // Refuses (mxqat::Error naming the lengths) to take n more positions past the capacity.
  void check_room(int64_t n) const;
  // Stores layer `layer`'s new rows k, v [n, Ckv] at positions length() .. length() + n - 1,
  // quantized by the cache's codec. The length moves only with commit(n), after every layer.
  void store(int64_t layer, const autograd::Tensor& k, const autograd::Tensor& v);
  // Causal attention of the new queries q [n, C] (positions length() .. length() + n - 1) over the
  // stored rows 0 .. length() + i of the same layer, per query head h with key/value head
  // h / (heads / kv_heads): softmax(q k^T / sqrt(D)) v. Returns [n, C]. Each (row, head) is
  // one sequential computation: same bits for any threads.
  autograd::Tensor attend(int64_t layer, const autograd::Tensor& q) const;
  void commit(int64_t n);

  // Bytes one position occupies in the cache when stored packed (K and V of every layer): per
  // head row of head_dim elements its codes (element bits, no padding) and block scales, or 4
  // per float for none. (This cache keeps the decoded floats; the figure is what packing gives.)
  int64_t bytes_per_token() const;

 private:
  int64_t layers_, heads_, kv_heads_, C_, Ckv_, D_, capacity_;
  int64_t length_ = 0;
  std::string codec_name_;
  std::optional<quant::Codec> codec_;
  std::vector<autograd::Tensor> k_, v_;  // per layer [capacity, Ckv]
};

}  // namespace mxqat::layers
