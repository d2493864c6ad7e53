// The quant policy: the recipe's `quant` rules (ordered globs over GEMM layer names, first match
// wins) resolved once, at model build, into one entry per GEMM layer: codecs for weight, input and
// output gradient, and an optional progressive schedule. Printed as a table, stored as text in
// checkpoints and exports. Plain data in, plain data out: never sees a layer (quant/ is below
// layers/); trainers pass the names of their GemmLayers and attach quantizers (plan.h).
#pragma once
#include <cstdint>
#include <string>
#include <optional>
#include <vector>

#include "quant/codec/codec.h"
#include "quant/fake/qgemm.h"
#include "quant/schedule/schedule.h"

namespace mxqat::quant {

// One recipe rule. Codec names: "" = the config's default, "none" / "fp32" = full precision.
struct QuantRule {
  std::string match;  // glob on layer names ("fc1", "blocks.*.mlp.*", "*"); also tried + ".weight"
  std::string weight, input, grad_output;
  std::vector<Phase> schedule;  // empty: the rule's codecs are static (no progressive schedule)
};

struct PolicyConfig {
  std::string weight = "none", input = "none", grad_output = "none";  // defaults
  ScaleRule scale_rule = ScaleRule::kFloor;  // MX codecs
  Ste ste = Ste::kClipped;
  int64_t group_size = 0;       // INT codecs: 0 = per channel
  Product product = Product::kFp32Chain;  // forward product of quantized GEMMs (formats.md §14)
  std::vector<Phase> schedule;  // for layers that no rule matches (empty = static defaults)
  std::vector<QuantRule> rules;
  std::optional<Hadamard> rotation;  // every layer with a weight or input codec (hadamard.h)
  // The backward products of layers with a grad_output codec (qgemm.h): rounding, and whether W
  // and X are quantized again along the backward's reduction axes.
  Rounding grad_rounding = Rounding::kNearest;
  bool requantize_backward = false;
  // Learned weight scales (quant/fake/lsq.h) for every layer with a weight codec.
  bool learned_scale = false;
};

// One GEMM layer's resolved policy. Codec names are never "" here; full precision is "none".
struct LayerPolicy {
  std::string layer;
  std::string weight, input, grad_output;  // static codecs; phases with "" inherit them
  Schedule schedule;                       // empty = static
  int rule = -1;                           // index of the matching rule, -1 = defaults
  std::string match;                       // that rule's pattern, "" for defaults
  // Under the policy's rotation: its static weight or input codec is not none (derived from the
  // codecs when resolved or read back, so it survives an inference policy's weight = none).
  bool rotated = false;
};

class ResolvedPolicy {
 public:
  ScaleRule scale_rule = ScaleRule::kFloor;
  Ste ste = Ste::kClipped;
  int64_t group_size = 0;
  std::optional<Hadamard> rotation;  // stored as a "rotation hadamard SEED" line when set
  bool weights_rotated = false;      // inference: the weights arrive rotated (not stored in text)
  std::vector<LayerPolicy> layers;  // in the order of the names given to resolve_policy
  Rounding grad_rounding = Rounding::kNearest;  // see PolicyConfig
  bool requantize_backward = false;
  // kMxNative: a layer's forward product is mx_native whenever its active weight and input codecs
  // are both mx_native_codec ones (else fp32_chain). Stored in the text form only when mx_native,
  // so policies without it read (and write) as before.
  Product product = Product::kFp32Chain;
  // kMxNative: the backward products dX and dW of a layer whose grad_output codec is an
  // mx_native_codec one are mx_native too (docs/formats.md §14.3); other layers stay fp32_chain.
  // Set by resolve_policy under product mx_native with backward_operands requantize when some
  // layer has such a grad_output codec. Stored as a text line only then: texts written before
  // §14.3 (product mx_native without the line) keep their fp32_chain backward.
  Product backward_product = Product::kFp32Chain;
  // Learned weight scales: stored as "learned_scale lsq" only when on (see PolicyConfig).
  bool learned_scale = false;

  const LayerPolicy* find(const std::string& layer) const;  // nullptr if absent
  const LayerPolicy& at(const std::string& layer) const;    // throws listing the layers
  CodecOptions codec_options() const { return {scale_rule, group_size, std::nullopt}; }

  // The forward product of a GEMM with these weight and input codecs under this policy.
  Product product_for(const std::string& weight, const std::string& input) const;
  // The backward product of a layer with this grad_output codec under this policy.
  Product backward_product_for(const std::string& grad_output) const;
  // The GemmQuantSpec of a layer with its static codecs (no schedule) ...
  GemmQuantSpec spec(const LayerPolicy& lp) const;
  // ... or with those of the phase active at `step` of `total_steps` (static if no schedule).
  GemmQuantSpec spec_at(const LayerPolicy& lp, int64_t step, int64_t total_steps) const;
  // Codec names in effect for a layer in `phase` (-1 or no schedule: the static ones).
  std::pair<std::string, std::string> phase_codecs(const LayerPolicy& lp, int phase) const;
  // ... or with the given weight and input codec names.
  GemmQuantSpec spec_with(const LayerPolicy& lp, const std::string& weight, const std::string& input) const;
  void check_total(int64_t total_steps) const;  // every absolute schedule fits the run

  // Aligned table: layer, weight, input (activation), grad_output, schedule, rule.
  std::string table() const;
  // Line-based text that from_text rebuilds exactly (for checkpoints and exports).
  std::string to_text() const;
  static ResolvedPolicy from_text(const std::string& text);
  bool operator==(const ResolvedPolicy& o) const { return to_text() == o.to_text(); }
};

// First matching rule wins; layers no rule matches get the defaults (and the default schedule).
// Errors: an unknown codec (naming the rule index and pattern, listing the known codecs), a rule
// that matches no layer (listing the layers), an invalid schedule (naming the rule and phase), and
// under product mx_native a layer whose final phase quantizes its weight or input other than with
// two mx_native codecs (naming the layer and its codecs).
ResolvedPolicy resolve_policy(const PolicyConfig& cfg, const std::vector<std::string>& layers);

// `*` matches any run of characters (dots included), `?` exactly one character.
bool glob_match(const std::string& pattern, const std::string& name);

}  // namespace mxqat::quant
