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
#include <tuple>

#include "autograd/error.h"
#include "autograd/ops.h"
#include "quant/codec/formats.h"
#include "quant/codec/transform/stochastic.h"
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
           {"mxfp4", "mxfp4"}, {"mxfp6_e2m3", "mxfp6_e2m3"}, {"mxfp4", "mxfp6_e2m3"},
           {"mxfp6_e3m2", "mxfp6_e3m2"}, {"mxfp4", "mxfp6_e3m2"}})
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

// The mx_native backward (docs/formats.md §14.3): dX and dW are the §14.2 products of the
// backward operands as the grad_output codec rounds them (dY along N with W^T along N; dY^T and
// X^T along the tokens), times the clipped STE's masks; the same bits for any thread count, on
// the AVX-512 path (stochastic rounding fused into the block integers) and the portable one, with
// nearest and stochastic rounding, ragged blocks on every axis.
GemmQuantSpec backward_spec(const std::string& g, Rounding r, Product bwd) {
  GemmQuantSpec s = spec("mxfp4", "mxfp4", Product::kMxNative);
  s.grad_output = Codec::make(g);
  s.grad_rounding = r;
  s.requantize_backward = true;
  s.sr_seed = 11;
  s.sr_stream = 3;
  s.backward_product = bwd;
  return s;
}

// q [R, C] = the grad_output codec's rounding of src [R, C] (or of src^T when `transpose`, src
// [C, R]) with the key of role `role` (qgemm's: step 7, micro-batch 1).
Tensor rounded(const GemmQuantSpec& s, const Tensor& src, int64_t R, int64_t C, bool transpose,
               uint64_t role) {
  Tensor in(Shape{R, C}), q(Shape{R, C});
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c) in[r * C + c] = transpose ? src[c * R + r] : src[r * C + c];
  if (s.grad_rounding == Rounding::kStochastic)
    fake_quant_stochastic_reference(*s.grad_output, in.data(), R, C, q.data(),
                                    sr_key(s.sr_seed, s.sr_stream * 4 + role, 7, 1));
  else
    s.grad_output->fake_quant(in.data(), R, C, q.data());
  return q;
}

Out run_at(const GemmQuantSpec& spec, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& dy) {
  Var xv(x, true), wv(w, true), bv(b, true);
  Var y = qgemm(xv, wv, bv, spec, 7, 1);
  y.backward(dy);
  return {y.value(), xv.grad(), wv.grad(), bv.grad()};
}

TEST(QGemmMxNative, BackwardIsTheMxProductOfTheRoundedOperands) {
  const int saved = omp_get_max_threads();
  for (const std::string g : {"mxfp4", "mxfp6_e2m3"})
    for (Rounding r : {Rounding::kStochastic, Rounding::kNearest})
      for (const auto& [M, N, K] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
               {45, 70, 70}, {96, 40, 256}, {600, 40, 256}}) {  // (the last: the forward in 3+ parts)
        const GemmQuantSpec sp = backward_spec(g, r, Product::kMxNative);
        const Tensor x = random_tensor({M, K}, 21), w = random_tensor({N, K}, 22);
        const Tensor b = random_tensor({N}, 23);
        Tensor dy = random_tensor({M, N}, 24);
        dy[5] = std::ldexp(1.0f, -140);  // a block of tiny magnitude, and a NaN block below
        // Expected: the reference product of the rounded operands, times the clipped STE masks.
        Tensor xq(Shape{M, K}), wq(Shape{N, K});
        std::vector<uint8_t> xm(static_cast<size_t>(M * K)), wm(static_cast<size_t>(N * K));
        sp.input->fake_quant(x.data(), M, K, xq.data(), xm.data());
        sp.weight->fake_quant(w.data(), N, K, wq.data(), wm.data());
        Tensor want_dx(Shape{M, K}), want_dw(Shape{N, K});
        mx_gemm_reference(rounded(sp, dy, M, N, false, 0).data(), rounded(sp, w, K, N, true, 2).data(),
                          want_dx.data(), M, K, N);
        mx_gemm_reference(rounded(sp, dy, N, M, true, 1).data(), rounded(sp, x, K, M, true, 3).data(),
                          want_dw.data(), N, K, M);
        for (int64_t i = 0; i < M * K; ++i) want_dx[i] *= static_cast<float>(xm[static_cast<size_t>(i)]);
        for (int64_t i = 0; i < N * K; ++i) want_dw[i] *= static_cast<float>(wm[static_cast<size_t>(i)]);
        // The forward, whose Q(x) and Q(w) the backward does not read (it rounds x and w again):
        // quantized part by part into the threads' own buffers, the same bits, with and without
        // a graph.
        Tensor want_y(Shape{M, N});
        mx_gemm_reference(xq.data(), wq.data(), want_y.data(), M, N, K);
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = 0; j < N; ++j) want_y[i * N + j] = want_y[i * N + j] + b[j];
        for (MxPath path : {MxPath::kAuto, MxPath::kPortable})
          for (int threads : {1, 3}) {
            set_mx_gemm_auto_path(path);
            omp_set_num_threads(threads);
            const Out o = run_at(sp, x, w, b, dy);
            const std::string what = g + " " + rounding_name(r) + " M " + std::to_string(M) +
                                     (path == MxPath::kPortable ? " portable" : " auto") +
                                     " threads " + std::to_string(threads);
            EXPECT_TRUE(same_bits(o.y, want_y)) << what;
            EXPECT_TRUE(same_bits(o.dx, want_dx)) << what;
            EXPECT_TRUE(same_bits(o.dw, want_dw)) << what;
            autograd::NoGradGuard no_grad;
            EXPECT_TRUE(same_bits(qgemm(Var(x), Var(w), Var(b), sp, 7, 1).value(), want_y))
                << what << " no graph";
          }
        set_mx_gemm_auto_path(MxPath::kAuto);
      }
  // A NaN in dY makes its blocks' terms NaN (canonical), on both paths.
  const GemmQuantSpec sp = backward_spec("mxfp4", Rounding::kStochastic, Product::kMxNative);
  const Tensor x = random_tensor({40, 64}, 31), w = random_tensor({48, 64}, 32), b = random_tensor({48}, 33);
  Tensor dy = random_tensor({40, 48}, 34);
  dy[3] = NAN;
  for (MxPath path : {MxPath::kAuto, MxPath::kPortable}) {
    set_mx_gemm_auto_path(path);
    const Out o = run_at(sp, x, w, b, dy);
    EXPECT_EQ(f2u(o.dx[0]), kCanonicalNan);  // row 0 of dY holds the NaN block
    EXPECT_FALSE(std::isnan(o.dx[64]));       // row 1 does not
    EXPECT_EQ(f2u(o.dw[3 * 64]), kCanonicalNan);  // dY^T row 3, its first block
    EXPECT_FALSE(std::isnan(o.dw[4 * 64]));
  }
  set_mx_gemm_auto_path(MxPath::kAuto);
  omp_set_num_threads(saved);
}

