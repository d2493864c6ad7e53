// Terminal progress bar.
#include "trainers/util/progress.h"

#include <unistd.h>

#include <cstdio>

namespace mxqat::trainers {

Progress::Progress(int64_t start, int64_t total)
    : tty_(::isatty(STDERR_FILENO) != 0), start_(start), total_(total),
      t0_(std::chrono::steady_clock::now()), last_draw_(t0_) {}

double Progress::steps_per_second(int64_t step) const {
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  return s > 0 ? double(step - start_) / s : 0.0;
}

void Progress::update(int64_t step, const std::string& info) {
  if (!tty_) return;
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && step < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  drawn_ = true;
  constexpr int kWidth = 30;
  const double frac = total_ > 0 ? double(step) / double(total_) : 1.0;
  const int fill = static_cast<int>(frac * kWidth);
  const double rate = steps_per_second(step);
  const double eta = rate > 0 ? double(total_ - step) / rate : 0.0;
  std::string bar(static_cast<size_t>(fill), '#');
  bar.resize(kWidth, '.');
  std::fprintf(stderr, "\r[%s] %lld/%lld %5.1f it/s ETA %4.0fs %s\x1b[K", bar.c_str(),
               static_cast<long long>(step), static_cast<long long>(total_), rate, eta, info.c_str());
  std::fflush(stderr);
}

void Progress::finish() {
  if (tty_ && drawn_) std::fprintf(stderr, "\n");
  drawn_ = false;
}

}  // namespace mxqat::trainers
