// The step loop shared by the train and qat stages: batches in a seeded order, forward, loss,
// backward, non-finite guard, clipping, optimizer step, logging, evaluation, checkpoints, stop
// and interrupt handling. The stages plug their differences in through hooks.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "layers/module.h"
#include "trainers/data/task.h"
#include "trainers/dist/tree.h"
#include "trainers/io/ckpt.h"
#include "trainers/recipe/recipe.h"
#include "trainers/train/optim.h"
#include "trainers/util/json_write.h"

namespace mxqat::trainers {

struct LoopHooks {
  std::function<void(int64_t step)> before_step;     // e.g. move the precision schedule
  // Micro-batched steps: before micro-batch m's forward (e.g. stochastic rounding's counter).
  std::function<void(int64_t step, int64_t m)> before_micro_batch;
  std::function<void(int64_t done)> after_step;      // e.g. quantization telemetry
  std::function<void(int64_t done, const EvalResult& val)> after_eval;
  std::function<void(Checkpoint&)> decorate;         // extra checkpoint content (policy, ...)
};

// Wall time of each step and, in data-parallel or micro-batched runs, of its parts in the
// reduction tree (trainers/dist/tree.h: this process's micro-batches, then the exchange).
struct StepTimes {
  std::vector<double> step_s;
  std::vector<TreeTimes> tree;
  int64_t targets = 0;  // loss targets per step (tokens for a gpt, samples for a classifier)
};

struct LoopContext {
  std::string stage;  // "train" | "qat": names metrics lines and checkpoints
  const Recipe* recipe = nullptr;
  const TrainCfg* cfg = nullptr;  // recipe->train or recipe->qat.train
  layers::Module* model = nullptr;
  Optimizer* optimizer = nullptr;
  const Task* task = nullptr;    // batches and validation metrics come from it
  BatchOrder* order = nullptr;   // with text: only its steps_per_epoch (a pass over the bytes)
  layers::Module* teacher = nullptr;  // qat.distill: the FP32 baseline, in eval mode
  float distill_weight = 0.f, distill_temperature = 1.f;
  JsonlWriter* metrics = nullptr;
  std::string ckpt_path;
  int64_t start_step = 0, total_steps = 0;
  int64_t stop_at = -1;           // stop (with a checkpoint) once this many steps are done
  bool skip_nonfinite = false;    // skip a step whose loss or gradient is NaN/Inf (else stop)
  int64_t skipped = 0;            // steps skipped so far (restored on resume)
  LoopHooks hooks;
  StepTimes times;
  TreeSum tree;  // the micro-batch reduction's buffers, kept from step to step
};

struct LoopResult {
  int64_t step = 0;     // steps done
  bool completed = false;
};

LoopResult run_loop(LoopContext& ctx);

// Resume: takes the step and the skipped-step count from checkpoint `k` after checking them
// against this run (0 <= skipped <= step <= total_steps) and returns how many bytes of
// metrics.jsonl the checkpoint covers (the file is cut back to them).
int64_t resume_position(LoopContext& c, const Checkpoint& k);

// Set by SIGINT/SIGTERM: the loop checkpoints at the next step boundary and returns. With more
// than one process (mpirun) the peer-failure handler of trainers/dist/dist.h is installed instead.
void install_interrupt_handler();
bool interrupted();  // a SIGINT/SIGTERM arrived since the handler was installed

}  // namespace mxqat::trainers
