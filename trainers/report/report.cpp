// Report: collect the stages' JSON files, then render one data set four ways.
#include "trainers/report/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>

#include "autograd/error.h"
#include "trainers/recipe/recipe.h"
#include "trainers/report/report_svg.h"
#include "trainers/util/json_read.h"
#include "trainers/util/json_write.h"

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
  return rep;
}

std::string num(double v, const char* f = "%.4f") {
  if (!std::isfinite(v)) return "-";
  char b[48];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string pct(double v) { return std::isfinite(v) ? num(100 * v, "%.1f") + "%" : "-"; }

std::string markdown(const Report& r) {
  std::ostringstream o;
  o << "# mxqat report: " << r.recipe << "\n\nMetric: " << r.metric
    << (r.metric == "test_accuracy" ? " (higher is better)" : " (lower is better)") << ". "
    << "`recovered` = (value - rtn) / (baseline - rtn): the share of the round-to-nearest PTQ gap "
    << "a method closes (\"-\" where rtn lost nothing). PTQ calibration: " << r.calib_samples << " training samples; MX scale rule: "
    << (r.scale_rule.empty() ? "floor" : r.scale_rule) << ". Exported model: QAT `" << r.main_variant << "`"
    << (r.qat_loss.empty() ? "" : "; QAT loss: " + r.qat_loss) << ".\n\n"
    << "| codec | method | " << r.metric << " | delta vs baseline | recovered | bytes |\n|---|---|---:|---:|---:|---:|\n";
  for (const Row& x : r.rows)
    o << "| " << x.codec << " | " << x.method << " | " << num(x.value) << " | "
      << (x.method == "baseline" ? "-" : num(x.value - r.baseline, "%+.4f")) << " | " << pct(x.recovered)
      << " | " << x.bytes << " |\n";
  o << "\n## Train/infer alignment (" << r.align.codec << ")\n\n";
  if (r.align.present) {
    o << "| trained \\ inferred | FP32 | with the codec |\n|---|---:|---:|\n"
      << "| FP32 baseline | " << num(r.align.cell[0][0]) << " | " << num(r.align.cell[0][1]) << " |\n"
      << "| QAT | " << num(r.align.cell[1][0]) << " | " << num(r.align.cell[1][1]) << " |\n\n"
      << "Export vs training fake-quant forward: " << r.align.samples << " test samples, max |logit "
      << "difference| = " << num(r.align.max_abs_diff, "%g") << ", bitwise equal: "
      << (r.align.bitwise_equal ? "yes" : "NO") << ".\n";
  } else {
    o << "Not verified yet (the verify stage has not run).\n";
  }
  o << "\n## Per-layer weight SQNR (dB) at the exported format\n\n| layer |";
  for (const auto& s : r.sqnr_series) o << " " << s << " |";
  o << "\n|---|";
  for (size_t i = 0; i < r.sqnr_series.size(); ++i) o << "---:|";
  o << "\n";
  for (const auto& [layer, vals] : r.sqnr) {
    o << "| " << layer << " |";
    for (double v : vals) o << " " << num(v, "%.2f") << " |";
    o << "\n";
  }
  o << "\n## QAT schedule (" << r.main_variant << ")\n\n";
  for (const auto& m : r.phase_marks) o << "- step " << num(m.x, "%.0f") << ": " << m.label << "\n";
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
             .raw("alignment", r.align.present ? a.dump() : "null").dump() + "\n";
}

std::string html(const Report& r) {
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
  std::vector<std::string> layers;
  std::vector<std::vector<double>> sq;
  for (const auto& [l, v] : r.sqnr) layers.push_back(l), sq.push_back(v);
  std::string md = markdown(r);
  std::string body = svg::bars(r.metric + " by format and method (dashed: FP32 baseline)", codecs,
                               methods, acc, r.baseline) +
                     svg::bars("Per-layer weight SQNR (dB), exported format", layers, r.sqnr_series, sq, NAN) +
                     svg::lines("Baseline training loss", r.train_curve, {}) +
                     svg::lines("QAT training loss (markers: phase changes of " + r.main_variant + ")",
                                r.qat_curves, r.phase_marks);
  return "<!doctype html><html><head><meta charset=\"utf-8\"><title>mxqat report " + svg::escape(r.recipe) +
         "</title><style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}"
         "pre{background:#f6f6f6;padding:1em;overflow:auto}</style></head><body><h1>mxqat report: " +
         svg::escape(r.recipe) + "</h1>" + body + "<h2>Tables</h2><pre>" + svg::escape(md) +
         "</pre></body></html>\n";
}
}  // namespace

std::string write_report(const std::string& run_dir, const std::string& out_dir) {
  const Report r = collect(run_dir);
  fs::create_directories(out_dir);
  write_file_atomic(out_dir + "/report.md", markdown(r));
  write_file_atomic(out_dir + "/report.csv", csv(r));
  write_file_atomic(out_dir + "/report.json", json(r));
  write_file_atomic(out_dir + "/report.html", html(r));
  return out_dir + "/report.md";
}

}  // namespace mxqat::trainers
