// The monitor's outputs (monitor.h): anomaly messages, the log table and the metrics fields.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "autograd/error.h"
#include "quant/monitor/monitor.h"

namespace mxqat::quant {

std::vector<std::string> Monitor::anomalies(const TensorStats& s, const MonitorOptions& opt) {
  std::vector<std::string> out;
  const std::string who = "tensor \"" + s.name + "\" (" + s.codec + ")";
  if (s.nan || s.inf)
    out.push_back(detail::concat(who, ": ", s.nan, " NaN and ", s.inf, " Inf of ", s.numel,
                                 " values"));
  if (s.sqnr_db < opt.min_sqnr_db)  // false for a NaN threshold
    out.push_back(detail::concat(who, ": SQNR ", s.sqnr_db, " dB is below the ", opt.min_sqnr_db,
                                 " dB threshold"));
  const int64_t zero = opt.zero_blocks == ZeroBlockCheck::kAny           ? s.zero_blocks
                       : opt.zero_blocks == ZeroBlockCheck::kFlushedOnly ? s.flushed_blocks
                                                                         : 0;
  if (zero > 0)
    out.push_back(detail::concat(who, ": ", s.zero_blocks, " of ", s.blocks,
                                 " blocks quantize to all zeros (", s.flushed_blocks,
                                 " of them from non-zero input)"));
  return out;
}

namespace {

std::string fixed(double v, int digits) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string exponent_summary(const TensorStats& s) {
  if (s.scale_exponents.empty()) return "-";
  const auto mode = std::max_element(s.scale_exponents.begin(), s.scale_exponents.end(),
                                     [](const auto& a, const auto& b) { return a.second < b.second; });
  return detail::concat(s.scale_exponents.front().first, "..", s.scale_exponents.back().first,
                        " mode ", mode->first);
}

}  // namespace

std::string stats_table(const std::vector<TensorStats>& stats) {
  std::vector<std::vector<std::string>> rows = {
      {"tensor", "codec", "sqnr_dB", "sat%", "flush%", "flips%", "zero_blk", "nan/inf", "scale_exp"}};
  for (const TensorStats& s : stats)
    rows.push_back({s.name, s.codec, fixed(s.sqnr_db, 2), fixed(100 * s.saturated, 3),
                    fixed(100 * s.flushed, 3), s.flips ? fixed(100 * *s.flips, 3) : "-",
                    std::to_string(s.zero_blocks), std::to_string(s.nan + s.inf),
                    exponent_summary(s)});
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& r : rows)
    for (size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], r[c].size());
  std::ostringstream os;
  for (const auto& r : rows) {
    std::string line;
    for (size_t c = 0; c < r.size(); ++c) {
      const std::string pad(width[c] - r[c].size(), ' ');
      line += c < 2 ? r[c] + pad : pad + r[c];  // names left, numbers right
      if (c + 1 < r.size()) line += "  ";
    }
    os << line << '\n';
  }
  return os.str();
}

std::vector<std::pair<std::string, double>> stats_fields(const TensorStats& s) {
  auto d = [](int64_t v) { return static_cast<double>(v); };
  std::vector<std::pair<std::string, double>> f = {
      {"numel", d(s.numel)},       {"blocks", d(s.blocks)},
      {"nan", d(s.nan)},           {"inf", d(s.inf)},
      {"sqnr_db", s.sqnr_db},      {"saturated", s.saturated},
      {"flushed", s.flushed},      {"zero_blocks", d(s.zero_blocks)},
      {"flushed_blocks", d(s.flushed_blocks)}};
  if (s.flips) f.emplace_back("flips", *s.flips);
  if (!s.scale_exponents.empty()) f.emplace_back("nan_scales", d(s.nan_scales));
  for (const auto& [e, n] : s.scale_exponents)
    f.emplace_back("scale_exp[" + std::to_string(e) + "]", d(n));
  return f;
}

}  // namespace mxqat::quant
