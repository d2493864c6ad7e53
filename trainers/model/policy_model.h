// Policy to model: a recipe's quant section resolved onto a model's GEMM layers (Linear, Conv2d)
// by module name, and the quantizers of a policy's final phase attached to them. What the qat
// stage trains under, and what exports, verification and inference evaluate with.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "layers/module.h"
#include "quant/policy/plan.h"
#include "quant/policy/policy.h"
#include "trainers/recipe/recipe.h"

namespace mxqat::trainers {

// The model's GEMM layers (Linear, Conv2d) by module name, in model order.
std::vector<std::pair<std::string, layers::GemmLayer*>> gemm_layers(layers::Module& m);
// The recipe's quant section as a policy config (codec names are checked on resolution).
quant::PolicyConfig policy_config(const QuantCfg& q);
// Resolves the policy onto the model's GEMM layers (by module name).
quant::ResolvedPolicy resolve_model_policy(const Recipe& r, layers::Module& model);
// Attaches the final-phase quantizers of `policy` to the model's GEMM layers (for evaluating a
// QAT checkpoint in fake-quant mode). Returns the plan that owns them.
std::unique_ptr<quant::QuantPlan> attach_final_policy(layers::Module& model,
                                                      const quant::ResolvedPolicy& policy);

}  // namespace mxqat::trainers
