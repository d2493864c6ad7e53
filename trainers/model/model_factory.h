// Builds the model a recipe names (mlp | cnn | gpt) with its parameter names, seeded, and fills
// it from a checkpoint. gpt takes its sizes from the recipe (vocabulary included), not from the
// arguments.
#pragma once
#include <memory>
#include <string>

#include "layers/gpt.h"
#include "layers/module.h"
#include "trainers/io/ckpt.h"

namespace mxqat::trainers {

struct Recipe;
struct ModelCfg;
layers::GptConfig gpt_config(const ModelCfg& m);
// Under quant.learned_scale: lsq, each GEMM layer whose weight the policy quantizes also holds its
// learned scale offsets (GemmLayer::enable_learned_scale), zeros.
std::shared_ptr<layers::Module> build_model(const Recipe& r, int64_t in_features, int64_t classes);
// "blocks.0.attn.q.weight_scale_offset": a layer's learned scale offsets (lsq).
bool is_learned_scale_name(const std::string& name);
// Copies the checkpoint's parameters into the model after checking every name and shape
// (a mismatch names the parameter; `path` names the checkpoint in the message). Learned scale
// offsets the checkpoint lacks (an FP32 baseline) are set to 0: the codecs' own scales.
void load_parameters(layers::Module& model, const Checkpoint& c, const std::string& path);

}  // namespace mxqat::trainers
