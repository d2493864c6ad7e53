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
#include "trainers/data/task.h"

namespace mxqat::trainers {

namespace {
std::vector<quant::Phase> phases_of(const std::vector<PhaseCfg>& v) {
  std::vector<quant::Phase> out;
  for (const auto& p : v)
    out.push_back(p.format.empty() ? quant::Phase{p.until, false, p.weight, p.input}
                                   : quant::Phase::format(p.until, p.format));
  return out;
}

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
  const Recipe& r;
  StageSetup st;
  quant::QuantPlan plan;
  quant::Monitor monitor;
  std::vector<std::pair<std::string, layers::GemmLayer*>> layers;
  std::vector<PhaseResult> phases;
  std::vector<quant::TensorStats> last_stats;
  JsonlWriter metrics;
};

// One metrics.jsonl record per tensor; its "warnings" (always present, maybe empty) are the ones
// logged, so the report lists them with their step and tensor.
void record(QatRun& q, int64_t step, quant::TensorStats s) {
  std::string warnings = "[";
  for (const auto& msg : q.monitor.anomalies(s)) {
    spdlog::warn("qat step {}: {}", step, msg);
    warnings += (warnings.size() > 1 ? ", " : "") + json_escape(msg);
  }
  JsonObject o;
  o.str("stage", "qat").str("monitor", s.name).str("codec", s.codec).integer("step", step);
  for (const auto& [k, v] : quant::stats_fields(s)) o.num(k, v);
  o.raw("warnings", warnings + "]");
  q.metrics.write(o);
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
    q.metrics.write(JsonObject().str("stage", "qat").str("event", "phase").str("layer", e.layer)
                        .integer("step", e.step).integer("phase", e.phase)
                        .str("weight", e.weight).str("input", e.input));
  }
}

void end_of_phase(QatRun& q, int64_t done) {
  for (size_t i = 0; i < q.phases.size(); ++i) {
    PhaseResult& p = q.phases[i];
    if (p.step != done || p.step == q.plan.total_steps()) continue;
    p.metric = test_metric(q.st, *q.st.model);
    spdlog::info("qat step {}: phase {} ({}) ends, {} {:.4f}", done, i, p.format,
                 task_metric(q.r).name, p.metric);
    q.metrics.write(JsonObject().str("stage", "qat").str("event", "phase_end").integer("step", done)
                        .str("format", p.format).num(task_metric(q.r).name, p.metric));
  }
}

void resume_qat(QatRun& q, LoopContext& c, Optimizer& opt, const std::string& policy_text) {
  MXQAT_CHECK(std::filesystem::exists(c.ckpt_path), "--resume: no checkpoint at ", c.ckpt_path,
              "; start without --resume, or point --out at the qat run to continue");
  Checkpoint k = load_checkpoint(c.ckpt_path);
  MXQAT_CHECK(k.meta["stage"] == "qat", c.ckpt_path, " is a '", k.meta["stage"],
              "' checkpoint, not a qat one; give the qat run's --out");
  MXQAT_CHECK(k.meta["policy"] == policy_text, c.ckpt_path, " was trained under another quant "
              "policy than the recipe's now; resume with the recipe that wrote it");
  load_parameters(*q.st.model, k, c.ckpt_path);
  opt.load_state(k.optimizer_state);
  c.start_step = k.step;
  c.skipped = k.counters.count("skipped_steps") ? k.counters.at("skipped_steps") : 0;
  for (size_t i = 0; i < q.phases.size(); ++i) {
    auto it = k.scalars.find("phase_metric." + std::to_string(i));
    if (it != k.scalars.end()) q.phases[i].metric = it->second;
  }
  spdlog::info("resumed {} at step {}", c.ckpt_path, k.step);
}

std::string summary_json(const Recipe& r, const QatSummary& s, const std::string& policy_table) {
  std::string phases = "[";
  for (size_t i = 0; i < s.phases.size(); ++i)
    phases += (i ? ", " : "") + JsonObject().str("format", s.phases[i].format).num("until", s.phases[i].until)
                                    .integer("step", s.phases[i].step).num("metric", s.phases[i].metric).dump();
  phases += "]";
  return JsonObject().str("recipe", r.name).str("metric", task_metric(r).name).num("baseline", s.baseline)
             .num("direct_cast", s.direct_cast).num("qat", s.qat).num("recovered", s.recovered)
             .raw("phases", phases).integer("steps", s.steps).integer("skipped_steps", s.skipped)
             .num("wall_s", s.wall_s).str("policy", policy_table).dump() + "\n";
}
}  // namespace

