// Recipe -> model.
#include "trainers/model/model_factory.h"

#include <cmath>
#include <map>

#include "layers/gpt.h"
#include "layers/models.h"
#include "trainers/model/policy_model.h"
#include "trainers/recipe/recipe.h"

namespace mxqat::trainers {

layers::GptConfig gpt_config(const ModelCfg& m) {
  layers::GptConfig c;
  c.vocab = m.vocab;
  c.layers = m.layers;
  c.d_model = m.d_model;
  c.heads = m.heads;
  c.context = m.context;
  c.mlp_hidden = m.mlp_hidden;
  c.kv_heads = m.kv_heads;
  c.rope_theta = static_cast<float>(m.rope_theta);
  c.norm_eps = static_cast<float>(m.norm_eps);
  return c;
}

namespace {
constexpr double kMaxParameters = double(int64_t{1} << 31);  // 8 GiB of float32 weights

// An upper bound of the model's parameter count, in double (no overflow), from the recipe alone.
double parameter_bound(const ModelCfg& m, int64_t in_features, int64_t classes) {
  double n = 0, prev = double(in_features);
  if (m.type == "mlp") {
    for (int64_t h : m.hidden) n += (prev + 1) * double(h), prev = double(h);
    return n + (prev + 1) * double(classes);
  }
  if (m.type == "cnn") {
    prev = 1;
    for (int64_t c : m.channels) n += (prev * double(m.kernel) * double(m.kernel) + 1) * double(c), prev = double(c);
    prev *= double(in_features);  // flattened, before any pooling: an upper bound
    n += (prev + 1) * double(m.fc), prev = double(m.fc);
    return n + (prev + 1) * double(classes);
  }
  const double d = double(m.d_model);
  return double(m.vocab) * d * 2 + double(m.context) * d +
         double(m.layers) * (4 * d * d + 2 * d * double(m.mlp_hidden) + 8 * d + double(m.mlp_hidden));
}
std::shared_ptr<layers::Module> build_layers(const Recipe& r, int64_t in_features, int64_t classes) {
  const double params = parameter_bound(r.model, in_features, classes);
  MXQAT_CHECK(params <= kMaxParameters, "model.", r.model.type == "gpt" ? "d_model/layers/vocab" :
              r.model.type == "cnn" ? "channels/fc" : "hidden", " of the recipe gives a model of up "
              "to ", params, " parameters (", params * 4 / double(1 << 30), " GiB of float32 before "
              "gradients and optimizer state); mxqat's limit is 2^31: make the model smaller");
  const uint64_t seed = static_cast<uint64_t>(r.seed) * 0x2545F4914F6CDD1Dull + 17;
  const auto& m = r.model;
  if (m.type == "mlp") {
    layers::MlpConfig c;
    c.in = in_features;
    c.hidden = m.hidden;
    c.out = classes;
    c.activation = m.activation;
    c.dropout = static_cast<float>(m.dropout);
    return std::make_shared<layers::Mlp>(c, seed);
  }
  if (m.type == "cnn") {
    layers::CnnConfig c;
    c.in_ch = 1;
    c.height = c.width = static_cast<int64_t>(std::lround(std::sqrt(double(in_features))));
    MXQAT_CHECK(c.height * c.width == in_features, "cnn needs square single-channel images; the data has ",
                in_features, " features");
    c.channels = m.channels;
    c.kernel = static_cast<int>(m.kernel);
    c.fc = m.fc;
    c.out = classes;
    c.activation = m.activation;
    c.dropout = static_cast<float>(m.dropout);
    return std::make_shared<layers::Cnn>(c, seed);
  }
  if (m.type == "gpt") return std::make_shared<layers::Gpt>(gpt_config(m), seed);
  MXQAT_FAIL("model.type '", m.type, "' is not known; known: mlp, cnn, gpt");
}

// quant.learned_scale lsq: every GEMM layer whose policy quantizes its weight (in some phase)
// gets its learned scale offsets.
void add_learned_scales(const Recipe& r, layers::Module& model) {
  const quant::ResolvedPolicy policy = resolve_model_policy(r, model);
  for (auto& [name, layer] : gemm_layers(model)) {
    const quant::LayerPolicy& lp = policy.at(name);
    bool quantized = lp.weight != "none";
    for (size_t i = 0; i < lp.schedule.phases().size(); ++i)
      quantized = quantized || policy.phase_codecs(lp, int(i)).first != "none";
    if (quantized) layer->enable_learned_scale();
  }
}
}  // namespace

std::shared_ptr<layers::Module> build_model(const Recipe& r, int64_t in_features, int64_t classes) {
  std::shared_ptr<layers::Module> model = build_layers(r, in_features, classes);
  if (r.quant.learned_scale == "lsq") add_learned_scales(r, *model);
  return model;
}

bool is_learned_scale_name(const std::string& name) {
  const std::string suffix = ".weight_scale_offset";
  return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void load_parameters(layers::Module& model, const Checkpoint& c, const std::string& path) {
  std::map<std::string, const autograd::Tensor*> by_name;
  for (const auto& [name, t] : c.params) by_name[name] = &t;
  std::vector<std::pair<std::string, autograd::Shape>> expected;
  for (const auto& [name, v] : model.named_parameters())  // learned offsets a checkpoint lacks
    if (by_name.count(name) || !is_learned_scale_name(name))  // keep theirs: 0, the rule's scales
      expected.emplace_back(name, v.shape());
  check_shapes(c, expected, path);
  for (const auto& [name, t] : c.params)
    check_finite(path, name, t, "load");  // a NaN/Inf weight is named, never evaluated or trained
  for (auto [name, v] : model.named_parameters())
    if (by_name.count(name)) v.value() = *by_name.at(name);
    else v.value().fill(0.f);
}


}  // namespace mxqat::trainers