// Against the fp32_chain backward on the same rounded operands: equal bits where every partial
// sum is exact (integer-valued operands on the element grid, which stochastic rounding keeps),
// and within the two summation orders' error bound otherwise (§14.3).
TEST(QGemmMxNative, BackwardAgainstTheFp32Chain) {
  const int64_t M = 64, N = 96, K = 48;
  std::mt19937 rng(5);
  const float grid[] = {0.f, 1.f, 2.f, 3.f, 4.f, 6.f, -1.f, -2.f, -3.f, -4.f, -6.f};
  auto on_grid = [&](Shape sh) {
    Tensor t(std::move(sh));
    for (int64_t i = 0; i < t.size(); ++i) t[i] = grid[rng() % 11];
    return t;
  };
  const Tensor x = on_grid({M, K}), w = on_grid({N, K}), b = on_grid({N}), dy = on_grid({M, N});
  for (Rounding r : {Rounding::kStochastic, Rounding::kNearest}) {
    const Out chain = run_at(backward_spec("mxfp4", r, Product::kFp32Chain), x, w, b, dy);
    const Out mx = run_at(backward_spec("mxfp4", r, Product::kMxNative), x, w, b, dy);
    EXPECT_TRUE(same_bits(mx.dx, chain.dx)) << rounding_name(r);
    EXPECT_TRUE(same_bits(mx.dw, chain.dw)) << rounding_name(r);
  }
  // General operands: |mx - chain| <= (L + ceil(L / 32)) 2^-24 sum |a b| per output, with L the
  // reduction length and a, b the rounded operands.
  GemmQuantSpec sp = backward_spec("mxfp4", Rounding::kStochastic, Product::kMxNative);
  sp.ste = Ste::kIdentity;
  GemmQuantSpec chain_sp = sp;
  chain_sp.backward_product = Product::kFp32Chain;
  const Tensor gx = random_tensor({M, K}, 41), gw = random_tensor({N, K}, 42);
  Tensor gdy = random_tensor({M, N}, 43);  // blocks along N 2^0, 2^7, 2^14 apart: the chain rounds
  for (int64_t i = 0; i < gdy.size(); ++i) gdy[i] = std::ldexp(gdy[i], static_cast<int>((i % N) / 32 * 7));
  const Out c = run_at(chain_sp, gx, gw, b, gdy), m = run_at(sp, gx, gw, b, gdy);
  const Tensor dyq = rounded(sp, gdy, M, N, false, 0), wtq = rounded(sp, gw, K, N, true, 2);
  int differ = 0;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < K; ++j) {
      double bound = 0;
      for (int64_t p = 0; p < N; ++p) bound += std::fabs(double(dyq[i * N + p]) * wtq[j * N + p]);
      bound *= (N + (N + 31) / 32) * std::ldexp(1.0, -24);
      EXPECT_LE(std::fabs(double(m.dx[i * K + j]) - c.dx[i * K + j]), bound) << i << " " << j;
      differ += m.dx[i * K + j] != c.dx[i * K + j];
    }
  EXPECT_GT(differ, 0);  // different semantics: some outputs differ in their last bits
}

