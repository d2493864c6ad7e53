// Evaluation of a classifier on a dataset (see evaluate.h).
#include "trainers/data/evaluate.h"

#include <algorithm>
#include <cmath>

namespace mxqat::trainers {

using autograd::Tensor;
using autograd::Var;

Tensor predict(layers::Module& model, const Dataset& d, int64_t batch) {
  autograd::NoGradGuard ng;
  const bool was = model.training();
  model.train(false);
  Tensor out;
  std::vector<int64_t> idx;
  Tensor xb;
  std::vector<int32_t> yb;
  for (int64_t s = 0; s < d.size(); s += batch) {
    idx.clear();
    for (int64_t i = s; i < std::min(d.size(), s + batch); ++i) idx.push_back(i);
    d.gather(idx, xb, yb);
    Tensor logits = model.forward(Var(xb)).value();
    if (out.empty()) out = Tensor({d.size(), logits.cols()});
    std::copy(logits.data(), logits.data() + logits.size(), out.data() + s * logits.cols());
  }
  model.train(was);
  return out;
}

EvalResult evaluate(layers::Module& model, const Dataset& d, int64_t batch) {
  Tensor logits = predict(model, d, batch);
  EvalResult r;
  r.samples = d.size();
  double loss = 0;
  int64_t correct = 0;
  const int64_t c = logits.cols();
  for (int64_t i = 0; i < d.size(); ++i) {
    const float* row = logits.data() + i * c;
    const float mx = *std::max_element(row, row + c);
    double se = 0;
    for (int64_t j = 0; j < c; ++j) se += std::exp(double(row[j]) - mx);
    loss += std::log(se) + mx - row[d.y[static_cast<size_t>(i)]];
    correct += (std::max_element(row, row + c) - row) == d.y[static_cast<size_t>(i)];
  }
  r.loss = d.size() ? loss / double(d.size()) : 0.0;
  r.accuracy = d.size() ? double(correct) / double(d.size()) : 0.0;
  return r;
}

}  // namespace mxqat::trainers
