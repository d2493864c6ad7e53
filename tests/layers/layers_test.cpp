// Layers and models: parameter names, forward against explicit references, gradients by finite
// differences through module parameters, the quant hook, dropout, seeded initialisation.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "layers/models.h"

namespace mxqat::layers {
namespace {

using autograd::Tensor;

Tensor random_tensor(Shape s, uint64_t seed, float scale = 1.f) {
  std::mt19937_64 rng(seed);
  Tensor t(std::move(s));
  for (int64_t i = 0; i < t.size(); ++i)
    t[i] = scale * (static_cast<float>(rng() >> 40) / float(1 << 24) * 2.f - 1.f);
  return t;
}

std::vector<std::string> names(const Module& m) {
  std::vector<std::string> out;
  for (const auto& [n, v] : m.named_parameters()) out.push_back(n);
  return out;
}

TEST(Models, MlpParameterNamesAndCount) {
  Mlp m(MlpConfig{784, {32, 16}, 10, "relu", 0.1f}, 1);
  EXPECT_EQ(names(m), (std::vector<std::string>{"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
                                                "head.weight", "head.bias"}));
  EXPECT_EQ(m.num_parameters(), 784 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10);
}

TEST(Models, CnnParameterNamesAndShapes) {
  CnnConfig c;
  c.channels = {4, 8};
  c.kernel = 3;
  c.fc = 16;
  Cnn m(c, 1);
  EXPECT_EQ(names(m), (std::vector<std::string>{"conv1.weight", "conv1.bias", "conv2.weight",
                                                "conv2.bias", "fc1.weight", "fc1.bias",
                                                "head.weight", "head.bias"}));
  auto p = m.named_parameters();
  EXPECT_EQ(p[2].second.shape(), (Shape{8, 4, 3, 3}));
  EXPECT_EQ(p[4].second.shape(), (Shape{16, 8 * 7 * 7}));
  Var y = m.forward(Var(random_tensor({2, 784}, 3)));
  EXPECT_EQ(y.shape(), (Shape{2, 10}));
}

TEST(Models, SeededInitIsReproducibleAndSeedDependent) {
  Mlp a(MlpConfig{20, {8}, 3, "gelu", 0.f}, 7), b(MlpConfig{20, {8}, 3, "gelu", 0.f}, 7),
      c(MlpConfig{20, {8}, 3, "gelu", 0.f}, 8);
  auto pa = a.named_parameters(), pb = b.named_parameters(), pc = c.named_parameters();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(pa[i].second.value().same_bits(pb[i].second.value()));
  EXPECT_FALSE(pa[0].second.value().same_bits(pc[0].second.value()));
  // torch.nn.Linear's bound 1/sqrt(in)
  const float bound = 1.f / std::sqrt(20.f);
  EXPECT_LE(pa[0].second.value().arr().abs().maxCoeff(), bound);
  EXPECT_GT(pa[0].second.value().arr().abs().maxCoeff(), 0.8f * bound);
}

TEST(Linear, ForwardMatchesReference) {
  std::mt19937_64 rng(1);
  Linear lin(5, 3, true, rng);
  Tensor x = random_tensor({4, 5}, 2);
  Tensor y = lin.forward(Var(x)).value();
  auto p = lin.named_parameters();
  const Tensor& w = p[0].second.value();
  const Tensor& b = p[1].second.value();
  for (int i = 0; i < 4; ++i)
    for (int o = 0; o < 3; ++o) {
      double acc = b[o];
      for (int k = 0; k < 5; ++k) acc += double(x[i * 5 + k]) * w[o * 5 + k];
      EXPECT_NEAR(y[i * 3 + o], acc, 1e-5);
    }
}

TEST(Linear, WrongInputWidthNamesBothSizes) {
  std::mt19937_64 rng(1);
  Linear lin(5, 3, true, rng);
  try {
    lin.forward(Var(Tensor({2, 6})));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("6 features"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("expects 5"), std::string::npos) << e.what();
  }
}

TEST(Conv2d, ForwardMatchesDirectConvolution) {
  std::mt19937_64 rng(3);
  Conv2d conv(2, 3, 3, 2, 1, true, rng);
  Tensor x = random_tensor({2, 2, 5, 6}, 4);
  Tensor y = conv.forward(Var(x)).value();
  ASSERT_EQ(y.shape(), (Shape{2, 3, 3, 3}));
  auto p = conv.named_parameters();
  const Tensor& w = p[0].second.value();
  const Tensor& b = p[1].second.value();
  for (int n = 0; n < 2; ++n)
    for (int o = 0; o < 3; ++o)
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) {
          double acc = b[o];
          for (int c = 0; c < 2; ++c)
            for (int u = 0; u < 3; ++u)
              for (int v = 0; v < 3; ++v) {
                const int hi = i * 2 - 1 + u, wj = j * 2 - 1 + v;
                if (hi < 0 || hi >= 5 || wj < 0 || wj >= 6) continue;
                acc += double(x[((n * 2 + c) * 5 + hi) * 6 + wj]) * w[((o * 2 + c) * 3 + u) * 3 + v];
              }
          EXPECT_NEAR(y[((n * 3 + o) * 3 + i) * 3 + j], acc, 1e-5);
        }
}

// d(sum(r * model(x)))/dparam by central differences in double vs. backprop, for a few entries
// of every parameter.
void check_param_grads(Module& m, const Tensor& x, double tol) {
  Tensor r;
  auto loss_of = [&](void) {
    Var y = m.forward(Var(x));
    if (r.empty()) r = random_tensor(y.shape(), 99);
    return autograd::sum(autograd::mul(y, Var(r)));
  };
  loss_of().backward();
  for (auto [name, p] : m.named_parameters()) {
    ASSERT_FALSE(p.grad().empty()) << name;
    Tensor g = p.grad();
    for (int64_t i = 0; i < p.value().size(); i += std::max<int64_t>(1, p.value().size() / 7)) {
      const float orig = p.value()[i];
      const float h = 1e-2f;
      p.value()[i] = orig + h;
      const double up = loss_of().value().item();
      p.value()[i] = orig - h;
      const double dn = loss_of().value().item();
      p.value()[i] = orig;
      EXPECT_NEAR(g[i], (up - dn) / (2.0 * h), tol) << name << "[" << i << "]";
    }
    p.zero_grad();
  }
}

TEST(Layers, ParameterGradientsMatchFiniteDifferences) {
  Mlp mlp(MlpConfig{6, {5}, 3, "tanh", 0.f}, 5);
  check_param_grads(mlp, random_tensor({4, 6}, 6), 2e-3);
  CnnConfig c;
  c.in_ch = 1, c.height = 4, c.width = 4, c.channels = {2}, c.kernel = 3, c.fc = 4, c.out = 3;
  c.activation = "tanh";
  Cnn cnn(c, 5);
  check_param_grads(cnn, random_tensor({2, 16}, 7), 2e-3);
}

// The quant hook: a quantizer that rounds both operands to multiples of 0.25 must change what
// the GEMM sees and nothing else.
class RoundQuantizer : public quant::GemmQuantizer {
 public:
  Var linear(const Var& x, const Var& w, const Var& b) override {
    ++weight_calls, ++input_calls;
    return autograd::linear(round(x), round(w), b);
  }
  std::string describe() const override { return "round(0.25)"; }
  int weight_calls = 0, input_calls = 0;