std::vector<std::pair<std::string, layers::GemmLayer*>> gemm_layers(layers::Module& m) {
  std::vector<std::pair<std::string, layers::GemmLayer*>> out;
  for (auto& [name, mod] : m.named_modules())
    if (auto* g = dynamic_cast<layers::GemmLayer*>(mod)) out.emplace_back(name, g);
  return out;
}

quant::PolicyConfig policy_config(const QuantCfg& q) {
  quant::PolicyConfig c;
  c.weight = q.weight, c.input = q.input, c.grad_output = q.grad_output;
  c.scale_rule = q.scale_rule == "rceil" ? quant::ScaleRule::kRceil : quant::ScaleRule::kFloor;
  c.ste = quant::parse_ste(q.ste);
  c.group_size = q.group_size;
  c.schedule = phases_of(q.schedule);
  for (const auto& rule : q.rules)
    c.rules.push_back({rule.match, rule.weight, rule.input, rule.grad_output, phases_of(rule.schedule)});
  return c;
}

quant::ResolvedPolicy resolve_model_policy(const Recipe& r, layers::Module& model) {
  std::vector<std::string> names;
  for (auto& [name, g] : gemm_layers(model)) names.push_back(name);
  return quant::resolve_policy(policy_config(r.quant), names);
}

std::unique_ptr<quant::QuantPlan> attach_final_policy(layers::Module& model,
                                                      const quant::ResolvedPolicy& policy) {
  auto plan = std::make_unique<quant::QuantPlan>(policy, 1);
  plan->set_final();
  for (auto& [name, g] : gemm_layers(model)) g->set_quantizer(plan->quantizer(name));
  return plan;
}

double recovered_share(double baseline, double direct_cast, double qat) {
  const double gap = baseline - direct_cast;
  return std::abs(gap) < 1e-12 ? NAN : (qat - direct_cast) / gap;
}

