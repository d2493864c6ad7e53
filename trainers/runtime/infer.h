// The inference runtime: the recipe's model rebuilt from an export (export.h). Reference path:
// every packed weight decoded with the same Codec as training, input activations fake-quantized
// with their codec, the same GEMM as training, so the logits equal the training-time fake-quant
// forward bit for bit (checked by `mxqat verify`). Fast path: packed weights stay packed and a
// fused decode-and-multiply kernel (quant/codec/packed_gemm.h) runs Linear layers; it is tested
// against the reference within a tolerance, not bitwise.
#pragma once
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
  Recipe recipe;
  std::shared_ptr<layers::Module> model;      // eval mode
  std::unique_ptr<quant::QuantPlan> plan;     // input-activation codecs; weights already decoded
  std::vector<std::shared_ptr<quant::GemmQuantizer>> fast;  // kFast: one per packed Linear
};

// Builds the model named by the export's recipe, checks every parameter name and shape against
// the export's tensors (a mismatch names the tensor: the config does not match the weights), and
// loads the weights. `in_features` / `classes` describe the data the model reads.
InferenceModel load_inference(const ExportModel& m, const std::string& path, int64_t in_features,
                              int64_t classes, InferPath p = InferPath::kReference);

}  // namespace mxqat::trainers
