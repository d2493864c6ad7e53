// Histogram and the observers of observer.h. The histogram is filled serially (one pass of
// integer increments and key comparisons: order-free by construction); the MSE search evaluates
// candidates in a fixed order.
#include "quant/calib/observer.h"

#include <algorithm>
#include <cmath>

#include "autograd/error.h"

namespace mxqat::quant::calib {
namespace {

constexpr int kBinShift = 16;  // 32 - 16 = 16 key bits per bin index
constexpr size_t kBins = size_t(1) << (32 - kBinShift);

// Order-preserving key: negative floats reversed below the positive ones (-0 just below +0).
inline uint32_t key_of(float v) {
  const uint32_t u = f2u(v);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

}  // namespace

void Histogram::add(const float* x, int64_t n, const char* what) {
  MXQAT_CHECK(n >= 0 && (n == 0 || x), what, ": ", n, " values at ", static_cast<const void*>(x),
              "; pass a non-null array of n >= 0 values");
  for (int64_t i = 0; i < n; ++i)
    MXQAT_CHECK(std::isfinite(x[i]), what, ": value ", i, " of this batch (of ", n, ") is ", x[i],
                "; calibration data must be finite (check the model for overflow)");
  if (counts_.empty()) {
    counts_.assign(kBins, 0);
    min_key_.assign(kBins, 0xFFFFFFFFu);
    max_key_.assign(kBins, 0u);
  }
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t k = key_of(x[i]);
    const size_t b = k >> kBinShift;
    ++counts_[b];
    min_key_[b] = std::min(min_key_[b], k);
    max_key_[b] = std::max(max_key_[b], k);
  }
  count_ += n;
}

float Histogram::min() const {
  MXQAT_CHECK(count_ > 0, "histogram: min of no data; observe calibration batches first");
  for (size_t b = 0; b < kBins; ++b)
    if (counts_[b]) return detail::key_to_float(min_key_[b]);
  __builtin_unreachable();
}

float Histogram::max() const {
  MXQAT_CHECK(count_ > 0, "histogram: max of no data; observe calibration batches first");
  for (size_t b = kBins; b-- > 0;)
    if (counts_[b]) return detail::key_to_float(max_key_[b]);
  __builtin_unreachable();
}

double Histogram::sorted_at(int64_t rank) const {
  int64_t before = 0;
  for (size_t b = 0; b < kBins; ++b) {
    const int64_t c = counts_[b];
    if (rank >= before + c) {
      before += c;
      continue;
    }
    const double lo = detail::key_to_float(min_key_[b]), hi = detail::key_to_float(max_key_[b]);
    const int64_t t = rank - before;
    if (t == 0) return lo;
    if (t == c - 1) return hi;
    return lo + (hi - lo) * static_cast<double>(t) / static_cast<double>(c - 1);
  }
  __builtin_unreachable();
}

double Histogram::quantile(double q) const {
  MXQAT_CHECK(count_ > 0, "histogram: quantile of no data; observe calibration batches first");
  MXQAT_CHECK(q >= 0.0 && q <= 1.0, "histogram: quantile ", q, " is outside [0, 1]");
  const double pos = q * static_cast<double>(count_ - 1);
  const auto i = static_cast<int64_t>(std::floor(pos));
  const double f = pos - static_cast<double>(i);
  const double a = sorted_at(i);
  if (f == 0.0 || i + 1 >= count_) return a;
  return a + f * (sorted_at(i + 1) - a);
}

PercentileObserver::PercentileObserver(PercentileOptions opt) : opt_(opt) {
  MXQAT_CHECK(opt.percentile >= 50.0 && opt.percentile <= 100.0, "percentile observer: percentile ",
              opt.percentile, " is outside [50, 100]; use e.g. 99.99");
}

Range PercentileObserver::range() const {
  const double p = opt_.percentile / 100.0;
  return {static_cast<float>(hist_.quantile(1.0 - p)), static_cast<float>(hist_.quantile(p))};
}

double histogram_mse(const Histogram& h, const Codec& codec, Range r) {
  MXQAT_CHECK(h.count() > 0, "histogram_mse: no data observed");
  const BlockQuantizer q = codec.int_quantizer(codec.int_scale(r.lo, r.hi));
  double sse = 0;
  h.for_each_point([&](double v, double w) {
    const double d = v - static_cast<double>(q.dequant(static_cast<float>(v)));
    sse += w * d * d;
  });
  return sse / static_cast<double>(h.count());
}

MseObserver::MseObserver(MseRangeOptions opt) : opt_(opt) {
  MXQAT_CHECK(opt.steps >= 1 && opt.min_ratio > 0.0 && opt.min_ratio <= 1.0, "MSE observer: steps ",
              opt.steps, " and min_ratio ", opt.min_ratio, " must be >= 1 and in (0, 1]");
}

MseRange MseObserver::range(const Codec& codec) const {
  const BlockScheme s = codec.block_format().scheme;
  MXQAT_CHECK(s == BlockScheme::kIntSym || s == BlockScheme::kIntAsym, "MSE observer: codec \"",
              codec.name(), "\" is not an INT codec; the MSE range search is for int8/int4 codecs");
  Range base{hist_.min(), hist_.max()};
  if (s == BlockScheme::kIntSym) {
    const float a = std::max(std::fabs(base.lo), std::fabs(base.hi));
    base = {-a, a};
  }
  MseRange best{base, 1.0, histogram_mse(hist_, codec, base), 0.0};
  best.mse_minmax = best.mse;
  for (int i = 1; i <= opt_.steps; ++i) {
    const double ratio = 1.0 - i * (1.0 - opt_.min_ratio) / opt_.steps;
    const Range r{static_cast<float>(base.lo * ratio), static_cast<float>(base.hi * ratio)};
    const double mse = histogram_mse(hist_, codec, r);
    if (mse < best.mse) best = {r, ratio, mse, best.mse_minmax};
  }
  return best;
}

}  // namespace mxqat::quant::calib