 private:
  static Var round(const Var& v) {
    Tensor t = v.value();
    for (int64_t i = 0; i < t.size(); ++i) t[i] = std::nearbyint(t[i] * 4.f) / 4.f;
    return Var(t);
  }
};

TEST(GemmLayer, QuantHookRoutesWeightAndInput) {
  std::mt19937_64 rng(1);
  Linear lin(8, 4, false, rng);
  Tensor x = random_tensor({3, 8}, 2, 2.f);
  auto q = std::make_shared<RoundQuantizer>();
  lin.set_quantizer(q);
  Tensor y = lin.forward(Var(x)).value();
  EXPECT_EQ(q->weight_calls, 1);
  EXPECT_EQ(q->input_calls, 1);
  Tensor wq = lin.weight().value(), xq = x;
  for (int64_t i = 0; i < wq.size(); ++i) wq[i] = std::nearbyint(wq[i] * 4.f) / 4.f;
  for (int64_t i = 0; i < xq.size(); ++i) xq[i] = std::nearbyint(xq[i] * 4.f) / 4.f;
  Tensor ref = autograd::linear(Var(xq), Var(wq)).value();
  EXPECT_TRUE(y.same_bits(ref));

  Conv2d conv(2, 3, 3, 1, 1, false, rng);
  auto qc = std::make_shared<RoundQuantizer>();
  conv.set_quantizer(qc);
  conv.forward(Var(random_tensor({1, 2, 4, 4}, 3)));
  EXPECT_EQ(qc->weight_calls, 1);
  EXPECT_EQ(qc->input_calls, 1);
}

TEST(Dropout, TrainModeMasksEvalModeIsIdentity) {
  Dropout d(0.5f, 42);
  Tensor x = Tensor::ones({1000});
  Tensor y1 = d.forward(Var(x)).value();
  Tensor y2 = d.forward(Var(x)).value();
  int zeros = 0;
  for (int64_t i = 0; i < y1.size(); ++i) {
    EXPECT_TRUE(y1[i] == 0.f || y1[i] == 2.f);
    zeros += y1[i] == 0.f;
  }
  EXPECT_GT(zeros, 400);
  EXPECT_LT(zeros, 600);
  EXPECT_FALSE(y1.same_bits(y2));  // a fresh mask per call
  Dropout replay(0.5f, 42);
  EXPECT_TRUE(replay.forward(Var(x)).value().same_bits(y1));
  d.set_calls(0);
  EXPECT_TRUE(d.forward(Var(x)).value().same_bits(y1));  // the counter is the whole state
  d.train(false);
  EXPECT_TRUE(d.forward(Var(x)).value().same_bits(x));
}

}  // namespace
}  // namespace mxqat::layers
