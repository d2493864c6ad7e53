// Module bookkeeping and parameter initialisation.
#include "layers/module.h"

#include <cmath>

namespace mxqat::layers {

Var Module::add_param(const std::string& name, Tensor init) {
  for (const auto& [n, v] : params_)
    MXQAT_CHECK(n != name, kind(), ": parameter '", name, "' registered twice");
  Var v(std::move(init), /*requires_grad=*/true);
  params_.emplace_back(name, v);
  return v;
}

void Module::collect(const std::string& prefix, NamedParams& out) const {
  for (const auto& [n, v] : params_) out.emplace_back(prefix + n, v);
  // A child registered under "" is transparent: its parameters keep the parent's prefix.
  for (const auto& [n, m] : children_) m->collect(n.empty() ? prefix : prefix + n + ".", out);
}

NamedParams Module::named_parameters() const {
  NamedParams out;
  collect("", out);
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out{{"", this}};
  for (const auto& [n, m] : children_)
    for (auto& [sub, ptr] : m->named_modules()) {
      if (n.empty() && sub.empty()) continue;  // a transparent container is not listed
      out.emplace_back(sub.empty() ? n : (n.empty() ? sub : n + "." + sub), ptr);
    }
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const auto& [name, v] : named_parameters()) n += v.value().size();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, m] : children_) m->train(on);
}

Var GemmLayer::gemm(const Var& x, const Var& w2d, const Var& bias) const {
  if (!quantizer_) return autograd::linear(x, w2d, bias);
  return weight_scale_.defined() ? quantizer_->linear_scaled(x, w2d, bias, weight_scale_)
                                 : quantizer_->linear(x, w2d, bias);
}

void GemmLayer::enable_learned_scale() {
  if (!weight_scale_.defined()) weight_scale_ = add_param("weight_scale_offset", Tensor::zeros({weight().value().dim(0)}));
}

Tensor init_tensor(Shape shape, Init init, int64_t fan_in, int64_t fan_out, std::mt19937_64& rng) {
  Tensor t(std::move(shape));
  // Draw with our own transforms of raw 64-bit words: std:: distributions differ between
  // standard libraries, and a checkpoint must be reproducible anywhere.
  auto uniform01 = [&rng] { return static_cast<double>(rng() >> 11) * 0x1.0p-53; };
  auto normal = [&] {  // Box-Muller
    double u1 = uniform01(), u2 = uniform01();
    return std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(2.0 * M_PI * u2);
  };
  auto fill_uniform = [&](double bound) {
    for (int64_t i = 0; i < t.size(); ++i) t[i] = static_cast<float>((2 * uniform01() - 1) * bound);
  };
  auto fill_normal = [&](double std) {
    for (int64_t i = 0; i < t.size(); ++i) t[i] = static_cast<float>(normal() * std);
  };
  switch (init) {
    case Init::kFanInUniform: fill_uniform(1.0 / std::sqrt(std::max<int64_t>(fan_in, 1))); break;
    case Init::kStdNormal: fill_normal(1.0); break;
    case Init::kKaimingUniform: fill_uniform(std::sqrt(6.0 / std::max<int64_t>(fan_in, 1))); break;
    case Init::kKaimingNormal: fill_normal(std::sqrt(2.0 / std::max<int64_t>(fan_in, 1))); break;
    case Init::kXavierUniform: fill_uniform(std::sqrt(6.0 / std::max<int64_t>(fan_in + fan_out, 1))); break;
    case Init::kXavierNormal: fill_normal(std::sqrt(2.0 / std::max<int64_t>(fan_in + fan_out, 1))); break;
    case Init::kZeros: t.fill(0.f); break;
    case Init::kOnes: t.fill(1.f); break;
    case Init::kNormal002: fill_normal(0.02); break;
  }
  return t;
}

}  // namespace mxqat::layers
