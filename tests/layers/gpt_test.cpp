// The gpt model: parameter names, the forward against a plain double-precision reference written
// from the llama formulas, gradients of every parameter by finite differences on a tiny model,
// causality, the quant hook on every projection, and the refused configurations.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <random>

#include "autograd/ops.h"
#include "layers/gpt.h"
#include "quant/codec/gemm/mx_gemm.h"
#include "quant/fake/qgemm.h"
#include "tests/test_util.h"

namespace mxqat::layers {
namespace {

using autograd::Tensor;
using Mat = std::vector<std::vector<double>>;  // [rows][cols]

GptConfig tiny_config() {
  GptConfig c;
  c.vocab = 7, c.layers = 2, c.d_model = 8, c.heads = 2, c.context = 6, c.mlp_hidden = 6;
  c.rope_theta = 100.f;
  return c;
}

std::map<std::string, Tensor> params_of(const Module& m) {
  std::map<std::string, Tensor> out;
  for (const auto& [n, v] : m.named_parameters()) out[n] = v.value();
  return out;
}

// y = x W^T for x [T][K], W [N, K]
Mat lin(const Mat& x, const Tensor& w) {
  const int64_t n = w.dim(0), k = w.dim(1);
  Mat y(x.size(), std::vector<double>(static_cast<size_t>(n)));
  for (size_t t = 0; t < x.size(); ++t)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < k; ++i) y[t][j] += x[t][i] * w[j * k + i];
  return y;
}

Mat rms(const Mat& x, const Tensor& g, double eps) {
  Mat y = x;
  for (auto& r : y) {
    double ms = 0;
    for (double v : r) ms += v * v / double(r.size());
    for (size_t i = 0; i < r.size(); ++i) r[i] = r[i] / std::sqrt(ms + eps) * g[int64_t(i)];
  }
  return y;
}

void rope_ref(Mat& x, int64_t heads, double theta) {
  const int64_t D = int64_t(x[0].size()) / heads;
  for (size_t t = 0; t < x.size(); ++t)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < D / 2; ++i) {
        const double a = double(t) * std::pow(theta, -2.0 * double(i) / double(D));
        double& x0 = x[t][h * D + 2 * i];
        double& x1 = x[t][h * D + 2 * i + 1];
        const double y0 = x0 * std::cos(a) - x1 * std::sin(a), y1 = x0 * std::sin(a) + x1 * std::cos(a);
        x0 = y0, x1 = y1;
      }
}

// Logits [T][V] of one sequence, in double, straight from the llama definition.
Mat reference_logits(const std::map<std::string, Tensor>& p, const GptConfig& c,
                     const std::vector<int32_t>& ids) {
  const int64_t T = int64_t(ids.size()), C = c.d_model, H = c.heads, D = C / H;
  const int64_t KV = c.kv_head_count(), G = H / KV;  // query head hd reads key/value head hd / G
  Mat x(ids.size(), std::vector<double>(static_cast<size_t>(C)));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < C; ++i) x[t][i] = p.at("tok_emb.weight")[ids[t] * C + i];
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string b = "blocks." + std::to_string(l) + ".";
    Mat h = rms(x, p.at(b + "attn_norm.weight"), c.norm_eps);
    Mat q = lin(h, p.at(b + "attn.q.weight")), k = lin(h, p.at(b + "attn.k.weight")),
        v = lin(h, p.at(b + "attn.v.weight"));
    rope_ref(q, H, c.rope_theta);
    rope_ref(k, KV, c.rope_theta);
    Mat att(ids.size(), std::vector<double>(static_cast<size_t>(C)));
    for (int64_t hd = 0; hd < H; ++hd)
      for (int64_t t = 0; t < T; ++t) {
        std::vector<double> s(static_cast<size_t>(t + 1));
        double m = -1e300, z = 0;
        for (int64_t u = 0; u <= t; ++u) {
          for (int64_t i = 0; i < D; ++i) s[u] += q[t][hd * D + i] * k[u][hd / G * D + i] / std::sqrt(double(D));
          m = std::max(m, s[u]);
        }
        for (auto& e : s) z += (e = std::exp(e - m));
        for (int64_t u = 0; u <= t; ++u)
          for (int64_t i = 0; i < D; ++i) att[t][hd * D + i] += s[u] / z * v[u][hd / G * D + i];
      }
    Mat o = lin(att, p.at(b + "attn.o.weight"));
    for (int64_t t = 0; t < T; ++t)
      for (int64_t i = 0; i < C; ++i) x[t][i] += o[t][i];
    h = rms(x, p.at(b + "mlp_norm.weight"), c.norm_eps);
    Mat g = lin(h, p.at(b + "mlp.gate.weight")), u = lin(h, p.at(b + "mlp.up.weight"));
    for (size_t t = 0; t < g.size(); ++t)
      for (size_t i = 0; i < g[t].size(); ++i) g[t][i] = g[t][i] / (1 + std::exp(-g[t][i])) * u[t][i];
    Mat dn = lin(g, p.at(b + "mlp.down.weight"));
    for (int64_t t = 0; t < T; ++t)
      for (int64_t i = 0; i < C; ++i) x[t][i] += dn[t][i];
  }
  return lin(rms(x, p.at("norm.weight"), c.norm_eps), p.at("head.weight"));
}

