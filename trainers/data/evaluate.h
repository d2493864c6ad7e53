// Metrics of a model on a whole dataset, in eval mode, without a graph: the mean cross-entropy
// and accuracy (EvalResult), and the logits themselves for bitwise comparisons. The language-model
// counterpart over text windows is evaluate_text (text_data.h).
#pragma once
#include <cstdint>

#include "autograd/tensor.h"
#include "layers/module.h"
#include "trainers/data/data.h"

namespace mxqat::trainers {

struct EvalResult {
  double loss = 0, accuracy = 0;
  int64_t samples = 0;
};

// Mean cross-entropy (no smoothing) and accuracy over the whole dataset, in eval mode, no_grad.
EvalResult evaluate(layers::Module& model, const Dataset& d, int64_t batch = 1000);
// Logits of the whole dataset [N, classes], in eval mode (for bitwise comparisons).
autograd::Tensor predict(layers::Module& model, const Dataset& d, int64_t batch = 1000);

}  // namespace mxqat::trainers
