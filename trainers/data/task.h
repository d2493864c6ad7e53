// What the stages after training evaluate, whatever the data: the test metric (image
// classification: test accuracy, higher is better; byte-level language model: test bits per
// byte, lower is better), test inputs in batches (for bitwise logit comparisons), calibration
// inputs from the training split, and the model's input/output sizes known from the recipe alone.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "trainers/stages/train_stage.h"

namespace mxqat::trainers {

struct TaskMetric {
  std::string name;       // "test_accuracy" | "test_bits_per_byte" (the summary.json key)
  bool higher_is_better;
};
TaskMetric task_metric(const Recipe& r);

// Features per example (images) or context length (text), and classes or vocabulary: what
// build_model needs, without reading the data.
struct DataDims {
  int64_t features, classes;
};
DataDims data_dims(const Recipe& r);

// The test metric of the model as it is now (with or without quantizers), eval mode, no graph.
double test_metric(const StageSetup& st, layers::Module& m);

// Test inputs in batches: image rows [n, F] or text windows [n, T], the first `limit` examples
// (0 = all), always in the same order and batching.
void for_each_test_batch(const StageSetup& st, int64_t limit,
                         const std::function<void(const autograd::Tensor& x)>& f);

// `samples` training images, or training windows, chosen by a seeded draw (not the training
// order), in batches of at most 128 rows.
std::vector<autograd::Tensor> calibration_batches(const StageSetup& st, int64_t samples, uint64_t seed);

}  // namespace mxqat::trainers
