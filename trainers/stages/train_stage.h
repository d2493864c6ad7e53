// The train stage (FP32 baseline) on top of the shared step loop (loop.h): recipe -> data,
// model, optimizer; epochs or steps; metrics.jsonl, summary.json, checkpoint.h5 with bitwise resume.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "trainers/train/loop.h"

namespace mxqat::trainers {

struct TrainOptions {
  std::string out_dir = "runs/default";
  bool resume = false;       // continue from out_dir/checkpoint.h5
  int64_t stop_at = -1;      // stop (with a checkpoint) once this many steps are done
};

struct TrainSummary {
  EvalResult test, val;
  int64_t steps = 0, epochs = 0, params = 0;
  double wall_s = 0;
  bool completed = false;  // false when stopped early by --stop-at or an interrupt
};

// What every stage starts from: the data splits, the model, and a seeded batch order.
// A text recipe (data.dataset: text) fills `text` instead of `data`.
struct StageSetup {
  Splits data;
  std::shared_ptr<TextData> text;
  std::shared_ptr<layers::Module> model;
  std::unique_ptr<BatchOrder> order;
};
StageSetup setup_stage(const Recipe& r);
// A fresh model of the recipe's kind sized for the stage's data (e.g. a distillation teacher).
std::shared_ptr<layers::Module> build_stage_model(const Recipe& r, const StageSetup& s);

// Steps of a stage: cfg.steps, or cfg.epochs epochs of the order.
int64_t stage_steps(const TrainCfg& cfg, const BatchOrder& order);

TrainSummary train(const Recipe& recipe, const TrainOptions& opt);

}  // namespace mxqat::trainers
