// QuantPlan (plan.h): per-layer quantizers and their schedule-driven specs.
#include "quant/policy/plan.h"

#include "autograd/error.h"

namespace mxqat::quant {

QuantPlan::QuantPlan(ResolvedPolicy policy, int64_t total_steps, uint64_t seed)
    : policy_(std::move(policy)), total_(total_steps), seed_(seed) {
  MXQAT_CHECK(total_steps > 0, "QuantPlan: QAT needs at least one step, got ", total_steps);
  policy_.check_total(total_steps);
  for (size_t i = 0; i < policy_.layers.size(); ++i) {
    const LayerPolicy& lp = policy_.layers[i];
    const int phase = lp.schedule.empty() ? -1 : lp.schedule.active(0, total_);
    entries_.push_back({std::make_shared<QuantGemm>(spec_at(i, 0)), phase});
  }
}

GemmQuantSpec QuantPlan::spec_at(size_t i, int64_t step) const {
  GemmQuantSpec s = policy_.spec_at(policy_.layers[i], step, total_);
  s.sr_seed = seed_;
  s.sr_stream = i;
  return s;
}

void QuantPlan::set_micro_batch(int64_t step, int64_t micro) {
  for (Entry& e : entries_) e.gemm->set_rounding_counter(uint64_t(step), uint64_t(micro));
}

std::shared_ptr<QuantGemm> QuantPlan::quantizer(const std::string& layer) const {
  for (size_t i = 0; i < entries_.size(); ++i)
    if (policy_.layers[i].layer == layer) return entries_[i].gemm;
  policy_.at(layer);  // throws, listing the layers
  return nullptr;
}

std::vector<PhaseEvent> QuantPlan::update(int64_t step) {
  std::vector<PhaseEvent> events;
  set_micro_batch(step, 0);
  for (size_t i = 0; i < entries_.size(); ++i) {
    const LayerPolicy& lp = policy_.layers[i];
    if (lp.schedule.empty()) continue;
    const int phase = lp.schedule.active(step, total_);
    if (phase == entries_[i].phase) continue;
    GemmQuantSpec spec = spec_at(i, step);
    const auto [w, a] = policy_.phase_codecs(lp, phase);
    entries_[i].gemm->set_spec(std::move(spec));
    entries_[i].phase = phase;
    events.push_back({lp.layer, step, phase, w, a});
  }
  return events;
}

}  // namespace mxqat::quant