TEST(Gpt, ParameterNames) {
  GptConfig c = tiny_config();
  c.layers = 1;
  Gpt m(c, 1);
  std::vector<std::string> got;
  for (const auto& [n, v] : m.named_parameters()) got.push_back(n);
  EXPECT_EQ(got, (std::vector<std::string>{
                     "tok_emb.weight", "blocks.0.attn_norm.weight", "blocks.0.attn.q.weight",
                     "blocks.0.attn.k.weight", "blocks.0.attn.v.weight", "blocks.0.attn.o.weight",
                     "blocks.0.mlp_norm.weight", "blocks.0.mlp.gate.weight", "blocks.0.mlp.up.weight",
                     "blocks.0.mlp.down.weight", "norm.weight", "head.weight"}));
  EXPECT_EQ(m.num_parameters(), 7 * 8 + 8 + 4 * 64 + 8 + 3 * 48 + 8 + 7 * 8);
  int gemms = 0;
  for (auto& [n, mod] : m.named_modules()) gemms += dynamic_cast<GemmLayer*>(mod) != nullptr;
  EXPECT_EQ(gemms, 8);  // q k v o gate up down head
}

// Grouped-query attention: 4 query heads over 2 key/value heads of size 4.
GptConfig gqa_config() {
  GptConfig c = tiny_config();
  c.d_model = 16, c.heads = 4, c.kv_heads = 2;
  return c;
}

class GptForward : public ::testing::TestWithParam<bool> {};

TEST_P(GptForward, MatchesReference) {
  const GptConfig c = GetParam() ? gqa_config() : tiny_config();
  Gpt m(c, 3);
  if (GetParam()) {
    EXPECT_EQ(m.named_parameters()[3].second.shape(), (Shape{8, 16}));  // k: kv_heads x 4 rows
    EXPECT_EQ(m.named_parameters()[4].second.shape(), (Shape{8, 16}));  // v
  }
  // Non-trivial norm gains, so that a swapped or ignored gain shows.
  for (auto [n, v] : m.named_parameters())
    if (v.value().ndim() == 1)
      for (int64_t i = 0; i < v.value().size(); ++i) v.value()[i] = 0.5f + 0.1f * float(i);
  const std::vector<int32_t> ids{3, 1, 4, 1, 5, 6, 2, 0, 6, 5, 3, 5};  // two sequences of 6
  const Tensor y = m.forward_ids(ids, 6).value();
  ASSERT_EQ(y.shape(), (Shape{2, 6, 7}));
  const auto p = params_of(m);
  for (int64_t b = 0; b < 2; ++b) {
    const Mat ref = reference_logits(p, c, {ids.begin() + b * 6, ids.begin() + b * 6 + 6});
    for (int64_t t = 0; t < 6; ++t)
      for (int64_t j = 0; j < 7; ++j) EXPECT_NEAR(y[(b * 6 + t) * 7 + j], ref[t][j], 2e-5) << b << " " << t << " " << j;
  }
  // Float ids through forward() give the same bits.
  Tensor fid({2, 6});
  for (int64_t i = 0; i < 12; ++i) fid[i] = float(ids[i]);
  EXPECT_TRUE(m.forward(Var(fid)).value().same_bits(y));
}

