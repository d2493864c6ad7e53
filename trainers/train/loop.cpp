// The step loop. Everything a step depends on is a function of (recipe, step, checkpointed
// state), so a run stopped after step k and resumed ends bitwise identical to one that never stopped.
#include "trainers/train/loop.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <map>

#include "layers/models.h"
#include "trainers/dist/dist.h"
#include "trainers/dist/tree.h"
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

// Forward + backward of one batch, the loss scaled by `scale` for the backward; returns the
// unscaled loss (gradients only when it is finite).
double forward_backward(LoopContext& c, const Tensor& xb, const std::vector<int32_t>& yb, float scale) {
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
  if (std::isfinite(l)) (scale == 1.f ? loss : mul_scalar(loss, scale)).backward();
  return l;
}

// Rows [r0, r0 + n) of a batch tensor (dim 0).
Tensor rows_of(const Tensor& x, int64_t r0, int64_t n) {
  autograd::Shape shape = x.shape();
  const int64_t per = x.size() / shape[0];
  shape[0] = n;
  Tensor out = Tensor::uninit(shape);
  std::copy(x.data() + r0 * per, x.data() + (r0 + n) * per, out.data());
  return out;
}

// The step's gradient over c.cfg->micro_batches micro-batches summed over the fixed tree
// (trainers/dist/tree.h), this process computing its own micro-batches only; written back into
// the parameters' grads on every process. Each micro-batch's loss is scaled by 1/M, so the sum is
// the whole batch's mean gradient. Dropout masks are those of the whole batch (the micro-batch's
// first sample is the mask offset), so nothing depends on which process holds which slice.
double micro_batch_step(LoopContext& c, int64_t step, const Tensor& xb, const std::vector<int32_t>& yb) {
  const int64_t m = c.cfg->micro_batches, batch = xb.dim(0), rows = batch / m;
  MXQAT_CHECK(batch % m == 0, c.stage, ": micro_batches ", m, " does not divide the batch of ", batch,
              " samples; pick a divisor of data.batch_size");
  const int64_t per_target = static_cast<int64_t>(yb.size()) / batch;
  const layers::NamedParams& params = c.optimizer->params();
  std::vector<size_t> offset(params.size() + 1, 0);
  for (size_t i = 0; i < params.size(); ++i)
    offset[i + 1] = offset[i] + static_cast<size_t>(params[i].second.value().size());
  const size_t len = offset.back() + 1;  // every gradient, then the loss / M
  std::vector<char> has_grad(params.size(), 0);
  const float inv_m = 1.f / static_cast<float>(m);
  auto leaf = [&](int64_t i, float* out) {
    const Tensor x = rows_of(xb, i * rows, rows);
    const std::vector<int32_t> y(yb.begin() + i * rows * per_target, yb.begin() + (i + 1) * rows * per_target);
    layers::set_dropout_calls(*c.model, static_cast<uint64_t>(step));
    layers::set_dropout_first_sample(*c.model, i * rows);
    if (c.hooks.before_micro_batch) c.hooks.before_micro_batch(step, i);
    c.optimizer->zero_grad();
    const double l = forward_backward(c, x, y, inv_m);
    for (size_t p = 0; p < params.size(); ++p) {
      const Tensor& g = params[p].second.grad();
      if (g.empty()) {
        std::fill(out + offset[p], out + offset[p + 1], 0.f);
      } else {
        std::copy(g.data(), g.data() + g.size(), out + offset[p]);
        has_grad[p] = 1;
      }
    }
    out[len - 1] = static_cast<float>(l / double(m));
  };
  TreeTimes tt;
  const std::vector<float>& sum = c.tree.run(m, len, leaf, dist(), &tt);
  c.times.tree.push_back(tt);
  layers::set_dropout_first_sample(*c.model, 0);
  c.optimizer->zero_grad();
  for (size_t p = 0; p < params.size(); ++p) {
    if (!has_grad[p]) continue;  // a parameter the loss does not reach (the same on every process)
    Tensor g = Tensor::uninit(params[p].second.value().shape());
    std::copy(sum.data() + offset[p], sum.data() + offset[p + 1], g.data());
    Var v = params[p].second;
    v.grad() = std::move(g);
  }
  return sum[len - 1];
}

