// Builds the model a recipe names (mlp | cnn) with its parameter names, seeded.
#pragma once
#include <memory>

#include "layers/module.h"

namespace mxqat::trainers {

struct Recipe;
std::shared_ptr<layers::Module> build_model(const Recipe& r, int64_t in_features, int64_t classes);

}  // namespace mxqat::trainers
