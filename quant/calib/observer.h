// Calibration observers: ranges of calibration data (min/max, percentile, MSE-optimal clipping
// for an INT codec) from a value histogram that is exact in count and invariant to the order and
// batching of the data, so the ranges never depend on batch order or thread count. Plain float
// arrays in, ranges out; never logs. Used by the PTQ stage (trainers/) and tests.
#pragma once
#include <cstdint>
#include <vector>

#include "autograd/tensor.h"
#include "quant/codec/codec.h"

namespace mxqat::quant::calib {

struct Range {
  float lo = 0, hi = 0;  // lo <= hi
};

// Counts of float values in 65536 bins: the top 16 bits of an order-preserving 32-bit key (sign,
// exponent and 7 mantissa bits, i.e. bins 2^-7 wide relative to the value), with each bin's exact
// minimum and maximum. Counts are integers and min/max are order-free, so the histogram of a data
// set does not depend on how it was split into batches or in which order they came.
class Histogram {
 public:
  // x [n], all finite (throws naming `what` and the first bad index otherwise).
  void add(const float* x, int64_t n, const char* what = "calibration data");
  int64_t count() const { return count_; }
  float min() const;  // exact (throws when empty)
  float max() const;
  // The q-quantile (0 <= q <= 1) with numpy's default "linear" rule: position q·(n-1) in the
  // sorted data, interpolated between its two neighbours. A sorted element is exact when it is
  // the first or last of its bin (so always in sparse tails); inside a crowded bin it is linearly
  // interpolated between the bin's min and max.
  double quantile(double q) const;
  // Calls f(value, weight) for a small set of points standing for the data: per bin its min and
  // max (exact for bins of one or two values) and, for c > 2 values, the bin's midpoint with
  // weight c - 2. Bins in ascending order, so sums over the points are deterministic. Used for
  // histogram MSE estimates. (Memory: 1 MiB per histogram once anything was added.)
  template <typename F>
  void for_each_point(F&& f) const;

 private:
  double sorted_at(int64_t rank) const;  // the rank-th smallest value (0-based), as above
  std::vector<int64_t> counts_;          // [65536] once anything was added
  std::vector<uint32_t> min_key_, max_key_;
  int64_t count_ = 0;
};

// Exact min / max of everything observed.
class MinMaxObserver {
 public:
  void observe(const float* x, int64_t n) { hist_.add(x, n, "min/max observer"); }
  void observe(const autograd::Tensor& x) { observe(x.data(), x.size()); }
  Range range() const { return {hist_.min(), hist_.max()}; }
  const Histogram& histogram() const { return hist_; }

 private:
  Histogram hist_;
};

struct PercentileOptions {
  double percentile = 99.99;  // hi = this percentile, lo = (100 - percentile); in [50, 100]
};

// [P(100 - p), P(p)] of everything observed (Histogram::quantile). For a symmetric codec use
// max(|lo|, |hi|).
class PercentileObserver {
 public:
  explicit PercentileObserver(PercentileOptions opt = {});
  void observe(const float* x, int64_t n) { hist_.add(x, n, "percentile observer"); }
  void observe(const autograd::Tensor& x) { observe(x.data(), x.size()); }
  Range range() const;
  const Histogram& histogram() const { return hist_; }

 private:
  PercentileOptions opt_;
  Histogram hist_;
};

struct MseRangeOptions {
  int steps = 200;          // candidate ranges: ratio 1 - i (1 - min_ratio) / steps, i = 0..steps
  double min_ratio = 0.05;  // smallest clipping ratio of the min/max range, in (0, 1]
};

struct MseRange {
  Range range;     // the chosen clipping range (lo·ratio, hi·ratio; symmetric codecs ±amax·ratio)
  double ratio;    // the chosen ratio (1 = min/max)
  double mse;      // histogram estimate of the mean squared quantization error under `range`
  double mse_minmax;  // the same estimate for the min/max range
};

// The quantization MSE (histogram estimate) of the observed data when every value is quantized
// by the INT codec with the one scale / zero point derived from `r` (Codec::int_scale).
double histogram_mse(const Histogram& h, const Codec& codec, Range r);

// MSE-optimal clipping range for an INT codec: searches shrinking multiples of the min/max range
// (ratio 1 first; a later ratio wins only if strictly better) and keeps the one with the smallest
// histogram_mse. Throws for non-INT codecs.
class MseObserver {
 public:
  explicit MseObserver(MseRangeOptions opt = {});
  void observe(const float* x, int64_t n) { hist_.add(x, n, "MSE observer"); }
  void observe(const autograd::Tensor& x) { observe(x.data(), x.size()); }
  MseRange range(const Codec& codec) const;
  const Histogram& histogram() const { return hist_; }

 private:
  MseRangeOptions opt_;
  Histogram hist_;
};

// ---- implementation of the template ----
namespace detail {
inline float key_to_float(uint32_t k) {
  const uint32_t u = (k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k;
  return u2f(u);
}
}  // namespace detail

template <typename F>
void Histogram::for_each_point(F&& f) const {
  for (size_t b = 0; b < counts_.size(); ++b) {
    const int64_t c = counts_[b];
    if (c == 0) continue;
    const double lo = detail::key_to_float(min_key_[b]), hi = detail::key_to_float(max_key_[b]);
    f(lo, 1.0);
    if (c >= 2) f(hi, 1.0);
    if (c > 2) f(0.5 * (lo + hi), static_cast<double>(c - 2));
  }
}

}  // namespace mxqat::quant::calib
