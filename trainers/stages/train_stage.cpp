// The train stage: start (or resume) a run, the loop, the final evaluation, the summary.
#include "trainers/stages/train_stage.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "trainers/dist/dist.h"
#include "trainers/util/files.h"

#include "trainers/interop/llama_import.h"

namespace mxqat::trainers {

namespace {
// model.from: the baseline is the imported llama checkpoint, not trained (train.* is not used);
// written as the stage's checkpoint at step 0.
LoopResult import_baseline(StageRun& run) {
  const Recipe& r = run.recipe;
  const LlamaCheckpoint ck = read_llama(r.model.from);
  check_llama_model(r.model, ck);
  load_llama(*run.st.model, ck);
  spdlog::info("imported {} ({} in {} file(s){}): {} parameters, no training", r.model.from,
               ck.dtypes, ck.files, ck.tied ? ", tied head copied" : "",
               run.st.model->num_parameters());
  Checkpoint k;
  k.recipe_text = r.text;
  for (const auto& [name, v] : run.st.model->named_parameters()) k.params.emplace_back(name, v.value());
  k.meta["optimizer"] = run.optimizer->kind();
  k.meta["model"] = r.model.type;
  k.meta["stage"] = "train";
  k.meta["imported_from"] = r.model.from;
  k.rng_state = "seed=" + std::to_string(r.seed);
  if (is_root()) save_checkpoint(run.loop.ckpt_path, k);
  dist().barrier();
  LoopResult lr;
  lr.completed = true;
  return lr;
}

// Validation and test metrics of the trained model, logged and appended to metrics.jsonl.
void evaluate_final(StageRun& run, TrainSummary& s) {
  const Task& task = *run.st.task;
  s.val = task.evaluate(*run.st.model, Split::kVal);
  s.test = task.evaluate(*run.st.model, Split::kTest);
  spdlog::info("test loss {:.4f} accuracy {:.4f} ({} samples) in {:.1f} s", s.test.loss,
               s.test.accuracy, s.test.samples, s.wall_s);
  JsonObject line;
  line.str("stage", "train").str("split", "test").integer("step", s.steps)
      .num("loss", s.test.loss).num("accuracy", s.test.accuracy);
  std::string views;
  for (const auto& [name, value] : task.loss_views(s.test.loss))
    line.num(name, value), views += fmt::format(" {} {:.4f}", name, value);
  if (!views.empty()) spdlog::info("test{}", views);
  run.metrics.write(line);
}

void write_summary(const StageRun& run, const TrainSummary& s) {
  const Recipe& r = run.recipe;
  const Task& task = *run.st.task;
  JsonObject summary;
  summary.str("recipe", r.name).str("model", r.model.type).str("metric", task.metric().name)
      .num("test_accuracy", s.test.accuracy).num("test_loss", s.test.loss)
      .num("val_accuracy", s.val.accuracy).num("val_loss", s.val.loss);
  for (const auto& [name, value] : task.loss_views(s.test.loss)) summary.num("test_" + name, value);
  for (const auto& [name, value] : task.loss_views(s.val.loss)) summary.num("val_" + name, value);
  write_file_atomic(run.out_dir + "/summary.json",
                    summary.integer("steps", s.steps)
                        .num("epochs", double(s.steps) / double(run.st.order->steps_per_epoch()))
                        .num("wall_s", s.wall_s).integer("params", s.params)
                        .str("checkpoint", run.loop.ckpt_path).dump() + "\n");
}
}  // namespace

TrainSummary train(const Recipe& r, const TrainOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  StageRun run("train", r, r.train, opt.out_dir, opt.stop_at);
  const bool imported = !r.model.from.empty();
  run.start(opt.resume && !imported);  // an import is redone, never resumed
  if (!imported)
    spdlog::info("model {}: {} parameters; {} steps ({} per epoch), batch {}", r.model.type,
                 run.st.model->num_parameters(), run.loop.total_steps,
                 run.st.order->steps_per_epoch(), r.data.batch_size);
  const LoopResult lr = imported ? import_baseline(run) : run.run();
  TrainSummary s;
  s.steps = lr.step;
  s.epochs = lr.step / run.st.order->steps_per_epoch();
  s.params = run.st.model->num_parameters();
  s.completed = lr.completed;
  s.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!s.completed) return s;
  evaluate_final(run, s);
  if (is_root()) write_summary(run, s);
  dist().barrier();  // the summary is written before any process goes on
  return s;
}

}  // namespace mxqat::trainers
