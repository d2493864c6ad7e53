// The train stage (FP32 baseline) on the shared step loop (loop.h, stage_run.h): recipe -> data,
// model, optimizer; epochs or steps; metrics.jsonl, summary.json, checkpoint.h5 with bitwise resume.
#pragma once
#include <cstdint>
#include <string>

#include "trainers/data/evaluate.h"
#include "trainers/recipe/recipe.h"
#include "trainers/train/stage_run.h"

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

TrainSummary train(const Recipe& recipe, const TrainOptions& opt);

}  // namespace mxqat::trainers
