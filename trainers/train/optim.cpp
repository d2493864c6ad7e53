// SGD and AdamW. Updates are elementwise (OpenMP over chunks: same bits for any thread count).
#include "trainers/train/optim.h"

#include <cmath>
#include <map>
#include <vector>

#include "trainers/recipe/recipe.h"

namespace mxqat::trainers {

using autograd::Tensor;

namespace {
constexpr int64_t kParallelMin = 1 << 14;

// The parameter's learning rate: lr, or lr x scale_lr_factor for a learned scale offset (lsq).
double lr_of(const std::string& name, double lr, const OptimizerCfg& cfg) {
  static const std::string kOffset = "weight_scale_offset";
  const bool offset = name.size() >= kOffset.size() &&
                      name.compare(name.size() - kOffset.size(), kOffset.size(), kOffset) == 0;
  return offset ? lr * cfg.scale_lr_factor : lr;
}

const Tensor& slot(const NamedTensors& state, const std::string& key, const autograd::Shape& shape) {
  for (const auto& [k, t] : state)
    if (k == key) {
      MXQAT_CHECK(t.shape() == shape, "optimizer state '", key, "' has shape ",
                  autograd::shape_str(t.shape()), ", the parameter has ", autograd::shape_str(shape));
      return t;
    }
  MXQAT_FAIL("optimizer state '", key, "' is missing from the checkpoint; was it written with a "
             "different optimizer? (resume with the recipe that wrote it)");
}

// AdamW (Loshchilov & Hutter), as torch.optim.AdamW:
//   p <- p (1 - lr wd);  m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2
//   p <- p - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
class AdamW : public Optimizer {
 public:
  AdamW(const OptimizerCfg& c, layers::NamedParams p) : Optimizer(std::move(p)), cfg_(c) {
    for (const auto& [name, v] : params_)
      m_.emplace_back(Tensor::zeros_like(v.value())), v_.emplace_back(Tensor::zeros_like(v.value()));
  }
  std::string kind() const override { return "adamw"; }

  void step(double lr) override {
    ++t_;
    const float b1 = static_cast<float>(cfg_.beta1), b2 = static_cast<float>(cfg_.beta2);
    const double bc1 = 1.0 - std::pow(cfg_.beta1, double(t_));
    const float inv_bc2 = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(cfg_.beta2, double(t_))));
    const float eps = static_cast<float>(cfg_.eps);
    struct Update {
      float* w;
      const float* g;
      float *m, *v;
      int64_t n;
      float step_size, decay;
    };
    std::vector<Update> updates;
    updates.reserve(params_.size());
    int64_t total = 0;
    for (size_t i = 0; i < params_.size(); ++i) {
      autograd::Var p = params_[i].second;
      if (p.grad().empty()) continue;
      const double lr_p = lr_of(params_[i].first, lr, cfg_);
      const float decay = p.value().ndim() >= 2 ? static_cast<float>(1.0 - lr_p * cfg_.weight_decay) : 1.f;
      updates.push_back({p.value().data(), p.grad().data(), m_[i].data(), v_[i].data(),
                         p.value().size(), static_cast<float>(lr_p / bc1), decay});
      total += p.value().size();
    }
    // One parallel region for every parameter (a region each cost a fork and a join per
    // parameter, dozens per step); each parameter's elements are split among the threads.
#pragma omp parallel if (total > kParallelMin)
    for (const Update& u : updates) {
      float *w = u.w, *m = u.m, *v = u.v;
      const float* g = u.g;
      const float decay = u.decay, step_size = u.step_size;
#pragma omp for schedule(static) nowait
      for (int64_t j = 0; j < u.n; ++j) {
        m[j] = b1 * m[j] + (1.f - b1) * g[j];
        v[j] = b2 * v[j] + (1.f - b2) * g[j] * g[j];
        w[j] = w[j] * decay - step_size * m[j] / (std::sqrt(v[j]) * inv_bc2 + eps);
      }
    }
  }

  NamedTensors state() const override {
    NamedTensors s;
    for (size_t i = 0; i < params_.size(); ++i) {
      s.emplace_back(params_[i].first + "/exp_avg", m_[i]);
      s.emplace_back(params_[i].first + "/exp_avg_sq", v_[i]);
    }
    s.emplace_back("<step>", Tensor::scalar(static_cast<float>(t_)));
    return s;
  }

  void load_state(const NamedTensors& s) override {
    for (size_t i = 0; i < params_.size(); ++i) {
      const auto& shape = params_[i].second.value().shape();
      m_[i] = slot(s, params_[i].first + "/exp_avg", shape);
      v_[i] = slot(s, params_[i].first + "/exp_avg_sq", shape);
    }
    t_ = static_cast<int64_t>(slot(s, "<step>", {}).item());
  }

