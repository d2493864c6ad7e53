// resolve_policy, glob matching and the layer -> GemmQuantSpec mapping (policy.h). The table and
// the text form are in policy_text.cpp.
#include "quant/policy/policy.h"

#include <sstream>

#include "autograd/error.h"

namespace mxqat::quant {

bool glob_match(const std::string& pattern, const std::string& name) {
  // Iterative matcher with one backtrack point: the last `*` seen and where it started matching.
  size_t p = 0, n = 0, star = std::string::npos, star_n = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p, ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++, star_n = n;
    } else if (star != std::string::npos) {
      p = star + 1, n = ++star_n;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

namespace {

std::string rule_label(size_t i, const QuantRule& r) {
  std::ostringstream os;
  os << "quant rule " << i << " (match \"" << r.match << "\")";
  return os.str();
}

std::string layer_list(const std::vector<std::string>& layers) {
  constexpr size_t kShown = 40;
  std::string s;
  for (size_t i = 0; i < layers.size() && i < kShown; ++i) s += (i ? ", " : "") + layers[i];
  if (layers.size() > kShown) s += ", ... (" + std::to_string(layers.size()) + " in all)";
  return s.empty() ? "(none)" : s;
}

std::string canonical(const std::string& name, const std::string& fallback) {
  const std::string& n = name.empty() ? fallback : name;
  return n == "fp32" ? "none" : n;
}

bool rule_matches(const QuantRule& r, const std::string& layer) {
  return glob_match(r.match, layer) || glob_match(r.match, layer + ".weight");
}

void check_rules(const PolicyConfig& cfg) {
  check_codec_name(cfg.weight, "the default weight codec");
  check_codec_name(cfg.input, "the default input codec");
  check_codec_name(cfg.grad_output, "the default grad_output codec");
  MXQAT_CHECK(cfg.group_size >= 0, "quant group_size ", cfg.group_size,
              " is negative; use 0 for per-channel or a positive group size such as 32");
  for (size_t i = 0; i < cfg.rules.size(); ++i) {
    const QuantRule& r = cfg.rules[i];
    const std::string label = rule_label(i, r);
    MXQAT_CHECK(!r.match.empty(), label, " has an empty pattern; use \"*\" to match every layer");
    check_codec_name(r.weight, label + " weight");
    check_codec_name(r.input, label + " input");
    check_codec_name(r.grad_output, label + " grad_output");
  }
}

}  // namespace

ResolvedPolicy resolve_policy(const PolicyConfig& cfg, const std::vector<std::string>& layers) {
  check_rules(cfg);
  std::vector<Schedule> schedules;  // validated once per rule, then copied to its layers
  for (size_t i = 0; i < cfg.rules.size(); ++i)
    schedules.emplace_back(cfg.rules[i].schedule, rule_label(i, cfg.rules[i]) + " schedule");
  const Schedule default_schedule(cfg.schedule, "the default quant schedule");
  ResolvedPolicy out{cfg.scale_rule, cfg.ste, cfg.group_size, std::nullopt, false, {}};
  std::vector<bool> used(cfg.rules.size(), false), matched(cfg.rules.size(), false);
  for (const std::string& layer : layers) {
    LayerPolicy lp{layer, canonical(cfg.weight, "none"), canonical(cfg.input, "none"),
                   canonical(cfg.grad_output, "none"), default_schedule, -1, ""};
    bool taken = false;
    for (size_t i = 0; i < cfg.rules.size(); ++i) {
      const QuantRule& r = cfg.rules[i];
      if (!rule_matches(r, layer)) continue;
      matched[i] = true;
      if (taken) continue;
      taken = true;
      lp = {layer, canonical(r.weight, lp.weight), canonical(r.input, lp.input),
            canonical(r.grad_output, lp.grad_output), schedules[i], static_cast<int>(i), r.match};
      used[i] = true;
    }
    lp.rotated = cfg.rotation && (lp.weight != "none" || lp.input != "none");
    out.layers.push_back(std::move(lp));
  }
  out.rotation = cfg.rotation;
  for (size_t i = 0; i < cfg.rules.size(); ++i) {
    MXQAT_CHECK(matched[i], rule_label(i, cfg.rules[i]), " matches no GEMM layer; fix the pattern"
                " or drop the rule. The GEMM layers are: ", layer_list(layers));
    MXQAT_CHECK(used[i], rule_label(i, cfg.rules[i]), " never applies: earlier rules take every "
                "layer it matches (first match wins); move it up or drop it");
  }
  return out;
}

const LayerPolicy* ResolvedPolicy::find(const std::string& layer) const {
  for (const LayerPolicy& lp : layers)
    if (lp.layer == layer) return &lp;
  return nullptr;
}

const LayerPolicy& ResolvedPolicy::at(const std::string& layer) const {
  const LayerPolicy* lp = find(layer);
  if (!lp) {
    std::vector<std::string> names;
    for (const LayerPolicy& l : layers) names.push_back(l.layer);
    MXQAT_FAIL("quant policy has no layer \"", layer, "\"; it covers: ", layer_list(names),
               " (was the policy resolved for this model?)");
  }
  return *lp;
}

std::pair<std::string, std::string> ResolvedPolicy::phase_codecs(const LayerPolicy& lp,
                                                                 int phase) const {
  if (phase < 0 || lp.schedule.empty()) return {lp.weight, lp.input};
  const Phase& p = lp.schedule.phases().at(static_cast<size_t>(phase));
  return {canonical(p.weight, lp.weight), canonical(p.input, lp.input)};
}

GemmQuantSpec ResolvedPolicy::spec(const LayerPolicy& lp) const {
  const CodecOptions opt = codec_options();
  GemmQuantSpec s{make_codec_or_none(lp.weight, opt), make_codec_or_none(lp.input, opt),
                  make_codec_or_none(lp.grad_output, opt), ste, std::nullopt, false};
  if (rotation && lp.rotated) s.rotation = rotation, s.weight_rotated = weights_rotated;
  return s;
}

GemmQuantSpec ResolvedPolicy::spec_at(const LayerPolicy& lp, int64_t step,
                                      int64_t total_steps) const {
  if (lp.schedule.empty()) return spec(lp);
  const auto [w, a] = phase_codecs(lp, lp.schedule.active(step, total_steps));
  const CodecOptions opt = codec_options();
  GemmQuantSpec s{make_codec_or_none(w, opt), make_codec_or_none(a, opt),
                  make_codec_or_none(lp.grad_output, opt), ste, std::nullopt, false};
  if (rotation && lp.rotated) s.rotation = rotation, s.weight_rotated = weights_rotated;
  return s;
}

void ResolvedPolicy::check_total(int64_t total_steps) const {
  for (const LayerPolicy& lp : layers)
    if (!lp.schedule.empty()) lp.schedule.check_total(total_steps);
}

}  // namespace mxqat::quant
