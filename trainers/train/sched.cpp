// Learning-rate schedules.
#include "trainers/train/sched.h"

#include <algorithm>
#include <cmath>

#include "autograd/error.h"

namespace mxqat::trainers {

double LrSchedule::at(int64_t step) const {
  if (step < warmup_steps) return base_lr * double(step + 1) / double(warmup_steps);
  if (type == "constant") return base_lr;
  const int64_t span = std::max<int64_t>(total_steps - warmup_steps, 1);
  const double p = std::clamp(double(step - warmup_steps) / double(span), 0.0, 1.0);
  if (type == "cosine") return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + std::cos(M_PI * p));
  if (type == "linear") return base_lr + (min_lr - base_lr) * p;
  MXQAT_FAIL("unknown lr_schedule type '", type, "'; known: constant, cosine, linear");
}

}  // namespace mxqat::trainers
