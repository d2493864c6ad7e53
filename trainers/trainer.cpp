// The training loop. Everything a step depends on is a function of (recipe, step, checkpointed
// state), so a run stopped after step k and resumed ends bitwise identical to one that never stopped.
#include "trainers/trainer.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <map>

#include "layers/models.h"
#include "trainers/ckpt.h"
#include "trainers/model_factory.h"
#include "trainers/optim.h"
#include "trainers/progress.h"
#include "trainers/report_io.h"
#include "trainers/sched.h"

namespace mxqat::trainers {

using autograd::Tensor;
using autograd::Var;

namespace {
std::atomic<bool> g_interrupted{false};
extern "C" void on_signal(int) { g_interrupted = true; }

struct LoopState {
  int64_t total_steps = 0, steps_per_epoch = 0, start_step = 0;
};

Checkpoint make_checkpoint(const Recipe& r, const layers::Module& model, const Optimizer& opt,
                           int64_t step, int64_t spe) {
  Checkpoint c;
  c.recipe_text = r.text;
  c.step = step;
  c.epoch = step / spe;
  for (const auto& [name, v] : model.named_parameters()) c.params.emplace_back(name, v.value());
  c.optimizer_state = opt.state();
  c.meta["optimizer"] = opt.kind();
  c.meta["model"] = r.model.type;
  c.meta["stage"] = "train";
  // All randomness is counter-based: batch order = f(seed, epoch), dropout mask = f(seed, step).
  c.rng_state = "seed=" + std::to_string(r.seed) + ";batch_order_epoch=" + std::to_string(step / spe) +
                ";dropout_calls=" + std::to_string(step);
  return c;
}

void restore(const Checkpoint& c, const Recipe& r, layers::Module& model, Optimizer& opt,
             const std::string& path) {
  load_parameters(model, c, path);
  auto it = c.meta.find("optimizer");
  MXQAT_CHECK(it != c.meta.end() && it->second == opt.kind(), path, " was written with optimizer '",
              it == c.meta.end() ? "?" : it->second, "' but the recipe uses '", opt.kind(),
              "'; resume with the recipe that wrote it");
  opt.load_state(c.optimizer_state);
  layers::set_dropout_calls(model, static_cast<uint64_t>(c.step));
  if (c.recipe_text != r.text)
    spdlog::warn("resuming {} with a recipe that differs from the one stored in it", path);
}

double batch_loss(layers::Module& model, const Dataset& d, BatchOrder& order, int64_t step,
                  double smoothing, Tensor& xb, std::vector<int32_t>& yb) {
  d.gather(order.batch(step), xb, yb);
  Var logits = model.forward(Var(xb));
  Var loss = autograd::cross_entropy(logits, yb, static_cast<float>(smoothing));
  const double l = loss.value().item();
  if (!std::isfinite(l)) return l;  // caller stops before touching the weights
  loss.backward();
  return l;
}
}  // namespace

void load_parameters(layers::Module& model, const Checkpoint& c, const std::string& path) {
  std::vector<std::pair<std::string, autograd::Shape>> expected;
  for (const auto& [name, v] : model.named_parameters()) expected.emplace_back(name, v.shape());
  check_shapes(c, expected, path);
  std::map<std::string, const Tensor*> by_name;
  for (const auto& [name, t] : c.params) by_name[name] = &t;
  for (auto [name, v] : model.named_parameters()) v.value() = *by_name.at(name);
}

void install_interrupt_handler() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
}

Tensor predict(layers::Module& model, const Dataset& d, int64_t batch) {
  autograd::NoGradGuard ng;
  const bool was = model.training();
  model.train(false);
  Tensor out;
  std::vector<int64_t> idx;
  Tensor xb;
  std::vector<int32_t> yb;
  for (int64_t s = 0; s < d.size(); s += batch) {
    idx.clear();
    for (int64_t i = s; i < std::min(d.size(), s + batch); ++i) idx.push_back(i);
    d.gather(idx, xb, yb);
    Tensor logits = model.forward(Var(xb)).value();
    if (out.empty()) out = Tensor({d.size(), logits.cols()});
    std::copy(logits.data(), logits.data() + logits.size(), out.data() + s * logits.cols());
  }
  model.train(was);
  return out;
}

EvalResult evaluate(layers::Module& model, const Dataset& d, int64_t batch) {
  Tensor logits = predict(model, d, batch);
  EvalResult r;
  r.samples = d.size();
  double loss = 0;
  int64_t correct = 0;
  const int64_t c = logits.cols();
  for (int64_t i = 0; i < d.size(); ++i) {
    const float* row = logits.data() + i * c;
    const float mx = *std::max_element(row, row + c);
    double se = 0;
    for (int64_t j = 0; j < c; ++j) se += std::exp(double(row[j]) - mx);
    loss += std::log(se) + mx - row[d.y[static_cast<size_t>(i)]];
    correct += (std::max_element(row, row + c) - row) == d.y[static_cast<size_t>(i)];
  }
  r.loss = d.size() ? loss / double(d.size()) : 0.0;
  r.accuracy = d.size() ? double(correct) / double(d.size()) : 0.0;
  return r;
}