INSTANTIATE_TEST_SUITE_P(Gpt, GptForward, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "GroupedQuery" : "MultiHead"; });

class GptGradient : public ::testing::TestWithParam<bool> {};

TEST_P(GptGradient, EveryParameterMatchesFiniteDifferences) {
  GptConfig c = GetParam() ? gqa_config() : tiny_config();
  c.context = 5;
  Gpt m(c, 5);
  const std::vector<int32_t> ids{1, 6, 2, 2, 0, 4, 3, 5, 1, 1}, targets{6, 2, 2, 0, 3, 3, 5, 1, 1, 4};
  auto loss = [&] {
    return cross_entropy(reshape(m.forward_ids(ids, 5), {10, 7}), targets);
  };
  loss().backward();
  double worst = 0;
  std::string where;
  autograd::NoGradGuard ng;
  for (auto [name, v] : m.named_parameters()) {
    ASSERT_FALSE(v.grad().empty()) << name;
    for (int64_t i = 0; i < v.value().size(); ++i) {
      const float x0 = v.value()[i], h = 1e-2f;
      v.value()[i] = x0 + h;
      const double up = loss().value().item();
      v.value()[i] = x0 - h;
      const double down = loss().value().item();
      v.value()[i] = x0;
      const double num = (up - down) / (2.0 * h), err = std::fabs(num - v.grad()[i]) / std::max(1.0, std::fabs(num));
      if (err > worst) worst = err, where = name + "[" + std::to_string(i) + "]";
    }
  }
  EXPECT_LT(worst, 2e-3) << where;
}

INSTANTIATE_TEST_SUITE_P(Gpt, GptGradient, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "GroupedQuery" : "MultiHead"; });

TEST(Gpt, FutureTokensDoNotChangeEarlierLogits) {
  Gpt m(tiny_config(), 7);
  std::vector<int32_t> ids{0, 1, 2, 3, 4, 5};
  const Tensor a = m.forward_ids(ids, 6).value();
  ids[4] = 6, ids[5] = 0;
  const Tensor b = m.forward_ids(ids, 6).value();
  for (int64_t i = 0; i < 4 * 7; ++i) EXPECT_EQ(a[i], b[i]) << "logit " << i;
  bool changed = false;
  for (int64_t i = 4 * 7; i < 6 * 7; ++i) changed |= a[i] != b[i];
  EXPECT_TRUE(changed);
}

TEST(Gpt, RefusesBadConfigurationsAndInputs) {
  GptConfig c = tiny_config();
  c.d_model = 10, c.heads = 4;
  testing::expect_error([&] { Gpt m(c, 1); }, {"d_model 10", "heads 4", "model.d_model"});
  c.d_model = 6, c.heads = 2;
  testing::expect_error([&] { Gpt m(c, 1); }, {"head size", "even"});
  c = gqa_config();
  c.kv_heads = 3;
  testing::expect_error([&] { Gpt m(c, 1); }, {"kv_heads 3", "divide heads 4", "model.kv_heads"});
  c.kv_heads = 8;
  testing::expect_error([&] { Gpt m(c, 1); }, {"kv_heads 8"});
  Gpt m(tiny_config(), 1);
  testing::expect_error([&] { m.forward_ids(std::vector<int32_t>(7, 1), 7); },
                        {"7 tokens", "context of 6"});
  testing::expect_error([&] { m.forward_ids({1, 9}, 2); }, {"id 9"});
}

}  // namespace
}  // namespace mxqat::layers

