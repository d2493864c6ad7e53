// Learning-rate schedules: a pure function step -> lr (STYLE.md §5; the optimizer does not own it).
// constant | cosine | linear, each with an optional linear warmup from lr/warmup to lr.
#pragma once
#include <cstdint>
#include <string>

namespace mxqat::trainers {

struct LrSchedule {
  std::string type = "constant";  // constant | cosine | linear
  double base_lr = 1e-3;
  double min_lr = 0.0;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;

  // lr for the update made at step `step` (0-based).
  //   warmup: base (step+1)/warmup;  then with p = (step - warmup)/(total - warmup) in [0, 1]:
  //   cosine: min + (base - min) (1 + cos(pi p))/2;  linear: base + (min - base) p
  double at(int64_t step) const;
};

}  // namespace mxqat::trainers
