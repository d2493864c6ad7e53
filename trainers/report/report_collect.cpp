// Collecting a run directory's results into one Report (report_data.h).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>

#include "autograd/error.h"
#include "trainers/recipe/recipe.h"
#include "trainers/report/report_data.h"
#include "trainers/util/json_write.h"
#include "trainers/util/json_read.h"

namespace mxqat::trainers::report {

namespace {
namespace fs = std::filesystem;

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
    const Json* lsq = v.find("lsq");  // (absent in runs from before learned scales)
    Row row{v.at("format").string(),
            lsq && lsq->boolean() ? "qat_lsq" : v.at("progressive").boolean() ? "qat_progressive" : "qat_direct",
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

}  // namespace

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

}  // namespace mxqat::trainers::report
