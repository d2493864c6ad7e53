// The qat stage: load an FP32 baseline, resolve the recipe's quant policy onto the model's GEMM
// layers, evaluate the direct cast (round-to-nearest PTQ), fine-tune under fake quantization
// following the progressive schedule, and report how much of the gap QAT recovers.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "trainers/recipe/recipe.h"

namespace mxqat::trainers {

struct QatOptions {
  std::string out_dir = "runs/qat";
  std::string from;          // baseline checkpoint ("" = recipe's qat.from)
  bool resume = false;       // continue from out_dir/checkpoint.h5
  int64_t stop_at = -1;
};

struct PhaseResult {
  std::string format;  // codecs of the phase, e.g. "mxfp6_e2m3"
  double until = 1.0;  // fraction of QAT steps
  int64_t step = 0;    // last step of the phase
  double metric = 0;   // test accuracy at the end of the phase
};

struct QatSummary {
  double baseline = 0, direct_cast = 0, qat = 0, recovered = 0;
  std::vector<PhaseResult> phases;
  int64_t steps = 0, skipped = 0;
  double wall_s = 0;
  bool completed = false;
};

// Share of the gap closed: (qat - cast) / (base - cast); NaN when there is no gap.
double recovered_share(double baseline, double direct_cast, double qat);

QatSummary qat(const Recipe& recipe, const QatOptions& opt);

}  // namespace mxqat::trainers
