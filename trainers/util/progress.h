// Progress display for a training loop: on a terminal a live bar with rate and ETA; otherwise
// (CI, pipes) nothing here, the loop logs plain lines through spdlog instead.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace mxqat::trainers {

class Progress {
 public:
  Progress(int64_t start, int64_t total);
  bool interactive() const { return tty_; }
  void update(int64_t step, const std::string& info);  // redraws at most ~10 times a second
  void finish();                                        // ends the bar's line
  double steps_per_second(int64_t step) const;

 private:
  bool tty_;
  int64_t start_, total_;
  std::chrono::steady_clock::time_point t0_, last_draw_;
  bool drawn_ = false;
};

}  // namespace mxqat::trainers
