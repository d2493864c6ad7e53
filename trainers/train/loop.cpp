// The step loop. Everything a step depends on is a function of (recipe, step, checkpointed
// state), so a run stopped after step k and resumed ends bitwise identical to one that never stopped.
#include "trainers/train/loop.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <map>

#include "layers/models.h"
#include "trainers/train/sched.h"
#include "trainers/util/progress.h"

namespace mxqat::trainers {

using autograd::Tensor;
using autograd::Var;

namespace {
std::atomic<bool> g_interrupted{false};
extern "C" void on_signal(int) { g_interrupted = true; }

Checkpoint make_checkpoint(const LoopContext& c, int64_t step) {
  Checkpoint k;
  k.recipe_text = c.recipe->text;
  k.step = step;
  k.epoch = step / c.order->steps_per_epoch();
  for (const auto& [name, v] : c.model->named_parameters()) k.params.emplace_back(name, v.value());
  k.optimizer_state = c.optimizer->state();
  k.meta["optimizer"] = c.optimizer->kind();
  k.meta["model"] = c.recipe->model.type;
  k.meta["stage"] = c.stage;
  k.counters["skipped_steps"] = c.skipped;
  k.counters["total_steps"] = c.total_steps;
  if (c.metrics) k.counters["metrics_bytes"] = c.metrics->bytes();
  // All randomness is counter-based: batch order = f(seed, epoch), dropout masks = f(seed, step).
  k.rng_state = "seed=" + std::to_string(c.recipe->seed) + ";batch_order_epoch=" +
                std::to_string(k.epoch) + ";dropout_calls=" + std::to_string(step);
  if (c.hooks.decorate) c.hooks.decorate(k);
  return k;
}

// Forward + backward of one batch; returns the loss (gradients only when it is finite).
double step_loss(LoopContext& c, int64_t step, Tensor& xb, std::vector<int32_t>& yb) {
  c.task->train_batch(step, *c.order, xb, yb);
  auto flat = [](Var v) {  // [B, T, V] -> [B*T, V]
    return v.value().ndim() == 3 ? reshape(v, {-1, v.value().dim(-1)}) : v;
  };
  Var logits = flat(c.model->forward(Var(xb)));
  Var loss = autograd::cross_entropy(logits, yb, static_cast<float>(c.cfg->label_smoothing));
  if (c.teacher && c.distill_weight > 0.f) {
    Tensor t;
    {
      autograd::NoGradGuard no_grad;
      t = flat(c.teacher->forward(Var(xb))).value();
    }
    Var kd = autograd::distill_kl(logits, t, c.distill_temperature);
    const float w = c.distill_weight;
    loss = w == 1.f ? kd : add(mul_scalar(loss, 1.f - w), mul_scalar(kd, w));
  }
  const double l = loss.value().item();
  if (std::isfinite(l)) loss.backward();
  return l;
}

void log_train(LoopContext& c, const Progress& p, int64_t done, double mean_loss, double lr, double gnorm) {
  c.metrics->write(JsonObject().str("stage", c.stage).str("split", "train").integer("step", done)
                       .num("loss", mean_loss).num("lr", lr).num("grad_norm", gnorm)
                       .integer("skipped_steps", c.skipped));
  if (!p.interactive())
    spdlog::info("{} step {}/{} loss {:.4f} lr {:.3g} ({:.1f} it/s)", c.stage, done, c.total_steps,
                 mean_loss, lr, p.steps_per_second(done));
}

// A NaN/Inf loss or gradient: the weights are left untouched; skip the step or stop.
void handle_nonfinite(LoopContext& c, int64_t step, double loss, double gnorm) {
  std::string what = "loss is " + std::to_string(loss);
  if (std::isfinite(loss)) {  // name the parameters whose gradient holds NaN/Inf
    what = "gradient norm is " + std::to_string(gnorm) + " (";
    for (const auto& [name, v] : c.optimizer->params())
      if (!v.grad().empty() && !v.grad().arr().isFinite().all()) what += name + " ";
    what.back() = ')';
  }
  c.optimizer->zero_grad();
  MXQAT_CHECK(c.skip_nonfinite, c.stage, ": ", what, " at step ", step,
              "; the weights were not updated and the last good checkpoint is ", c.ckpt_path,
              " (lower the learning rate, set grad_clip, check the data for NaN, or set "
              "qat.on_nonfinite: skip)");
  ++c.skipped;
  spdlog::warn("{}: {} at step {}: step skipped, weights unchanged ({} skipped so far)", c.stage,
               what, step, c.skipped);
  if (c.metrics)  // the report lists it with the monitor's warnings
    c.metrics->write(JsonObject().str("stage", c.stage).str("event", "warning").integer("step", step)
                         .str("message", what + ": step skipped, weights unchanged"));
  MXQAT_CHECK(c.skipped <= std::max<int64_t>(10, c.total_steps / 10), c.stage, ": ", c.skipped,
              " steps skipped for NaN/Inf; stopping (the last good checkpoint is ", c.ckpt_path, ")");
}
}  // namespace

bool interrupted() { return g_interrupted; }

void install_interrupt_handler() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
}

