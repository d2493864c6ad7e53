// Loading an export into the model for inference (reference path; the fast path's quantizer is in
// infer_fast.cpp).
#include "trainers/runtime/infer.h"

#include <map>
#include <utility>

#include "trainers/data/task.h"
#include "trainers/io/ckpt.h"
#include "trainers/model/model_factory.h"
#include "trainers/model/policy_model.h"

namespace mxqat::trainers {

std::shared_ptr<quant::GemmQuantizer> make_fast_quantizer(const ExportTensor& w,
                                                          const quant::LayerPolicy& layer,
                                                          const quant::ResolvedPolicy& policy);

namespace {
// The export's policy for inference: weights arrive decoded (no weight codec), each input keeps
// the codec of its layer's final phase, nothing is scheduled.
quant::ResolvedPolicy inference_policy(const ExportModel& m) {
  quant::ResolvedPolicy p = quant::ResolvedPolicy::from_text(m.policy_text);
  p.weights_rotated = true;  // under a rotation, make_export stored them rotated: only inputs rotate
  std::map<std::string, std::string> input;
  for (const auto& a : m.activations) input[a.layer] = a.codec;
  for (auto& lp : p.layers) {
    auto it = input.find(lp.layer);
    MXQAT_CHECK(it != input.end(), "export: layer '", lp.layer, "' of the policy has no activation "
                "codec in the manifest; the file is inconsistent: export it again");
    lp.weight = "none";
    lp.input = it->second;
    lp.grad_output = "none";
    lp.schedule = quant::Schedule();
  }
  return p;
}

InferenceModel build_inference(const ExportModel& m, Recipe recipe, const std::string& path, InferPath which) {
  InferenceModel im;
  im.recipe = std::move(recipe);
  const DataDims dims = data_dims(im.recipe);
  im.model = build_model(im.recipe, dims.features, dims.classes);
  im.step = m.step;
  std::map<std::string, const ExportTensor*> by_name;
  for (const auto& t : m.tensors) by_name[t.name] = &t;
  const auto params = im.model->named_parameters();
  for (const auto& [name, v] : params) {
    auto it = by_name.find(name);
    MXQAT_CHECK(it != by_name.end(), "export ", path, ": the model its recipe describes has a "
                "parameter '", name, "' that the export lacks; the model config does not match the "
                "weights (was the recipe edited?)");
    MXQAT_CHECK(it->second->shape == v.shape(), "export ", path, ": tensor '", name, "' has shape ",
                autograd::shape_str(it->second->shape), " but the recipe's model needs ",
                autograd::shape_str(v.shape()), "; the model config does not match the weights");
  }
  MXQAT_CHECK(params.size() == m.tensors.size(), "export ", path, " holds ", m.tensors.size(),
              " tensors but its recipe's model has ", params.size(), " parameters; the model config "
              "does not match the weights");
  for (auto [name, v] : params) v.value() = by_name.at(name)->decoded();
  im.model->train(false);
  const quant::ResolvedPolicy policy = inference_policy(m);
  im.plan = attach_final_policy(*im.model, policy);
  // mx_native (docs/formats.md §14.2): a layer whose stored weight and input codecs are both
  // mx_native codecs multiplies its decoded weight with that product, as training's final phase.
  for (auto& [name, layer] : gemm_layers(*im.model)) {
    const ExportTensor& w = *by_name.at(name + ".weight");
    if (!w.quantized || policy.product_for(w.packed.codec, policy.at(name).input) !=
                            quant::Product::kMxNative)
      continue;
    const auto q = im.plan->quantizer(name);
    quant::GemmQuantSpec spec = q->spec();
    spec.product = quant::Product::kMxNative;
    q->set_spec(std::move(spec));
  }
  if (which == InferPath::kFast) {
    for (auto& [name, layer] : gemm_layers(*im.model)) {
      const ExportTensor& w = *by_name.at(name + ".weight");
      if (!w.quantized) continue;
      auto q = make_fast_quantizer(w, policy.at(name), policy);
      if (!q) continue;  // this layer's codec or shape has no fast kernel: reference path
      layer->set_quantizer(q);
      im.fast.push_back(std::move(q));
    }
  }
  return im;
}
}  // namespace

InferenceModel load_inference(const ExportModel& m, const std::string& path, InferPath which,
                              const std::vector<std::string>& overrides) {
  return build_inference(m, parse_recipe(m.recipe_text, path + ":/recipe", overrides), path, which);
}

InferenceModel load_model(const std::string& path, const LoadOptions& o) {
  const std::string format = mxqat_format_of(path);  // a missing or damaged file: its own error
  if (format == "export") {
    const ExportModel m = read_export(path);
    Recipe r = parse_recipe(m.recipe_text, path + ":/recipe", o.overrides);
    if (o.check_recipe) o.check_recipe(r);
    return build_inference(m, std::move(r), path, o.path);
  }
  MXQAT_CHECK(format == "checkpoint", path, " is neither an mxqat export nor a checkpoint; give the "
              "MODEL.h5 written by `mxqat export` or a run's checkpoint.h5");
  const Checkpoint c = load_checkpoint(path);
  InferenceModel im;
  im.recipe = o.recipe ? *o.recipe : parse_recipe(c.recipe_text, path + ":/recipe", o.overrides);
  if (o.check_recipe) o.check_recipe(im.recipe);
  const DataDims dims = data_dims(im.recipe);
  im.model = build_model(im.recipe, dims.features, dims.classes);
  load_parameters(*im.model, c, path);
  im.step = c.step;
  im.model->train(false);
  if (o.fake_quant && c.meta.count("policy"))
    im.plan = attach_final_policy(*im.model, quant::ResolvedPolicy::from_text(c.meta.at("policy")));
  return im;
}

}  // namespace mxqat::trainers
