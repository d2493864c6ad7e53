// The basic layers: Linear, Conv2d, Embedding, LayerNorm, RMSNorm, Dropout, Activation,
// Flatten, Sequential. Linear and Conv2d are GemmLayers: their operands pass the quant hook.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "layers/module.h"

namespace mxqat::layers {

class Linear : public GemmLayer {
 public:
  // weight [out, in] (Kaiming-uniform, as torch.nn.Linear), bias [out] (uniform ±1/sqrt(in)).
  Linear(int64_t in, int64_t out, bool bias, std::mt19937_64& rng);
  Var forward(const Var& x) override;  // x [..., in] -> [..., out]
  std::string kind() const override { return "Linear"; }
  const Var& weight() const override { return weight_; }
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }

 private:
  int64_t in_, out_;
  Var weight_, bias_;
};

class Conv2d : public GemmLayer {
 public:
  Conv2d(int64_t in_ch, int64_t out_ch, int kernel, int stride, int padding, bool bias,
         std::mt19937_64& rng);
  // x [B, C, H, W] -> [B, O, Ho, Wo]; GEMM: patches [B*Ho*Wo, C*k*k] x weight [O, C*k*k]^T
  Var forward(const Var& x) override;
  std::string kind() const override { return "Conv2d"; }
  const Var& weight() const override { return weight_; }

 private:
  int64_t in_ch_, out_ch_;
  int kernel_, stride_, padding_;
  Var weight_, bias_;
};

class Embedding : public Module {
 public:
  Embedding(int64_t vocab, int64_t dim, std::mt19937_64& rng);  // N(0, 1) like torch
  Var forward(const Var& ids) override;  // ids as floats holding integers [...] -> [..., dim]
  Var lookup(const std::vector<int32_t>& ids, Shape out_shape);
  std::string kind() const override { return "Embedding"; }

 private:
  int64_t vocab_;
  Var weight_;
};

class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t dim, float eps = 1e-5f);
  Var forward(const Var& x) override;
  std::string kind() const override { return "LayerNorm"; }

 private:
  float eps_;
  Var gamma_, beta_;
};

class RMSNorm : public Module {
 public:
  explicit RMSNorm(int64_t dim, float eps = 1e-6f);
  Var forward(const Var& x) override;
  std::string kind() const override { return "RMSNorm"; }

 private:
  float eps_;
  Var gamma_;
};

class Dropout : public Module {
 public:
  // Each forward in training mode draws a fresh mask seed from `seed` and a call counter, so a
  // run is reproducible and the counter is part of the checkpointed state (see step()).
  Dropout(float p, uint64_t seed) : p_(p), seed_(seed) {}
  Var forward(const Var& x) override;
  std::string kind() const override { return "Dropout"; }
  uint64_t calls() const { return calls_; }
  void set_calls(uint64_t c) { calls_ = c; }

 private:
  float p_;
  uint64_t seed_;
  uint64_t calls_ = 0;
};

class Activation : public Module {
 public:
  explicit Activation(const std::string& name);  // relu | gelu | silu | tanh | sigmoid
  Var forward(const Var& x) override;
  std::string kind() const override { return "Activation(" + name_ + ")"; }

 private:
  std::string name_;
  Var (*fn_)(const Var&);
};

class Flatten : public Module {  // [B, ...] -> [B, prod(...)]
 public:
  Var forward(const Var& x) override;
  std::string kind() const override { return "Flatten"; }
};

class MaxPool2d : public Module {
 public:
  MaxPool2d(int kernel, int stride) : kernel_(kernel), stride_(stride) {}
  Var forward(const Var& x) override { return autograd::max_pool2d(x, kernel_, stride_); }
  std::string kind() const override { return "MaxPool2d"; }

 private:
  int kernel_, stride_;
};

class Sequential : public Module {
 public:
  template <typename M>
  std::shared_ptr<M> add(const std::string& name, std::shared_ptr<M> m) {
    order_.push_back(m.get());
    return add_module(name, std::move(m));
  }
  Var forward(const Var& x) override;
  std::string kind() const override { return "Sequential"; }

 private:
  std::vector<Module*> order_;
};

}  // namespace mxqat::layers
