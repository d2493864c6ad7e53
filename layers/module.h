// Module: owns named parameters and named children (STYLE.md §5). `named_parameters()` yields
// "blocks.2.fc1.weight"-style names that the optimizer, checkpoints and quant rules all use.
// GemmLayer is the base of every GEMM-bearing layer: its one hook point for quantization.
#pragma once
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "autograd/ops.h"
#include "quant/hook.h"

namespace mxqat::layers {

using autograd::Shape;
using autograd::Tensor;
using autograd::Var;

using NamedParams = std::vector<std::pair<std::string, Var>>;

class Module {
 public:
  virtual ~Module() = default;
  virtual Var forward(const Var& x) = 0;
  virtual std::string kind() const = 0;  // "Linear", "Sequential", ...

  NamedParams named_parameters() const;  // depth-first, registration order
  std::vector<std::pair<std::string, Module*>> named_modules();  // "" is this module
  int64_t num_parameters() const;
  void train(bool on = true);
  bool training() const { return training_; }

 protected:
  Var add_param(const std::string& name, Tensor init);
  template <typename M>
  std::shared_ptr<M> add_module(const std::string& name, std::shared_ptr<M> m) {
    children_.emplace_back(name, m);
    return m;
  }

 private:
  void collect(const std::string& prefix, NamedParams& out) const;
  bool training_ = true;
  NamedParams params_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

// A layer whose forward is a GEMM: its weight (and input) pass through quantizer() if one is set.
class GemmLayer : public Module {
 public:
  void set_quantizer(std::shared_ptr<quant::GemmQuantizer> q) { quantizer_ = std::move(q); }
  quant::GemmQuantizer* quantizer() const { return quantizer_.get(); }
  virtual const Var& weight() const = 0;
  // Learned weight scales (quant.learned_scale: lsq): registers `weight_scale_offset` [N] (one log2
  // offset per weight row, zeros: the codec's own scales), handed to the quantizer with each GEMM.
  // Once per layer; a second call changes nothing.
  void enable_learned_scale();
  const Var& weight_scale_offset() const { return weight_scale_; }  // undefined unless enabled

 protected:
  // The hook point: y = x w2d^T + bias, x [..., K], w2d [N, K], through the quantizer if set.
  Var gemm(const Var& x, const Var& w2d, const Var& bias) const;

 private:
  std::shared_ptr<quant::GemmQuantizer> quantizer_;
  Var weight_scale_;
};

// Seeded initialisation. fan_in/fan_out as in torch.nn.init.
// kFanInUniform = U(±1/sqrt(fan_in)): torch.nn.Linear/Conv2d's default for weight and bias.
enum class Init { kFanInUniform, kKaimingUniform, kKaimingNormal, kXavierUniform, kXavierNormal,
                  kStdNormal, kZeros, kOnes, kNormal002 };
Tensor init_tensor(Shape shape, Init init, int64_t fan_in, int64_t fan_out, std::mt19937_64& rng);

}  // namespace mxqat::layers
