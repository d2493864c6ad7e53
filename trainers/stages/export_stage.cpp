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
  make_output_dir(fs::absolute(out).parent_path().string(), "export");
  write_export(out, m);
  spdlog::info("export {} -> {}: {} bytes ({:.2f}x smaller than float32)", path, out, m.bytes(),
               double(m.float32_bytes()) / double(m.bytes()));
  return m;
}

namespace {
// Throws unless checkpoint `c` packs to exactly the export's tensors (names, codecs, bytes).
void check_same_source(const ExportModel& m, const Checkpoint& c, const std::string& export_path,
                       const std::string& against) {
  const std::string fix = "; pass --against the checkpoint it was exported from (its manifest "
                          "names '" + m.source + "')";
  MXQAT_CHECK(!c.meta.count("policy") || c.meta.at("policy") == m.policy_text, "verify: '",
              against, "' is not the checkpoint '", export_path, "' came from: it was trained "
              "under another quant policy", fix);
  const ExportModel again = make_export(c, against, m.policy_text);
  MXQAT_CHECK(again.tensors.size() == m.tensors.size(), "verify: '", against, "' is not the "
              "checkpoint '", export_path, "' came from: it has ", again.tensors.size(),
              " tensors, the export ", m.tensors.size(), fix);
  // Floats compared by their bits (NaN scales included); empty arrays are equal.
  const auto same_bits = [](const float* p, const float* q, size_t n) {
    return n == 0 || std::memcmp(p, q, n * sizeof(float)) == 0;
  };
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    const ExportTensor& a = again.tensors[i];
    const ExportTensor& b = m.tensors[i];
    const quant::EncodedTensor &pa = a.packed, &pb = b.packed;
    const bool same =
        a.name == b.name && a.shape == b.shape && a.quantized == b.quantized &&
        (a.quantized ? pa.codes == pb.codes && pa.scale_codes == pb.scale_codes &&
                           pa.zero_points == pb.zero_points &&
                           pa.scales.size() == pb.scales.size() &&
                           same_bits(pa.scales.data(), pb.scales.data(), pa.scales.size())
                     : same_bits(a.value.data(), b.value.data(), size_t(a.value.size())));
    MXQAT_CHECK(same, "verify: '", against, "' is not the checkpoint '", export_path,
                "' came from: its tensor '", a.name, "' does not pack to the export's '", b.name,
                "'", fix);
  }
}

std::string default_verify_out(const std::string& export_path) {
  const std::string stem = export_path.size() > 3 &&
                                   export_path.compare(export_path.size() - 3, 3, ".h5") == 0
                               ? export_path.substr(0, export_path.size() - 3)
                               : export_path;
  return stem + ".verify.json";
}
}  // namespace

Verification verify_export(const std::string& export_path, const VerifyOptions& opt) {
  ExportModel m = read_export(export_path);
  const std::string against = opt.against.empty() ? m.source : opt.against;
  const int64_t limit = opt.limit;
  MXQAT_CHECK(!against.empty() && fs::exists(against), "verify: the training checkpoint '", against,
              "' does not exist; pass --against CHECKPOINT.h5 (the checkpoint the export was made from)");
  const Checkpoint c = load_checkpoint(against);
  check_same_source(m, c, export_path, against);
  const Recipe r = parse_recipe(c.recipe_text, against + ":/recipe");
  const StageSetup st = setup_stage(r);
  // Training side: the checkpoint's parameters under the policy's final phase (fake-quant), in
  // the stage's own model (no second one is built).
  auto model = st.model;
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
  const std::string out = opt.out.empty() ? default_verify_out(export_path) : opt.out;
  write_file_atomic(out, v.json + "\n");
  if (opt.record) {
    m.verification = v.json;
    write_export(export_path, m);
  }
  spdlog::info("verify {}: {} samples, max |difference| {}, bitwise equal: {} -> {}{}", export_path,
               v.samples, v.max_abs_diff, v.bitwise_equal, out,
               opt.record ? " (recorded in the export's manifest)" : "");
  return v;
}

}  // namespace mxqat::trainers
