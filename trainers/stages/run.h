// `mxqat run`: the whole job of one recipe in one run directory — baseline -> ptq -> qat (every
// variant of the comparison grid) -> export -> verify -> report. Each stage is skipped when its
// outputs exist and are valid, resumed from its checkpoint when it was interrupted, and redone
// from scratch otherwise, so a killed run continues where it stopped. Layout:
//   DIR/baseline/  DIR/ptq/  DIR/qat/<format>_<direct|progressive>/  DIR/qat/summary.json
//   DIR/export/<variant>.h5 (+ .json manifest), DIR/export/model.h5 (the recipe's own QAT),
//   DIR/export/baseline_rtn.h5, DIR/export/alignment.json, DIR/sample/{samples,kv_cache}.json (gpt
//   recipes: written by the report step, stages/sample_stage.h), DIR/report/report.{md,csv,json,html}
#pragma once
#include <string>

#include "trainers/recipe/recipe.h"

namespace mxqat::trainers {

struct RunOptions {
  std::string out_dir;     // "" = runs/<recipe name>
  std::string stop_after;  // "" or a stage name: stop there as if killed (tests, staged runs)
};

inline const char* const kRunStages[] = {"baseline", "ptq", "qat", "export", "verify", "report"};

// Returns true when every stage is done (the report written), false when stopped early.
bool run_pipeline(const Recipe& r, const RunOptions& opt);

}  // namespace mxqat::trainers
