// QuantPlan (plan.h): per-layer quantizers and their schedule-driven specs.
#include "quant/policy/plan.h"

#include "autograd/error.h"

namespace mxqat::quant {

QuantPlan::QuantPlan(ResolvedPolicy policy, int64_t total_steps)
    : policy_(std::move(policy)), total_(total_steps) {
  MXQAT_CHECK(total_steps > 0, "QuantPlan: QAT needs at least one step, got ", total_steps);
  policy_.check_total(total_steps);
  for (const LayerPolicy& lp : policy_.layers) {
    const int phase = lp.schedule.empty() ? -1 : lp.schedule.active(0, total_);
    entries_.push_back({std::make_shared<QuantGemm>(policy_.spec_at(lp, 0, total_)), phase});
  }
}

std::shared_ptr<QuantGemm> QuantPlan::quantizer(const std::string& layer) const {
  for (size_t i = 0; i < entries_.size(); ++i)
    if (policy_.layers[i].layer == layer) return entries_[i].gemm;
  policy_.at(layer);  // throws, listing the layers
  return nullptr;
}

std::vector<PhaseEvent> QuantPlan::update(int64_t step) {
  std::vector<PhaseEvent> events;
  for (size_t i = 0; i < entries_.size(); ++i) {
    const LayerPolicy& lp = policy_.layers[i];
    if (lp.schedule.empty()) continue;
    const int phase = lp.schedule.active(step, total_);
    if (phase == entries_[i].phase) continue;
    GemmQuantSpec spec = policy_.spec_at(lp, step, total_);
    const auto [w, a] = policy_.phase_codecs(lp, phase);
    entries_[i].gemm->set_spec(std::move(spec));
    entries_[i].phase = phase;
    events.push_back({lp.layer, step, phase, w, a});
  }
  return events;
}

}  // namespace mxqat::quant
