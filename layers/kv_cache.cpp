// KvCache: storage, optional quantization of stored rows, and attention over the cache.
#include "layers/kv_cache.h"

#include <algorithm>
#include <cmath>

#include "layers/gpt.h"

namespace mxqat::layers {

using autograd::Shape;
using autograd::Tensor;

namespace {
// Fixed-order dot product: 8 lanes combined in a fixed tree, so the order depends on n only.
float dot(const float* x, const float* y, int64_t n) {
  float acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += x[i + j] * y[i + j];
  for (int j = 0; i < n; ++i, ++j) acc[j] += x[i] * y[i];
  return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}
}  // namespace

const std::vector<std::string>& KvCache::codec_names() {
  static const std::vector<std::string> kNames = [] {
    std::vector<std::string> n{"none"};
    for (const auto& c : quant::Codec::names()) n.push_back(c);
    return n;
  }();
  return kNames;
}

KvCache::KvCache(const GptConfig& c, const std::string& codec, int64_t capacity)
    : layers_(c.layers), heads_(c.heads), kv_heads_(c.kv_head_count()), C_(c.d_model),
      Ckv_(c.kv_dim()), D_(c.head_dim()),
      capacity_(capacity == 0 ? c.context : capacity), codec_name_(codec) {
  check_gpt_config(c);
  MXQAT_CHECK(capacity_ > 0 && capacity_ <= c.context, "KV cache: capacity ", capacity,
              " must lie in 1 .. the model's context of ", c.context, " (0 = the context)");
  if (codec != "none") {
    MXQAT_CHECK(std::find(codec_names().begin(), codec_names().end(), codec) != codec_names().end(),
                "KV cache: unknown kv_cache codec '", codec, "'; use none or a codec name such as "
                "mxfp8_e4m3 or int8_sym");
    codec_ = quant::Codec::make(codec);
  }
  k_.assign(size_t(layers_), Tensor(Shape{capacity_, Ckv_}));
  v_.assign(size_t(layers_), Tensor(Shape{capacity_, Ckv_}));
}

void KvCache::check_room(int64_t n) const {
  MXQAT_CHECK(n >= 0 && length_ + n <= capacity_, "KV cache: it holds ", length_, " of ", capacity_,
              " positions (the model's context); ", n, " more tokens would not fit. Start a new "
              "sequence (clear the cache) or keep prompt + generated tokens within the context");
}

void KvCache::store(int64_t layer, const Tensor& k, const Tensor& v) {
  MXQAT_CHECK(layer >= 0 && layer < layers_, "KV cache: layer ", layer, " of ", layers_);
  MXQAT_CHECK(k.cols() == Ckv_ && v.cols() == Ckv_ && k.rows() == v.rows(), "KV cache: k ",
              autograd::shape_str(k.shape()), " and v ", autograd::shape_str(v.shape()),
              " must be [n, ", Ckv_, "] with one n");
  const int64_t n = k.rows();
  check_room(n);
  float* kd = k_[size_t(layer)].data() + length_ * Ckv_;
  float* vd = v_[size_t(layer)].data() + length_ * Ckv_;
  if (!codec_) {
    std::copy(k.data(), k.data() + n * Ckv_, kd);
    std::copy(v.data(), v.data() + n * Ckv_, vd);
    return;
  }
  // n rows of [kv_heads, D]: n * kv_heads codec rows of D elements, blocks along the head dimension.
  codec_->fake_quant(k.data(), n * kv_heads_, D_, kd);
  codec_->fake_quant(v.data(), n * kv_heads_, D_, vd);
}

// Per new row i (position p = length + i) and head h, over the stored positions j <= p:
//   s_j = (q . k_j) / sqrt(D),  P_j = exp(s_j - max s) / sum(...),  out = sum_j P_j v_j
// as causal_attention computes it (normalise P, then the value product).
Tensor KvCache::attend(int64_t layer, const Tensor& q) const {
  MXQAT_CHECK(layer >= 0 && layer < layers_, "KV cache: layer ", layer, " of ", layers_);
  MXQAT_CHECK(q.cols() == C_, "KV cache: q ", autograd::shape_str(q.shape()), " must be [n, ", C_, "]");
  const int64_t n = q.rows();
  check_room(n);
  const float scale = 1.f / std::sqrt(static_cast<float>(D_));
  const float* K = k_[size_t(layer)].data();
  const float* V = v_[size_t(layer)].data();
  Tensor out(Shape{n, C_});
  const int64_t L = length_ + n;
  std::vector<float> scores(size_t(n * heads_ * L));
  const int64_t pairs = n * heads_;
#pragma omp parallel for schedule(static) if (pairs > 1 && pairs * L * D_ > (1 << 15))
  for (int64_t ih = 0; ih < pairs; ++ih) {
    const int64_t i = ih / heads_, h0 = (ih % heads_) * D_, len = length_ + i + 1;
    const int64_t g0 = (ih % heads_) / (heads_ / kv_heads_) * D_;  // its key/value head
    const float* qr = q.data() + i * C_ + h0;
    float* s = scores.data() + ih * L;
    float m = -INFINITY;
    for (int64_t j = 0; j < len; ++j) {
      s[j] = dot(qr, K + j * Ckv_ + g0, D_) * scale;
      m = std::max(m, s[j]);
    }
    float total = 0.f;
    for (int64_t j = 0; j < len; ++j) total += (s[j] = std::exp(s[j] - m));
    const float inv = 1.f / total;
    float* o = out.data() + i * C_ + h0;
    std::fill(o, o + D_, 0.f);
    for (int64_t j = 0; j < len; ++j) {
      const float p = s[j] * inv;
      const float* vr = V + j * Ckv_ + g0;
      for (int64_t d = 0; d < D_; ++d) o[d] += p * vr[d];
    }
  }
  return out;
}

void KvCache::commit(int64_t n) {
  check_room(n);
  length_ += n;
}

// A head row of D elements as a cache would hold it: ceil(D bits / 8) code bytes (no padding of a
// ragged block, unlike spec §8's 32-element rows) plus its block scales (E8M0 / E4M3: 1 byte each;
// INT: a float32 scale, and a zero-point byte if asymmetric). NVFP4's one per-tensor float is not
// counted.
int64_t KvCache::bytes_per_token() const {
  if (!codec_) return 2 * layers_ * 4 * Ckv_;
  const auto scheme = codec_->block_format().scheme;
  const int64_t scale_bytes = scheme == quant::BlockScheme::kIntSym    ? 4
                              : scheme == quant::BlockScheme::kIntAsym ? 5
                                                                       : 1;
  const int64_t row = (D_ * codec_->element_bits() + 7) / 8 + codec_->num_blocks(D_) * scale_bytes;
  return 2 * layers_ * kv_heads_ * row;
}

}  // namespace mxqat::layers
