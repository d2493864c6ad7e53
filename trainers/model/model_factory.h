// Builds the model a recipe names (mlp | cnn | gpt) with its parameter names, seeded.
// gpt takes its sizes from the recipe (vocabulary included), not from the arguments.
#pragma once
#include <memory>

#include "layers/gpt.h"
#include "layers/module.h"

namespace mxqat::trainers {

struct Recipe;
struct ModelCfg;
layers::GptConfig gpt_config(const ModelCfg& m);
std::shared_ptr<layers::Module> build_model(const Recipe& r, int64_t in_features, int64_t classes);

}  // namespace mxqat::trainers
