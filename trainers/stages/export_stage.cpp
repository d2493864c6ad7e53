// export and verify.
#include "trainers/stages/export_stage.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "trainers/data/task.h"
#include "trainers/model/model_factory.h"
#include "trainers/model/policy_model.h"
#include "trainers/runtime/infer.h"
#include "trainers/train/stage_run.h"
#include "trainers/util/json_read.h"
#include "trainers/util/json_write.h"
#include "trainers/util/version.h"

namespace mxqat::trainers {

namespace fs = std::filesystem;

std::string resolve_checkpoint(const std::string& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return path;
  MXQAT_CHECK(fs::is_directory(path, ec), "'", path, "' does not exist; give a checkpoint .h5, a "
              "stage directory (with checkpoint.h5) or a run directory (with qat/summary.json)");
  if (fs::exists(path + "/checkpoint.h5")) return path + "/checkpoint.h5";
  const std::string summary = path + "/qat/summary.json";
  MXQAT_CHECK(fs::exists(summary), "'", path, "' holds neither checkpoint.h5 nor qat/summary.json; "
              "give a checkpoint, a stage directory or a finished run directory");
  const std::string main = Json::read(summary).at("main").string();
  return path + "/qat/" + main + "/checkpoint.h5";
}

namespace {
std::shared_ptr<layers::Module> model_of(const Recipe& r) {
  const DataDims d = data_dims(r);
  return build_model(r, d.features, d.classes);
}
}  // namespace

std::string export_policy(const Checkpoint& c, const std::string& path, const Recipe* policy_recipe) {
  if (c.meta.count("policy")) return c.meta.at("policy");
  const Recipe own = parse_recipe(c.recipe_text, path + ":/recipe");
  const Recipe& r = policy_recipe ? *policy_recipe : own;
  auto model = model_of(own);  // the checkpoint's model; the policy's rules must match its layers
  return resolve_model_policy(r, *model).to_text();
}

ExportModel export_checkpoint(const std::string& source, const std::string& out,
                              const Recipe* policy_recipe) {
  const std::string path = resolve_checkpoint(source);
  const Checkpoint c = load_checkpoint(path);
  ExportModel m = make_export(c, path, export_policy(c, path, policy_recipe));
  fs::create_directories(fs::absolute(out).parent_path());
  write_export(out, m);
  spdlog::info("export {} -> {}: {} bytes ({:.2f}x smaller than float32)", path, out, m.bytes(),
               double(m.float32_bytes()) / double(m.bytes()));
  return m;
}

Verification verify_export(const std::string& export_path, const std::string& against_arg, int64_t limit) {
  ExportModel m = read_export(export_path);
  const std::string against = against_arg.empty() ? m.source : against_arg;
  MXQAT_CHECK(!against.empty() && fs::exists(against), "verify: the training checkpoint '", against,
              "' does not exist; pass --against CHECKPOINT.h5 (the checkpoint the export was made from)");
  const Checkpoint c = load_checkpoint(against);
  if (c.meta.count("policy"))
    MXQAT_CHECK(c.meta.at("policy") == m.policy_text, "verify: ", against, " was trained under another "
                "quant policy than ", export_path, " holds; verify against the checkpoint it was exported from");
  const Recipe r = parse_recipe(c.recipe_text, against + ":/recipe");
  const StageSetup st = setup_stage(r);
  // Training side: the checkpoint's parameters under the policy's final phase (fake-quant).
  auto model = model_of(r);
  load_parameters(*model, c, against);
  auto plan = attach_final_policy(*model, quant::ResolvedPolicy::from_text(m.policy_text));
  // Inference side: the export's reference path.
  InferenceModel im = load_inference(m, export_path);
  model->train(false);
  autograd::NoGradGuard no_grad;
  Verification v;
  int64_t logits = 0;
  st.task->for_each_test_batch(limit, [&](const autograd::Tensor& x) {
    const autograd::Tensor a = model->forward(autograd::Var(x)).value();
    const autograd::Tensor b = im.model->forward(autograd::Var(x)).value();
    MXQAT_CHECK(a.shape() == b.shape(), "verify: logits of shape ", autograd::shape_str(a.shape()),
                " vs ", autograd::shape_str(b.shape()));
    const int64_t per = a.size() / x.dim(0);  // logits per example (classes, or T x vocab)
    for (int64_t i = 0; i < x.dim(0); ++i) {
      const float* p = a.data() + i * per;
      const float* q = b.data() + i * per;
      if (std::memcmp(p, q, sizeof(float) * size_t(per)) != 0) ++v.mismatched;
      for (int64_t j = 0; j < per; ++j)
        v.max_abs_diff = std::max(v.max_abs_diff, std::abs(double(p[j]) - double(q[j])));
    }
    v.samples += x.dim(0);
    logits += a.size();
  });
  v.bitwise_equal = v.mismatched == 0;
  v.json = JsonObject().str("split", "test").integer("samples", v.samples).integer("logits", logits)
               .integer("mismatched_samples", v.mismatched).num("max_abs_diff", v.max_abs_diff)
               .boolean("bitwise_equal", v.bitwise_equal).str("against", against)
               .str("path", "reference").str("mxqat_version", mxqat_version()).dump();
  m.verification = v.json;
  write_export(export_path, m);
  spdlog::info("verify {}: {} samples, max |difference| {}, bitwise equal: {}", export_path, v.samples,
               v.max_abs_diff, v.bitwise_equal);
  return v;
}

}  // namespace mxqat::trainers