 private:
  OptimizerCfg cfg_;
  std::vector<Tensor> m_, v_;
  int64_t t_ = 0;
};

// SGD as torch.optim.SGD (coupled L2 decay): g <- g + wd p;  b <- mu b + g (b = g at the first
// step);  d = nesterov ? g + mu b : b;  p <- p - lr d
class Sgd : public Optimizer {
 public:
  Sgd(const OptimizerCfg& c, layers::NamedParams p) : Optimizer(std::move(p)), cfg_(c) {
    for (const auto& [name, v] : params_) buf_.emplace_back(Tensor::zeros_like(v.value()));
  }
  std::string kind() const override { return "sgd"; }

  void step(double lr_d) override {
    const float mu = static_cast<float>(cfg_.momentum);
    const bool first = t_++ == 0, nesterov = cfg_.nesterov;
    for (size_t i = 0; i < params_.size(); ++i) {
      autograd::Var p = params_[i].second;
      if (p.grad().empty()) continue;
      const float lr = static_cast<float>(lr_of(params_[i].first, lr_d, cfg_));
      const float wd = p.value().ndim() >= 2 ? static_cast<float>(cfg_.weight_decay) : 0.f;
      float* w = p.value().data();
      const float* g = p.grad().data();
      float* b = buf_[i].data();
      const int64_t n = p.value().size();
#pragma omp parallel for schedule(static) if (n > kParallelMin)
      for (int64_t j = 0; j < n; ++j) {
        const float gj = g[j] + wd * w[j];
        float d = gj;
        if (mu != 0.f) {
          b[j] = first ? gj : mu * b[j] + gj;
          d = nesterov ? gj + mu * b[j] : b[j];
        }
        w[j] -= lr * d;
      }
    }
  }

  NamedTensors state() const override {
    NamedTensors s;
    for (size_t i = 0; i < params_.size(); ++i) s.emplace_back(params_[i].first + "/momentum", buf_[i]);
    s.emplace_back("<step>", Tensor::scalar(static_cast<float>(t_)));
    return s;
  }

  void load_state(const NamedTensors& s) override {
    for (size_t i = 0; i < params_.size(); ++i)
      buf_[i] = slot(s, params_[i].first + "/momentum", params_[i].second.value().shape());
    t_ = static_cast<int64_t>(slot(s, "<step>", {}).item());
  }

 private:
  OptimizerCfg cfg_;
  std::vector<Tensor> buf_;
  int64_t t_ = 0;
};
}  // namespace

void Optimizer::zero_grad() {
  for (auto& [name, v] : params_) v.zero_grad();
}

std::unique_ptr<Optimizer> make_optimizer(const OptimizerCfg& cfg, layers::NamedParams params) {
  if (cfg.type == "adamw") return std::make_unique<AdamW>(cfg, std::move(params));
  if (cfg.type == "sgd") return std::make_unique<Sgd>(cfg, std::move(params));
  MXQAT_FAIL("unknown optimizer '", cfg.type, "'; known: adamw, sgd");
}

double clip_grad_norm(const layers::NamedParams& params, double max_norm) {
  // Sum of squares in double over fixed 64K-element chunks (in parallel), then the chunk sums in
  // order: the same bits for any thread count, and no sequential pass over every gradient.
  constexpr int64_t kChunk = 1 << 16;
  std::vector<std::pair<const float*, int64_t>> chunks;
  for (const auto& [name, v] : params)
    for (int64_t j = 0; j < v.grad().size(); j += kChunk)
      chunks.emplace_back(v.grad().data() + j, std::min(kChunk, v.grad().size() - j));
  std::vector<double> part(chunks.size());
  const auto n = static_cast<int64_t>(chunks.size());
#pragma omp parallel for schedule(static) if (n > 1)
  for (int64_t c = 0; c < n; ++c) {
    double sq = 0;
    const auto [g, len] = chunks[static_cast<size_t>(c)];
    for (int64_t j = 0; j < len; ++j) sq += double(g[j]) * g[j];
    part[static_cast<size_t>(c)] = sq;
  }
  double sq = 0;
  for (double p : part) sq += p;
  const double norm = std::sqrt(sq);
  if (max_norm > 0 && norm > max_norm) {
    const float s = static_cast<float>(max_norm / (norm + 1e-6));
    for (auto [name, v] : params)
      if (!v.grad().empty()) v.grad().arr() *= s;
  }
  return norm;
}

}  // namespace mxqat::trainers
