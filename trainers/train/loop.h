// The step loop shared by the train and qat stages: batches in a seeded order, forward, loss,
// backward, non-finite guard, clipping, optimizer step, logging, evaluation, checkpoints, stop
// and interrupt handling. The stages plug their differences in through hooks.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "layers/module.h"
#include "trainers/io/ckpt.h"
#include "trainers/data/data.h"
#include "trainers/train/optim.h"
#include "trainers/recipe/recipe.h"
#include "trainers/util/json_write.h"

namespace mxqat::trainers {

struct TextData;

struct EvalResult {
  double loss = 0, accuracy = 0;
  int64_t samples = 0;
};

struct LoopHooks {
  std::function<void(int64_t step)> before_step;     // e.g. move the precision schedule
  std::function<void(int64_t done)> after_step;      // e.g. quantization telemetry
  std::function<void(int64_t done, const EvalResult& val)> after_eval;
  std::function<void(Checkpoint&)> decorate;         // extra checkpoint content (policy, ...)
};

struct LoopContext {
  std::string stage;  // "train" | "qat": names metrics lines and checkpoints
  const Recipe* recipe = nullptr;
  const TrainCfg* cfg = nullptr;  // recipe->train or recipe->qat.train
  layers::Module* model = nullptr;
  Optimizer* optimizer = nullptr;
  const Splits* data = nullptr;
  BatchOrder* order = nullptr;   // with text: only its steps_per_epoch (a pass over the bytes)
  const TextData* text = nullptr;  // set for language models: batches and val metrics come from it
  layers::Module* teacher = nullptr;  // qat.distill: the FP32 baseline, in eval mode
  float distill_weight = 0.f, distill_temperature = 1.f;
  JsonlWriter* metrics = nullptr;
  std::string ckpt_path;
  int64_t start_step = 0, total_steps = 0;
  int64_t stop_at = -1;           // stop (with a checkpoint) once this many steps are done
  bool skip_nonfinite = false;    // skip a step whose loss or gradient is NaN/Inf (else stop)
  int64_t skipped = 0;            // steps skipped so far (restored on resume)
  LoopHooks hooks;
};

struct LoopResult {
  int64_t step = 0;     // steps done
  bool completed = false;
};

LoopResult run_loop(LoopContext& ctx);

// Mean cross-entropy (no smoothing) and accuracy over the whole dataset, in eval mode, no_grad.
EvalResult evaluate(layers::Module& model, const Dataset& d, int64_t batch = 1000);
// Logits of the whole dataset [N, classes], in eval mode (for bitwise comparisons).
autograd::Tensor predict(layers::Module& model, const Dataset& d, int64_t batch = 1000);

// Copies the checkpoint's parameters into the model after checking every name and shape.
void load_parameters(layers::Module& model, const Checkpoint& c, const std::string& path);

// Set by SIGINT/SIGTERM: the loop checkpoints at the next step boundary and returns.
void install_interrupt_handler();
bool interrupted();  // a SIGINT/SIGTERM arrived since the handler was installed

}  // namespace mxqat::trainers
