// The reverse-mode engine (var.h) seen through ops: fan-out accumulation, no_grad, seeds,
// accumulation across backward calls, and the shape errors ops raise (op and shapes named).
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "autograd/ops.h"

namespace mxqat::autograd {
namespace {

Tensor iota(Shape s, float scale = 1.f) {
  Tensor t(std::move(s));
  for (int64_t i = 0; i < t.size(); ++i) t[i] = scale * static_cast<float>(i + 1);
  return t;
}

TEST(Engine, FanOutAccumulates) {
  Var x(iota({2, 3}, 0.5f), true);
  // L = sum(x * x + x + 3x) -> dL/dx = 2x + 4: x reaches L along four edges.
  Var l = sum(add(add(mul(x, x), x), mul_scalar(x, 3.f)));
  l.backward();
  ASSERT_EQ(x.grad().shape(), x.shape());
  for (int64_t i = 0; i < x.value().size(); ++i)
    EXPECT_FLOAT_EQ(x.grad()[i], 2.f * x.value()[i] + 4.f);
}

TEST(Engine, IntermediateUsedTwiceGetsBothGradients) {
  Var x(iota({3}), true);
  Var h = exp(mul_scalar(x, 0.1f));  // used by both branches below
  Var l = sum(add(mul_scalar(h, 2.f), mul(h, h)));
  l.backward();
  for (int64_t i = 0; i < 3; ++i) {
    const float hv = std::exp(0.1f * x.value()[i]);
    EXPECT_NEAR(x.grad()[i], (2.f + 2.f * hv) * hv * 0.1f, 1e-6);
  }
}

TEST(Engine, NoGradBuildsNoGraph) {
  Var x(iota({2, 3}), true), w(iota({4, 3}), true);
  Var y;
  {
    NoGradGuard no_grad;
    EXPECT_FALSE(grad_enabled());
    y = sum(relu(linear(x, w)));
  }
  EXPECT_TRUE(grad_enabled());
  EXPECT_FALSE(y.needs_grad());
  EXPECT_TRUE(y.node()->inputs.empty());
  EXPECT_FALSE(static_cast<bool>(y.node()->backward));
  EXPECT_THROW(y.backward(), Error);
  // Constants only: no graph either, even with grad enabled.
  Var c = add(Var(iota({2})), Var(iota({2})));
  EXPECT_FALSE(c.needs_grad());
  EXPECT_TRUE(c.node()->inputs.empty());
}

TEST(Engine, BackwardOnNonScalarTakesASeed) {
  Var x(iota({2, 3}), true);
  Var y = mul_scalar(x, 3.f);
  EXPECT_THROW(y.backward(), Error);  // non-scalar without a seed
  EXPECT_THROW(y.backward(Tensor({5})), Error);  // seed of the wrong size
  const Tensor seed = iota({2, 3}, -1.f);
  y.backward(seed);
  for (int64_t i = 0; i < 6; ++i) EXPECT_FLOAT_EQ(x.grad()[i], 3.f * seed[i]);
}

TEST(Engine, LeafGradientsAccumulateAcrossBackwardCalls) {
  Var w(iota({3}), true);
  Var x(iota({3}, 2.f));  // constant input
  sum(mul(w, x)).backward();
  Var h = mul(w, x);
  sum(h).backward();  // a second graph over the same leaf
  for (int64_t i = 0; i < 3; ++i) EXPECT_FLOAT_EQ(w.grad()[i], 2.f * x.value()[i]);
  EXPECT_TRUE(x.grad().empty());  // constants get no gradient
  EXPECT_TRUE(h.grad().empty());  // intermediates release theirs once consumed
  w.zero_grad();
  sum(mul(w, x)).backward();
  for (int64_t i = 0; i < 3; ++i) EXPECT_FLOAT_EQ(w.grad()[i], x.value()[i]);
}

TEST(Engine, OnlyInputsThatNeedGradientsGetThem) {
  Var a(iota({2, 3}), true), b(iota({3}));
  sum(div(a, add_scalar(b, 1.f))).backward();
  EXPECT_EQ(a.grad().shape(), a.shape());
  EXPECT_TRUE(b.grad().empty());
}

// Expects `f` to throw an mxqat::Error whose message contains every piece in `needles`.
void expect_error(const std::function<void()>& f, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "no error thrown; expected one mentioning " << needles[0];
  } catch (const Error& e) {
    for (const std::string& n : needles)
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos)
          << "message \"" << e.what() << "\" lacks \"" << n << "\"";
  }
}

TEST(Engine, BadShapesAndValuesGiveClearErrors) {
  Var a(iota({2, 3})), b(iota({4})), m(iota({3, 4}));
  expect_error([&] { add(a, b); }, {"add", "[2, 3]", "[4]"});
  expect_error([&] { mul(a, Var(iota({3, 3}))); }, {"mul", "[2, 3]", "[3, 3]"});
  expect_error([&] { matmul(a, Var(iota({2, 4}))); }, {"matmul", "[2, 3]", "[2, 4]"});
  expect_error([&] { linear(a, Var(iota({5, 4}))); }, {"linear", "3 features", "expects 4"});
  expect_error([&] { mse(a, m); }, {"mse", "[2, 3]", "[3, 4]"});
  expect_error([&] { cross_entropy(a, {0, 3}); }, {"cross_entropy", "label 3", "position 1"});
  expect_error([&] { cross_entropy(a, {0}); }, {"cross_entropy", "1 labels"});
  expect_error([&] { embedding(m, {1, 7}); }, {"embedding", "id 7", "[0, 3)"});
  expect_error([&] { embedding(m, {1, -1}); }, {"embedding", "id -1"});
  expect_error([&] { layernorm(a, Var(iota({4})), Var()); }, {"layernorm", "gamma", "[4]", "[2, 3]"});
  expect_error([&] { rmsnorm(m, Var(iota({3}))); }, {"rmsnorm", "[3]", "[3, 4]"});
  expect_error([&] { sum(a, {2}); }, {"sum", "axis 2", "[2, 3]"});
  expect_error([&] { softmax(a, -3); }, {"softmax", "axis -3"});
  expect_error([&] { reshape(a, {4, 2}); }, {"reshape", "[4, 2]"});
  expect_error([&] { permute(a, {0, 0}); }, {"permute", "[2, 3]"});
  expect_error([&] { slice(a, 1, 2, 5); }, {"slice", "[2, 5)", "[2, 3]"});
  expect_error([&] { concat({a, m}, 0); }, {"concat", "[3, 4]", "[2, 3]"});
  Var x4(iota({1, 2, 5, 5})), w4(iota({3, 4, 3, 3}));
  expect_error([&] { conv2d(x4, w4, Var()); }, {"conv2d", "[1, 2, 5, 5]", "[3, 4, 3, 3]"});
  expect_error([&] { max_pool2d(x4, 7, 1); }, {"max_pool2d", "7x7", "[1, 2, 5, 5]"});
  expect_error([&] { avg_pool2d(a, 2, 2); }, {"avg_pool2d", "[2, 3]"});
  expect_error([&] { dropout(a, 1.f, 0, true); }, {"dropout", "p"});
}

}  // namespace
}  // namespace mxqat::autograd