QatSummary qat(const Recipe& r, const QatOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string from = opt.from.empty() ? r.qat.from : opt.from;
  MXQAT_CHECK(!from.empty(), "qat needs the FP32 baseline checkpoint: pass --from BASELINE.h5 or set "
              "qat.from in the recipe (train one with 'mxqat train RECIPE')");
  std::filesystem::create_directories(opt.out_dir);
  StageSetup st = setup_stage(r);
  // Everything that can be wrong with the inputs is checked before the first step.
  quant::ResolvedPolicy policy = resolve_model_policy(r, *st.model);
  const int64_t total = stage_steps(r.qat.train, *st.order);
  MXQAT_CHECK(total > 0, r.source, ": the qat stage needs a length: set qat.epochs or qat.steps");
  QatRun q{r, std::move(st), quant::QuantPlan(policy, total), quant::Monitor({r.qat.sqnr_warn_db}),
           {}, {}, {}, {}};
  q.layers = gemm_layers(*q.st.model);
  const Checkpoint baseline_ckpt = load_checkpoint(from);
  load_parameters(*q.st.model, baseline_ckpt, from);
  std::shared_ptr<layers::Module> teacher;  // qat.distill: the baseline itself, unquantized
  if (r.qat.distill.weight > 0) {
    teacher = build_stage_model(r, q.st);
    load_parameters(*teacher, baseline_ckpt, from);
    teacher->train(false);
    spdlog::info("distillation from the FP32 baseline: weight {}, temperature {}", r.qat.distill.weight,
                 r.qat.distill.temperature);
  }
  spdlog::info("quant policy ({} GEMM layers, {} QAT steps):\n{}", policy.layers.size(), total, policy.table());
  QatSummary s;
  s.baseline = test_metric(q.st, *q.st.model);
  for (size_t i = 0; i < q.layers.size(); ++i) q.layers[i].second->set_quantizer(q.plan.quantizer(q.layers[i].first));
  q.plan.set_final();
  s.direct_cast = test_metric(q.st, *q.st.model);
  spdlog::info("baseline {} {:.4f}; direct cast (round-to-nearest) {:.4f}", task_metric(r).name,
               s.baseline, s.direct_cast);
  q.phases = phase_ends(q.plan);
  if (q.phases.empty()) {  // static codecs: one phase, the whole run, named after the layers
    // that follow the defaults (the ones no rule singles out), else the first layer
    const auto defaults = std::find_if(policy.layers.begin(), policy.layers.end(),
                                       [](const quant::LayerPolicy& l) { return l.rule < 0; });
    const auto& lp = defaults != policy.layers.end() ? *defaults : policy.layers.front();
    q.phases.push_back(PhaseResult{lp.weight == lp.input ? lp.weight : "w=" + lp.weight + " a=" + lp.input,
                                   1.0, total, NAN});
  }
  auto optimizer = make_optimizer(r.qat.train.optimizer, q.st.model->named_parameters());
  LoopContext c;
  c.stage = "qat";
  c.recipe = &r;
  c.cfg = &r.qat.train;
  c.model = q.st.model.get();
  c.optimizer = optimizer.get();
  c.data = &q.st.data;
  c.text = q.st.text.get();
  c.order = q.st.order.get();
  c.ckpt_path = opt.out_dir + "/checkpoint.h5";
  c.total_steps = total;
  c.stop_at = opt.stop_at;
  c.skip_nonfinite = r.qat.on_nonfinite == "skip";
  c.teacher = teacher.get();
  c.distill_weight = static_cast<float>(r.qat.distill.weight);
  c.distill_temperature = static_cast<float>(r.qat.distill.temperature);
  const std::string policy_text = policy.to_text();
  if (opt.resume) resume_qat(q, c, *optimizer, policy_text);
  else write_file_atomic(opt.out_dir + "/recipe.yaml", r.text);
  q.metrics.open(opt.out_dir + "/metrics.jsonl");
  c.metrics = &q.metrics;
  q.plan.update(c.start_step);
  const int64_t every = r.qat.monitor_every;
  c.hooks.before_step = [&](int64_t step) {
    log_phase_events(q, q.plan.update(step));
    if (every > 0 && (step + 1) % every == 0)
      for (size_t i = 0; i < q.plan.size(); ++i) q.plan.quantizer(i)->set_capture(true);
  };
  c.hooks.after_step = [&](int64_t done) {
    if (every > 0 && done % every == 0) observe(q, done);
    end_of_phase(q, done);
  };
  c.hooks.after_eval = [&](int64_t, const EvalResult&) {
    if (!q.last_stats.empty()) spdlog::info("quantization telemetry:\n{}", quant::stats_table(q.last_stats));
  };
  c.hooks.decorate = [&](Checkpoint& k) {
    k.meta["policy"] = policy_text;
    k.meta["baseline"] = from;
    k.scalars["baseline"] = s.baseline;
    k.scalars["direct_cast"] = s.direct_cast;
    for (size_t i = 0; i < q.phases.size(); ++i)
      if (std::isfinite(q.phases[i].metric)) k.scalars["phase_metric." + std::to_string(i)] = q.phases[i].metric;
  };
  LoopResult lr = run_loop(c);
  s.steps = lr.step;
  s.skipped = c.skipped;
  s.completed = lr.completed;
  s.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!s.completed) return s;
  q.plan.set_final();
  s.qat = test_metric(q.st, *q.st.model);
  q.phases.back().metric = s.qat;
  s.phases = q.phases;
  s.recovered = recovered_share(s.baseline, s.direct_cast, s.qat);
  spdlog::info("qat: baseline {:.4f}, direct cast {:.4f}, qat {:.4f}: recovered {:.1f}% of the gap",
               s.baseline, s.direct_cast, s.qat, 100 * s.recovered);
  q.metrics.write(JsonObject().str("stage", "qat").str("split", "test").integer("step", s.steps)
                      .num(task_metric(r).name, s.qat));
  write_file_atomic(opt.out_dir + "/summary.json", summary_json(r, s, policy.table()));
  return s;
}

}  // namespace mxqat::trainers
