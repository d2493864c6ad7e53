// The mlp and cnn models: flat recipes of basic layers.
#include "layers/models.h"

namespace mxqat::layers {

namespace {
void add_act_drop(Sequential& s, const std::string& suffix, const std::string& act, float p,
                  uint64_t seed) {
  s.add("act" + suffix, std::make_shared<Activation>(act));
  if (p > 0.f) s.add("drop" + suffix, std::make_shared<Dropout>(p, seed));
}
}  // namespace

Mlp::Mlp(const MlpConfig& cfg, uint64_t seed) {
  std::mt19937_64 rng(seed);
  net_ = add_module("", std::make_shared<Sequential>());
  int64_t in = cfg.in;
  for (size_t i = 0; i < cfg.hidden.size(); ++i) {
    const std::string k = std::to_string(i + 1);
    net_->add("fc" + k, std::make_shared<Linear>(in, cfg.hidden[i], true, rng));
    add_act_drop(*net_, k, cfg.activation, cfg.dropout, seed * 1000003ull + i);
    in = cfg.hidden[i];
  }
  net_->add("head", std::make_shared<Linear>(in, cfg.out, true, rng));
}

Cnn::Cnn(const CnnConfig& cfg, uint64_t seed) : cfg_(cfg) {
  MXQAT_CHECK(cfg.kernel % 2 == 1, "cnn: kernel must be odd for same padding, got ", cfg.kernel);
  MXQAT_CHECK(!cfg.channels.empty(), "cnn: channels must list at least one conv layer");
  std::mt19937_64 rng(seed);
  features_ = add_module("", std::make_shared<Sequential>());
  int64_t c = cfg.in_ch, h = cfg.height, w = cfg.width;
  for (size_t i = 0; i < cfg.channels.size(); ++i) {
    const std::string k = std::to_string(i + 1);
    features_->add("conv" + k, std::make_shared<Conv2d>(c, cfg.channels[i], cfg.kernel, 1,
                                                        cfg.kernel / 2, true, rng));
    features_->add("act_conv" + k, std::make_shared<Activation>(cfg.activation));
    features_->add("pool" + k, std::make_shared<MaxPool2d>(2, 2));
    c = cfg.channels[i];
    h /= 2;
    w /= 2;
    MXQAT_CHECK(h > 0 && w > 0, "cnn: ", cfg.channels.size(), " pooling stages shrink a ",
                cfg.height, "x", cfg.width, " image to nothing; use fewer conv layers");
  }
  classifier_ = add_module("", std::make_shared<Sequential>());
  classifier_->add("flatten", std::make_shared<Flatten>());
  classifier_->add("fc1", std::make_shared<Linear>(c * h * w, cfg.fc, true, rng));
  add_act_drop(*classifier_, "1", cfg.activation, cfg.dropout, seed * 1000003ull + 7);
  classifier_->add("head", std::make_shared<Linear>(cfg.fc, cfg.out, true, rng));
}

Var Cnn::forward(const Var& x) {
  Var img = x.value().ndim() == 4 ? x : reshape(x, {x.value().dim(0), cfg_.in_ch, cfg_.height, cfg_.width});
  return classifier_->forward(features_->forward(img));
}

void set_dropout_calls(Module& m, uint64_t calls) {
  for (auto& [name, mod] : m.named_modules())
    if (auto* d = dynamic_cast<Dropout*>(mod)) d->set_calls(calls);
}

void set_dropout_first_sample(Module& m, int64_t first_sample) {
  for (auto& [name, mod] : m.named_modules())
    if (auto* d = dynamic_cast<Dropout*>(mod)) d->set_first_sample(first_sample);
}

}  // namespace mxqat::layers