// The GPT's training step under the mx_native product (docs/formats.md §14.2; with the SR MXFP4
// backward, §14.3, too) on every projection:
// logits and gradients are the same bits on the AVX-512 and portable kernels and on 1 and 3
// threads (d_model 64, so blocks are whole; batch 4 x 16 tokens, large enough to use threads).
namespace mxqat::layers {
namespace {
namespace mxnative {
struct Run {
  Tensor logits;
  std::vector<Tensor> grads;
};

// sr_backward: recipes/kjv_gpt_mxfp4_sr.yaml's backward too (dY, W, X requantized in MXFP4 with
// stochastic rounding), its dX and dW on the mx_native product (§14.3).
Run step(quant::MxPath path, int threads, bool sr_backward = false) {
  quant::set_mx_gemm_auto_path(path);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  GptConfig c;
  c.vocab = 40, c.layers = 2, c.d_model = 64, c.heads = 2, c.context = 16, c.mlp_hidden = 96;
  Gpt m(c, 11);
  for (auto& [name, mod] : m.named_modules())
    if (auto* g = dynamic_cast<GemmLayer*>(mod)) {
      quant::GemmQuantSpec spec;
      spec.weight = quant::Codec::make("mxfp4");
      spec.input = quant::Codec::make(name.find("mlp") != std::string::npos ? "mxfp6_e2m3" : "mxfp4");
      spec.product = quant::Product::kMxNative;
      if (sr_backward) {
        spec.grad_output = quant::Codec::make("mxfp4");
        spec.grad_rounding = quant::Rounding::kStochastic;
        spec.requantize_backward = true;
        spec.sr_seed = 3;
        spec.sr_stream = name.size();
        spec.backward_product = quant::Product::kMxNative;
      }
      g->set_quantizer(std::make_shared<quant::QuantGemm>(spec));
    }
  std::vector<int32_t> ids(4 * 16), targets(4 * 16);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(i * 7 % 40), targets[i] = int32_t(i * 3 % 40);
  autograd::Var logits = m.forward_ids(ids, 16);
  autograd::cross_entropy(autograd::reshape(logits, {64, 40}), targets).backward();
  Run r{logits.value(), {}};
  for (const auto& [n, v] : m.named_parameters()) r.grads.push_back(v.grad());
  omp_set_num_threads(saved);
  quant::set_mx_gemm_auto_path(quant::MxPath::kAuto);
  return r;
}

bool same(const Tensor& a, const Tensor& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}
}  // namespace mxnative

TEST(Gpt, MxNativeStepSameBitsOnEveryKernelAndThreadCount) {
  std::vector<quant::MxPath> paths{quant::MxPath::kPortable};
  if (quant::mx_gemm_has_avx512()) paths.push_back(quant::MxPath::kAvx512);
  for (bool sr : {false, true}) {
    const mxnative::Run ref = mxnative::step(quant::MxPath::kPortable, 1, sr);
    for (quant::MxPath path : paths)
      for (int threads : {1, 3}) {
        const mxnative::Run r = mxnative::step(path, threads, sr);
        EXPECT_TRUE(mxnative::same(r.logits, ref.logits)) << int(path) << " " << threads << " " << sr;
        ASSERT_EQ(r.grads.size(), ref.grads.size());
        for (size_t i = 0; i < r.grads.size(); ++i)
          EXPECT_TRUE(mxnative::same(r.grads[i], ref.grads[i])) << int(path) << " " << threads << " " << sr << " " << i;
      }
  }
}

}  // namespace
}  // namespace mxqat::layers
