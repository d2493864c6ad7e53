// A recipe's quant policy on a model's GEMM layers (see policy_model.h).
#include "trainers/model/policy_model.h"

namespace mxqat::trainers {

namespace {
std::vector<quant::Phase> phases_of(const std::vector<PhaseCfg>& v) {
  std::vector<quant::Phase> out;
  for (const auto& p : v)
    out.push_back(p.format.empty() ? quant::Phase{p.until, false, p.weight, p.input}
                                   : quant::Phase::format(p.until, p.format));
  return out;
}
}  // namespace

std::vector<std::pair<std::string, layers::GemmLayer*>> gemm_layers(layers::Module& m) {
  std::vector<std::pair<std::string, layers::GemmLayer*>> out;
  for (auto& [name, mod] : m.named_modules())
    if (auto* g = dynamic_cast<layers::GemmLayer*>(mod)) out.emplace_back(name, g);
  return out;
}

quant::PolicyConfig policy_config(const QuantCfg& q) {
  quant::PolicyConfig c;
  c.weight = q.weight, c.input = q.input, c.grad_output = q.grad_output;
  c.scale_rule = q.scale_rule == "rceil" ? quant::ScaleRule::kRceil : quant::ScaleRule::kFloor;
  c.ste = quant::parse_ste(q.ste);
  c.group_size = q.group_size;
  if (q.rotation == "hadamard") c.rotation = quant::Hadamard{static_cast<uint64_t>(q.rotation_seed)};
  c.product = quant::parse_product(q.product);
  c.grad_rounding = quant::parse_rounding(q.grad_rounding);
  c.requantize_backward = q.backward_operands == "requantize";
  c.learned_scale = q.learned_scale == "lsq";
  c.schedule = phases_of(q.schedule);
  for (const auto& rule : q.rules)
    c.rules.push_back({rule.match, rule.weight, rule.input, rule.grad_output, phases_of(rule.schedule)});
  return c;
}

quant::ResolvedPolicy resolve_model_policy(const Recipe& r, layers::Module& model) {
  std::vector<std::string> names;
  for (auto& [name, g] : gemm_layers(model)) names.push_back(name);
  return quant::resolve_policy(policy_config(r.quant), names);
}

std::unique_ptr<quant::QuantPlan> attach_final_policy(layers::Module& model,
                                                      const quant::ResolvedPolicy& policy) {
  auto plan = std::make_unique<quant::QuantPlan>(policy, 1);
  plan->set_final();
  for (auto& [name, g] : gemm_layers(model)) g->set_quantizer(plan->quantizer(name));
  return plan;
}

}  // namespace mxqat::trainers
