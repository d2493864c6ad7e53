// Schedule: progressive precision over QAT, as phases that each end at a fraction of the QAT steps
// (or at an absolute step) and name the weight / input codecs active until then. The position is a
// pure function of (step, total steps), so a resumed run lands in the same phase at the same step.
// Not the per-layer policy (quant/policy) nor the LR schedule (trainers). Never logs.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mxqat::quant {

struct Phase {
  double until = 1.0;     // end of the phase: fraction of QAT steps in (0, 1], or a step count
  bool absolute = false;  // `until` counts steps (every phase of a schedule must agree)
  std::string weight, input;  // codec names; "" = the layer's own codec, "none"/"fp32" = full

  // The recipe shorthand `{until: 0.3, format: mxfp8_e4m3}`: one codec for weight and input.
  static Phase format(double until, const std::string& codec, bool absolute = false) {
    return Phase{until, absolute, codec, codec};
  }
};

struct PhaseChange {
  int64_t step;  // first step of the phase
  int phase;     // index into Schedule::phases()
};

class Schedule {
 public:
  Schedule() = default;  // no phases: the layer's codecs are static
  // Validates: phases strictly increasing, the first starting after 0, the last ending at 1.0
  // (fractions) or at the total steps (absolute: checked by check_total), whole steps when
  // absolute, known codec names, each phase naming a codec. Errors start with `owner`
  // (e.g. "quant rule 2 (\"blocks.*\") schedule") and name the phase.
  explicit Schedule(std::vector<Phase> phases, const std::string& owner = "schedule");

  bool empty() const { return phases_.empty(); }
  size_t size() const { return phases_.size(); }
  const std::vector<Phase>& phases() const { return phases_; }
  bool absolute() const { return !phases_.empty() && phases_[0].absolute; }

  // Absolute schedules must end exactly at the run's QAT step count; fractions fit any total > 0.
  void check_total(int64_t total_steps) const;
  // First step after phase i: round(until * total) for fractions, `until` when absolute.
  int64_t end_step(size_t i, int64_t total_steps) const;
  // The phase active at `step` (0-based; steps at or past the end stay in the last phase).
  // A phase shorter than one step at this total is skipped. Requires a non-empty schedule.
  int active(int64_t step, int64_t total_steps) const;
  // Where each phase starts, in order (skipped phases omitted); the first is at step 0.
  std::vector<PhaseChange> phase_changes(int64_t total_steps) const;

  // "mxfp8_e4m3 until 0.3, mxfp6_e2m3 until 0.6, mxfp4 until 1" ("-" when empty).
  std::string describe() const;
  static std::string describe(const Phase& p);  // "mxfp4" or "w=mxfp4 a=mxfp8_e4m3"

 private:
  std::vector<Phase> phases_;
  std::string owner_;
};

// Throws unless `name` is "", "none", "fp32" or a codec name; `what` names the field.
void check_codec_name(const std::string& name, const std::string& what);
std::string known_codec_list();  // "mxfp8_e4m3, ..., int4_asym, none"

}  // namespace mxqat::quant
