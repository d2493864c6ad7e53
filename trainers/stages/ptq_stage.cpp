// The ptq stage: calibration set, per-method weight replacement under the format's policy,
// sequential GPTQ (each layer's Hessian from inputs that already went through the quantized
// layers before it), evaluation, and resumable per-result files.
#include "trainers/stages/ptq_stage.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>

#include "quant/calib/hessian.h"
#include "quant/calib/observer.h"
#include "quant/codec/codec.h"
#include "quant/codec/transform/hadamard.h"
#include "quant/ptq/ptq.h"
#include "trainers/dist/dist.h"
#include "trainers/io/ckpt.h"
#include "trainers/model/model_factory.h"
#include "trainers/model/policy_model.h"
#include "trainers/recipe/variants.h"
#include "trainers/stages/calib_inputs.h"
#include "trainers/stages/ptq_smooth.h"
#include "trainers/train/stage_run.h"
#include "trainers/util/json_read.h"
#include "trainers/util/json_write.h"
#include "trainers/util/files.h"

namespace mxqat::trainers {

namespace {
namespace fs = std::filesystem;
using autograd::Tensor;
using autograd::Var;

// Runs the calibration batches through the model (no graph; split across the processes,
// calib_inputs.h) and hands `f` every input the GEMM of quantizer `q` receives, as that GEMM sees
// it (its rotation and input codec applied), in batch order on every process.
void for_each_input(layers::Module& model, quant::QuantGemm& q, const std::vector<Tensor>& calib,
                    const std::function<void(const Tensor&)>& f) {
  const quant::GemmQuantSpec& spec = q.spec();
  for_each_calibration_input(model, q, calib, [&](Tensor& x) {
    if (spec.rotation) quant::hadamard_rows(*spec.rotation, x.data(), x.rows(), x.cols(), x.data());
    if (spec.input) {
      Tensor xq(x.shape());
      spec.input->fake_quant(x.data(), x.rows(), x.cols(), xq.data());
      x = std::move(xq);
    }
  }, [&](int64_t, const Tensor& x) { f(x); });
}

struct Stage {
  const Recipe& r;
  StageSetup st;
  std::vector<Tensor> calib;
  std::map<std::string, Tensor> baseline;  // parameter name -> FP32 value
  double damp;
  int64_t step = 0;  // the baseline's
};

// ptq.save_models: the model a round-to-nearest method quantizes (FP32 weights, smoothing folded
// in) as a checkpoint with the format's recipe and resolved policy (as a QAT checkpoint carries
// its own): `mxqat eval` gives the row's value, `mxqat export` packs exactly what the method
// evaluated (rtn is the codec's own rule, under the recipe's rotation), `mxqat verify` checks it.
bool saves_model(const Recipe& r, const std::string& method) {
  return r.ptq.save_models && split_ptq_method(method).quantizer == "rtn";
}
std::string model_path(const std::string& out_dir, const std::string& format, const std::string& method) {
  return out_dir + "/models/" + format + "_" + method + ".h5";
}
void save_model(const Stage& s, const Recipe& rf, const std::string& policy, const std::string& method,
                const std::string& path) {
  Checkpoint c;
  c.recipe_text = rf.text;
  c.step = s.step;
  c.meta["stage"] = "ptq";
  c.meta["ptq_method"] = method;
  c.meta["policy"] = policy;
  for (auto [name, v] : s.st.model->named_parameters()) c.params.emplace_back(name, v.value());
  make_output_dir(fs::path(path).parent_path().string(), "ptq");
  save_checkpoint(path, c);
  spdlog::info("ptq {}: the model it quantizes -> {} (mxqat export it, then mxqat verify)", method, path);
}

PtqRow run_method(Stage& s, const std::string& format, const std::string& method, const std::string& save_to) {
  layers::Module& model = *s.st.model;
  for (auto [name, v] : model.named_parameters()) v.value() = s.baseline.at(name);
  const Recipe rf = recipe_for_format(s.r, format, false);
  auto plan = attach_final_policy(model, resolve_model_policy(rf, model));
  PtqRow row{format, method, 0, 0, {}, {}};
  const PtqMethod m = split_ptq_method(method);
  if (!m.smoothing.empty())  // folded into the FP32 weights and gains before any is quantized
    for (const SmoothRecord& sr : smooth_model(model, *plan, s.calib, m.smoothing, s.r.ptq))
      row.smoothing.push_back({sr.group, sr.alpha, sr.error, sr.error_identity});
  if (!save_to.empty() && is_root())  // rank 0 alone writes
    save_model(s, rf, plan->policy().to_text(), method, save_to);
  std::map<std::string, Var> params;
  for (auto [name, v] : model.named_parameters()) params.emplace(name, v);
  for (auto [name, v] : model.named_parameters()) row.bytes += 4 * v.value().size();
  const auto layers = gemm_layers(model);
  for (size_t i = 0; i < layers.size(); ++i) {
    auto q = plan->quantizer(layers[i].first);
    quant::GemmQuantSpec spec = q->spec();
    if (!spec.weight) continue;
    const std::string wname = layers[i].first + ".weight";
    Var w = params.at(wname);
    Tensor w2 = w.value().reshaped({w.value().dim(0), -1});
    if (spec.rotation && !spec.weight_rotated)  // quantized as the GEMM sees it: rotated (as its inputs)
      quant::hadamard_rows(*spec.rotation, w2.data(), w2.rows(), w2.cols(), w2.data());
    // Every method sees the Hessian of this layer's inputs (through the layers already
    // quantized before it): gptq uses it, and it scores every method's output error.
    quant::calib::HessianAccumulator acc(w2.cols());
    for_each_input(model, *q, s.calib, [&](const Tensor& x) { acc.add(x, "calibration input"); });
    const quant::calib::Hessian h = acc.hessian();
    quant::ptq::PtqResult res;
    if (m.quantizer == "rtn") {
      res = quant::ptq::rtn(w2, *spec.weight, wname);
    } else if (m.quantizer == "mse") {
      res = quant::ptq::mse(w2, *spec.weight, {}, wname);
    } else {
      quant::ptq::GptqOptions go;
      go.percdamp = s.damp;
      res = quant::ptq::gptq(w2, h, *spec.weight, go, wname);
    }
    const double out_err = quant::ptq::hessian_error(w2, res.weight, h);
    const double sqnr = quant::sqnr_db(w2.data(), res.weight.data(), w2.size());
    row.layers.push_back({layers[i].first, spec.weight->name(), quant::sqnr_for_json(sqnr), out_err});
    row.bytes += quant::encoded_bytes(res.encoded) - 4 * w2.size();
    w.value() = res.weight.reshaped(w.value().shape());
    spec.weight.reset();  // the weight now holds its quantized values; inputs keep their codec
    spec.weight_rotated = spec.rotation.has_value();  // ... and, under a rotation, is stored rotated
    q->set_spec(spec);
  }
  row.value = s.st.task->test_metric(model);
  return row;
}

std::string row_json(const PtqRow& r) {
  JsonArray layers;
  for (const PtqLayer& l : r.layers)
    layers.add(JsonObject().str("layer", l.layer).str("codec", l.codec).num("sqnr_db", l.sqnr_db)
                   .num("output_error", l.output_error));
  JsonArray smoothing;
  for (const PtqSmoothing& g : r.smoothing)
    smoothing.add(JsonObject().str("group", g.group).num("alpha", g.alpha).num("error", g.error)
                      .num("error_identity", g.error_identity));
  return JsonObject().str("format", r.format).str("method", r.method).num("value", r.value)
      .integer("bytes", r.bytes).raw("layers", layers.dump()).raw("smoothing", smoothing.dump()).dump();
}

PtqRow row_from(const Json& j) {
  PtqRow r{j.at("format").string(), j.at("method").string(), j.at("value").number(),
           int64_t(j.at("bytes").number()), {}, {}};
  for (const Json& l : j.at("layers").array())
    r.layers.push_back({l.at("layer").string(), l.at("codec").string(), l.at("sqnr_db").number(),
                        l.at("output_error").number()});
  if (const Json* sm = j.find("smoothing"))
    for (const Json& g : sm->array())
      r.smoothing.push_back({g.at("group").string(), g.at("alpha").number(), g.at("error").number(),
                             g.at("error_identity").number()});
  return r;
}

// Input ranges of every GEMM layer over the calibration set, FP32 model, with the recipe's observer.
std::string activation_ranges(Stage& s) {
  layers::Module& model = *s.st.model;
  for (auto [name, v] : model.named_parameters()) v.value() = s.baseline.at(name);
  quant::ResolvedPolicy none = resolve_model_policy(s.r, model);
  for (auto& lp : none.layers) lp.weight = lp.input = lp.grad_output = "none", lp.schedule = quant::Schedule();
  auto plan = attach_final_policy(model, none);
  JsonArray out;
  const auto layers = gemm_layers(model);
  const quant::Codec int8 = quant::Codec::make("int8_sym");
  for (size_t i = 0; i < layers.size(); ++i) {
    quant::calib::MinMaxObserver mm;
    quant::calib::PercentileObserver pc({s.r.ptq.percentile});
    quant::calib::MseObserver ms;
    for_each_input(model, *plan->quantizer(layers[i].first), s.calib, [&](const Tensor& x) {
      mm.observe(x), pc.observe(x), ms.observe(x);
    });
    const quant::calib::Range r = s.r.ptq.observer == "minmax" ? mm.range()
                                  : s.r.ptq.observer == "percentile" ? pc.range() : ms.range(int8).range;
    out.add(JsonObject().str("layer", layers[i].first).str("observer", s.r.ptq.observer).num("lo", r.lo)
                .num("hi", r.hi).num("min", mm.range().lo).num("max", mm.range().hi));
  }
  return out.dump();
}
}  // namespace

PtqSummary ptq(const Recipe& r, const PtqOptions& opt) {
  MXQAT_CHECK(!opt.from.empty(), "ptq needs the FP32 baseline checkpoint (--from BASELINE.h5)");
  const auto t0 = std::chrono::steady_clock::now();
  // Under mpirun every process runs the stage (the calibration passes are split between them,
  // calib_inputs.h; the rest is computed alike everywhere) and rank 0 alone writes.
  std::unique_ptr<DirLock> lock;  // one writer per output directory
  if (is_root()) {
    make_output_dir(opt.out_dir, "ptq");
    lock = std::make_unique<DirLock>(opt.out_dir);
    remove_stale_temps(opt.out_dir);
  }
  Stage s{r, setup_stage(r), {}, {}, r.ptq.gptq_damp};
  const Checkpoint base = load_checkpoint(opt.from);
  s.step = base.step;
  load_parameters(*s.st.model, base, opt.from);
  MXQAT_CHECK(base.meta.count("policy") == 0, opt.from, " is a QAT checkpoint; ptq starts from the "
              "FP32 baseline (runs/<name>/baseline/checkpoint.h5)");
  for (auto [name, v] : s.st.model->named_parameters()) s.baseline[name] = v.value();  // (+ zero lsq offsets)
  s.st.model->train(false);
  s.calib = s.st.task->calibration_batches(r.ptq.calib_samples, static_cast<uint64_t>(r.seed));
  if (const int n = dist().size(); n > 1) {
    spdlog::info("ptq: {} calibration batches split across {} processes", s.calib.size(), n);
    if (static_cast<size_t>(n) > s.calib.size())
      spdlog::warn("ptq: {} of the {} processes have no calibration batch to run (one batch is at most "
                   "128 images or 32 text windows); raise ptq.calib_samples to use them",
                   static_cast<size_t>(n) - s.calib.size(), n);
  }
  PtqSummary sum;
  sum.metric = task_metric(r).name;
  sum.baseline = s.st.task->test_metric(*s.st.model);
  for (auto [name, v] : s.st.model->named_parameters()) sum.baseline_bytes += 4 * v.value().size();
  const std::string ranges = activation_ranges(s);
  JsonArray rows;
  for (const auto& format : compare_formats(r)) {
    for (const auto& method : r.ptq.methods) {
      const std::string file = opt.out_dir + "/" + format + "_" + method + ".json";
      const std::string model = saves_model(r, method) ? model_path(opt.out_dir, format, method) : "";
      std::string done;  // the row a previous run wrote, as rank 0 finds it (every process resumes alike)
      if (is_root() && fs::exists(file) && (model.empty() || fs::exists(model))) done = read_file(file);
      broadcast_text(done);
      PtqRow row;
      if (!done.empty()) {
        row = row_from(Json::parse(done, file));
      } else {
        row = run_method(s, format, method, model);
        if (is_root()) write_file_atomic(file, row_json(row) + "\n");
      }
      spdlog::info("ptq {} {}: {} {:.4f} (baseline {:.4f}), {} bytes", format, method, sum.metric,
                   row.value, sum.baseline, row.bytes);
      rows.raw(row_json(row));
      sum.rows.push_back(std::move(row));
      if (interrupted()) return sum;  // the rows done so far are on disk; a rerun continues
    }
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (is_root())
    write_file_atomic(opt.out_dir + "/summary.json",
                      JsonObject().str("recipe", r.name).str("metric", sum.metric)
                          .str("scale_rule", r.quant.scale_rule)
                          .num("baseline", sum.baseline).integer("baseline_bytes", sum.baseline_bytes)
                          .integer("calib_samples", r.ptq.calib_samples).str("from", opt.from)
                          .num("gptq_damp", r.ptq.gptq_damp).raw("activations", ranges)
                          .raw("rows", rows.dump_lines()).num("wall_s", wall).dump() + "\n");
  return sum;
}

}  // namespace mxqat::trainers
