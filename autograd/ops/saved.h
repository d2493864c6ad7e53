// How backward closures in autograd/ops read saved values without copying them. Internal.
// Inputs: a closure captures the input Var itself (a shared pointer, the graph keeps the node
// alive anyway) and reads .value() in backward. Like PyTorch, values must not be modified
// between forward and backward. Outputs: make_node_y hands the node's own value to backward.
#pragma once
#include <memory>
#include <utility>
#include <vector>

#include "autograd/var.h"

namespace mxqat::autograd::detail {

// make_node whose backward is bw(y, dy, g), y being the op's output value. The closure holds a
// plain pointer to its own node: it lives inside that node, so it never outlives it (no cycle).
template <class F>
Var make_node_y(const char* op, Tensor value, std::vector<Var> inputs, F bw) {
  auto self = std::make_shared<const Node*>(nullptr);
  Var out = make_node(op, std::move(value), std::move(inputs),
                      [self, bw = std::move(bw)](const Tensor& dy, GradSink& g) {
                        bw((*self)->value, dy, g);
                      });
  *self = out.node().get();
  return out;
}

}  // namespace mxqat::autograd::detail
