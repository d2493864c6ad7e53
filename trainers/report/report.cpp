// Report: collect the stages' JSON files, then render one data set four ways.
#include "trainers/report/report.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "autograd/error.h"
#include "trainers/recipe/recipe.h"
#include "trainers/report/report_html.h"
#include "trainers/report/report_svg.h"
#include "trainers/report/report_telemetry.h"
#include "trainers/util/json_read.h"
#include "trainers/util/json_write.h"
#include "trainers/util/files.h"

namespace mxqat::trainers {

namespace {
namespace fs = std::filesystem;

struct Row {
  std::string codec, method;
  double value = NAN, recovered = NAN;
  int64_t bytes = 0;
};

struct Alignment {
  bool present = false;
  int64_t samples = 0;
  double max_abs_diff = NAN;
  bool bitwise_equal = false;
  double cell[2][2] = {{NAN, NAN}, {NAN, NAN}};  // [trained fp32|qat][inferred fp32|codec]
  std::string codec;
};

struct Report {
  std::string metric = "test_accuracy";
  std::string recipe, main_variant, scale_rule;
  std::string qat_loss;  // what the QAT runs minimised (labels, or labels and a teacher)
  double baseline = NAN;
  int64_t baseline_bytes = 0, calib_samples = 0;
  std::vector<Row> rows;
  std::vector<std::string> sqnr_series;
  std::vector<std::pair<std::string, std::vector<double>>> sqnr;  // layer -> value per series
  std::vector<svg::Series> train_curve, qat_curves;
  std::vector<svg::Marker> phase_marks;
  Alignment align;
  Telemetry telemetry;                     // of the exported (main) QAT variant
  std::vector<TelemetryWarning> warnings;  // of every QAT variant
  Json samples, kv_cache;                  // gpt runs: DIR/sample/*.json (null when absent)
};

Json need(const std::string& path, const std::string& stage) {
  MXQAT_CHECK(fs::exists(path), "compare: ", path, " is missing: the ", stage, " stage has not "
              "finished; run 'mxqat run RECIPE --out RUN_DIR' (it resumes) first");
  return Json::read(path);
}

svg::Series loss_curve(const std::string& metrics, const std::string& name) {
  svg::Series s{name, {}};
  if (!fs::exists(metrics)) return s;
  std::istringstream in(read_file(metrics));
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const Json j = Json::parse(line, metrics);
    if (j.string_or("split", "") == "train") s.points.push_back({j.at("step").number(), j.at("loss").number()});
  }
  return s;
}

std::vector<svg::Marker> phase_marks(const std::string& metrics) {
  std::vector<svg::Marker> out;
  if (!fs::exists(metrics)) return out;
  std::istringstream in(read_file(metrics));
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const Json j = Json::parse(line, metrics);
    if (j.string_or("event", "") != "phase") continue;
    const double step = j.at("step").number();
    if (!out.empty() && out.back().x == step) continue;
    out.push_back({step, j.at("weight").string()});
  }
  return out;
}

void add_ptq(Report& rep, const std::string& dir, std::map<std::string, double>& rtn) {
  const Json p = need(dir + "/ptq/summary.json", "ptq");
  rep.baseline_bytes = int64_t(p.at("baseline_bytes").number());
  rep.calib_samples = int64_t(p.number_or("calib_samples", 0));
  rep.scale_rule = p.string_or("scale_rule", "");
  for (const Json& r : p.at("rows").array()) {
    Row row{r.at("format").string(), r.at("method").string(), r.at("value").number(), NAN,
            int64_t(r.at("bytes").number())};
    if (row.method == "rtn") rtn[row.codec] = row.value;
    rep.rows.push_back(row);
  }
}

// The QAT loss, from the effective recipe the QAT run stored.
std::string qat_loss(const std::string& recipe_path) {
  if (!fs::exists(recipe_path)) return "";
  const DistillCfg d = load_recipe(recipe_path).qat.distill;
  if (d.weight <= 0) return "cross-entropy on the labels";
  char b[200];
  std::snprintf(b, sizeof b, "%g x cross-entropy on the labels + %g x distillation from the FP32 "
                "baseline (T^2 KL, temperature %g)", 1 - d.weight, d.weight, d.temperature);
  return b;
}

