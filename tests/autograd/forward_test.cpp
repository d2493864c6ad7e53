// Forward values of a few ops against references computed by hand (in double, with the
// formulas of torch.nn.GELU, F.cross_entropy(label_smoothing=...), nn.LayerNorm, RMSNorm).
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/ops.h"

namespace mxqat::autograd {
namespace {

void expect_values(const Tensor& got, const std::vector<double>& want, double tol) {
  ASSERT_EQ(got.size(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(got[static_cast<int64_t>(i)], want[i], tol) << "element " << i;
}

TEST(ForwardValues, GeluExactErfForm) {
  Var x(Tensor({7}, {-3.f, -1.f, -0.5f, 0.f, 0.5f, 1.f, 3.f}));
  // x * Phi(x), e.g. gelu(1) = Phi(1) = 0.8413447460685429
  expect_values(gelu(x).value(),
                {-0.00404969409489031, -0.15865525393145707, -0.15426876936299344, 0.0,
                 0.34573123063700656, 0.8413447460685429, 2.99595030590511},
                2e-6);
}

TEST(ForwardValues, CrossEntropyWithLabelSmoothing) {
  Var logits(Tensor({2, 3}, {1.f, 2.f, 3.f, 0.f, 0.f, 0.f}));
  // row 0: lse - 0.9 * 3 - (0.1 / 3) * 6 = 0.50760596; row 1: log 3; mean of the two
  expect_values(cross_entropy(logits, {2, 1}, 0.1f).value(), {0.8031091265562453}, 1e-6);
  // no smoothing: mean of (lse - x[label]) = ((3.40760596 - 3) + log 3) / 2
  expect_values(cross_entropy(logits, {2, 1}).value(), {(0.40760596444438 + std::log(3.0)) / 2},
                1e-6);
  // shifting every logit by 1000 changes nothing (the shift cancels without rounding)
  Var shifted(Tensor({2, 3}, {1001.f, 1002.f, 1003.f, 1000.f, 1000.f, 1000.f}));
  expect_values(cross_entropy(shifted, {2, 1}, 0.1f).value(), {0.8031091265562453}, 1e-6);
}

TEST(ForwardValues, DistillKl) {
  Var x(Tensor({2, 3}, {1.f, 2.f, 3.f, 0.f, 1.f, 0.f}));
  Tensor t({2, 3}, {3.f, 2.f, 1.f, 0.f, 1.f, 0.f});
  // row 0: log(q/p) = 2, 0, -2 for q = softmax(3,2,1), so KL = 2 (q0 - q2) = 1.15042076;
  // row 1: teacher = student, KL = 0; mean of the two (T = 1)
  expect_values(distill_kl(x, t).value(), {0.5752103826044412}, 1e-6);
  // T = 2: T^2 * mean KL of the halved logits
  expect_values(distill_kl(x, t, 2.f).value(), {0.6403133356596129}, 1e-6);
  // equal logits: exactly zero, and so is the gradient
  Var same(Tensor({2, 3}, {3.f, 2.f, 1.f, 0.f, 1.f, 0.f}), true);
  Var l = distill_kl(same, t, 1.5f);
  EXPECT_EQ(l.value().item(), 0.f);
  l.backward();
  for (int64_t i = 0; i < same.grad().size(); ++i) EXPECT_EQ(same.grad()[i], 0.f) << i;
}

TEST(ForwardValues, LayerNormAndRmsNorm) {
  Var x(Tensor({1, 4}, {1.f, 2.f, 3.f, 4.f}));
  Var gamma(Tensor({4}, {1.f, 1.f, 2.f, 0.5f})), beta(Tensor({4}, {0.f, 0.5f, 0.f, 1.f}));
  // mean 2.5, biased var 1.25, eps 1e-5
  expect_values(layernorm(x, gamma, beta).value(),
                {-1.3416354199689269, 0.052788193343691, 0.894423613312618, 1.6708177099844634},
                2e-6);
  Var x2(Tensor({3}, {0.5f, -1.f, 2.f})), g2(Tensor({3}, {1.f, 2.f, 0.5f}));
  expect_values(rmsnorm(x2, g2).value(), {0.3779643650194241, -1.5118574600776964, 0.7559287300388482},
                2e-6);
}

TEST(ForwardValues, SoftmaxIsStableForLargeLogits) {
  Var x(Tensor({2, 3}, {1.f, 2.f, 3.f, 1001.f, 1002.f, 1003.f}));
  const std::vector<double> p{0.09003057317038046, 0.24472847105479764, 0.6652409557748219};
  expect_values(softmax(x).value(), {p[0], p[1], p[2], p[0], p[1], p[2]}, 1e-6);
  expect_values(log_softmax(x).value(),
                {std::log(p[0]), std::log(p[1]), std::log(p[2]), std::log(p[0]), std::log(p[1]),
                 std::log(p[2])},
                1e-6);
}

TEST(ForwardValues, BroadcastAndReduce) {
  Var a(Tensor({2, 1, 3}, {1, 2, 3, 4, 5, 6})), b(Tensor({2, 1}, {10, 20}));
  const Tensor y = add(a, b).value();  // [2, 2, 3]
  EXPECT_EQ(y.shape(), (Shape{2, 2, 3}));
  expect_values(y, {11, 12, 13, 21, 22, 23, 14, 15, 16, 24, 25, 26}, 0);
  expect_values(sum(Var(y), {0, 2}).value(), {11 + 12 + 13 + 14 + 15 + 16, 21 + 22 + 23 + 24 + 25 + 26}, 0);
  EXPECT_EQ(sum(Var(y), {1}, true).shape(), (Shape{2, 1, 3}));
  expect_values(mean(Var(y)).value(), {18.5}, 1e-5);
}

TEST(ForwardValues, ConvAndPoolMatchDirectLoops) {
  // conv2d against the definition, on a small case with stride and padding.
  Tensor xt({1, 2, 4, 5}), wt({3, 2, 3, 3}), bt({3}, {0.5f, -1.f, 0.25f});
  for (int64_t i = 0; i < xt.size(); ++i) xt[i] = std::sin(0.7f * static_cast<float>(i));
  for (int64_t i = 0; i < wt.size(); ++i) wt[i] = std::cos(0.3f * static_cast<float>(i));
  const Tensor y = conv2d(Var(xt), Var(wt), Var(bt), 2, 1).value();
  ASSERT_EQ(y.shape(), (Shape{1, 3, 2, 3}));
  for (int o = 0; o < 3; ++o)
    for (int oh = 0; oh < 2; ++oh)
      for (int ow = 0; ow < 3; ++ow) {
        double s = bt[o];
        for (int c = 0; c < 2; ++c)
          for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 3; ++j) {
              const int ih = oh * 2 - 1 + i, iw = ow * 2 - 1 + j;
              if (ih < 0 || ih >= 4 || iw < 0 || iw >= 5) continue;
              s += static_cast<double>(wt[((o * 2 + c) * 3 + i) * 3 + j]) * xt[(c * 4 + ih) * 5 + iw];
            }
        EXPECT_NEAR(y[(o * 2 + oh) * 3 + ow], s, 1e-5) << o << " " << oh << " " << ow;
      }
  Var p(Tensor({1, 1, 2, 4}, {1, 5, 2, 0, 3, 4, 8, -1}));
  expect_values(max_pool2d(p, 2, 2).value(), {5, 8}, 0);
  expect_values(avg_pool2d(p, 2, 2).value(), {13.0 / 4, 9.0 / 4}, 1e-6);
}

TEST(ForwardValues, DropoutKeepsAboutOneMinusPAndRescales) {
  Var x(Tensor({100000}, 1.f));
  const Tensor y = dropout(x, 0.25f, 42, true).value();
  int64_t zeros = 0;
  for (int64_t i = 0; i < y.size(); ++i) {
    if (y[i] == 0.f) ++zeros;
    else EXPECT_FLOAT_EQ(y[i], 1.f / 0.75f);
  }
  EXPECT_NEAR(static_cast<double>(zeros) / 100000.0, 0.25, 0.01);
  EXPECT_FALSE(dropout(x, 0.25f, 43, true).value().same_bits(y));  // the seed matters
  EXPECT_TRUE(dropout(x, 0.25f, 42, true).value().same_bits(y));   // and fixes the mask
  EXPECT_TRUE(dropout(x, 0.25f, 42, false).value().same_bits(x.value()));  // eval: identity
}

}  // namespace
}  // namespace mxqat::autograd
