// Var: a node of the reverse-mode graph (value, grad, and the closure that sends gradients to
// its inputs), the engine that runs those closures from a loss, and the no_grad scope.
// Ops build nodes with make_node (STYLE.md §2); layers and trainers only hold Vars.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autograd/tensor.h"

namespace mxqat::autograd {

class GradSink;
using BackwardFn = std::function<void(const Tensor& dy, GradSink& g)>;

struct Node {
  const char* op = "leaf";
  Tensor value;
  Tensor grad;               // empty until a gradient arrives
  bool requires_grad = false;
  std::vector<std::shared_ptr<Node>> inputs;
  BackwardFn backward;       // empty for leaves
};

class Var {
 public:
  Var() = default;
  explicit Var(Tensor value, bool requires_grad = false);  // a leaf
  explicit Var(std::shared_ptr<Node> node) : n_(std::move(node)) {}

  bool defined() const { return static_cast<bool>(n_); }
  const Tensor& value() const { return n_->value; }
  Tensor& value() { return n_->value; }  // for optimizers and loaders (leaves only)
  const Tensor& grad() const { return n_->grad; }
  Tensor& grad() { return n_->grad; }
  bool needs_grad() const { return n_ && n_->requires_grad; }
  const Shape& shape() const { return n_->value.shape(); }
  const char* op() const { return n_->op; }
  void zero_grad() { n_->grad = Tensor(); }
  const std::shared_ptr<Node>& node() const { return n_; }

  // Runs backward from this (scalar) Var with seed 1, or with `seed` of the same shape.
  void backward() const;
  void backward(const Tensor& seed) const;

 private:
  std::shared_ptr<Node> n_;
};

// Handed to a backward closure: which inputs want a gradient, and where to add it.
class GradSink {
 public:
  explicit GradSink(Node& node) : node_(node) {}
  bool wants(size_t i) const;
  void add(size_t i, const Tensor& g);  // accumulates; g must have the input's shape
  void add(size_t i, Tensor&& g);

 private:
  Node& node_;
};

// Builds the result node of an op. Under no_grad, or when no input needs a gradient, the node
// is a constant and `backward` is dropped (so closures keep nothing alive).
Var make_node(const char* op, Tensor value, std::vector<Var> inputs, BackwardFn backward);

bool grad_enabled();

class NoGradGuard {  // RAII: `NoGradGuard no_grad;` disables graph building in this thread
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

}  // namespace mxqat::autograd
