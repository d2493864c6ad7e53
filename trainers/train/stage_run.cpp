// Stage setup and the start of a training stage's run (see stage_run.h).
#include "trainers/train/stage_run.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "trainers/dist/dist.h"
#include "trainers/dist/tree.h"
#include "trainers/model/model_factory.h"
#include "trainers/util/files.h"

namespace mxqat::trainers {

StageSetup setup_stage(const Recipe& r) {
  StageSetup s;
  s.task = Task::load(r);
  s.model = build_stage_model(r, s);
  s.order = std::make_unique<BatchOrder>(s.task->train_examples(), r.data.batch_size,
                                         static_cast<uint64_t>(r.seed));
  return s;
}

std::shared_ptr<layers::Module> build_stage_model(const Recipe& r, const StageSetup& s) {
  const DataDims d = s.task->dims();
  return build_model(r, d.features, d.classes);
}

int64_t stage_steps(const TrainCfg& cfg, const BatchOrder& order) {
  return cfg.steps > 0 ? cfg.steps : cfg.epochs * order.steps_per_epoch();
}

StageRun::StageRun(const std::string& stage, const Recipe& r, const TrainCfg& cfg,
                   const std::string& dir, int64_t stop_at)
    : recipe(r), out_dir(dir) {
  if (is_root()) {  // in a data-parallel run rank 0 alone writes (and holds the lock)
    make_output_dir(out_dir, stage);
    lock = std::make_unique<DirLock>(out_dir);  // one writer per output directory
    remove_stale_temps(out_dir);                // leftovers of a run killed mid-write
  }
  st = setup_stage(r);
  optimizer = make_optimizer(cfg.optimizer, st.model->named_parameters());
  loop.stage = stage;
  loop.recipe = &r;
  loop.cfg = &cfg;
  loop.model = st.model.get();
  loop.optimizer = optimizer.get();
  loop.task = st.task.get();
  loop.order = st.order.get();
  loop.ckpt_path = out_dir + "/checkpoint.h5";
  loop.total_steps = stage_steps(cfg, *st.order);
  loop.stop_at = stop_at;
  loop.metrics = &metrics;
  const Dist& d = dist();
  owned_micro_batches(cfg.micro_batches, d.size(), d.rank());  // throws if N > micro_batches
  if (d.size() > 1)
    spdlog::info("{}: data parallel over {}: {} micro-batches of {} samples per step; rank 0 writes "
                 "{}", stage, d.describe(), cfg.micro_batches, r.data.batch_size / cfg.micro_batches, out_dir);
}

std::optional<Checkpoint> StageRun::start(bool resume, const std::function<void(const Checkpoint&)>& check) {
  std::optional<Checkpoint> k;
  int64_t metrics_bytes = 0;  // a fresh run starts metrics.jsonl empty
  if (resume) {
    const std::string& path = loop.ckpt_path;
    MXQAT_CHECK(std::filesystem::exists(path), "--resume: no checkpoint at ", path, "; start without "
                "--resume, or point --out at the ", loop.stage, " run to continue");
    k = load_checkpoint(path);  // every process reads it (any number of processes)
    if (check) check(*k);
    load_parameters(*st.model, *k, path);
    MXQAT_CHECK(k->meta["optimizer"] == optimizer->kind(), path, " was written with optimizer '",
                k->meta["optimizer"], "' but the recipe uses '", optimizer->kind(),
                "'; resume with the recipe that wrote it");
    optimizer->load_state(k->optimizer_state);
    metrics_bytes = resume_position(loop, *k);
    if (k->recipe_text != recipe.text) {
      const Recipe old = parse_recipe(k->recipe_text, path);
      for (const auto& d : recipe_diff(old, recipe)) spdlog::warn("resume: recipe changed: {}", d);
    }
    spdlog::info("resumed {} at step {}", path, k->step);
    set_last_checkpoint(path, k->step);
  } else if (is_root()) {
    write_file_atomic(out_dir + "/recipe.yaml", recipe.text);
  }
  if (is_root()) metrics.open(out_dir + "/metrics.jsonl", metrics_bytes);  // cut back to the checkpoint
  else metrics.open_discard();
  return k;
}

}  // namespace mxqat::trainers
