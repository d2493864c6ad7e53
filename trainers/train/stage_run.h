// What the train and qat stages share on top of the step loop: the setup (the recipe's task with
// its data, the model, the seeded batch order), the optimizer, the loop context pointing into
// them, the metrics file, and the start of a run: a fresh one (recipe.yaml written) or one
// resumed from its checkpoint (parameters, optimizer state, step, skipped steps).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "layers/module.h"
#include "trainers/data/task.h"
#include "trainers/io/ckpt.h"
#include "trainers/recipe/recipe.h"
#include "trainers/train/loop.h"
#include "trainers/train/optim.h"
#include "trainers/util/json_write.h"

namespace mxqat::trainers {

// What every stage starts from: the task (its data), the model, and a seeded batch order.
struct StageSetup {
  std::unique_ptr<Task> task;
  std::shared_ptr<layers::Module> model;
  std::unique_ptr<BatchOrder> order;  // with text: only its steps_per_epoch (a pass over the bytes)
};
StageSetup setup_stage(const Recipe& r);
// A fresh model of the recipe's kind sized for the stage's data (e.g. a distillation teacher).
std::shared_ptr<layers::Module> build_stage_model(const Recipe& r, const StageSetup& s);
// Steps of a stage: cfg.steps, or cfg.epochs epochs of the order.
int64_t stage_steps(const TrainCfg& cfg, const BatchOrder& order);

// One run of a training stage ("train" | "qat") in out_dir under `cfg` (recipe.train or
// recipe.qat.train). The loop context points into the object, so it stays where it is made.
class StageRun {
 public:
  StageRun(const std::string& stage, const Recipe& r, const TrainCfg& cfg, const std::string& out_dir,
           int64_t stop_at);
  StageRun(const StageRun&) = delete;
  StageRun& operator=(const StageRun&) = delete;

  // resume: continues from out_dir/checkpoint.h5 (missing: an error saying what to do); `check`
  // sees the checkpoint first (the stage's own consistency rules), then the parameters, the
  // optimizer state (same optimizer kind), the step and the skipped steps are restored and the
  // checkpoint is returned. Otherwise writes out_dir/recipe.yaml. Then opens metrics.jsonl.
  std::optional<Checkpoint> start(bool resume, const std::function<void(const Checkpoint&)>& check = {});
  LoopResult run() { return run_loop(loop); }

  const Recipe& recipe;
  std::string out_dir;
  StageSetup st;
  std::unique_ptr<Optimizer> optimizer;
  JsonlWriter metrics;
  LoopContext loop;
};

}  // namespace mxqat::trainers
