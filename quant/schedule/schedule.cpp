// Schedule (schedule.h): validation and the step -> phase arithmetic.
#include "quant/schedule/schedule.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "autograd/error.h"
#include "quant/codec/codec.h"

namespace mxqat::quant {

std::string known_codec_list() {
  std::string s;
  for (const std::string& n : Codec::names()) s += n + ", ";
  return s + "none (= fp32)";
}

void check_codec_name(const std::string& name, const std::string& what) {
  if (name.empty() || name == "none" || name == "fp32") return;
  const auto& names = Codec::names();
  MXQAT_CHECK(std::find(names.begin(), names.end(), name) != names.end(), "unknown codec \"",
              name, "\" in ", what, "; known: ", known_codec_list(),
              " (add rows in quant/codec/block_formats.cpp)");
}

Schedule::Schedule(std::vector<Phase> phases, const std::string& owner)
    : phases_(std::move(phases)), owner_(owner) {
  for (size_t i = 0; i < phases_.size(); ++i) {
    const Phase& p = phases_[i];
    std::ostringstream where;
    where << owner_ << " phase " << i << " (until " << p.until << ")";
    MXQAT_CHECK(p.absolute == phases_[0].absolute, where.str(), " counts ",
                p.absolute ? "steps" : "fractions", " but phase 0 does not; use one unit for all");
    MXQAT_CHECK(!p.weight.empty() || !p.input.empty(), where.str(),
                " names no codec; give `format` (or `weight` / `input`)");
    check_codec_name(p.weight, where.str() + " weight");
    check_codec_name(p.input, where.str() + " input");
    MXQAT_CHECK(std::isfinite(p.until) && p.until > 0, where.str(), ": `until` must be > 0");
    if (p.absolute)
      MXQAT_CHECK(p.until == std::floor(p.until), where.str(), ": an absolute `until` is a step "
                  "count and must be a whole number");
    else
      MXQAT_CHECK(p.until <= 1.0, where.str(), ": `until` is a fraction of the QAT steps and must "
                  "be in (0, 1]; for a step count mark the schedule absolute");
    if (i > 0)
      MXQAT_CHECK(p.until > phases_[i - 1].until, where.str(), " does not end after phase ",
                  i - 1, " (until ", phases_[i - 1].until, "); phases overlap: `until` must "
                  "increase strictly");
  }
  if (!phases_.empty() && !absolute())
    MXQAT_CHECK(phases_.back().until == 1.0, owner_, ": the last phase ends at ",
                phases_.back().until, ", before the end of QAT; end it at `until: 1.0`");
}

void Schedule::check_total(int64_t total_steps) const {
  MXQAT_CHECK(total_steps > 0, owner_, ": the QAT run has ", total_steps,
              " steps; it needs at least one");
  if (!absolute()) return;
  MXQAT_CHECK(static_cast<int64_t>(phases_.back().until) == total_steps, owner_,
              ": the last phase ends at step ", static_cast<int64_t>(phases_.back().until),
              " but QAT runs ", total_steps, " steps; end it at `until: ", total_steps, "`");
}

int64_t Schedule::end_step(size_t i, int64_t total_steps) const {
  MXQAT_CHECK(i < phases_.size(), owner_, ": no phase ", i, " (", phases_.size(), " phases)");
  const double u = phases_[i].until;
  return absolute() ? static_cast<int64_t>(u)
                    : static_cast<int64_t>(std::llround(u * static_cast<double>(total_steps)));
}

int Schedule::active(int64_t step, int64_t total_steps) const {
  MXQAT_CHECK(!phases_.empty(), owner_, ": active() on an empty schedule");
  MXQAT_CHECK(step >= 0, owner_, ": step ", step, " is negative");
  check_total(total_steps);
  for (size_t i = 0; i + 1 < phases_.size(); ++i)
    if (step < end_step(i, total_steps)) return static_cast<int>(i);
  return static_cast<int>(phases_.size()) - 1;
}

std::vector<PhaseChange> Schedule::phase_changes(int64_t total_steps) const {
  check_total(total_steps);
  std::vector<PhaseChange> out;
  int64_t start = 0;
  for (size_t i = 0; i < phases_.size(); ++i) {
    const int64_t end = i + 1 == phases_.size() ? total_steps : end_step(i, total_steps);
    if (end > start) out.push_back({start, static_cast<int>(i)});
    start = std::max(start, end);
  }
  return out;
}

std::string Schedule::describe(const Phase& p) {
  auto name = [](const std::string& c) { return c.empty() ? std::string("(layer)") : c; };
  if (p.weight == p.input) return name(p.weight);
  return "w=" + name(p.weight) + " a=" + name(p.input);
}

std::string Schedule::describe() const {
  if (phases_.empty()) return "-";
  std::ostringstream os;
  for (size_t i = 0; i < phases_.size(); ++i)
    os << (i ? ", " : "") << describe(phases_[i]) << " until " << phases_[i].until
       << (phases_[i].absolute ? " steps" : "");
  return os.str();
}

}  // namespace mxqat::quant
