// `mxqat train`, `mxqat qat` and `mxqat eval`.
#include <omp.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>

#include "trainers/cli/cli_args.h"
#include "trainers/cli/commands.h"
#include "trainers/data/task.h"
#include "trainers/dist/dist.h"
#include "trainers/runtime/infer.h"
#include "trainers/stages/qat.h"
#include "trainers/stages/train_stage.h"
#include "trainers/util/json_write.h"

namespace mxqat::trainers {

namespace {
std::string default_out(const Recipe& r) { return "runs/" + r.name + "/baseline"; }
}  // namespace

int cmd_train(const std::vector<std::string>& argv) {
  Args a("train", argv,
         {{"--out", true}, {"--set", true, true}, {"--resume", false}, {"--threads", true},
          {"--stop-at", true}},
         1, 1);
  apply_threads(a);
  const std::string out_dir_arg = a.get_or("--out", "");
  Recipe r = load_recipe(a.positional()[0], a.all("--set"));
  TrainOptions opt;
  opt.out_dir = out_dir_arg.empty() ? default_out(r) : out_dir_arg;
  opt.resume = a.has("--resume");
  opt.stop_at = int_flag(a, "--stop-at", -1, 0);
  spdlog::info("mxqat train {} -> {} ({} threads)", r.source, opt.out_dir, omp_get_max_threads());
  install_interrupt_handler();
  TrainSummary s = train(r, opt);
  if (s.completed && is_root())
    std::cout << "test_accuracy " << s.test.accuracy << "  test_loss " << s.test.loss << "  -> "
              << opt.out_dir << "/summary.json\n";
  return 0;
}

int cmd_qat(const std::vector<std::string>& argv) {
  Args a("qat", argv,
         {{"--from", true}, {"--out", true}, {"--set", true, true}, {"--resume", false},
          {"--threads", true}, {"--stop-at", true}},
         1, 1);
  apply_threads(a);
  Recipe r = load_recipe(a.positional()[0], a.all("--set"));
  QatOptions opt;
  opt.out_dir = a.get_or("--out", "runs/" + r.name + "/qat");
  opt.from = a.get_or("--from", "");
  opt.resume = a.has("--resume");
  opt.stop_at = int_flag(a, "--stop-at", -1, 0);
  spdlog::info("mxqat qat {} -> {} ({} threads)", r.source, opt.out_dir, omp_get_max_threads());
  install_interrupt_handler();
  QatSummary s = qat(r, opt);
  if (s.completed && is_root())
    std::cout << "baseline " << s.baseline << "  direct_cast " << s.direct_cast << "  qat " << s.qat
              << "  recovered " << s.recovered << "  -> " << opt.out_dir << "/summary.json\n";
  return 0;
}

int cmd_eval(const std::vector<std::string>& argv) {
  Args a("eval", argv, {{"--recipe", true}, {"--set", true, true}, {"--threads", true}}, 1, 1);
  apply_threads(a);
  const std::string path = a.positional()[0];
  const bool exported = mxqat_format_of(path) == "export";  // its reference inference path
  std::optional<Recipe> recipe;           // --recipe: another recipe builds a checkpoint's model
  if (!exported && a.has("--recipe")) recipe = load_recipe(*a.get("--recipe"), a.all("--set"));
  LoadOptions o;
  o.overrides = a.all("--set");
  o.recipe = recipe ? &*recipe : nullptr;
  const InferenceModel im = load_model(path, o);
  const std::unique_ptr<Task> task = Task::load(im.recipe);
  const double metric = task->test_metric(*im.model);
  JsonObject out;
  if (exported) out.str("export", path).num(task->metric().name, metric);
  // A QAT checkpoint is evaluated as it was trained: fake-quant at its policy's final phase.
  else out.str("checkpoint", path).integer("step", im.step).num(task->metric().name, metric)
           .boolean("fake_quant", im.plan != nullptr);
  std::cout << out.dump() << "\n";
  return 0;
}

}  // namespace mxqat::trainers
