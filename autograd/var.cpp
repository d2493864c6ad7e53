// Reverse-mode engine: topological order from the loss, closures run once each, gradients
// accumulated on fan-out, intermediate gradients released as soon as they are consumed.
#include "autograd/var.h"

#include <algorithm>
#include <unordered_set>

#include "autograd/ops/row_kernels.h"
#include "autograd/profile.h"

namespace mxqat::autograd {

namespace {
thread_local bool g_grad_enabled = true;

void topo_sort(const std::shared_ptr<Node>& root, std::vector<Node*>& order) {
  // Iterative DFS (deep graphs would overflow a recursive one).
  std::unordered_set<Node*> seen;
  std::vector<std::pair<Node*, size_t>> stack{{root.get(), 0}};
  seen.insert(root.get());
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      Node* child = node->inputs[next++].get();
      if (child->requires_grad && seen.insert(child).second) stack.push_back({child, 0});
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }
}
}  // namespace

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = prev_; }

Var::Var(Tensor value, bool requires_grad) : n_(std::make_shared<Node>()) {
  n_->value = std::move(value);
  n_->requires_grad = requires_grad;
}

bool GradSink::wants(size_t i) const {
  return i < node_.inputs.size() && node_.inputs[i]->requires_grad;
}

namespace {
void check_grad_shape(const Node& node, const Node& in, const Tensor& g) {
  MXQAT_CHECK(g.size() == in.value.size(), "op '", node.op, "' sent a gradient of shape ",
              shape_str(g.shape()), " to an input of shape ", shape_str(in.value.shape()));
}

// in.grad += g, in parallel chunks (elementwise: the same bits for any thread count).
void accumulate(const Node& node, Node& in, const Tensor& g) {
  profile::lap("bwd", node.op);  // fan-in sums are charged apart from the closure's work
  float* dst = in.grad.data();
  const float* src = g.data();
  detail::for_chunks(g.size(), [&](int64_t i0, int64_t i1) {
    ArrMap(dst + i0, i1 - i0) += ConstArrMap(src + i0, i1 - i0);
  });
  profile::lap("bwd grad accumulate");
}
}  // namespace

// A gradient handed by reference is copied only when it is the input's first (in parallel
// chunks); later ones are added straight from it.
void GradSink::add(size_t i, const Tensor& g) {
  if (!wants(i)) return;
  Node& in = *node_.inputs[i];
  check_grad_shape(node_, in, g);
  if (!in.grad.empty() || in.value.size() == 0) return accumulate(node_, in, g);
  in.grad = Tensor::uninit(in.value.shape());
  float* dst = in.grad.data();
  const float* src = g.data();
  detail::for_chunks(g.size(), [&](int64_t i0, int64_t i1) { std::copy(src + i0, src + i1, dst + i0); });
}

void GradSink::add(size_t i, Tensor&& g) {
  if (!wants(i)) return;
  Node& in = *node_.inputs[i];
  check_grad_shape(node_, in, g);
  if (in.grad.empty() && in.value.size() != 0) {
    g.reshape_inplace(in.value.shape());
    in.grad = std::move(g);
  } else {
    accumulate(node_, in, g);
  }
}

Var make_node(const char* op, Tensor value, std::vector<Var> inputs, BackwardFn backward) {
  profile::lap("fwd", op);
  auto n = std::make_shared<Node>();
  n->op = op;
  n->value = std::move(value);
  bool any = false;
  for (const Var& v : inputs) any = any || v.needs_grad();
  if (g_grad_enabled && any) {
    n->requires_grad = true;
    n->inputs.reserve(inputs.size());
    for (const Var& v : inputs) n->inputs.push_back(v.node());
    n->backward = std::move(backward);
  }
  return Var(std::move(n));
}

void Var::backward() const {
  MXQAT_CHECK(n_ && n_->value.size() == 1, "backward() without a seed needs a scalar, got shape ",
              n_ ? shape_str(n_->value.shape()) : "(undefined)");
  backward(Tensor(n_->value.shape(), 1.f));
}

void Var::backward(const Tensor& seed) const {
  MXQAT_CHECK(n_ && n_->requires_grad, "backward() on a Var that needs no gradient");
  MXQAT_CHECK(seed.size() == n_->value.size(), "backward seed has shape ",
              shape_str(seed.shape()), ", Var has ", shape_str(n_->value.shape()));
  std::vector<Node*> order;
  topo_sort(n_, order);
  Tensor s = seed;
  s.reshape_inplace(n_->value.shape());
  if (n_->grad.empty()) n_->grad = std::move(s);
  else n_->grad.vec() += s.vec();
  profile::lap("bwd engine");
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* node = *it;
    if (!node->backward || node->grad.empty()) continue;
    GradSink sink(*node);
    node->backward(node->grad, sink);
    node->grad = Tensor();  // intermediates: consumed
    profile::lap("bwd", node->op);
  }
}

}  // namespace mxqat::autograd
