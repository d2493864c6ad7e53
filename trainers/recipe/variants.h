// The comparison grid of `mxqat run`: the recipe's target formats (compare.formats) and, per
// format, the recipe rewritten for it — QAT direct (that format from step 0), QAT progressive
// (through the schedule's wider formats first, for formats below 8 bits) and, with
// compare.qat_lsq, QAT direct with learned weight scales (formats that take them). Rules that keep layers
// apart (e.g. first and last layer at mxfp8) stay as the recipe wrote them.
#pragma once
#include <string>
#include <vector>

#include "trainers/recipe/recipe.h"

namespace mxqat::trainers {

// compare.formats, or the recipe's quant.weight alone; each checked against the codec table.
std::vector<std::string> compare_formats(const Recipe& r);

// The recipe with `format` as its default weight (and input, unless the recipe leaves inputs in
// full precision) codec; progressive: the recipe's schedule (or FP8 -> FP6 by default) cut to the
// phases wider than `format`, then `format` until 1.0; direct: no default schedule.
Recipe recipe_for_format(const Recipe& r, const std::string& format, bool progressive);

struct QatVariant {
  std::string id;      // "mxfp4_progressive" / "mxfp6_e2m3_direct": the directory name
  std::string format;
  bool progressive = false;
  bool lsq = false;    // learned weight scales (compare.qat_lsq): "mxfp4_lsq", direct
  bool main = false;   // the recipe's own policy: what `run` exports as model.h5
  Recipe recipe;
};
std::vector<QatVariant> qat_variants(const Recipe& r);

}  // namespace mxqat::trainers
