// Codec helpers (see helpers.h).
#include "quant/codec/helpers.h"

#include <cmath>
#include <limits>

#include "quant/codec/codec.h"

namespace mxqat::quant {

int64_t encoded_bytes(const EncodedTensor& e) {
  return static_cast<int64_t>(e.codes.size() + e.scale_codes.size() + 4 * e.scales.size() +
                              e.zero_points.size());
}

double sqnr_db(double signal, double noise) {
  if (noise == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(signal / noise);
}

double sqnr_db(const float* x, const float* q, int64_t n) {
  double signal = 0, noise = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i]) || !std::isfinite(q[i])) continue;
    const double d = static_cast<double>(x[i]) - static_cast<double>(q[i]);
    signal += static_cast<double>(x[i]) * static_cast<double>(x[i]);
    noise += d * d;
  }
  return sqnr_db(signal, noise);
}

double sqnr_for_json(double db) { return std::isinf(db) && db > 0 ? kSqnrExactDb : db; }

}  // namespace mxqat::quant
