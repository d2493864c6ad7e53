// The ptq stage: the FP32 baseline quantized after training with each method of the recipe
// (rtn, mse, gptq, each optionally after smoothquant or awq; quant/ptq) at each compared format, calibrated on samples of the training
// split, and evaluated through the same fake-quant forward as QAT (weights replaced by the
// method's result, input activations through their codec). Writes OUT/<format>_<method>.json
// per result (so a killed stage resumes) and OUT/summary.json.
#pragma once
#include <string>
#include <vector>

#include "trainers/recipe/recipe.h"

namespace mxqat::trainers {

struct PtqOptions {
  std::string out_dir = "runs/ptq";
  std::string from;  // the baseline checkpoint (required)
};

struct PtqLayer {
  std::string layer, codec;
  double sqnr_db = 0;       // weight SQNR vs FP32
  double output_error = 0;  // GPTQ's proxy Σ ΔW H ΔWᵀ on the calibration inputs
};

struct PtqSmoothing {  // smoothquant+ / awq+: what the smoothing chose for one group
  std::string group;  // the parameter the scales were folded into (a norm gain, v or up)
  double alpha = 0, error = 0, error_identity = 0;  // see SmoothRecord (ptq_smooth.h)
};

struct PtqRow {
  std::string format, method;
  double value = 0;  // the test metric (task.h)
  int64_t bytes = 0;  // the model's parameters in this format
  std::vector<PtqLayer> layers;
  std::vector<PtqSmoothing> smoothing;  // empty without smoothing
};

struct PtqSummary {
  std::string metric;  // task_metric(recipe).name
  double baseline = 0;
  int64_t baseline_bytes = 0;
  std::vector<PtqRow> rows;  // format-major, methods in recipe order
};

PtqSummary ptq(const Recipe& recipe, const PtqOptions& opt);

}  // namespace mxqat::trainers