void add_qat(Report& rep, const std::string& dir, std::map<std::string, double>& rtn) {
  const Json q = need(dir + "/qat/summary.json", "qat");
  rep.main_variant = q.at("main").string();
  for (const Json& v : q.at("variants").array()) {
    const std::string id = v.at("id").string();
    const Json s = need(dir + "/qat/" + id + "/summary.json", "qat (" + id + ")");
    Row row{v.at("format").string(), v.at("progressive").boolean() ? "qat_progressive" : "qat_direct",
            s.at("qat").number(), NAN, 0};
    if (!rtn.count(row.codec)) rtn[row.codec] = s.at("direct_cast").number();
    const std::string exp = dir + "/export/" + id + ".json";
    if (fs::exists(exp)) row.bytes = int64_t(Json::read(exp).at("bytes").number());
    rep.rows.push_back(row);
    rep.qat_curves.push_back(loss_curve(dir + "/qat/" + id + "/metrics.jsonl", id));
    const auto w = read_warnings(dir + "/qat/" + id, id);
    rep.warnings.insert(rep.warnings.end(), w.begin(), w.end());
    if (id == rep.main_variant) {
      rep.phase_marks = phase_marks(dir + "/qat/" + id + "/metrics.jsonl");
      rep.qat_loss = qat_loss(dir + "/qat/" + id + "/recipe.yaml");
    }
  }
}

// Per-layer weight SQNR at the main format: each PTQ method, and the QAT export.
void add_sqnr(Report& rep, const std::string& dir) {
  const Json p = Json::read(dir + "/ptq/summary.json");
  const std::string main_format = Json::read(dir + "/qat/summary.json").at("main_format").string();
  std::map<std::string, size_t> at;
  auto put = [&](const std::string& layer, size_t series, double v) {
    if (!at.count(layer)) at[layer] = rep.sqnr.size(), rep.sqnr.push_back({layer, {}});
    auto& vals = rep.sqnr[at[layer]].second;
    vals.resize(rep.sqnr_series.size(), NAN);
    vals[series] = v;
  };
  for (const Json& r : p.at("rows").array()) {
    if (r.at("format").string() != main_format) continue;
    rep.sqnr_series.push_back(r.at("method").string());
    for (const Json& l : r.at("layers").array()) put(l.at("layer").string(), rep.sqnr_series.size() - 1, l.at("sqnr_db").number());
  }
  const std::string exp = dir + "/export/" + rep.main_variant + ".json";
  if (!fs::exists(exp)) return;
  rep.sqnr_series.push_back("qat");
  const Json manifest = Json::read(exp);
  for (const Json& t : manifest.at("tensors").array()) {
    if (!t.find("sqnr_db")) continue;
    std::string layer = t.at("name").string();
    layer = layer.substr(0, layer.rfind('.'));
    put(layer, rep.sqnr_series.size() - 1, t.at("sqnr_db").number());
  }
  for (auto& [layer, vals] : rep.sqnr) vals.resize(rep.sqnr_series.size(), NAN);
}

void add_alignment(Report& rep, const std::string& dir) {
  const std::string path = dir + "/export/alignment.json";
  if (!fs::exists(path)) return;
  const Json a = Json::read(path);
  rep.align.present = true;
  rep.align.samples = int64_t(a.at("samples").number());
  rep.align.max_abs_diff = a.at("max_abs_diff").number();
  rep.align.bitwise_equal = a.at("bitwise_equal").boolean();
  rep.align.codec = a.string_or("codec", "");
  const char* keys[2][2] = {{"fp32_fp32", "fp32_codec"}, {"qat_fp32", "qat_codec"}};
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) rep.align.cell[i][j] = a.at("matrix").at(keys[i][j]).number();
}