// Forward + backward of the step's batch; returns the loss (gradients only when it is finite).
double step_loss(LoopContext& c, int64_t step, Tensor& xb, std::vector<int32_t>& yb) {
  c.task->train_batch(step, *c.order, xb, yb);
  if (c.cfg->micro_batches == 1 && dist().size() == 1) return forward_backward(c, xb, yb, 1.f);
  return micro_batch_step(c, step, xb, yb);
}

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

// Throughput: the median step (the first left out: warm-up), its gradient exchange (micro-batched
// or data-parallel runs), targets (tokens for a gpt) per second. bench/dist_scaling.sh reads it.
// Data-parallel runs add the exchange's parts and each process's time on its own micro-batches
// (gathered from every process: a collective, so every process calls this).
void log_step_times(const LoopContext& c) {
  const auto& t = c.times;
  if (t.step_s.empty()) return;
  const size_t skip = t.step_s.size() > 2 ? 1 : 0;
  const double step = median({t.step_s.begin() + skip, t.step_s.end()});
  const auto tree_median = [&](double (*part)(const TreeTimes&)) {
    std::vector<double> v;
    for (size_t i = skip; i < t.tree.size(); ++i) v.push_back(part(t.tree[i]));
    return v.empty() ? 0.0 : median(v);
  };
  const double ex = tree_median([](const TreeTimes& x) { return x.exchange_s(); });
  spdlog::info("{} throughput ({}, {} micro-batch(es)): median step {:.2f} ms, gradient exchange "
               "{:.2f} ms ({:.1f}% of the step), {:.0f} targets/s", c.stage, dist().describe(),
               c.cfg->micro_batches, 1e3 * step, 1e3 * ex, 100.0 * ex / step, double(t.targets) / step);
  Dist& d = dist();
  if (d.size() <= 1 || t.tree.size() <= skip) return;
  const double local = tree_median([](const TreeTimes& x) { return x.local_s; });
  std::vector<double> locals(static_cast<size_t>(d.size()));
  d.allgatherv(&local, locals.data(), std::vector<size_t>(locals.size(), sizeof(double)));
  std::string per;
  for (double l : locals) per += fmt::format("{}{:.1f}", per.empty() ? "" : " / ", 1e3 * l);
  const auto [lo, hi] = std::minmax_element(locals.begin(), locals.end());
  spdlog::info("{} exchange parts (median ms): slices sent {:.2f} (incl. waiting for the slowest "
               "process), additions {:.2f}, sums gathered {:.2f}; own micro-batches per process: {} ms "
               "(slowest - fastest {:.1f} ms)", c.stage,
               1e3 * tree_median([](const TreeTimes& x) { return x.scatter_s; }),
               1e3 * tree_median([](const TreeTimes& x) { return x.finish_s; }),
               1e3 * tree_median([](const TreeTimes& x) { return x.gather_s; }), per, 1e3 * (*hi - *lo));
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
  if (dist().size() > 1) return install_peer_failure_handler();
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
  auto save = [&](int64_t s) {  // rank 0 writes; every rank knows the last checkpoint
    if (is_root()) save_checkpoint(c.ckpt_path, make_checkpoint(c, s));
    set_last_checkpoint(c.ckpt_path, s);
  };
  if (c.start_step > 0) set_last_checkpoint(c.ckpt_path, c.start_step);
  for (; step < end && !g_interrupted; ++step) {
    if (c.hooks.before_step) c.hooks.before_step(step);
    const double lr = sched.at(step);
    const auto t0 = std::chrono::steady_clock::now();
    const double loss = step_loss(c, step, xb, yb);
    const double gnorm = std::isfinite(loss) ? clip_grad_norm(c.optimizer->params(), cfg.grad_clip) : NAN;
    if (!std::isfinite(loss) || !std::isfinite(gnorm)) {
      handle_nonfinite(c, step, loss, gnorm);
    } else {
      c.optimizer->step(lr);
      c.optimizer->zero_grad();
      loss_sum += loss, ++loss_n;
    }
    c.times.step_s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    c.times.targets = static_cast<int64_t>(yb.size());
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
  dist().barrier();  // the checkpoint is on disk before any process goes on (e.g. to read it)
  log_step_times(c);
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
