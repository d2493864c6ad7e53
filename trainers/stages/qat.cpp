// The qat stage on the shared step loop: the precision schedule moves before each step,
// telemetry after, the policy and phase results travel in the checkpoint.
#include "trainers/stages/qat.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>

#include "quant/monitor/monitor.h"
#include "quant/policy/plan.h"
#include "trainers/model/model_factory.h"
#include "trainers/model/policy_model.h"
#include "trainers/train/stage_run.h"
#include "trainers/util/files.h"

namespace mxqat::trainers {

namespace {
// The steps at which some layer's phase ends, with the codecs of the phase that ends there.
std::vector<PhaseResult> phase_ends(const quant::QuantPlan& plan) {
  std::map<int64_t, PhaseResult> ends;
  for (const auto& lp : plan.policy().layers) {
    if (lp.schedule.empty()) continue;
    const auto& ph = lp.schedule.phases();
    for (size_t i = 0; i < ph.size(); ++i) {
      const int64_t end = lp.schedule.end_step(i, plan.total_steps());
      if (ends.count(end)) continue;
      auto [w, a] = plan.policy().phase_codecs(lp, static_cast<int>(i));
      ends[end] = PhaseResult{w == a ? w : "w=" + w + " a=" + a, ph[i].until, end, NAN};
    }
  }
  std::vector<PhaseResult> out;
  for (auto& [s, p] : ends) out.push_back(p);
  return out;
}

struct QatRun {
  StageRun& run;
  quant::QuantPlan plan;
  quant::Monitor monitor;
  std::vector<std::pair<std::string, layers::GemmLayer*>> layers;
  std::vector<PhaseResult> phases;
  std::vector<quant::TensorStats> last_stats;
  std::shared_ptr<layers::Module> teacher;  // qat.distill: the baseline itself, unquantized
};

// One metrics.jsonl record per tensor; its "warnings" (always present, maybe empty) are the ones
// logged, so the report lists them with their step and tensor.
void record(QatRun& q, int64_t step, quant::TensorStats s) {
  JsonArray warnings;
  for (const auto& msg : q.monitor.anomalies(s)) {
    spdlog::warn("qat step {}: {}", step, msg);
    warnings.raw(json_escape(msg));
  }
  JsonObject o;
  o.str("stage", "qat").str("monitor", s.name).str("codec", s.codec).integer("step", step);
  for (const auto& [k, v] : quant::stats_fields(s)) o.num(k, v);
  o.raw("warnings", warnings.dump());
  q.run.metrics.write(o);
  q.last_stats.push_back(std::move(s));
}

// Telemetry of every quantized operand: each weight as its GEMM sees it ([N, K]) and each input
// captured during the step just taken ([M, K]).
void observe(QatRun& q, int64_t step) {
  q.last_stats.clear();
  for (size_t i = 0; i < q.plan.size(); ++i) {
    auto& gemm = *q.plan.quantizer(i);
    const auto& spec = gemm.spec();
    const autograd::Tensor& w = q.layers[i].second->weight().value();
    if (spec.weight)
      record(q, step, q.monitor.observe(q.plan.layer(i) + ".weight", w.data(), w.dim(0),
                                        w.size() / w.dim(0), *spec.weight));
    const autograd::Tensor& x = gemm.captured().input;
    if (spec.input && !x.empty())
      record(q, step, q.monitor.observe(q.plan.layer(i) + ".input", x, *spec.input));
    gemm.set_capture(false);
  }
}

void log_phase_events(QatRun& q, const std::vector<quant::PhaseEvent>& events) {
  for (const auto& e : events) {
    spdlog::info("qat step {}: {} enters phase {} (weight {}, input {})", e.step, e.layer, e.phase,
                 e.weight, e.input);
    q.run.metrics.write(JsonObject().str("stage", "qat").str("event", "phase").str("layer", e.layer)
                        .integer("step", e.step).integer("phase", e.phase)
                        .str("weight", e.weight).str("input", e.input));
  }
}

void end_of_phase(QatRun& q, int64_t done) {
  for (size_t i = 0; i < q.phases.size(); ++i) {
    PhaseResult& p = q.phases[i];
    if (p.step != done || p.step == q.plan.total_steps()) continue;
    p.metric = q.run.st.task->test_metric(*q.run.st.model);
    spdlog::info("qat step {}: phase {} ({}) ends, {} {:.4f}", done, i, p.format,
                 q.run.st.task->metric().name, p.metric);
    q.run.metrics.write(JsonObject().str("stage", "qat").str("event", "phase_end").integer("step", done)
                        .str("format", p.format).num(q.run.st.task->metric().name, p.metric));
  }
}

std::string summary_json(const Recipe& r, const QatSummary& s, const std::string& metric,
                         const std::string& policy_table) {
  JsonArray phases;
  for (const PhaseResult& p : s.phases)
    phases.add(JsonObject().str("format", p.format).num("until", p.until).integer("step", p.step)
                   .num("metric", p.metric));
  return JsonObject().str("recipe", r.name).str("metric", metric).num("baseline", s.baseline)
             .num("direct_cast", s.direct_cast).num("qat", s.qat).num("recovered", s.recovered)
             .raw("phases", phases.dump()).integer("steps", s.steps).integer("skipped_steps", s.skipped)
             .num("wall_s", s.wall_s).str("policy", policy_table).dump() + "\n";
}

// The FP32 baseline's parameters into the model (and into the distillation teacher, if any).
// qat.init: scratch keeps the model at its seeded initialisation (the train stage's) and loads the
// baseline into `teacher` only to measure it (no distillation unless qat.distill asks).
void load_baseline(QatRun& q, const std::string& from) {
  const Recipe& r = q.run.recipe;
  const Checkpoint baseline = load_checkpoint(from);
  const bool scratch = r.qat.init == "scratch";
  if (!scratch) load_parameters(*q.run.st.model, baseline, from);
  if (r.qat.distill.weight > 0 || scratch) {
    q.teacher = build_stage_model(r, q.run.st);
    load_parameters(*q.teacher, baseline, from);
    q.teacher->train(false);
  }
  if (r.qat.distill.weight > 0)
    spdlog::info("distillation from the FP32 baseline: weight {}, temperature {}", r.qat.distill.weight,
                 r.qat.distill.temperature);
  if (scratch)
    spdlog::info("qat.init: scratch: quantized training from the seeded initialisation; the baseline "
                 "{} is the FP32 reference at equal steps", from);
}

// The baseline's metric, then the quantizers attached at their final phase: the direct cast
// (from scratch there is none: the model is untrained).
void measure_direct_cast(QatRun& q, QatSummary& s) {
  const Task& task = *q.run.st.task;
  layers::Module& model = *q.run.st.model;
  const bool scratch = q.run.recipe.qat.init == "scratch";
  s.baseline = task.test_metric(scratch ? *q.teacher : model);
  for (auto& [name, layer] : q.layers) layer->set_quantizer(q.plan.quantizer(name));
  q.plan.set_final();
  s.direct_cast = scratch ? NAN : task.test_metric(model);
  spdlog::info("baseline {} {:.4f}; direct cast (round-to-nearest) {:.4f}", task.metric().name,
               s.baseline, s.direct_cast);
}

// The phases whose end is measured: where some layer's phase ends, or for static codecs one
// phase, the whole run, named after the layers that follow the defaults (the ones no rule
// singles out), else the first layer.
std::vector<PhaseResult> planned_phases(const QatRun& q) {
  std::vector<PhaseResult> phases = phase_ends(q.plan);
  if (!phases.empty()) return phases;
  const auto& layers = q.plan.policy().layers;
  const auto defaults = std::find_if(layers.begin(), layers.end(),
                                     [](const quant::LayerPolicy& l) { return l.rule < 0; });
  const auto& lp = defaults != layers.end() ? *defaults : layers.front();
  return {PhaseResult{lp.weight == lp.input ? lp.weight : "w=" + lp.weight + " a=" + lp.input, 1.0,
                      q.plan.total_steps(), NAN}};
}

// Resumes (the checkpoint must be a qat one trained under the same policy, and brings back the
// phase metrics measured so far) or starts the run.
void start_run(QatRun& q, const QatOptions& opt, const std::string& policy_text) {
  const std::string& path = q.run.loop.ckpt_path;
  const auto k = q.run.start(opt.resume, [&](const Checkpoint& c) {
    MXQAT_CHECK(c.meta.count("stage") && c.meta.at("stage") == "qat", path, " is a '",
                c.meta.count("stage") ? c.meta.at("stage") : "", "' checkpoint, not a qat one; give "
                "the qat run's --out");
    MXQAT_CHECK(c.meta.count("policy") && c.meta.at("policy") == policy_text, path, " was trained "
                "under another quant policy than the recipe's now; resume with the recipe that wrote it");
  });
  if (!k) return;
  for (size_t i = 0; i < q.phases.size(); ++i) {
    auto it = k->scalars.find("phase_metric." + std::to_string(i));
    if (it != k->scalars.end()) q.phases[i].metric = it->second;
  }
}

// The loop's qat settings and hooks: the schedule moves before each step, telemetry after, the
// policy and the metrics so far travel in every checkpoint.
void configure_loop(QatRun& q, const QatSummary& s, const std::string& from, const std::string& policy_text) {
  const Recipe& r = q.run.recipe;
  LoopContext& c = q.run.loop;
  c.skip_nonfinite = r.qat.on_nonfinite == "skip";
  c.teacher = q.teacher.get();
  c.distill_weight = static_cast<float>(r.qat.distill.weight);
  c.distill_temperature = static_cast<float>(r.qat.distill.temperature);
  const int64_t every = r.qat.monitor_every;
  c.hooks.before_step = [&q, every](int64_t step) {
    log_phase_events(q, q.plan.update(step));
    if (every > 0 && (step + 1) % every == 0)
      for (size_t i = 0; i < q.plan.size(); ++i) q.plan.quantizer(i)->set_capture(true);
  };
  c.hooks.after_step = [&q, every](int64_t done) {
    if (every > 0 && done % every == 0) observe(q, done);
    end_of_phase(q, done);
  };
  c.hooks.after_eval = [&q](int64_t, const EvalResult&) {
    if (!q.last_stats.empty()) spdlog::info("quantization telemetry:\n{}", quant::stats_table(q.last_stats));
  };
  c.hooks.decorate = [&q, &s, from, policy_text](Checkpoint& k) {
    k.meta["policy"] = policy_text;
    k.meta["baseline"] = from;
    k.scalars["baseline"] = s.baseline;
    k.scalars["direct_cast"] = s.direct_cast;
    for (size_t i = 0; i < q.phases.size(); ++i)
      if (std::isfinite(q.phases[i].metric)) k.scalars["phase_metric." + std::to_string(i)] = q.phases[i].metric;
  };
}

// After the last step: the final-phase metric, the share of the gap recovered, the summary.
void finish(QatRun& q, QatSummary& s, const std::string& policy_table) {
  const Recipe& r = q.run.recipe;
  const Task& task = *q.run.st.task;
  q.plan.set_final();
  s.qat = task.test_metric(*q.run.st.model);
  q.phases.back().metric = s.qat;
  s.phases = q.phases;
  s.recovered = recovered_share(s.baseline, s.direct_cast, s.qat);
  spdlog::info("qat: baseline {:.4f}, direct cast {:.4f}, qat {:.4f}: recovered {:.1f}% of the gap",
               s.baseline, s.direct_cast, s.qat, 100 * s.recovered);
  q.run.metrics.write(JsonObject().str("stage", "qat").str("split", "test").integer("step", s.steps)
                          .num(task.metric().name, s.qat));
  write_file_atomic(q.run.out_dir + "/summary.json", summary_json(r, s, task.metric().name, policy_table));
}
}  // namespace

double recovered_share(double baseline, double direct_cast, double qat) {
  const double gap = baseline - direct_cast;
  return std::abs(gap) < 1e-12 ? NAN : (qat - direct_cast) / gap;
}

QatSummary qat(const Recipe& r, const QatOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string from = opt.from.empty() ? r.qat.from : opt.from;
  MXQAT_CHECK(!from.empty(), "qat needs the FP32 baseline checkpoint: pass --from BASELINE.h5 or set "
              "qat.from in the recipe (train one with 'mxqat train RECIPE')");
  StageRun run("qat", r, r.qat.train, opt.out_dir, opt.stop_at);
  // Everything that can be wrong with the inputs is checked before the first step.
  const quant::ResolvedPolicy policy = resolve_model_policy(r, *run.st.model);
  const int64_t total = run.loop.total_steps;
  MXQAT_CHECK(total > 0, r.source, ": the qat stage needs a length: set qat.epochs or qat.steps");
  QatRun q{run, quant::QuantPlan(policy, total, uint64_t(r.seed)), quant::Monitor({r.qat.sqnr_warn_db}),
           gemm_layers(*run.st.model), {}, {}, nullptr};
  load_baseline(q, from);
  spdlog::info("quant policy ({} GEMM layers, {} QAT steps):\n{}", policy.layers.size(), total, policy.table());
  QatSummary s;
  measure_direct_cast(q, s);
  q.phases = planned_phases(q);
  const std::string policy_text = policy.to_text();
  start_run(q, opt, policy_text);
  q.plan.update(run.loop.start_step);
  configure_loop(q, s, from, policy_text);
  const LoopResult lr = run.run();
  s.steps = lr.step;
  s.skipped = run.loop.skipped;
  s.completed = lr.completed;
  s.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (s.completed) finish(q, s, policy.table());
  return s;
}

}  // namespace mxqat::trainers