LoopResult run_loop(LoopContext& c) {
  const TrainCfg& cfg = *c.cfg;
  const int64_t spe = c.order->steps_per_epoch();
  LrSchedule sched{cfg.lr_schedule.type, cfg.optimizer.lr, cfg.lr_schedule.min_lr,
                   cfg.lr_schedule.warmup_steps, c.total_steps};
  const int64_t eval_every = cfg.eval_every > 0 ? cfg.eval_every : spe;
  const int64_t end = c.stop_at >= 0 ? std::min(c.stop_at, c.total_steps) : c.total_steps;
  Progress progress(c.start_step, c.total_steps);
  Tensor xb;
  std::vector<int32_t> yb;
  c.model->train(true);
  layers::set_dropout_calls(*c.model, static_cast<uint64_t>(c.start_step));
  double loss_sum = 0;
  int64_t loss_n = 0, step = c.start_step;
  auto save = [&](int64_t s) { save_checkpoint(c.ckpt_path, make_checkpoint(c, s)); };
  for (; step < end && !g_interrupted; ++step) {
    if (c.hooks.before_step) c.hooks.before_step(step);
    const double lr = sched.at(step);
    const double loss = step_loss(c, step, xb, yb);
    const double gnorm = std::isfinite(loss) ? clip_grad_norm(c.optimizer->params(), cfg.grad_clip) : NAN;
    if (!std::isfinite(loss) || !std::isfinite(gnorm)) {
      handle_nonfinite(c, step, loss, gnorm);
    } else {
      c.optimizer->step(lr);
      c.optimizer->zero_grad();
      loss_sum += loss, ++loss_n;
    }
    const int64_t done = step + 1;
    progress.update(done, "loss " + std::to_string(loss).substr(0, 6));
    if (cfg.log_every > 0 && done % cfg.log_every == 0 && loss_n > 0) {
      log_train(c, progress, done, loss_sum / double(loss_n), lr, gnorm);
      loss_sum = 0, loss_n = 0;
    }
    if (c.hooks.after_step) c.hooks.after_step(done);
    if (done % eval_every == 0 || done == c.total_steps) {
      const EvalResult v = c.task->evaluate(*c.model, Split::kVal);
      progress.finish();
      JsonObject line;
      line.str("stage", c.stage).str("split", "val").integer("step", done).num("loss", v.loss)
          .num("accuracy", v.accuracy);
      std::string views;
      for (const auto& [name, value] : c.task->loss_views(v.loss))
        line.num(name, value), views += fmt::format(" {} {:.4f}", name, value);
      spdlog::info("{} step {} epoch {:.2f}: val loss {:.4f} accuracy {:.4f}{}", c.stage, done,
                   double(done) / double(spe), v.loss, v.accuracy, views);
      c.metrics->write(line);
      if (c.hooks.after_eval) c.hooks.after_eval(done, v);
      c.model->train(true);
    }
    if (cfg.checkpoint_every > 0 && done % cfg.checkpoint_every == 0 && done < c.total_steps) save(done);
  }
  progress.finish();
  save(step);
  if (step < c.total_steps)
    spdlog::warn("{}: stopped at step {} of {}; continue with --resume", c.stage, step, c.total_steps);
  return LoopResult{step, step == c.total_steps};
}

int64_t resume_position(LoopContext& c, const Checkpoint& k) {
  const auto counter = [&](const char* key, int64_t fallback) {
    auto it = k.counters.find(key);
    return it == k.counters.end() ? fallback : it->second;
  };
  const int64_t skipped = counter("skipped_steps", 0), bytes = counter("metrics_bytes", 0);
  MXQAT_CHECK(k.step >= 0 && k.step <= c.total_steps, "--resume: checkpoint ", c.ckpt_path,
              " is at step ", k.step, " but this run has ", c.total_steps,
              " steps; resume with the recipe that wrote it (or start without --resume)");
  MXQAT_CHECK(skipped >= 0 && skipped <= k.step && bytes >= 0, "--resume: checkpoint ",
              c.ckpt_path, " has impossible counters (skipped_steps ", skipped, ", metrics_bytes ",
              bytes, " at step ", k.step, "); it is damaged: start without --resume");
  c.start_step = k.step;
  c.skipped = skipped;
  return bytes;
}

}  // namespace mxqat::trainers
