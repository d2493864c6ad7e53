// The comparison grid: recipes derived by --set overrides of the recipe's own text, so each
// variant's recipe.yaml in its run directory is complete and re-runnable.
#include "trainers/recipe/variants.h"

#include <algorithm>

#include "autograd/error.h"
#include "quant/codec/codec.h"
#include "quant/codec/gemm/mx_gemm.h"

namespace mxqat::trainers {

namespace {
int bits_of(const std::string& codec) { return quant::Codec::make(codec).element_bits(); }

bool recipe_is_progressive(const Recipe& r) { return r.quant.schedule.size() > 1; }

std::string phases_yaml(const std::vector<PhaseCfg>& phases) {
  std::string s = "[";
  for (size_t i = 0; i < phases.size(); ++i)
    s += (i ? ", " : "") + std::string("{until: ") + std::to_string(phases[i].until) +
         ", format: " + phases[i].format + "}";
  return s + "]";
}

// The progressive schedule ending at `format`, or empty when no wider phase exists.
std::vector<PhaseCfg> progressive_phases(const Recipe& r, const std::string& format) {
  std::vector<PhaseCfg> base = r.quant.schedule;
  if (base.empty()) base = {{0.3, "mxfp8_e4m3", "", ""}, {0.6, "mxfp6_e2m3", "", ""}};
  std::vector<PhaseCfg> out;
  const int bits = bits_of(format);
  for (const auto& p : base) {
    const std::string f = p.format.empty() ? p.weight : p.format;
    if (f.empty() || f == "none" || p.until >= 1.0 || bits_of(f) <= bits) break;
    out.push_back({p.until, f, "", ""});
  }
  if (!out.empty()) out.push_back({1.0, format, "", ""});
  return out;
}
}  // namespace

std::vector<std::string> compare_formats(const Recipe& r) {
  std::vector<std::string> f = r.compare.formats;
  if (f.empty()) f.push_back(r.quant.weight);
  for (const auto& name : f) {
    MXQAT_CHECK(name != "none" && !name.empty(), r.source, ": compare.formats needs codecs to "
                "compare; set quant.weight (e.g. mxfp4) or compare.formats: [mxfp4, mxfp8_e4m3]");
    quant::Codec::make(name);  // unknown: the error lists the codecs
  }
  return f;
}

Recipe recipe_for_format(const Recipe& r, const std::string& format, bool progressive) {
  MXQAT_CHECK(r.quant.weight != "none", r.source, ": compare.formats replaces the default weight "
              "codec, but quant.weight is none; set quant.weight to the recipe's target codec");
  std::vector<std::string> sets = {"quant.weight=" + format};
  if (r.quant.input != "none") sets.push_back("quant.input=" + format);
  sets.push_back("quant.schedule=" + (progressive ? phases_yaml(progressive_phases(r, format)) : "[]"));
  // The mx_native product serves mxfp4, mxfp6_e2m3 and mxfp6_e3m2 only: a variant in another
  // format runs (and records) fp32_chain (docs/formats.md §14.2).
  if (r.quant.product == "mx_native" && !quant::mx_native_codec(format))
    sets.push_back("quant.product=fp32_chain");
  return parse_recipe(r.text, r.source, sets);
}

std::vector<QatVariant> qat_variants(const Recipe& r) {
  std::vector<QatVariant> out;
  const bool own_progressive = recipe_is_progressive(r);
  for (const auto& f : compare_formats(r)) {
    for (bool prog : {false, true}) {
      if (prog ? !r.compare.qat_progressive : !r.compare.qat_direct) continue;
      if (prog && progressive_phases(r, f).empty()) continue;  // nothing wider (8-bit formats)
      QatVariant v;
      v.format = f;
      v.progressive = prog;
      v.id = f + (prog ? "_progressive" : "_direct");
      v.main = f == r.quant.weight && prog == own_progressive;
      v.recipe = v.main ? r : recipe_for_format(r, f, prog);
      out.push_back(std::move(v));
    }
    // (learned scales take every codec but asymmetric INT: quant/fake/lsq.h)
    if (r.compare.qat_lsq && r.quant.learned_scale != "lsq" &&
        quant::Codec::make(f).block_format().scheme != quant::BlockScheme::kIntAsym) {
      QatVariant v;
      v.format = f;
      v.lsq = true;
      v.id = f + "_lsq";
      v.recipe = parse_recipe(recipe_for_format(r, f, false).text, r.source, {"quant.learned_scale=lsq"});
      out.push_back(std::move(v));
    }
  }
  if (std::none_of(out.begin(), out.end(), [](const QatVariant& v) { return v.main; })) {
    QatVariant v;  // the recipe's own QAT always runs: it is what gets exported
    v.format = r.quant.weight;
    v.progressive = own_progressive;
    v.id = v.format + (own_progressive ? "_progressive" : "_direct");
    v.main = true;
    v.recipe = r;
    out.insert(out.begin(), std::move(v));
  }
  return out;
}

}  // namespace mxqat::trainers