TrainSummary train(const Recipe& r, const TrainOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  std::filesystem::create_directories(opt.out_dir);
  const std::string ckpt_path = opt.out_dir + "/checkpoint.h5";
  Splits data = load_fashion_mnist(r.data, static_cast<uint64_t>(r.seed));
  spdlog::info("{}", data.description);
  auto model = build_model(r, data.train.x.cols(), data.train.num_classes);
  auto optimizer = make_optimizer(r.train.optimizer, model->named_parameters());
  BatchOrder order(data.train.size(), r.data.batch_size, static_cast<uint64_t>(r.seed));
  LoopState ls;
  ls.steps_per_epoch = order.steps_per_epoch();
  ls.total_steps = r.train.steps > 0 ? r.train.steps : r.train.epochs * ls.steps_per_epoch;
  LrSchedule sched{r.train.lr_schedule.type, r.train.optimizer.lr, r.train.lr_schedule.min_lr,
                   r.train.lr_schedule.warmup_steps, ls.total_steps};
  if (opt.resume) {
    MXQAT_CHECK(std::filesystem::exists(ckpt_path), "--resume: no checkpoint at ", ckpt_path,
                "; start without --resume, or point --out at the run to continue");
    Checkpoint c = load_checkpoint(ckpt_path);
    restore(c, r, *model, *optimizer, ckpt_path);
    ls.start_step = c.step;
    spdlog::info("resumed {} at step {}", ckpt_path, c.step);
  } else {
    write_file_atomic(opt.out_dir + "/recipe.yaml", r.text);
  }
  spdlog::info("model {}: {} parameters; {} steps ({} per epoch), batch {}", r.model.type,
               model->num_parameters(), ls.total_steps, ls.steps_per_epoch, r.data.batch_size);
  JsonlWriter metrics;
  metrics.open(opt.out_dir + "/metrics.jsonl");
  const int64_t eval_every = r.train.eval_every > 0 ? r.train.eval_every : ls.steps_per_epoch;
  const int64_t end = opt.stop_at >= 0 ? std::min(opt.stop_at, ls.total_steps) : ls.total_steps;
  Progress progress(ls.start_step, ls.total_steps);
  Tensor xb;
  std::vector<int32_t> yb;
  model->train(true);
  int64_t step = ls.start_step;
  double loss_sum = 0;
  int64_t loss_n = 0;
  auto save = [&](int64_t s) { save_checkpoint(ckpt_path, make_checkpoint(r, *model, *optimizer, s, ls.steps_per_epoch)); };
  for (; step < end && !g_interrupted; ++step) {
    const double lr = sched.at(step);
    const double loss = batch_loss(*model, data.train, order, step, r.train.label_smoothing, xb, yb);
    MXQAT_CHECK(std::isfinite(loss), "training loss is ", loss, " at step ", step,
                "; the weights were not updated and the last good checkpoint is ", ckpt_path,
                " (lower train.optimizer.lr or set train.grad_clip)");
    const double gnorm = clip_grad_norm(optimizer->params(), r.train.grad_clip);
    optimizer->step(lr);
    optimizer->zero_grad();
    loss_sum += loss, ++loss_n;
    const int64_t done = step + 1;
    progress.update(done, "loss " + std::to_string(loss).substr(0, 6));
    if (r.train.log_every > 0 && done % r.train.log_every == 0) {
      metrics.write(JsonObject().str("split", "train").integer("step", done).integer("epoch", done / ls.steps_per_epoch)
                        .num("loss", loss_sum / double(loss_n)).num("lr", lr).num("grad_norm", gnorm));
      if (!progress.interactive())
        spdlog::info("step {}/{} loss {:.4f} lr {:.3g} ({:.1f} it/s)", done, ls.total_steps,
                     loss_sum / double(loss_n), lr, progress.steps_per_second(done));
      loss_sum = 0, loss_n = 0;
    }
    if (done % eval_every == 0 || done == ls.total_steps) {
      EvalResult v = evaluate(*model, data.val);
      progress.finish();
      spdlog::info("step {} epoch {:.2f}: val loss {:.4f} accuracy {:.4f}", done,
                   double(done) / double(ls.steps_per_epoch), v.loss, v.accuracy);
      metrics.write(JsonObject().str("split", "val").integer("step", done).num("loss", v.loss).num("accuracy", v.accuracy));
    }
    if (r.train.checkpoint_every > 0 && done % r.train.checkpoint_every == 0 && done < ls.total_steps) save(done);
  }
  progress.finish();
  save(step);
  TrainSummary s;
  s.steps = step;
  s.epochs = step / ls.steps_per_epoch;
  s.params = model->num_parameters();
  s.completed = step == ls.total_steps;
  s.val = evaluate(*model, data.val);
  s.test = evaluate(*model, data.test);
  s.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!s.completed) {
    spdlog::warn("stopped at step {} of {}; continue with: mxqat train <recipe> --out {} --resume",
                 step, ls.total_steps, opt.out_dir);
    return s;
  }
  spdlog::info("test loss {:.4f} accuracy {:.4f} ({} samples) in {:.1f} s", s.test.loss,
               s.test.accuracy, s.test.samples, s.wall_s);
  metrics.write(JsonObject().str("split", "test").integer("step", step).num("loss", s.test.loss).num("accuracy", s.test.accuracy));
  write_file_atomic(opt.out_dir + "/summary.json",
                    JsonObject().str("recipe", r.name).str("model", r.model.type)
                        .num("test_accuracy", s.test.accuracy).num("test_loss", s.test.loss)
                        .num("val_accuracy", s.val.accuracy).num("val_loss", s.val.loss)
                        .integer("steps", s.steps).num("epochs", double(s.steps) / double(ls.steps_per_epoch))
                        .num("wall_s", s.wall_s).integer("params", s.params)
                        .str("checkpoint", ckpt_path).dump() + "\n");
  return s;
}

}  // namespace mxqat::trainers