Report collect(const std::string& dir) {
  Report rep;
  const Json b = need(dir + "/baseline/summary.json", "baseline");
  rep.recipe = b.string_or("recipe", "");
  rep.metric = b.string_or("metric", "test_accuracy");
  rep.baseline = b.at(rep.metric).number();
  rep.train_curve.push_back(loss_curve(dir + "/baseline/metrics.jsonl", "baseline (fp32)"));
  std::map<std::string, double> rtn;
  add_ptq(rep, dir, rtn);
  add_qat(rep, dir, rtn);
  std::map<std::string, int64_t> bytes;  // a format's size, where the PTQ rows know it
  for (const Row& r : rep.rows) if (r.bytes > 0) bytes.emplace(r.codec, r.bytes);
  for (Row& r : rep.rows) {
    if (r.bytes == 0 && bytes.count(r.codec)) r.bytes = bytes[r.codec];
    // Only a real loss has a share to recover: rtn below the baseline (above it for bits/byte).
    const double gap = rep.baseline - rtn[r.codec];
    const bool loss = rep.metric == "test_accuracy" ? gap > 1e-12 : gap < -1e-12;
    if (loss) r.recovered = (r.value - rtn[r.codec]) / gap + 0.0;  // no -0
  }
  std::stable_sort(rep.rows.begin(), rep.rows.end(), [](const Row& a, const Row& b) { return a.codec < b.codec; });
  rep.rows.insert(rep.rows.begin(), Row{"fp32", "baseline", rep.baseline, NAN, rep.baseline_bytes});
  add_sqnr(rep, dir);
  add_alignment(rep, dir);
  rep.telemetry = read_telemetry(dir + "/qat/" + rep.main_variant);
  if (fs::exists(dir + "/sample/samples.json")) rep.samples = Json::read(dir + "/sample/samples.json");
  if (fs::exists(dir + "/sample/kv_cache.json")) rep.kv_cache = Json::read(dir + "/sample/kv_cache.json");
  return rep;
}

