// qgemm under the mx_native product (docs/formats.md §14.2) and the policy that selects it: the
// forward equals mx_gemm_reference of Q(x), Q(w) plus the bias, bit for bit, for any thread count
// and kernel; the backward equals fp32_chain's (STE on the dequantized values); the policy sets
// the product only where both codecs are mx_native ones, refuses other final codecs, and stores
// the choice in its text (old texts read as fp32_chain).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <random>

#include "autograd/error.h"
#include "autograd/ops.h"
#include "quant/fake/qgemm.h"
#include "quant/policy/plan.h"
#include "quant/policy/policy.h"
#include "tests/test_util.h"

namespace mxqat::quant {
namespace {

using autograd::Shape;
using autograd::Tensor;
using autograd::Var;

Tensor random_tensor(Shape shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  Tensor t(std::move(shape));
  for (int64_t i = 0; i < t.size(); ++i) t[i] = nd(rng) * (i % 37 == 0 ? 30.f : 1.f);
  return t;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

struct Out {
  Tensor y, dx, dw, db;
};

Out run(const GemmQuantSpec& spec, const Tensor& x, const Tensor& w, const Tensor& b,
        const Tensor& dy) {
  Var xv(x, true), wv(w, true), bv(b, true);
  Var y = qgemm(xv, wv, bv, spec);
  y.backward(dy);
  return {y.value(), xv.grad(), wv.grad(), bv.grad()};
}

GemmQuantSpec spec(const std::string& w, const std::string& a, Product p) {
  GemmQuantSpec s;
  s.weight = Codec::make(w);
  s.input = Codec::make(a);
  s.product = p;
  return s;
}

TEST(QGemmMxNative, ForwardIsTheMxProductAndBackwardTheSte) {
  const int saved = omp_get_max_threads();
  for (const auto& [wc, ac] : std::vector<std::pair<std::string, std::string>>{
           {"mxfp4", "mxfp4"}, {"mxfp6_e2m3", "mxfp6_e2m3"}, {"mxfp4", "mxfp6_e2m3"}})
    for (int64_t K : {70, 256}) {
      const int64_t M = 45, N = 70;
      const Tensor x = random_tensor({3, 15, K}, 1), w = random_tensor({N, K}, 2);
      const Tensor b = random_tensor({N}, 3), dy = random_tensor({3, 15, N}, 4);
      // Expected forward: Q(x), Q(w) with the codecs, the reference product, + bias.
      Tensor xq(Shape{M, K}), wq(Shape{N, K}), want(Shape{M, N});
      Codec::make(ac).fake_quant(x.data(), M, K, xq.data());
      Codec::make(wc).fake_quant(w.data(), N, K, wq.data());
      mx_gemm_reference(xq.data(), wq.data(), want.data(), M, N, K);
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) want[i * N + j] = want[i * N + j] + b[j];
      omp_set_num_threads(1);
      const Out chain = run(spec(wc, ac, Product::kFp32Chain), x, w, b, dy);
      for (int threads : {1, 3}) {
        omp_set_num_threads(threads);
        const Out mx = run(spec(wc, ac, Product::kMxNative), x, w, b, dy);
        const std::string what = wc + " x " + ac + " K " + std::to_string(K) + " threads " +
                                 std::to_string(threads);
        EXPECT_TRUE(same_bits(mx.y.reshaped({M, N}), want)) << what;
        EXPECT_TRUE(same_bits(mx.dx, chain.dx)) << what;
        EXPECT_TRUE(same_bits(mx.dw, chain.dw)) << what;
        EXPECT_TRUE(same_bits(mx.db, chain.db)) << what;
      }
    }
  // The two products are different semantics. On operands of similar block scales they often
  // agree (every partial sum is exact in float32); with block magnitudes 2^0 .. 2^14 apart the
  // chain rounds inside blocks and some outputs differ in their last bits.
  Tensor x = random_tensor({16, 256}, 7), w = random_tensor({16, 256}, 8);
  for (int64_t i = 0; i < x.size(); ++i) x[i] = std::ldexp(x[i], static_cast<int>((i / 32) * 7 % 15));
  const Tensor b = random_tensor({16}, 9), dy = random_tensor({16, 16}, 10);
  EXPECT_FALSE(same_bits(run(spec("mxfp4", "mxfp4", Product::kFp32Chain), x, w, b, dy).y,
                         run(spec("mxfp4", "mxfp4", Product::kMxNative), x, w, b, dy).y));
  omp_set_num_threads(saved);
}

TEST(QGemmMxNative, UnquantizedOperandOffTheGridIsAnError) {
  GemmQuantSpec s;
  s.input = Codec::make("mxfp4");
  s.product = Product::kMxNative;  // the weight is not quantized (nor decoded from MX codes)
  const Tensor x = random_tensor({4, 64}, 5), w = random_tensor({8, 64}, 6);
  testing::expect_error([&] { qgemm(Var(x), Var(w), Var(), s); },
                        {"mx_native", "[8, 64] weight", "fp32_chain"});
}

const std::vector<std::string> kLayers = {"fc1", "fc2", "head"};

TEST(PolicyMxNative, ProductOnlyWhereBothCodecsServeIt) {
  PolicyConfig c;
  c.weight = "mxfp4";
  c.input = "mxfp4";
  c.product = Product::kMxNative;
  c.schedule = {Phase::format(0.5, "mxfp8_e4m3"), Phase::format(1.0, "mxfp4")};
  c.rules = {{"head", "none", "none", "", {}}, {"fc2", "mxfp6_e2m3", "mxfp4", "", {}}};
  const ResolvedPolicy p = resolve_policy(c, kLayers);
  EXPECT_EQ(p.spec_at(p.at("fc1"), 10, 100).product, Product::kFp32Chain);  // mxfp8 warm-up
  EXPECT_EQ(p.spec_at(p.at("fc1"), 90, 100).product, Product::kMxNative);
  EXPECT_EQ(p.spec(p.at("fc2")).product, Product::kMxNative);
  EXPECT_EQ(p.spec(p.at("head")).product, Product::kFp32Chain);
  EXPECT_EQ(p.spec(p.at("fc2")).describe(), "w=mxfp6_e2m3 a=mxfp4 g=none ste=clipped product=mx_native");
  // Stored and read back; a text without the line (every older file) is fp32_chain.
  const std::string text = p.to_text();
  EXPECT_NE(text.find("product mx_native\n"), std::string::npos);
  EXPECT_EQ(ResolvedPolicy::from_text(text).product, Product::kMxNative);
  PolicyConfig old = c;
  old.product = Product::kFp32Chain;
  const std::string old_text = resolve_policy(old, kLayers).to_text();
  EXPECT_EQ(old_text.find("product"), std::string::npos);
  EXPECT_EQ(ResolvedPolicy::from_text(old_text).product, Product::kFp32Chain);
  EXPECT_NE(p.table().find("product mx_native"), std::string::npos);
  // A plan switches the product with the phase.
  QuantPlan plan(p, 100);
  EXPECT_EQ(plan.quantizer("fc1")->spec().product, Product::kFp32Chain);
  plan.update(60);
  EXPECT_EQ(plan.quantizer("fc1")->spec().product, Product::kMxNative);
}

TEST(PolicyMxNative, RefusesFinalCodecsItCannotServe) {
  PolicyConfig c;
  c.weight = "mxfp4";
  c.input = "mxfp4";
  c.product = Product::kMxNative;
  c.rules = {{"head", "mxfp8_e4m3", "mxfp8_e4m3", "", {}}};
  testing::expect_error([&] { resolve_policy(c, kLayers); },
                        {"mx_native", "'head'", "mxfp8_e4m3", "fp32_chain"});
  c.rules = {{"head", "mxfp4", "none", "", {}}};  // weight-only: not two MX operands
  testing::expect_error([&] { resolve_policy(c, kLayers); }, {"'head'", "input none"});
  testing::expect_error([] { ResolvedPolicy::from_text("mxqat_policy 1\nproduct fast\n"); },
                        {"fp32_chain", "mx_native"});
}

}  // namespace
}  // namespace mxqat::quant
