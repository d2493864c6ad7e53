// The report's tables and notes (report_tables.h).
#include "trainers/report/report_tables.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

namespace mxqat::trainers::report {

std::string num(double v, const char* f) {
  if (!std::isfinite(v)) return "-";
  char b[48];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string pct(double v, const char* f) { return std::isfinite(v) ? num(100 * v, f) + "%" : "-"; }

bool higher_is_better(const Report& r) { return r.metric == "test_accuracy"; }


std::string md_table(const Table& t) {
  auto cell = [](std::string s) {
    for (size_t p = 0; (p = s.find('|', p)) != std::string::npos; p += 2) s.replace(p, 1, "\\|");
    return s;
  };
  std::string o = "|", sep = "|";
  for (const auto& c : t.columns) o += " " + cell(c.title) + " |", sep += c.numeric ? "---:|" : "---|";
  o += "\n" + sep + "\n";
  for (const auto& row : t.rows) {
    o += "|";
    for (size_t j = 0; j < t.columns.size(); ++j) o += " " + cell(j < row.size() ? row[j] : "") + " |";
    o += "\n";
  }
  return o;
}

std::string html_table(const Table& t) { return html::table(t.id, t.columns, t.rows, t.best, t.badge_column); }

// The comparison: every method at every format; the best method of each format marked.
Table results_table(const Report& r) {
  Table t{"results", {{"codec"}, {"method"}, {r.metric, true}, {"delta vs baseline", true}, {"recovered", true},
                      {"bytes", true}}, {}, {}, 1};
  std::map<std::string, double> best;
  for (const Row& x : r.rows) {
    if (x.method == "baseline" || !std::isfinite(x.value)) continue;
    auto it = best.find(x.codec);
    if (it == best.end()) best[x.codec] = x.value;
    else it->second = higher_is_better(r) ? std::max(it->second, x.value) : std::min(it->second, x.value);
  }
  for (const Row& x : r.rows) {
    t.rows.push_back({x.codec, x.method, num(x.value),
                      x.method == "baseline" ? "-" : num(x.value - r.baseline, "%+.4f"),
                      pct(x.recovered), std::to_string(x.bytes)});
    t.best.push_back(x.method != "baseline" && best.count(x.codec) && x.value == best[x.codec]);
  }
  return t;
}

Table alignment_table(const Report& r) {
  return {"alignment", {{"trained \\ inferred"}, {"FP32", true}, {"with the codec", true}},
          {{"FP32 baseline", num(r.align.cell[0][0]), num(r.align.cell[0][1])},
           {"QAT", num(r.align.cell[1][0]), num(r.align.cell[1][1])}}, {}, 0};
}

Table sqnr_table(const Report& r) {
  Table t{"sqnr", {{"layer"}}, {}, {}, 0};
  for (const auto& s : r.sqnr_series) t.columns.push_back({s, true});
  for (const auto& [layer, vals] : r.sqnr) {
    t.rows.push_back({layer});
    for (double v : vals) t.rows.back().push_back(num(v, "%.2f"));
  }
  return t;
}

// Each monitored tensor at the last monitor step.
Table telemetry_table(const Report& r) {
  Table t{"telemetry", {{"tensor"}, {"codec"}, {"SQNR (dB)", true}, {"saturated", true}, {"flushed", true},
                        {"code flips", true}, {"all-zero blocks", true}, {"NaN/Inf", true}}, {}, {}, 0};
  for (const auto& tr : r.telemetry.tensors) {
    const TelemetryPoint& p = tr.points.back();
    t.rows.push_back({tr.name, p.codec, std::isinf(p.sqnr_db) ? "exact" : num(p.sqnr_db, "%.2f"),
                      pct(p.saturated, "%.3f"), pct(p.flushed, "%.3f"), pct(p.flips, "%.3f"),
                      std::to_string(p.zero_blocks), std::to_string(p.nonfinite)});
  }
  return t;
}

constexpr size_t kMaxWarnings = 200;  // listed; the count says how many there were

Table warnings_table(const Report& r) {
  Table t{"warnings", {{"QAT run"}, {"step", true}, {"tensor"}, {"warning"}}, {}, {}, 0};
  for (size_t i = 0; i < r.warnings.size() && i < kMaxWarnings; ++i) {
    const auto& w = r.warnings[i];
    t.rows.push_back({w.variant, std::to_string(w.step), w.tensor.empty() ? "-" : w.tensor, w.message});
  }
  return t;
}

std::string warnings_note(const Report& r) {
  if (r.warnings.empty())
    return "No warnings: no NaN/Inf, no SQNR below the threshold, no flushed blocks, no skipped steps.";
  std::map<std::string, size_t> per;
  for (const auto& w : r.warnings) ++per[w.variant];
  std::string s = std::to_string(r.warnings.size()) + " warnings (";
  for (const auto& [v, n] : per) s += (s.back() == '(' ? "" : ", ") + v + ": " + std::to_string(n);
  s += ")";
  if (r.warnings.size() > kMaxWarnings)
    s += "; the first " + std::to_string(kMaxWarnings) + " are listed, all are in qat/<run>/metrics.jsonl";
  return s + ".";
}

Table kv_table(const Report& r) {
  Table t{"kv-cache", {{"KV cache"}, {"test bits/byte, incremental", true}, {"full forward", true},
                       {"max |logit diff|", true}, {"bytes/token", true}}, {}, {}, 0};
  if (r.kv_cache.kind() != Json::Kind::kObject) return t;
  for (const Json& s : r.kv_cache.at("settings").array())
    t.rows.push_back({s.at("kv_cache").string(), num(s.at("test_bits_per_byte").number()),
                      num(s.at("full_forward_bits_per_byte").number()),
                      num(s.at("max_abs_logit_diff").number(), "%.3g"),
                      std::to_string(int64_t(s.at("kv_bytes_per_token").number()))});
  return t;
}

std::string kv_note(const Report& r) {
  return "Exported model `" + r.kv_cache.at("model").string() + "`, first " +
         std::to_string(int64_t(r.kv_cache.at("windows").number())) + " test windows decoded one byte at a time "
         "from an empty cache (teacher forcing), against the same bytes through the full forward.";
}

bool is_gpt(const Report& r) { return r.samples.kind() == Json::Kind::kObject; }

std::string intro(const Report& r) {
  return "Metric: " + r.metric + (higher_is_better(r) ? " (higher is better)" : " (lower is better)") +
         ". `recovered` = (value - rtn) / (baseline - rtn): the share of the round-to-nearest PTQ gap "
         "a method closes (\"-\" where rtn lost nothing). PTQ calibration: " + std::to_string(r.calib_samples) +
         " training samples; MX scale rule: " + (r.scale_rule.empty() ? "floor" : r.scale_rule) +
         ". Exported model: QAT `" + r.main_variant + "`" +
         (r.qat_loss.empty() ? "" : "; QAT loss: " + r.qat_loss) + ".";
}

std::string alignment_note(const Report& r) {
  return "Export vs training fake-quant forward: " + std::to_string(r.align.samples) + " test samples, max |logit "
         "difference| = " + num(r.align.max_abs_diff, "%g") +
         ", bitwise equal: " + (r.align.bitwise_equal ? "yes" : "NO") + ".";
}

}  // namespace mxqat::trainers::report