std::string num(double v, const char* f = "%.4f") {
  if (!std::isfinite(v)) return "-";
  char b[48];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string pct(double v, const char* f = "%.1f") { return std::isfinite(v) ? num(100 * v, f) + "%" : "-"; }

bool higher_is_better(const Report& r) { return r.metric == "test_accuracy"; }

// One table of the report, rendered both as markdown (report.md) and as HTML (report.html).
struct Table {
  std::string id;
  std::vector<html::Column> columns;
  std::vector<std::vector<std::string>> rows;
  std::vector<bool> best;
  size_t badge_column = 0;
};

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

std::string markdown(const Report& r) {
  std::ostringstream o;
  o << "# mxqat report: " << r.recipe << "\n\n" << intro(r) << "\n\n" << md_table(results_table(r));
  o << "\n## Train/infer alignment (" << r.align.codec << ")\n\n";
  if (r.align.present) o << md_table(alignment_table(r)) << "\n" << alignment_note(r) << "\n";
  else o << "Not verified yet (the verify stage has not run).\n";
  o << "\n## Per-layer weight SQNR (dB) at the exported format\n\n" << md_table(sqnr_table(r));
  o << "\n## QAT schedule (" << r.main_variant << ")\n\n";
  for (const auto& m : r.phase_marks) o << "- step " << num(m.x, "%.0f") << ": " << m.label << "\n";
  if (!r.telemetry.tensors.empty())
    o << "\n## QAT telemetry (" << r.main_variant << ", step " << r.telemetry.steps.back() << ")\n\n"
      << md_table(telemetry_table(r));
  o << "\n## Warnings\n\n" << warnings_note(r) << "\n";
  if (!r.warnings.empty()) o << "\n" << md_table(warnings_table(r));
  if (is_gpt(r)) {
    o << "\n## Samples\n\nPrompt \"" << r.samples.at("prompt").string() << "\", seed "
      << int64_t(r.samples.at("seed").number()) << ", temperature " << num(r.samples.at("temperature").number(), "%g")
      << ", " << int64_t(r.samples.at("tokens").number()) << " bytes each.\n";
    for (const Json& s : r.samples.at("samples").array())
      o << "\n**" << s.at("model").string() << "**\n\n```\n" << r.samples.at("prompt").string() << s.at("text").string()
        << "\n```\n";
  }
  if (r.kv_cache.kind() == Json::Kind::kObject)
    o << "\n## KV cache\n\n" << kv_note(r) << "\n\n" << md_table(kv_table(r));
  return o.str();
}

std::string csv(const Report& r) {
  std::string o = "codec,method," + r.metric + ",delta,recovered,bytes\n";
  for (const Row& x : r.rows)
    o += x.codec + "," + x.method + "," + num(x.value, "%.6f") + "," +
         (x.method == "baseline" ? "" : num(x.value - r.baseline, "%.6f")) + "," +
         (std::isfinite(x.recovered) ? num(x.recovered, "%.6f") : "") + "," + std::to_string(x.bytes) + "\n";
  return o;
}

std::string json(const Report& r) {
  JsonArray rows;
  for (const Row& x : r.rows)
    rows.add(JsonObject().str("codec", x.codec).str("method", x.method).num("value", x.value)
                 .num("recovered", x.recovered).integer("bytes", x.bytes));
  JsonObject a;
  if (r.align.present) {
    a.integer("samples", r.align.samples).num("max_abs_diff", r.align.max_abs_diff)
        .boolean("bitwise_equal", r.align.bitwise_equal).str("codec", r.align.codec)
        .raw("matrix", JsonObject().num("fp32_fp32", r.align.cell[0][0]).num("fp32_codec", r.align.cell[0][1])
                           .num("qat_fp32", r.align.cell[1][0]).num("qat_codec", r.align.cell[1][1]).dump());
  }
  return JsonObject().str("recipe", r.recipe).str("metric", r.metric).num("baseline", r.baseline)
             .str("exported", r.main_variant).str("qat_loss", r.qat_loss).raw("rows", rows.dump_lines())
             .raw("alignment", r.align.present ? a.dump() : "null")
             .integer("warnings", int64_t(r.warnings.size())).dump() + "\n";
}


// Escaped text with `code` spans.
std::string inline_md(const std::string& s) {
  std::string o;
  bool code = false;
  for (char c : s) {
    if (c == '`') o += (code = !code) ? "<code>" : "</code>";
    else o += svg::escape(std::string(1, c));
  }
  return o + (code ? "</code>" : "");
}

std::string figure(const std::string& caption, const std::string& chart) {
  return "<figure class=\"fig\"><figcaption>" + svg::escape(caption) + "</figcaption>" + chart + "</figure>";
}

std::string section(const std::string& id, const std::string& title) {
  return "<h2 id=\"" + id + "\">" + svg::escape(title) + "</h2>";
}

// A heatmap of one telemetry field, tensors (those whose name ends in `suffix`) x monitor steps.
std::string telemetry_heatmap(const Report& r, const std::string& id, const std::string& suffix,
                              double TelemetryPoint::*field, double scale, const std::string& what,
                              bool dark_high) {
  const Telemetry& t = r.telemetry;
  std::vector<std::string> rows, cols;
  for (int64_t s : t.steps) cols.push_back(std::to_string(s));
  std::vector<std::vector<double>> v;
  double mx = 0;
  for (const auto& tr : t.tensors) {
    const size_t n = tr.name.size();
    if (n < suffix.size() || tr.name.compare(n - suffix.size(), suffix.size(), suffix)) continue;
    rows.push_back(tr.name.substr(0, tr.name.size() - suffix.size()));
    v.emplace_back(t.steps.size(), NAN);
    for (const auto& p : tr.points) {
      const size_t c = size_t(std::lower_bound(t.steps.begin(), t.steps.end(), p.step) - t.steps.begin());
      const double x = p.*field * scale;
      v.back()[c] = std::isfinite(x) ? x : NAN;
      if (std::isfinite(x)) mx = std::max(mx, std::abs(x));
    }
  }
  if (rows.empty()) return "";
  return figure(what + " of each layer's " + (suffix == ".weight" ? "weight" : "input activation") +
                    " over the QAT steps",
                svg::heatmap(id, rows, cols, v, "QAT step", what, dark_high, mx < 1 ? 3 : mx < 10 ? 2 : 1));
}

// The E8M0 scale exponents of the tensor with the lowest SQNR at the last monitor step: at its
// first report under the same codec and at the last.
std::string exponent_histogram(const Report& r) {
  const TensorTrace* worst = nullptr;
  for (const auto& tr : r.telemetry.tensors) {
    const auto& p = tr.points.back();
    if (p.scale_exponents.empty() || !std::isfinite(p.sqnr_db)) continue;
    if (!worst || p.sqnr_db < worst->points.back().sqnr_db) worst = &tr;
  }
  if (!worst) return "";
  const TelemetryPoint& last = worst->points.back();
  const TelemetryPoint* first = &last;
  for (const auto& p : worst->points)
    if (p.codec == last.codec && !p.scale_exponents.empty()) {
      first = &p;
      break;
    }
  // The exponents either report uses, with the unused ones between them; five or more unused in a
  // row (e.g. between -127, the scale of all-zero blocks, and the bulk) are one empty "a..b" slot.
  std::set<int> used;
  for (const auto* p : {first, &last})
    for (const auto& [e, n] : p->scale_exponents) used.insert(e);
  std::vector<std::string> cats;
  std::vector<std::vector<double>> v;
  std::vector<std::string> series = {"step " + std::to_string(first->step)};
  if (first != &last) series.push_back("step " + std::to_string(last.step));
  auto count = [](const TelemetryPoint& p, int e) {
    auto it = p.scale_exponents.find(e);
    return double(it == p.scale_exponents.end() ? 0 : it->second);
  };
  auto add = [&](const std::string& category, int e) {  // e = INT_MIN: a gap slot
    cats.push_back(category);
    v.push_back({e == INT_MIN ? 0.0 : count(*first, e)});
    if (first != &last) v.back().push_back(e == INT_MIN ? 0.0 : count(last, e));
  };
  int prev = INT_MIN;
  for (int e : used) {
    if (prev != INT_MIN && e - prev > 5) add(std::to_string(prev + 1) + ".." + std::to_string(e - 1), INT_MIN);
    else if (prev != INT_MIN)
      for (int g = prev + 1; g < e; ++g) add(std::to_string(g), g);
    add(std::to_string(e), e);
    prev = e;
  }
  svg::BarOptions o;
  o.value_title = "blocks";
  o.category_title = "E8M0 scale exponent e (block scale 2^e; a..b: exponents no block uses)";
  o.from_zero = true;
  return figure("Scale exponents of the lowest-SQNR tensor, " + worst->name + " (" + last.codec + ", " +
                    num(last.sqnr_db, "%.2f") + " dB at step " + std::to_string(last.step) + ")",
                svg::bars("exponents", cats, series, v, o));
}

std::string page_html(const Report& r) {
  std::vector<std::string> codecs, methods;
  for (const Row& x : r.rows) {
    if (x.method == "baseline") continue;
    if (std::find(codecs.begin(), codecs.end(), x.codec) == codecs.end()) codecs.push_back(x.codec);
    if (std::find(methods.begin(), methods.end(), x.method) == methods.end()) methods.push_back(x.method);
  }
  std::vector<std::vector<double>> acc(codecs.size(), std::vector<double>(methods.size(), NAN));
  for (const Row& x : r.rows) {
    if (x.method == "baseline") continue;
    const size_t c = size_t(std::find(codecs.begin(), codecs.end(), x.codec) - codecs.begin());
    const size_t m = size_t(std::find(methods.begin(), methods.end(), x.method) - methods.begin());
    acc[c][m] = x.value;
  }
  const std::string better = higher_is_better(r) ? "higher is better" : "lower is better";
  std::string b = "<h1>mxqat report: " + svg::escape(r.recipe) + "</h1><p class=\"note\">" + inline_md(intro(r)) +
                  "</p>";
  b += "<p class=\"note\">Sections: <a href=\"#results\">results</a> · <a href=\"#alignment\">alignment</a> · "
       "<a href=\"#sqnr\">per-layer SQNR</a> · <a href=\"#loss\">loss</a> · <a href=\"#telemetry\">telemetry</a> · "
       "<a href=\"#warnings\">warnings</a>" +
       std::string(is_gpt(r) ? " · <a href=\"#samples\">samples</a>" : "") +
       (r.kv_cache.kind() == Json::Kind::kObject ? " · <a href=\"#kv\">KV cache</a>" : "") +
       ". Click a table header to sort.</p>";

  b += section("results", "Results") + html_table(results_table(r)) +
       "<p class=\"note\">Bold with a <span class=\"badge\">best</span> badge: the best method at each format (" +
       better + ").</p>";
  svg::BarOptions bo;
  bo.value_title = r.metric;
  bo.reference = r.baseline;
  bo.reference_label = "FP32 baseline (" + num(r.baseline) + ")";
  bo.category_title = "format";
  b += figure(r.metric + " by format and method (" + better + ")", svg::bars("by-method", codecs, methods, acc, bo));

  b += section("alignment", "Train/infer alignment (" + r.align.codec + ")");
  b += r.align.present ? html_table(alignment_table(r)) + "<p class=\"note\">" + svg::escape(alignment_note(r)) + "</p>"
                       : "<p>Not verified yet (the verify stage has not run).</p>";

  b += section("sqnr", "Per-layer weight SQNR at the exported format") + html_table(sqnr_table(r));
  std::vector<std::string> layers;
  std::vector<std::vector<double>> sq;
  for (const auto& [l, v] : r.sqnr) layers.push_back(l), sq.push_back(v);
  svg::BarOptions so;
  so.value_title = "weight SQNR (dB), higher is better";
  so.horizontal = true;
  so.from_zero = true;
  b += figure("Weight SQNR per layer and method", svg::bars("sqnr-bars", layers, r.sqnr_series, sq, so));

  b += section("loss", "Training loss") +
       figure("Baseline training loss", svg::lines("loss-baseline", r.train_curve, {}, "step", "loss")) +
       figure("QAT training loss of every variant (dotted verticals: phase changes of " + r.main_variant + ")",
              svg::lines("loss-qat", r.qat_curves, r.phase_marks, "QAT step", "loss"));
  b += "<h3>QAT schedule (" + svg::escape(r.main_variant) + ")</h3><ul>";
  for (const auto& m : r.phase_marks) b += "<li>step " + num(m.x, "%.0f") + ": " + svg::escape(m.label) + "</li>";
  b += "</ul>";

  b += section("telemetry", "QAT telemetry (" + r.main_variant + ")");
  if (r.telemetry.tensors.empty()) {
    b += "<p>No telemetry recorded (qat.monitor_every is 0 or larger than the run).</p>";
  } else {
    b += "<p class=\"note\">Recorded every qat.monitor_every steps for each quantized operand: the weight as its GEMM "
         "sees it and the input activation of the step just taken. Code flips: the share of a weight's element "
         "codes that changed since the previous report (none at the first).</p>" +
         telemetry_heatmap(r, "heat-sqnr-w", ".weight", &TelemetryPoint::sqnr_db, 1, "SQNR (dB)", false) +
         telemetry_heatmap(r, "heat-sqnr-x", ".input", &TelemetryPoint::sqnr_db, 1, "SQNR (dB)", false) +
         telemetry_heatmap(r, "heat-flips", ".weight", &TelemetryPoint::flips, 100, "code flips (%)", true) +
         exponent_histogram(r) + "<h3>Every tensor at step " + std::to_string(r.telemetry.steps.back()) + "</h3>" +
         html_table(telemetry_table(r));
  }
  b += section("warnings", "Warnings") + "<p>" + svg::escape(warnings_note(r)) + "</p>";
  if (!r.warnings.empty()) b += html_table(warnings_table(r));

  if (is_gpt(r)) {
    const std::string prompt = r.samples.at("prompt").string();
    b += section("samples", "Samples") + "<p class=\"note\">The same prompt (highlighted) and seed " +
         std::to_string(int64_t(r.samples.at("seed").number())) + " through every model, temperature " +
         num(r.samples.at("temperature").number(), "%g") + ", " +
         std::to_string(int64_t(r.samples.at("tokens").number())) +
         " new bytes each.</p>";
    for (const Json& s : r.samples.at("samples").array())
      b += "<h3>" + svg::escape(s.at("model").string()) + " <span class=\"note\">(" +
           svg::escape(s.at("file").string()) +
           ")</span></h3><pre class=\"sample\"><span class=\"prompt\">" + svg::escape(prompt) + "</span>" +
           svg::escape(s.at("text").string()) + "</pre>";
  }
  if (r.kv_cache.kind() == Json::Kind::kObject)
    b += section("kv", "KV cache") + "<p class=\"note\">" + inline_md(kv_note(r)) + "</p>" + html_table(kv_table(r));
  return html::page("mxqat report " + r.recipe, b);
}
}  // namespace

std::string write_report(const std::string& run_dir, const std::string& out_dir) {
  const Report r = collect(run_dir);
  make_output_dir(out_dir, "report");
  write_file_atomic(out_dir + "/report.md", markdown(r));
  write_file_atomic(out_dir + "/report.csv", csv(r));
  write_file_atomic(out_dir + "/report.json", json(r));
  write_file_atomic(out_dir + "/report.html", page_html(r));
  return out_dir + "/report.md";
}

}  // namespace mxqat::trainers