TEST(QGemmMxNative, BackwardProductNeedsRequantizedMxOperands) {
  const Tensor x = random_tensor({4, 64}, 5), w = random_tensor({8, 64}, 6);
  GemmQuantSpec s = backward_spec("mxfp8_e5m2", Rounding::kStochastic, Product::kMxNative);
  testing::expect_error([&] { qgemm(Var(x), Var(w), Var(), s); },
                        {"mx_native backward", "g=mxfp8_e5m2", "requantize", "fp32_chain"});
  s = backward_spec("mxfp4", Rounding::kStochastic, Product::kMxNative);
  s.requantize_backward = false;
  testing::expect_error([&] { qgemm(Var(x), Var(w), Var(), s); }, {"mx_native backward", "requantize"});
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

// §14.3: under product mx_native with backward_operands requantize, the layers whose grad_output
// codec is mxfp4 / mxfp6_e2m3 take the mx_native backward; others, and policies without
// requantize, stay on fp32_chain. The choice is a line of the text; a text without it (every
// file written before §14.3) keeps the fp32_chain backward.
TEST(PolicyMxNative, BackwardProductWhereTheBackwardOperandsServeIt) {
  PolicyConfig c;
  c.weight = "mxfp4";
  c.input = "mxfp4";
  c.grad_output = "mxfp4";
  c.grad_rounding = Rounding::kStochastic;
  c.requantize_backward = true;
  c.product = Product::kMxNative;
  c.schedule = {Phase::format(0.5, "mxfp8_e4m3"), Phase::format(1.0, "mxfp4")};
  c.rules = {{"head", "", "", "mxfp8_e5m2", {}}, {"fc2", "mxfp6_e3m2", "mxfp6_e3m2", "mxfp6_e3m2", {}}};
  const ResolvedPolicy p = resolve_policy(c, kLayers);
  EXPECT_EQ(p.backward_product, Product::kMxNative);
  // mxfp6_e3m2 serves the forward product (wide operands), not the backward's grad_output.
  EXPECT_EQ(p.spec(p.at("fc2")).product, Product::kMxNative);
  EXPECT_EQ(p.spec(p.at("fc2")).backward_product, Product::kFp32Chain);
  // every phase (the backward operands do not depend on the forward's codecs)
  EXPECT_EQ(p.spec_at(p.at("fc1"), 10, 100).backward_product, Product::kMxNative);
  EXPECT_EQ(p.spec_at(p.at("fc1"), 90, 100).backward_product, Product::kMxNative);
  EXPECT_EQ(p.spec(p.at("head")).backward_product, Product::kFp32Chain);  // mxfp8_e5m2: not served
  EXPECT_EQ(p.spec(p.at("fc1")).describe(),
            "w=mxfp4 a=mxfp4 g=mxfp4 ste=clipped round=stochastic bwd=requantize product=mx_native "
            "bwd_product=mx_native");
  const std::string text = p.to_text();
  EXPECT_NE(text.find("backward_product mx_native\n"), std::string::npos);
  EXPECT_EQ(ResolvedPolicy::from_text(text).backward_product, Product::kMxNative);
  EXPECT_NE(p.table().find("backward_product mx_native"), std::string::npos);
  // A text of the same policy written before §14.3: fp32_chain backward.
  std::string old = text;
  old.erase(old.find("backward_product mx_native\n"), std::string("backward_product mx_native\n").size());
  const ResolvedPolicy before = ResolvedPolicy::from_text(old);
  EXPECT_EQ(before.product, Product::kMxNative);
  EXPECT_EQ(before.spec(before.at("fc1")).backward_product, Product::kFp32Chain);
  // Not asked for: reuse (the forward's Q(W), Q(X) are blocked along K), or fp32_chain.
  PolicyConfig reuse = c;
  reuse.requantize_backward = false;
  EXPECT_EQ(resolve_policy(reuse, kLayers).spec(resolve_policy(reuse, kLayers).at("fc1")).backward_product,
            Product::kFp32Chain);
  EXPECT_EQ(resolve_policy(reuse, kLayers).to_text().find("backward_product"), std::string::npos);
  PolicyConfig chain = c;
  chain.product = Product::kFp32Chain;
  EXPECT_EQ(resolve_policy(chain, kLayers).backward_product, Product::kFp32Chain);
  // No layer with a served grad_output codec: no line.
  PolicyConfig e5m2 = c;
  e5m2.grad_output = "mxfp8_e5m2";
  e5m2.rules = {};
  EXPECT_EQ(resolve_policy(e5m2, kLayers).to_text().find("backward_product"), std::string::npos);
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
