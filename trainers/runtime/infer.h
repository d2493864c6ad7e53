// The inference runtime: the recipe's model rebuilt from an export (export.h), and load_model,
// the one way to load a model file for evaluation or sampling (an export or a checkpoint). Reference path:
// every packed weight decoded with the same Codec as training, input activations fake-quantized
// with their codec, the same GEMM as training, so the logits equal the training-time fake-quant
// forward bit for bit (checked by `mxqat verify`). Fast path: packed weights stay packed and a
// fused decode-and-multiply kernel (quant/codec/gemm/packed_gemm.h) runs Linear layers; it is tested
// against the reference within a tolerance, not bitwise. Under quant.product mx_native both paths
// run training's mx_native product (quant/codec/gemm/mx_gemm.h) and give the same bits.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "layers/module.h"
#include "quant/policy/plan.h"
#include "trainers/io/export.h"
#include "trainers/recipe/recipe.h"

namespace mxqat::trainers {

enum class InferPath { kReference, kFast };

struct InferenceModel {
  Recipe recipe;                              // the file's recipe (with the caller's overrides)
  int64_t step = 0;                           // the training step its weights come from
  std::shared_ptr<layers::Module> model;      // eval mode
  std::unique_ptr<quant::QuantPlan> plan;     // input-activation codecs; weights already decoded
  std::vector<std::shared_ptr<quant::GemmQuantizer>> fast;  // kFast: one per packed Linear
};

// Builds the model named by the export's recipe (parsed once, with `overrides` "key=value" applied;
// its data section sizes the model), checks every parameter name and shape against the export's
// tensors (a mismatch names the tensor: the config does not match the weights), and loads the
// weights.
InferenceModel load_inference(const ExportModel& m, const std::string& path, InferPath p = InferPath::kReference,
                              const std::vector<std::string>& overrides = {});

struct LoadOptions {
  InferPath path = InferPath::kReference;  // exports: the reference or the fast path
  std::vector<std::string> overrides;      // "key=value" applied to the file's recipe
  const Recipe* recipe = nullptr;          // checkpoints: build the model from this recipe instead
  bool fake_quant = true;                  // checkpoints: false runs a QAT checkpoint in float32
  std::function<void(const Recipe&)> check_recipe;  // sees the recipe before the model is built
};
// A model file ready to evaluate, in eval mode: an export through load_inference, or a training
// checkpoint with its parameters, run as it was trained (a QAT checkpoint under its policy's
// final phase, fake-quant). Anything else is an error saying what the file should be.
InferenceModel load_model(const std::string& path, const LoadOptions& o = {});

}  // namespace mxqat::trainers
