// The basic layers. Every GEMM goes through GemmLayer::gemm (the quant hook).
#include "layers/basic.h"

#include <cmath>

namespace mxqat::layers {

using namespace autograd;

Linear::Linear(int64_t in, int64_t out, bool bias, std::mt19937_64& rng) : in_(in), out_(out) {
  MXQAT_CHECK(in > 0 && out > 0, "Linear: sizes must be positive, got ", in, " -> ", out);
  // As torch.nn.Linear: weight and bias U(±1/sqrt(in)).
  weight_ = add_param("weight", init_tensor({out, in}, Init::kFanInUniform, in, out, rng));
  if (bias) bias_ = add_param("bias", init_tensor({out}, Init::kFanInUniform, in, out, rng));
}

Var Linear::forward(const Var& x) {
  MXQAT_CHECK(x.value().ndim() >= 1 && x.value().dim(-1) == in_, "Linear: input has ",
              x.value().ndim() ? x.value().dim(-1) : 0, " features (shape ",
              shape_str(x.shape()), ") but the weight expects ", in_,
              "; check the model sizes in the recipe");
  return gemm(x, weight_, bias_);
}

Conv2d::Conv2d(int64_t in_ch, int64_t out_ch, int kernel, int stride, int padding, bool bias,
               std::mt19937_64& rng)
    : in_ch_(in_ch), out_ch_(out_ch), kernel_(kernel), stride_(stride), padding_(padding) {
  MXQAT_CHECK(in_ch > 0 && out_ch > 0 && kernel > 0 && stride > 0 && padding >= 0,
              "Conv2d: bad sizes in=", in_ch, " out=", out_ch, " kernel=", kernel,
              " stride=", stride, " padding=", padding);
  const int64_t fan_in = in_ch * kernel * kernel;
  weight_ = add_param("weight", init_tensor({out_ch, in_ch, kernel, kernel}, Init::kFanInUniform,
                                            fan_in, out_ch, rng));
  if (bias) bias_ = add_param("bias", init_tensor({out_ch}, Init::kFanInUniform, fan_in, out_ch, rng));
}

Var Conv2d::forward(const Var& x) {
  const Tensor& xv = x.value();
  MXQAT_CHECK(xv.ndim() == 4 && xv.dim(1) == in_ch_, "Conv2d: input ", shape_str(xv.shape()),
              " is not [B, ", in_ch_, ", H, W]; check the model's channels in the recipe");
  const int64_t b = xv.dim(0), h = xv.dim(2), w = xv.dim(3);
  const int64_t ho = (h + 2 * padding_ - kernel_) / stride_ + 1;
  const int64_t wo = (w + 2 * padding_ - kernel_) / stride_ + 1;
  MXQAT_CHECK(ho > 0 && wo > 0, "Conv2d: input ", shape_str(xv.shape()), " is smaller than the ",
              kernel_, "x", kernel_, " kernel");
  Var patches = im2col(x, kernel_, kernel_, stride_, padding_);  // [B*Ho*Wo, C*k*k]
  Var w2d = reshape(weight_, {out_ch_, in_ch_ * kernel_ * kernel_});
  Var y = gemm(patches, w2d, bias_);              // [B*Ho*Wo, O]
  y = reshape(y, {b, ho * wo, out_ch_});
  y = permute(y, {0, 2, 1});                      // [B, O, Ho*Wo]
  return reshape(y, {b, out_ch_, ho, wo});
}

Embedding::Embedding(int64_t vocab, int64_t dim, std::mt19937_64& rng) : vocab_(vocab) {
  MXQAT_CHECK(vocab > 0 && dim > 0, "Embedding: sizes must be positive, got ", vocab, "x", dim);
  weight_ = add_param("weight", init_tensor({vocab, dim}, Init::kStdNormal, dim, vocab, rng));
}

Var Embedding::lookup(const std::vector<int32_t>& ids, Shape out_shape) {
  return embedding(weight_, ids, std::move(out_shape));
}

Var Embedding::forward(const Var& ids) {
  const Tensor& v = ids.value();
  std::vector<int32_t> idx(static_cast<size_t>(v.size()));
  for (int64_t i = 0; i < v.size(); ++i) {
    MXQAT_CHECK(v[i] >= 0 && v[i] < static_cast<float>(vocab_) && v[i] == std::floor(v[i]),
                "Embedding: id ", v[i], " at position ", i, " is not in [0, ", vocab_, ")");
    idx[static_cast<size_t>(i)] = static_cast<int32_t>(v[i]);
  }
  return lookup(idx, v.shape());
}

LayerNorm::LayerNorm(int64_t dim, float eps) : eps_(eps) {
  gamma_ = add_param("weight", Tensor::ones({dim}));
  beta_ = add_param("bias", Tensor::zeros({dim}));
}
Var LayerNorm::forward(const Var& x) { return layernorm(x, gamma_, beta_, eps_); }

RMSNorm::RMSNorm(int64_t dim, float eps) : eps_(eps) { gamma_ = add_param("weight", Tensor::ones({dim})); }
Var RMSNorm::forward(const Var& x) { return rmsnorm(x, gamma_, eps_); }

Var Dropout::forward(const Var& x) {
  if (!training() || p_ <= 0.f) return x;
  // splitmix-style mixing of (seed, call) gives each forward its own mask seed.
  uint64_t z = seed_ + 0x9E3779B97F4A7C15ull * (++calls_);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return dropout(x, p_, z ^ (z >> 31), true);
}

Activation::Activation(const std::string& name) : name_(name) {
  if (name == "relu") fn_ = &relu;
  else if (name == "gelu") fn_ = &gelu;
  else if (name == "silu") fn_ = &silu;
  else if (name == "tanh") fn_ = &autograd::tanh;
  else if (name == "sigmoid") fn_ = &sigmoid;
  else MXQAT_FAIL("unknown activation '", name, "'; known: relu, gelu, silu, tanh, sigmoid");
}
Var Activation::forward(const Var& x) { return fn_(x); }

Var Flatten::forward(const Var& x) { return reshape(x, {x.value().dim(0), -1}); }

Var Sequential::forward(const Var& x) {
  Var h = x;
  for (Module* m : order_) h = m->forward(h);
  return h;
}

}  // namespace mxqat::layers
