// The task a recipe trains for, chosen once from data.dataset and then asked through one
// interface by the loop, the stages and the CLI: image classification (Fashion-MNIST; metric test
// accuracy, higher is better) or a language model (text: bytes, metric test bits per byte; tokens:
// the ids of the user's tokenizer, metric test bits per token; lower is better). A task owns its data and knows its training batches, its evaluation on the
// validation and test splits, the loss views it reports (bits per byte, perplexity), test inputs
// in batches (for bitwise logit comparisons) and calibration inputs from the training split.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.h"
#include "layers/module.h"
#include "trainers/data/data.h"
#include "trainers/data/evaluate.h"
#include "trainers/data/text_data.h"
#include "trainers/recipe/recipe.h"

namespace mxqat::trainers {

enum class DataKind { kImages, kText };
// data.dataset as a kind (fashion_mnist | text, tokens); anything else is an error naming the known ones.
DataKind data_kind(const Recipe& r);

struct TaskMetric {
  std::string name;  // "test_accuracy" | "test_bits_per_byte" | "test_bits_per_token" (summary key)
  bool higher_is_better;
};
TaskMetric task_metric(const Recipe& r);

// Features per example (images) or context length (text), and classes or vocabulary: what
// build_model needs, known from the recipe alone, without reading the data.
struct DataDims {
  int64_t features, classes;
};
DataDims data_dims(const Recipe& r);

enum class Split { kVal, kTest };

class Task {
 public:
  // Reads the recipe's data (and logs what it read).
  static std::unique_ptr<Task> load(const Recipe& r);
  virtual ~Task() = default;

  const TaskMetric& metric() const { return metric_; }
  virtual DataDims dims() const = 0;          // of the data as read
  virtual int64_t train_examples() const = 0; // per epoch: images, or windows of the train bytes
  // The training batch of global step `step` (images: the order's batch; text: seeded windows).
  virtual void train_batch(int64_t step, BatchOrder& order, autograd::Tensor& x,
                           std::vector<int32_t>& y) const = 0;
  // Mean cross-entropy and accuracy on a split, eval mode, no graph.
  virtual EvalResult evaluate(layers::Module& m, Split s) const = 0;
  // What else a loss says: {"bits_per_byte", .}, {"perplexity", .} for text, nothing for images.
  virtual std::vector<std::pair<std::string, double>> loss_views(double loss_nats) const = 0;
  // The metric of an evaluation (accuracy, or bits per byte) and of the model on the test split.
  virtual double metric_of(const EvalResult& e) const = 0;
  double test_metric(layers::Module& m) const { return metric_of(evaluate(m, Split::kTest)); }
  // Test inputs in batches: image rows [n, F] or text windows [n, T], the first `limit` examples
  // (0 = all), always in the same order and batching.
  virtual void for_each_test_batch(int64_t limit,
                                   const std::function<void(const autograd::Tensor& x)>& f) const = 0;
  // `samples` training images, or training windows, chosen by a seeded draw (not the training
  // order), in batches of at most 128 rows.
  virtual std::vector<autograd::Tensor> calibration_batches(int64_t samples, uint64_t seed) const = 0;
  // The data itself, for code that needs one kind (nullptr for the other).
  virtual const Splits* images() const { return nullptr; }
  virtual const TextData* text() const { return nullptr; }

 protected:
  explicit Task(TaskMetric m) : metric_(std::move(m)) {}

 private:
  TaskMetric metric_;
};

}  // namespace mxqat::trainers
