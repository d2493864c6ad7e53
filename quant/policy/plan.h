// QuantPlan: the resolved policy made live. One QuantGemm per GEMM layer (the trainer attaches each
// with GemmLayer::set_quantizer) and, each step, the codecs of the schedule phase active at that
// step. Position is a pure function of (step, total steps), so a resumed run gets the same specs.
// Never logs: update() returns the phase changes for the trainer to log and record.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "quant/fake/qgemm.h"
#include "quant/policy/policy.h"

namespace mxqat::quant {

struct PhaseEvent {
  std::string layer;
  int64_t step;
  int phase;                   // index into the layer's schedule
  std::string weight, input;   // codecs now in effect
};

class QuantPlan {
 public:
  // Validates every schedule against total_steps (> 0, the number of QAT steps). Quantizers start
  // at phase 0 (step 0); call update(step) before each training step. `seed` (the recipe's) and
  // the layer's index key the stochastic rounding of the backward products, if the policy asks.
  QuantPlan(ResolvedPolicy policy, int64_t total_steps, uint64_t seed = 0);

  const ResolvedPolicy& policy() const { return policy_; }
  int64_t total_steps() const { return total_; }
  size_t size() const { return entries_.size(); }
  const std::string& layer(size_t i) const { return policy_.layers[i].layer; }
  const std::shared_ptr<QuantGemm>& quantizer(size_t i) const { return entries_[i].gemm; }
  std::shared_ptr<QuantGemm> quantizer(const std::string& layer) const;  // throws if absent
  int phase(size_t i) const { return entries_[i].phase; }  // -1 for a layer without schedule

  // Sets every scheduled layer to the phase active at `step` and returns one event per layer whose
  // phase differs from before (the first call after construction reports none unless it moves).
  // Also sets every quantizer's rounding counter to (step, micro-batch 0).
  std::vector<PhaseEvent> update(int64_t step);
  // Data-parallel steps of several micro-batches: the rounding counter of the one about to run.
  void set_micro_batch(int64_t step, int64_t micro);
  // The target precision (each schedule's last phase): for the direct-cast evaluation before QAT
  // and for export. Same as update(total_steps).
  std::vector<PhaseEvent> set_final() { return update(total_); }

 private:
  struct Entry {
    std::shared_ptr<QuantGemm> gemm;
    int phase;
  };
  GemmQuantSpec spec_at(size_t i, int64_t step) const;  // with the layer's rounding stream
  ResolvedPolicy policy_;
  int64_t total_;
  uint64_t seed_;
  std::vector<Entry> entries_;
};

}  // namespace mxqat::quant
