// The FP32 training loop: recipe -> data, model, optimizer, LR schedule; epochs or steps;
// evaluation, progress, metrics.jsonl, summary.json, HDF5 checkpoints with bitwise resume.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "layers/module.h"
#include "trainers/ckpt.h"
#include "trainers/data.h"
#include "trainers/recipe.h"

namespace mxqat::trainers {

struct TrainOptions {
  std::string out_dir = "runs/default";
  bool resume = false;       // continue from out_dir/checkpoint.h5
  int64_t stop_at = -1;      // stop (with a checkpoint) once this many steps are done
};

struct EvalResult {
  double loss = 0, accuracy = 0;
  int64_t samples = 0;
};

// Mean cross-entropy (no smoothing) and accuracy over the whole dataset, in eval mode, no_grad.
// Batches are evaluated in order and summed in double: same result for any thread count.
EvalResult evaluate(layers::Module& model, const Dataset& d, int64_t batch = 1000);

// Logits of the whole dataset [N, classes], in eval mode (for bitwise comparisons).
autograd::Tensor predict(layers::Module& model, const Dataset& d, int64_t batch = 1000);

struct TrainSummary {
  EvalResult test, val;
  int64_t steps = 0, epochs = 0, params = 0;
  double wall_s = 0;
  bool completed = false;  // false when stopped early by --stop-at or an interrupt
};

// Copies the checkpoint's parameters into the model after checking every name and shape.
void load_parameters(layers::Module& model, const Checkpoint& c, const std::string& path);

TrainSummary train(const Recipe& recipe, const TrainOptions& opt);

// Set by SIGINT/SIGTERM: the loop checkpoints at the next step boundary and returns.
void install_interrupt_handler();

}  // namespace mxqat::trainers
