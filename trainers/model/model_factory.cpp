// Recipe -> model.
#include "trainers/model/model_factory.h"

#include <cmath>
#include <map>

#include "layers/gpt.h"
#include "layers/models.h"
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
  return c;
}

std::shared_ptr<layers::Module> build_model(const Recipe& r, int64_t in_features, int64_t classes) {
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

void load_parameters(layers::Module& model, const Checkpoint& c, const std::string& path) {
  std::vector<std::pair<std::string, autograd::Shape>> expected;
  for (const auto& [name, v] : model.named_parameters()) expected.emplace_back(name, v.shape());
  check_shapes(c, expected, path);
  std::map<std::string, const autograd::Tensor*> by_name;
  for (const auto& [name, t] : c.params) by_name[name] = &t;
  for (auto [name, v] : model.named_parameters()) v.value() = *by_name.at(name);
}


}  // namespace mxqat::trainers
