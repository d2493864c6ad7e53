// The train stage.
#include "trainers/stages/train_stage.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>

#include "trainers/model/model_factory.h"
#include "trainers/data/text_data.h"

namespace mxqat::trainers {

StageSetup setup_stage(const Recipe& r) {
  StageSetup s;
  if (r.data.dataset == "text") {
    s.text = std::make_shared<TextData>(load_text(r.data, r.model.context, r.data.batch_size,
                                                  static_cast<uint64_t>(r.seed)));
    spdlog::info("{}", s.text->description);
    s.model = build_stage_model(r, s);
    s.order = std::make_unique<BatchOrder>(s.text->windows(s.text->train), r.data.batch_size,
                                           static_cast<uint64_t>(r.seed));
    return s;
  }
  s.data = load_fashion_mnist(r.data, static_cast<uint64_t>(r.seed));
  spdlog::info("{}", s.data.description);
  s.model = build_stage_model(r, s);
  s.order = std::make_unique<BatchOrder>(s.data.train.size(), r.data.batch_size,
                                         static_cast<uint64_t>(r.seed));
  return s;
}

std::shared_ptr<layers::Module> build_stage_model(const Recipe& r, const StageSetup& s) {
  return s.text ? build_model(r, r.model.context, r.model.vocab)
                : build_model(r, s.data.train.x.cols(), s.data.train.num_classes);
}

int64_t stage_steps(const TrainCfg& cfg, const BatchOrder& order) {
  return cfg.steps > 0 ? cfg.steps : cfg.epochs * order.steps_per_epoch();
}

TrainSummary train(const Recipe& r, const TrainOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  std::filesystem::create_directories(opt.out_dir);
  StageSetup st = setup_stage(r);
  auto optimizer = make_optimizer(r.train.optimizer, st.model->named_parameters());
  LoopContext c;
  c.stage = "train";
  c.recipe = &r;
  c.cfg = &r.train;
  c.model = st.model.get();
  c.optimizer = optimizer.get();
  c.data = &st.data;
  c.text = st.text.get();
  c.order = st.order.get();
  c.ckpt_path = opt.out_dir + "/checkpoint.h5";
  c.total_steps = stage_steps(r.train, *st.order);
  c.stop_at = opt.stop_at;
  if (opt.resume) {
    MXQAT_CHECK(std::filesystem::exists(c.ckpt_path), "--resume: no checkpoint at ", c.ckpt_path,
                "; start without --resume, or point --out at the run to continue");
    Checkpoint k = load_checkpoint(c.ckpt_path);
    load_parameters(*st.model, k, c.ckpt_path);
    MXQAT_CHECK(k.meta["optimizer"] == optimizer->kind(), c.ckpt_path, " was written with optimizer '",
                k.meta["optimizer"], "' but the recipe uses '", optimizer->kind(),
                "'; resume with the recipe that wrote it");
    optimizer->load_state(k.optimizer_state);
    c.start_step = k.step;
    c.skipped = k.counters.count("skipped_steps") ? k.counters.at("skipped_steps") : 0;
    if (k.recipe_text != r.text) {
      Recipe old = parse_recipe(k.recipe_text, c.ckpt_path);
      for (const auto& d : recipe_diff(old, r)) spdlog::warn("resume: recipe changed: {}", d);
    }
    spdlog::info("resumed {} at step {}", c.ckpt_path, k.step);
  } else {
    write_file_atomic(opt.out_dir + "/recipe.yaml", r.text);
  }
  spdlog::info("model {}: {} parameters; {} steps ({} per epoch), batch {}", r.model.type,
               st.model->num_parameters(), c.total_steps, st.order->steps_per_epoch(), r.data.batch_size);
  JsonlWriter metrics;
  metrics.open(opt.out_dir + "/metrics.jsonl");
  c.metrics = &metrics;
  LoopResult lr = run_loop(c);
  TrainSummary s;
  s.steps = lr.step;
  s.epochs = lr.step / st.order->steps_per_epoch();
  s.params = st.model->num_parameters();
  s.completed = lr.completed;
  s.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!s.completed) return s;
  if (st.text) {
    s.val = evaluate_text(*st.model, st.text->val, st.text->context);
    s.test = evaluate_text(*st.model, st.text->test, st.text->context);
  } else {
    s.val = evaluate(*st.model, st.data.val);
    s.test = evaluate(*st.model, st.data.test);
  }
  spdlog::info("test loss {:.4f} accuracy {:.4f} ({} samples) in {:.1f} s", s.test.loss,
               s.test.accuracy, s.test.samples, s.wall_s);
  JsonObject test_line, summary;
  test_line.str("stage", "train").str("split", "test").integer("step", s.steps)
      .num("loss", s.test.loss).num("accuracy", s.test.accuracy);
  summary.str("recipe", r.name).str("model", r.model.type)
      .str("metric", st.text ? "test_bits_per_byte" : "test_accuracy")
      .num("test_accuracy", s.test.accuracy).num("test_loss", s.test.loss)
      .num("val_accuracy", s.val.accuracy).num("val_loss", s.val.loss);
  if (st.text) {  // language model: the loss is nats per byte
    spdlog::info("test bits/byte {:.4f} perplexity {:.3f}", bits_per_byte(s.test.loss), perplexity(s.test.loss));
    test_line.num("bits_per_byte", bits_per_byte(s.test.loss)).num("perplexity", perplexity(s.test.loss));
    summary.num("test_bits_per_byte", bits_per_byte(s.test.loss)).num("test_perplexity", perplexity(s.test.loss))
        .num("val_bits_per_byte", bits_per_byte(s.val.loss)).num("val_perplexity", perplexity(s.val.loss));
  }
  metrics.write(test_line);
  write_file_atomic(opt.out_dir + "/summary.json",
                    summary.integer("steps", s.steps)
                        .num("epochs", double(s.steps) / double(st.order->steps_per_epoch()))
                        .num("wall_s", s.wall_s).integer("params", s.params)
                        .str("checkpoint", c.ckpt_path).dump() + "\n");
  return s;
}

}  // namespace mxqat::trainers
