// Optimisers (SGD with momentum/Nesterov, AdamW), keyed by parameter name (STYLE.md §5): they
// receive Module::named_parameters() and keep their state in maps by name, never by position.
// Gradient clipping by global norm. The LR comes from a schedule (sched.h) at every step.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "layers/module.h"

namespace mxqat::trainers {

struct OptimizerCfg;
using NamedTensors = std::vector<std::pair<std::string, autograd::Tensor>>;

class Optimizer {
 public:
  explicit Optimizer(layers::NamedParams params) : params_(std::move(params)) {}
  virtual ~Optimizer() = default;
  virtual void step(double lr) = 0;  // applies the gradients; params without a grad are skipped
  virtual std::string kind() const = 0;
  // "<param name>/<slot>" -> tensor, plus the step counter as "<step>" where used.
  virtual NamedTensors state() const = 0;
  virtual void load_state(const NamedTensors& state) = 0;  // throws naming a missing/misshapen slot
  void zero_grad();
  const layers::NamedParams& params() const { return params_; }

 protected:
  layers::NamedParams params_;
};

// Builds the optimizer the recipe names. Weight decay applies to matrices and kernels only
// (ndim >= 2), not to biases and norm gains — the usual practice (e.g. nanoGPT, HF Trainer).
std::unique_ptr<Optimizer> make_optimizer(const OptimizerCfg& cfg, layers::NamedParams params);

// Scales all gradients so their global L2 norm is at most max_norm (no-op if max_norm <= 0).
// Returns the norm before clipping (accumulated in double over fixed chunks: thread-count free).
double clip_grad_norm(const layers::NamedParams& params, double max_norm);

}  // namespace mxqat::trainers
