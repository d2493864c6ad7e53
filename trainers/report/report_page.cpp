// report.html: the report's tables (report_tables.h) as sortable HTML tables, with inline SVG
// charts (report_svg.h) of the loss curves, SQNR, telemetry heatmaps and scale exponents.
#include "trainers/report/report_page.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <set>

#include "trainers/report/report_tables.h"

namespace mxqat::trainers::report {

namespace {
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

}  // namespace

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

}  // namespace mxqat::trainers::report
