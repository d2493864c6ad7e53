// resolve_policy, glob matching and the layer -> GemmQuantSpec mapping (policy.h). The table and
// the text form are in policy_text.cpp.
#include "quant/policy/policy.h"

#include <sstream>

#include "autograd/error.h"
#include "quant/codec/transform/stochastic.h"
#include "quant/fake/lsq.h"

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

// Under mx_native, a layer's target precision (its last phase, or its static codecs) is either
// full precision or two mx_native codecs (docs/formats.md §14.2).
void check_mx_native(const ResolvedPolicy& p, const LayerPolicy& lp) {
  const int last = lp.schedule.empty() ? -1 : static_cast<int>(lp.schedule.size()) - 1;
  const auto [w, a] = p.phase_codecs(lp, last);
  if (w == "none" && a == "none") return;
  MXQAT_CHECK(mx_native_codec(w) && mx_native_codec(a), "quant.product mx_native: layer '",
              lp.layer, "' is quantized with weight ", w, " and input ", a, "; the mx_native "
              "product needs both in mxfp4, mxfp6_e2m3 or mxfp6_e3m2 (or both none). Change the "
              "layer's codecs, or use quant.product: fp32_chain");
}

// grad_rounding / backward_operands act on the layers with a grad_output codec: there must be
// some, and stochastic rounding needs MX float codecs there.
void check_backward(const ResolvedPolicy& p) {
  if (p.grad_rounding == Rounding::kNearest && !p.requantize_backward) return;
  const char* what = p.grad_rounding == Rounding::kStochastic ? "grad_rounding: stochastic"
                                                              : "backward_operands: requantize";
  bool any = false;
  for (const LayerPolicy& lp : p.layers) {
    if (lp.grad_output == "none") continue;
    any = true;
    if (p.grad_rounding != Rounding::kStochastic) continue;
    MXQAT_CHECK(supports_stochastic(Codec::make(lp.grad_output, p.codec_options())), "quant ", what,
                ": layer ", lp.layer, " has grad_output ", lp.grad_output, ", which stochastic "
                "rounding does not serve; use an MX float codec (mxfp4, mxfp6_e2m3, mxfp6_e3m2, "
                "mxfp8_e4m3, mxfp8_e5m2) or grad_rounding: nearest");
  }
  MXQAT_CHECK(any, "quant ", what, " has no effect: no layer has a grad_output codec; set "
              "quant.grad_output (e.g. mxfp8_e5m2 or mxfp4) or drop it");
}

// learned_scale: lsq needs every weight codec a layer passes through to take learned scales, and
// some layer to quantize its weight at all.
void check_learned_scale(const ResolvedPolicy& p) {
  bool any = false;
  const CodecOptions opt = p.codec_options();
  for (const LayerPolicy& lp : p.layers) {
    std::vector<std::string> codecs{lp.weight};
    for (size_t i = 0; i < lp.schedule.phases().size(); ++i) codecs.push_back(p.phase_codecs(lp, int(i)).first);
    for (const std::string& w : codecs) {
      const std::optional<Codec> c = make_codec_or_none(w, opt);
      if (!c) continue;
      any = true;
      MXQAT_CHECK(supports_learned_scale(*c), "quant.learned_scale lsq: layer ", lp.layer, " quantizes its "
                  "weight with ", w, ", whose zero point follows its scale; learned scales need an MX, "
                  "NVFP4 or symmetric INT codec (e.g. int4_sym), or set learned_scale: none");
    }
  }
  MXQAT_CHECK(any, "quant.learned_scale lsq has no effect: no layer has a weight codec; set quant.weight "
              "(e.g. mxfp4) or learned_scale: none");
}

}  // namespace

ResolvedPolicy resolve_policy(const PolicyConfig& cfg, const std::vector<std::string>& layers) {
  check_rules(cfg);
  std::vector<Schedule> schedules;  // validated once per rule, then copied to its layers
  for (size_t i = 0; i < cfg.rules.size(); ++i)
    schedules.emplace_back(cfg.rules[i].schedule, rule_label(i, cfg.rules[i]) + " schedule");
  const Schedule default_schedule(cfg.schedule, "the default quant schedule");
  ResolvedPolicy out;
  out.scale_rule = cfg.scale_rule, out.ste = cfg.ste, out.group_size = cfg.group_size;
  out.grad_rounding = cfg.grad_rounding;
  out.requantize_backward = cfg.requantize_backward;
  out.product = cfg.product;
  out.learned_scale = cfg.learned_scale;
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
    if (cfg.product == Product::kMxNative) check_mx_native(out, lp);
    out.layers.push_back(std::move(lp));
  }
  out.rotation = cfg.rotation;
  for (size_t i = 0; i < cfg.rules.size(); ++i) {
    MXQAT_CHECK(matched[i], rule_label(i, cfg.rules[i]), " matches no GEMM layer; fix the pattern"
                " or drop the rule. The GEMM layers are: ", layer_list(layers));
    MXQAT_CHECK(used[i], rule_label(i, cfg.rules[i]), " never applies: earlier rules take every "
                "layer it matches (first match wins); move it up or drop it");
  }
  check_backward(out);
  if (out.learned_scale) check_learned_scale(out);
  if (cfg.product == Product::kMxNative && cfg.requantize_backward && !cfg.rotation)
    for (const LayerPolicy& lp : out.layers)
      if (mx_native_grad_codec(lp.grad_output)) out.backward_product = Product::kMxNative;
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

Product ResolvedPolicy::product_for(const std::string& weight, const std::string& input) const {
  return product == Product::kMxNative && mx_native_codec(weight) && mx_native_codec(input)
             ? Product::kMxNative
             : Product::kFp32Chain;
}

Product ResolvedPolicy::backward_product_for(const std::string& grad_output) const {
  return backward_product == Product::kMxNative && requantize_backward &&
                 mx_native_grad_codec(grad_output) && !rotation
             ? Product::kMxNative
             : Product::kFp32Chain;
}

GemmQuantSpec ResolvedPolicy::spec(const LayerPolicy& lp) const {
  const auto [w, a] = phase_codecs(lp, -1);
  return spec_with(lp, w, a);
}

GemmQuantSpec ResolvedPolicy::spec_with(const LayerPolicy& lp, const std::string& weight,
                                        const std::string& input) const {
  const CodecOptions opt = codec_options();
  GemmQuantSpec s{make_codec_or_none(weight, opt), make_codec_or_none(input, opt),
                  make_codec_or_none(lp.grad_output, opt), ste};
  s.grad_rounding = grad_rounding;
  s.requantize_backward = requantize_backward;
  if (rotation && lp.rotated) s.rotation = rotation, s.weight_rotated = weights_rotated;
  s.product = product_for(weight, input);
  s.backward_product = backward_product_for(lp.grad_output);
  s.learned_scale = learned_scale;
  return s;
}

GemmQuantSpec ResolvedPolicy::spec_at(const LayerPolicy& lp, int64_t step,
                                      int64_t total_steps) const {
  if (lp.schedule.empty()) return spec(lp);
  const auto [w, a] = phase_codecs(lp, lp.schedule.active(step, total_steps));
  return spec_with(lp, w, a);
}

void ResolvedPolicy::check_total(int64_t total_steps) const {
  for (const LayerPolicy& lp : layers)
    if (!lp.schedule.empty()) lp.schedule.check_total(total_steps);
}

}  // namespace mxqat::quant
