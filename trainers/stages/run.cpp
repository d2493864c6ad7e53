// The run pipeline: stage validity checks, resume decisions, and the stages in order.
#include "trainers/stages/run.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>

#include "trainers/data/task.h"
#include "trainers/dist/dist.h"
#include "trainers/recipe/variants.h"
#include "trainers/report/report.h"
#include "trainers/runtime/infer.h"
#include "trainers/stages/export_stage.h"
#include "trainers/stages/ptq_stage.h"
#include "trainers/stages/qat.h"
#include "trainers/stages/sample_stage.h"
#include "trainers/stages/train_stage.h"
#include "trainers/util/json_read.h"
#include "trainers/util/json_write.h"
#include "trainers/util/files.h"

namespace mxqat::trainers {

namespace {
namespace fs = std::filesystem;

// A summary counts as done when it parses and holds `key`; anything else means redo.
bool done(const std::string& summary, const char* key) {
  if (!fs::exists(summary)) return false;
  try {
    return Json::read(summary).find(key) != nullptr;
  } catch (const Error& e) {
    spdlog::warn("{}: {}; redoing that stage", summary, e.what());
    return false;
  }
}

// The stage directory was made by this recipe (the settings outside `ignore` prefixes agree);
// otherwise reusing it would mix two experiments.
void check_same_recipe(const std::string& stage_dir, const Recipe& r, const std::vector<std::string>& ignore) {
  const std::string path = stage_dir + "/recipe.yaml";
  if (!fs::exists(path)) return;
  const Recipe old = parse_recipe(read_file(path), path);
  std::string diffs;
  for (const auto& d : recipe_diff(old, r)) {
    bool skip = d.rfind("name", 0) == 0;
    for (const auto& p : ignore) skip = skip || d.rfind(p, 0) == 0;
    if (!skip) diffs += "\n  " + d;
  }
  MXQAT_CHECK(diffs.empty(), stage_dir, " was made with another recipe:", diffs,
              "\nuse another --out, or delete ", stage_dir, " to redo it");
}

const std::vector<std::string> kBaselineIgnores = {"quant", "qat", "ptq", "compare"};

// With several processes (mpirun): the training stages run on all of them (data parallel), the
// others on rank 0 while the rest wait; every decision below reads files that no process is
// writing (each stage ends with a barrier), so all processes take the same branch.
bool on_root(const std::function<bool()>& stage) {
  char ok = 1;
  if (is_root()) ok = stage() ? 1 : 0;
  Dist& d = dist();
  d.broadcast(&ok, 1, 0);
  return ok != 0;
}

// Before a training stage starts afresh in `sd`: rank 0 clears it, the others wait for that.
void clear_stage_dir(const std::string& sd) {
  if (is_root()) fs::remove_all(sd);
  dist().barrier();
}

bool stage_baseline(const Recipe& r, const std::string& dir) {
  const std::string sd = dir + "/baseline", ckpt = sd + "/checkpoint.h5";
  check_same_recipe(sd, r, kBaselineIgnores);
  if (done(sd + "/summary.json", "test_accuracy") && is_checkpoint(ckpt)) {
    spdlog::info("run: baseline done ({}), skipped", sd);
    return true;
  }
  TrainOptions o;
  o.out_dir = sd;
  o.resume = is_checkpoint(ckpt);
  dist().barrier();  // every process has looked before rank 0 clears anything
  if (!o.resume) clear_stage_dir(sd);
  spdlog::info("run: baseline -> {}{}", sd, o.resume ? " (resuming)" : "");
  return train(r, o).completed;
}

bool stage_ptq(const Recipe& r, const std::string& dir) {
  const std::string sd = dir + "/ptq";
  check_same_recipe(sd, r, {"qat"});
  if (done(sd + "/summary.json", "rows")) {
    spdlog::info("run: ptq done ({}), skipped", sd);
    return true;
  }
  fs::create_directories(sd);
  write_file_atomic(sd + "/recipe.yaml", r.text);
  PtqOptions o;
  o.out_dir = sd;
  o.from = dir + "/baseline/checkpoint.h5";
  ptq(r, o);
  return true;
}

bool stage_qat(const Recipe& r, const std::string& dir, const std::vector<QatVariant>& variants) {
  JsonArray list;
  for (const auto& v : variants) {
    const std::string sd = dir + "/qat/" + v.id, ckpt = sd + "/checkpoint.h5";
    check_same_recipe(sd, v.recipe, {"ptq", "compare"});
    if (done(sd + "/summary.json", "qat")) {
      spdlog::info("run: qat {} done, skipped", v.id);
    } else {
      QatOptions o;
      o.out_dir = sd;
      o.from = dir + "/baseline/checkpoint.h5";
      o.resume = is_checkpoint(ckpt);
      dist().barrier();  // every process has looked before rank 0 clears anything
      if (!o.resume) clear_stage_dir(sd);
      spdlog::info("run: qat {} -> {}{}", v.id, sd, o.resume ? " (resuming)" : "");
      if (!qat(v.recipe, o).completed) return false;
    }
    list.add(JsonObject().str("id", v.id).str("format", v.format).boolean("progressive", v.progressive)
                 .boolean("lsq", v.lsq).boolean("main", v.main));
    if (interrupted()) return false;
  }
  const auto main = std::find_if(variants.begin(), variants.end(), [](const QatVariant& v) { return v.main; });
  if (is_root())
    write_file_atomic(dir + "/qat/summary.json",
                    JsonObject().str("recipe", r.name).str("main", main->id).str("main_format", main->format)
                        .raw("variants", list.dump()).dump() + "\n");
  return true;
}

// An export that loads (hashes and all) is kept; a damaged one is made again (nullopt).
std::optional<ExportModel> valid_export(const std::string& path) {
  if (!fs::exists(path)) return std::nullopt;
  try {
    return read_export(path);
  } catch (const Error& e) {
    spdlog::warn("run: {} is not a valid export ({}); exporting again", path, e.what());
    return std::nullopt;
  }
}

std::vector<std::pair<std::string, std::string>> exports_of(const std::string& dir,
                                                            const std::vector<QatVariant>& variants) {
  std::vector<std::pair<std::string, std::string>> out;  // export path, source checkpoint
  for (const auto& v : variants)
    out.emplace_back(dir + "/export/" + v.id + ".h5", dir + "/qat/" + v.id + "/checkpoint.h5");
  out.emplace_back(dir + "/export/baseline_rtn.h5", dir + "/baseline/checkpoint.h5");
  return out;
}

// The FP32 baseline is exported with the run recipe's policy (round to nearest at the main
// format), whatever recipe trained it; a baseline export made with another policy is made again.
// (A QAT export carries its checkpoint's own policy, which the qat stage keeps to the recipe.)
bool stage_export(const Recipe& r, const std::string& dir, const std::vector<QatVariant>& variants) {
  for (const auto& [path, ckpt] : exports_of(dir, variants)) {
    const bool baseline = ckpt == dir + "/baseline/checkpoint.h5";
    const Recipe* policy = baseline ? &r : nullptr;
    const std::optional<ExportModel> done = valid_export(path);
    if (done && (!baseline || done->policy_text == export_policy(load_checkpoint(ckpt), ckpt, policy)))
      continue;
    export_checkpoint(ckpt, path, policy);
    if (interrupted()) return false;
  }
  return true;
}

double eval_export(const std::string& path, const Task& task) {
  return task.test_metric(*load_model(path).model);
}

bool stage_verify(const Recipe& r, const std::string& dir, const std::vector<QatVariant>& variants) {
  JsonArray all;
  Json main_v;
  const auto main = *std::find_if(variants.begin(), variants.end(), [](const QatVariant& v) { return v.main; });
  for (const auto& [path, ckpt] : exports_of(dir, variants)) {
    ExportModel m = read_export(path);
    if (m.verification == "null") {
      VerifyOptions vo;
      vo.record = true;  // the run's own exports carry their verification
      verify_export(path, vo);
      m = read_export(path);
    }
    const Json v = Json::parse(m.verification, path + ":/manifest");
    MXQAT_CHECK(v.at("bitwise_equal").boolean(), "verify: ", path, " does not reproduce its training "
                "model's logits bit for bit (", m.verification, "); this is a bug: please report it");
    all.add(JsonObject().str("export", path).raw("verification", m.verification));
    write_file_atomic(path.substr(0, path.size() - 3) + ".json", read_export_manifest(path));
    if (interrupted()) return false;
  }
  // model.h5: the recipe's own QAT export, copied whole (temp + rename).
  const std::string model = dir + "/export/model.h5";
  copy_file_atomic(dir + "/export/" + main.id + ".h5", model);
  // The 2x2 alignment matrix: {trained FP32, QAT} x {inferred FP32, with the codec}.
  const std::unique_ptr<Task> task = Task::load(r);
  const std::string qat_ckpt = dir + "/qat/" + main.id + "/checkpoint.h5";
  LoadOptions fp32;  // QAT weights built by the run's recipe, no quantizer: inferred in FP32
  fp32.recipe = &r;
  fp32.fake_quant = false;
  const InferenceModel qat_model = load_model(qat_ckpt, fp32);
  const Json mv = Json::parse(read_export(model).verification, model);
  const std::string metric = task_metric(r).name;
  const std::string matrix =
      JsonObject().num("fp32_fp32", Json::read(dir + "/baseline/summary.json").at(metric).number())
          .num("fp32_codec", eval_export(dir + "/export/baseline_rtn.h5", *task))
          .num("qat_fp32", task->test_metric(*qat_model.model))
          .num("qat_codec", eval_export(model, *task)).dump();
  write_file_atomic(dir + "/export/alignment.json",
                    JsonObject().str("codec", main.format).str("metric", metric).integer("samples", int64_t(mv.at("samples").number()))
                        .num("max_abs_diff", mv.at("max_abs_diff").number())
                        .boolean("bitwise_equal", mv.at("bitwise_equal").boolean()).raw("matrix", matrix)
                        .raw("exports", all.dump()).dump() + "\n");
  return true;
}
}  // namespace

bool run_pipeline(const Recipe& r, const RunOptions& opt) {
  const std::string dir = opt.out_dir.empty() ? "runs/" + r.name : opt.out_dir;
  std::unique_ptr<DirLock> lock;  // one `mxqat run` per run directory (rank 0 holds it)
  if (is_root()) {
    make_output_dir(dir, "run");
    lock = std::make_unique<DirLock>(dir);
    for (const char* sub : {"", "/export", "/report"}) remove_stale_temps(dir + sub);
  }
  dist().barrier();
  const std::vector<QatVariant> variants = qat_variants(r);  // checks the formats up front
  install_interrupt_handler();
  auto stop = [&](const char* stage, bool ok) {
    if (!ok || interrupted()) {
      spdlog::warn("run: stopped during {}; run the same command again to resume", stage);
      return true;
    }
    if (opt.stop_after == stage) {
      spdlog::info("run: stopping after {} (--stop-after)", stage);
      return true;
    }
    return false;
  };
  if (stop("baseline", stage_baseline(r, dir))) return false;
  if (stop("ptq", on_root([&] { return stage_ptq(r, dir); }))) return false;
  if (stop("qat", stage_qat(r, dir, variants))) return false;
  if (stop("export", on_root([&] { return stage_export(r, dir, variants); }))) return false;
  if (stop("verify", on_root([&] { return stage_verify(r, dir, variants); }))) return false;
  on_root([&] {
    write_gpt_samples(dir);  // a gpt's samples and KV-cache table, for the report
    const std::string report = write_report(dir, dir + "/report");
    spdlog::info("run: done; report: {} (also .html, .csv, .json)", report);
    return true;
  });
  return true;
}

}  // namespace mxqat::trainers
