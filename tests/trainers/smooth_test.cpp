// The smoothing pass of the smoothquant+ / awq+ PTQ methods on a tiny gpt (grouped-query
// attention, so the v -> o fold maps o's channels onto v's): folding leaves the FP32 model's
// logits unchanged up to float rounding while it does change the weights and gains; the plan's
// specs come back; a model without fold points and unknown method names are refused, the latter
// with the nearest known name.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "layers/gpt.h"
#include "tests/test_util.h"
#include "trainers/model/model_factory.h"
#include "trainers/model/policy_model.h"
#include "trainers/stages/ptq_smooth.h"

namespace mxqat::trainers {
namespace {

using autograd::Tensor;
using autograd::Var;
using mxqat::testing::expect_error;

const char* kGpt =
    "name: smooth\ndata: {dataset: text, dir: nowhere}\n"
    "model: {type: gpt, layers: 2, d_model: 64, heads: 4, kv_heads: 2, context: 16, mlp_hidden: 96}\n"
    "train: {steps: 1}\nquant: {weight: mxfp4, input: mxfp4}\n";

std::vector<Tensor> batches(int n, int64_t T, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<Tensor> out;
  for (int b = 0; b < n; ++b) {
    Tensor ids({4, T});
    for (int64_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<float>(rng() % 256);
    out.push_back(ids);
  }
  return out;
}

// Outlier channels in the residual stream (what makes smoothing matter): a few embedding columns
// and norm gains scaled up, and the MLP's up rows of some channels.
void plant_outliers(layers::Module& m) {
  for (auto [name, v] : m.named_parameters()) {
    Tensor& t = v.value();
    if (name == "tok_emb.weight")
      for (int64_t r = 0; r < t.dim(0); ++r) t[r * t.dim(1) + 5] *= 20.0f;
    if (name.find("norm.weight") != std::string::npos) t[9] = 15.0f;
    if (name.find("mlp.up.weight") != std::string::npos)
      for (int64_t j = 0; j < t.dim(1); ++j) t[7 * t.dim(1) + j] *= 10.0f;
  }
}

TEST(Smoothing, FoldingKeepsTheFp32LogitsAndChangesTheWeights) {
  for (const std::string variant : {"smoothquant", "awq", "smoothquant searched"}) {
    const bool searched = variant == "smoothquant searched";
    const std::string method = searched ? "smoothquant" : variant;
    const Recipe r = parse_recipe(kGpt, "<smooth>", {searched ? "ptq.smoothquant_grid=8" : "ptq.smoothquant_grid=0"});
    auto model = build_model(r, r.model.context, r.model.vocab);
    plant_outliers(*model);
    model->train(false);
    std::map<std::string, Tensor> before;
    for (auto [name, v] : model->named_parameters()) before[name] = v.value();
    const std::vector<Tensor> calib = batches(2, 16, 1), probe = batches(1, 16, 2);
    autograd::NoGradGuard ng;
    const Tensor ref = model->forward(Var(probe[0])).value();
    auto plan = attach_final_policy(*model, resolve_model_policy(r, *model));
    std::vector<std::string> specs;
    for (size_t i = 0; i < plan->size(); ++i) specs.push_back(plan->quantizer(i)->spec().describe());
    const std::vector<SmoothRecord> rec = smooth_model(*model, *plan, calib, method, r.ptq);
    ASSERT_EQ(rec.size(), 9u) << method;  // per block: attn_norm, v, mlp_norm, up; then norm
    EXPECT_EQ(rec[1].group, "blocks.0.attn.v.weight");
    for (size_t i = 0; i < plan->size(); ++i) EXPECT_EQ(plan->quantizer(i)->spec().describe(), specs[i]);
    int changed = 0;
    for (auto [name, v] : model->named_parameters()) changed += !v.value().same_bits(before[name]);
    EXPECT_GE(changed, 10) << method;  // gains, v, up and the layers that read them
    for (size_t i = 0; i < plan->size(); ++i) plan->quantizer(i)->set_spec({});
    const Tensor out = model->forward(Var(probe[0])).value();
    double peak = 0, diff = 0;
    for (int64_t i = 0; i < ref.size(); ++i)
      peak = std::max(peak, std::fabs(double(ref[i]))), diff = std::max(diff, std::fabs(double(out[i]) - ref[i]));
    EXPECT_LT(diff, 1e-4 * peak) << method << ": max |logit difference| " << diff << " of " << peak;
    for (const SmoothRecord& s : rec) {
      if (method == "awq" || searched) {
        EXPECT_LE(s.error, s.error_identity) << s.group;
        EXPECT_GT(s.error_identity, 0.0) << s.group;
      }
      if (searched) {
        EXPECT_TRUE(std::isnan(s.alpha) || (s.alpha >= 0 && s.alpha <= 1)) << s.group;
      }
    }
    if (searched) {  // the outliers make smoothing pay somewhere
      EXPECT_TRUE(std::any_of(rec.begin(), rec.end(), [](const SmoothRecord& s) { return s.error < s.error_identity; }));
    }
  }
}

TEST(Smoothing, ModelsWithoutFoldPointsAndUnknownMethodsAreRefused) {
  const Recipe r = parse_recipe("name: m\nmodel: {type: mlp, hidden: [8]}\ntrain: {steps: 1}\n", "<mlp>");
  auto mlp = build_model(r, 4, 3);
  expect_error([&] { smoothing_groups(*mlp, "awq+rtn"); }, {"awq+rtn", "gpt", "rtn, mse or gptq"});
  expect_error([&] { parse_recipe(kGpt, "<s>", {"ptq.methods=[awq+gtpq]"}); }, {"awq+gtpq", "did you mean 'awq+gptq'"});
  expect_error([&] { parse_recipe(kGpt, "<s>", {"ptq.methods=[smoothqant+rtn]"}); },
               {"unknown smoothing 'smoothqant'", "did you mean 'smoothquant+rtn'"});
  expect_error([&] { parse_recipe(kGpt, "<s>", {"ptq.methods=[rtn, rtn]"}); }, {"listed twice"});
  expect_error([&] { parse_recipe(kGpt, "<s>", {"ptq.smoothquant_alpha=1.5"}); }, {"smoothquant_alpha"});
  expect_error([&] { parse_recipe(kGpt, "<s>", {"ptq.awq_grid=0"}); }, {"awq_grid"});
  expect_error([&] { parse_recipe(kGpt, "<s>", {"ptq.smoothquant_grid=-1"}); }, {"smoothquant_grid"});
  expect_error([&] { parse_recipe(kGpt, "<s>", {"ptq.smoothquant_grid=1001"}); }, {"smoothquant_grid"});
  expect_error([&] { parse_recipe(kGpt, "<s>", {"quant.rotation=hadamar"}); }, {"hadamard"});
  expect_error([&] { parse_recipe(kGpt, "<s>", {"quant.rotation=hadamard", "quant.backward_operands=requantize"}); },
               {"does not combine"});
  const Recipe ok = parse_recipe(kGpt, "<s>", {"ptq.methods=[rtn, awq+gptq, smoothquant+mse]"});
  EXPECT_EQ(split_ptq_method("awq+gptq").smoothing, "awq");
  EXPECT_EQ(split_ptq_method("awq+gptq").quantizer, "gptq");
  EXPECT_EQ(split_ptq_method("mse").smoothing, "");
  EXPECT_EQ(ok.ptq.methods.size(), 3u);
}

}  // namespace
}  // namespace mxqat::trainers
