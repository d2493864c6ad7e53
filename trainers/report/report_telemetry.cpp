// Reading the QAT telemetry and warnings back from metrics.jsonl.
#include "trainers/report/report_telemetry.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <sstream>

#include "quant/monitor/monitor.h"
#include "trainers/recipe/recipe.h"
#include "trainers/util/json_read.h"
#include "trainers/util/json_write.h"

namespace mxqat::trainers {

namespace {
namespace fs = std::filesystem;

// Calls fn on every JSON line of DIR/metrics.jsonl (none when the file is missing).
template <class Fn>
void each_record(const std::string& dir, Fn fn) {
  const std::string path = dir + "/metrics.jsonl";
  if (!fs::exists(path)) return;
  std::istringstream in(read_file(path));
  int64_t n = 0;
  for (std::string line; std::getline(in, line);) {
    ++n;
    if (line.empty()) continue;
    fn(Json::parse(line, path + ":" + std::to_string(n)));
  }
}

int64_t count(const Json& j, const char* key) { return int64_t(j.number_or(key, 0)); }

// The monitor's statistics as the record holds them (what Monitor::anomalies reads).
quant::TensorStats stats_of(const Json& j) {
  quant::TensorStats s;
  s.name = j.at("monitor").string();
  s.codec = j.string_or("codec", "");
  s.numel = count(j, "numel"), s.blocks = count(j, "blocks");
  s.nan = count(j, "nan"), s.inf = count(j, "inf");
  const Json* q = j.find("sqnr_db");
  s.sqnr_db = q && q->kind() == Json::Kind::kNumber ? q->number() : INFINITY;  // null: exact
  s.zero_blocks = count(j, "zero_blocks"), s.flushed_blocks = count(j, "flushed_blocks");
  return s;
}
}  // namespace

Telemetry read_telemetry(const std::string& qat_dir) {
  Telemetry t;
  std::map<std::string, size_t> at;
  std::set<int64_t> steps;
  each_record(qat_dir, [&](const Json& j) {
    if (!j.find("monitor")) return;
    const std::string name = j.at("monitor").string();
    if (!at.count(name)) at[name] = t.tensors.size(), t.tensors.push_back({name, {}});
    TelemetryPoint p;
    p.step = int64_t(j.at("step").number());
    p.codec = j.string_or("codec", "");
    const Json* q = j.find("sqnr_db");
    p.sqnr_db = q && q->kind() == Json::Kind::kNumber ? q->number() : INFINITY;
    p.flips = j.number_or("flips", NAN);
    p.saturated = j.number_or("saturated", NAN);
    p.flushed = j.number_or("flushed", NAN);
    p.zero_blocks = count(j, "zero_blocks");
    p.nonfinite = count(j, "nan") + count(j, "inf");
    for (const auto& [key, v] : j.object())
      if (key.rfind("scale_exp[", 0) == 0) p.scale_exponents[std::stoi(key.substr(10))] = int64_t(v.number());
    steps.insert(p.step);
    auto& pts = t.tensors[at[name]].points;
    if (!pts.empty() && pts.back().step == p.step) pts.back() = p;  // a resumed run repeats a step
    else pts.push_back(p);
  });
  t.steps.assign(steps.begin(), steps.end());
  return t;
}

std::vector<TelemetryWarning> read_warnings(const std::string& qat_dir, const std::string& variant) {
  std::vector<TelemetryWarning> out;
  double threshold = QatCfg{}.sqnr_warn_db;
  if (fs::exists(qat_dir + "/recipe.yaml")) threshold = load_recipe(qat_dir + "/recipe.yaml").qat.sqnr_warn_db;
  each_record(qat_dir, [&](const Json& j) {
    const int64_t step = int64_t(j.number_or("step", 0));
    if (j.string_or("event", "") == "warning") {
      out.push_back({variant, step, j.string_or("tensor", ""), j.at("message").string()});
      return;
    }
    if (!j.find("monitor")) return;
    const std::string name = j.at("monitor").string();
    if (const Json* w = j.find("warnings")) {
      for (const Json& m : w->array()) out.push_back({variant, step, name, m.string()});
      return;
    }
    for (const auto& m : quant::Monitor::anomalies(stats_of(j), quant::MonitorOptions{threshold}))
      out.push_back({variant, step, name, m});
  });
  return out;
}

}  // namespace mxqat::trainers
