// The export and verify stages, shared by their commands and by `mxqat run`.
#pragma once
#include <cstdint>
#include <string>

#include "trainers/io/export.h"
#include "trainers/recipe/recipe.h"

namespace mxqat::trainers {

// The checkpoint a path names: a checkpoint file, a stage directory holding checkpoint.h5, or a
// run directory (its main QAT run, qat/summary.json). Throws saying what was looked for.
std::string resolve_checkpoint(const std::string& path);

// The policy an export of checkpoint `path` is packed with: the one it was trained under (a QAT
// checkpoint), or for an FP32 checkpoint the quant policy (final phase: round to nearest) of
// `policy_recipe` when given (`mxqat run` passes its own recipe: the baseline may come from a
// recipe without a quant section), else of the checkpoint's own recipe.
std::string export_policy(const Checkpoint& c, const std::string& path,
                          const Recipe* policy_recipe = nullptr);

// Packs the checkpoint's weights with export_policy. Writes `out` atomically and returns what it
// wrote.
ExportModel export_checkpoint(const std::string& source, const std::string& out,
                              const Recipe* policy_recipe = nullptr);

struct Verification {
  int64_t samples = 0, mismatched = 0;  // logits compared / not bitwise equal
  double max_abs_diff = 0;
  bool bitwise_equal = false;
  std::string json;  // the manifest's verification record
};

// Runs the test split (first `limit` samples; 0 = all) through the training model in fake-quant
// mode (checkpoint `against`, "" = the export's source) and through the export's reference path,
// compares the logits bit for bit, and writes the result into the export's manifest.
Verification verify_export(const std::string& export_path, const std::string& against, int64_t limit);

}  // namespace mxqat::trainers
