// Generation on a tiny gpt trained for a few steps on a synthetic corpus and exported under an
// MXFP4 policy: the splitmix64 generator, sampling rules, seeded and thread-independent text,
// incremental decoding through the export's quantizers, the KV-cache evaluation, `mxqat sample`
// and its refusals (prompt past the context, a non-gpt model).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "tests/test_util.h"
#include "trainers/data/text_data.h"
#include "trainers/runtime/generate.h"
#include "trainers/stages/export_stage.h"
#include "trainers/stages/train_stage.h"

namespace mxqat::trainers {
namespace {

namespace fs = std::filesystem;
using mxqat::testing::expect_error;
using mxqat::testing::fresh_dir;
using mxqat::testing::run_cli;

std::string corpus() {
  static const std::string dir = [] {
    fs::path d = fresh_dir("gen_corpus");
    const std::string verse = "In the beginning God created the heaven and the earth.\n";
    for (auto [name, copies] : {std::pair<const char*, int>{"train", 30}, {"val", 3}, {"test", 4}}) {
      std::ofstream f(d / (std::string(name) + ".txt"), std::ios::binary);
      for (int i = 0; i < copies; ++i) f << verse;
    }
    return d.string();
  }();
  return dir;
}

// The tiny gpt trained 10 steps in FP32 (the checkpoint) and exported with the recipe's MXFP4
// weights and inputs (the export).
struct Files {
  std::string checkpoint, exported;
};
const Files& files() {
  static const Files f = [] {
    const std::string recipe =
        "name: gengpt\nseed: 5\ndata: {dataset: text, dir: " + corpus() + ", batch_size: 4}\n"
        "model: {type: gpt, layers: 1, d_model: 48, heads: 2, context: 16, mlp_hidden: 32}\n"
        "train: {steps: 10, optimizer: {type: adamw, lr: 3.0e-3}, eval_every: 10, log_every: 5}\n"
        "quant: {weight: mxfp4, input: mxfp4}\n";
    fs::path d = fresh_dir("gen_model");
    train(parse_recipe(recipe, "<gengpt>"), TrainOptions{d.string(), false, -1});
    Files out{(d / "checkpoint.h5").string(), (d / "model.h5").string()};
    export_checkpoint(out.checkpoint, out.exported);
    return out;
  }();
  return f;
}

TEST(SplitMix64, KnownSequenceAndUniformRange) {
  SplitMix64 r(0);
  EXPECT_EQ(r.next(), 0xE220A8397B1DCDAFull);  // the reference implementation's first output
  EXPECT_EQ(r.next(), 0x6E789E6AA1B965F4ull);
  SplitMix64 u(42);
  for (int i = 0; i < 1000; ++i) {
    const double x = u.uniform();
    ASSERT_GE(x, 0.0);
    ASSERT_LT(x, 1.0);
  }
}

TEST(Sample, GreedyTopKAndTemperature) {
  const float logits[5] = {0.5f, 2.f, -1.f, 2.f, 1.9f};
  SplitMix64 r(1);
  EXPECT_EQ(sample_token(logits, 5, 0.f, 0, r), 1);  // argmax, lower index among ties
  for (int i = 0; i < 50; ++i) EXPECT_EQ(sample_token(logits, 5, 1.f, 1, r), 1);  // top-1
  int counts[5] = {};
  for (int i = 0; i < 4000; ++i) ++counts[sample_token(logits, 5, 1.f, 3, r)];
  EXPECT_EQ(counts[0] + counts[2], 0);  // outside the top 3
  // p(4) / p(1) = exp(-0.1) = 0.905
  EXPECT_NEAR(double(counts[4]) / counts[1], std::exp(-0.1), 0.12);
  expect_error([&] { sample_token(logits, 5, -1.f, 0, r); }, {"temperature -1"});
}

TEST(Generate, SeededTextIsReproducibleAndThreadIndependent) {
  InferenceModel im = load_gpt(files().exported);
  layers::Gpt& g = gpt_of(im);
  SampleOptions o;
  o.tokens = 40;  // past the context of 16: the cache restarts from the last 8 bytes
  o.seed = 3;
  const int before = omp_get_max_threads();
  omp_set_num_threads(1);
  const Generation a = generate(g, "In the \xff", o);
  omp_set_num_threads(2);
  const Generation b = generate(g, "In the \xff", o);
  omp_set_num_threads(before);
  EXPECT_EQ(a.text, b.text);
  EXPECT_EQ(a.text.size(), 40u);
  EXPECT_GT(a.refills, 0);
  o.seed = 4;
  EXPECT_NE(generate(g, "In the \xff", o).text, a.text);
  o.kv_cache = "int8_sym";
  o.temperature = 0.f;
  EXPECT_EQ(generate(g, "In", o).text, generate(g, "In", o).text);
  expect_error([&] { generate(g, std::string(17, 'a'), o); }, {"prompt is 17 bytes", "context is 16"});
  expect_error([&] { generate(g, "", o); }, {"prompt is empty"});
}

TEST(Generate, IncrementalDecodingThroughExportQuantizers) {
  InferenceModel im = load_gpt(files().exported);
  layers::Gpt& g = gpt_of(im);
  const std::vector<int32_t> ids{'I', 'n', ' ', 't', 'h', 'e', ' ', 'b', 'e', 'g'};
  autograd::NoGradGuard ng;
  const autograd::Tensor full = g.forward_ids(ids, 10).value();
  layers::KvCache cache(g.config());
  g.forward_cached({ids.begin(), ids.end() - 1}, cache);
  const autograd::Tensor last = g.forward_cached({ids.back()}, cache).value();
  for (int64_t j = 0; j < 256; ++j) EXPECT_NEAR(last[j], full[9 * 256 + j], 1e-4) << j;
}

TEST(Generate, KvCacheEvaluation) {
  InferenceModel im = load_gpt(files().checkpoint);  // FP32 weights, no quantizers
  layers::Gpt& g = gpt_of(im);
  const TextData text = load_text(im.recipe.data, 16, 1, 5);
  const KvEval none = eval_kv_cache(g, text.test, 3, "none");
  EXPECT_EQ(none.predictions, 48);
  EXPECT_NEAR(none.bits_per_byte, none.full_bits_per_byte, 1e-5);
  EXPECT_LT(none.max_abs_logit_diff, 1e-4);
  const KvEval q8 = eval_kv_cache(g, text.test, 3, "mxfp8_e4m3");
  EXPECT_EQ(q8.full_bits_per_byte, none.full_bits_per_byte);
  EXPECT_GT(q8.max_abs_logit_diff, none.max_abs_logit_diff);
  EXPECT_NEAR(q8.bits_per_byte, none.bits_per_byte, 0.05);
  EXPECT_LT(q8.bytes_per_token, none.bytes_per_token);
  expect_error([&] { eval_kv_cache(g, text.test, 1000, "none"); }, {"1000 windows", "holds"});
}

TEST(SampleCli, PrintsTextAndTokensPerSecondAndRefusesBadInput) {
  const std::string m = files().exported;
  const auto a = run_cli("sample " + m + " --prompt 'In the' --tokens 12 --seed 9 --kv-cache mxfp8_e4m3");
  ASSERT_EQ(a.code, 0) << a.out;
  EXPECT_EQ(a.out.rfind("In the", 0), 0u) << a.out;
  EXPECT_NE(a.out.find("\"tokens_per_s\""), std::string::npos) << a.out;
  EXPECT_EQ(run_cli("sample " + m + " --prompt 'In the' --tokens 12 --seed 9 --kv-cache mxfp8_e4m3 "
                    "--threads 2").out.substr(0, 19), a.out.substr(0, 19));
  const auto longp = run_cli("sample " + m + " --prompt " + std::string(20, 'x') + " --tokens 2");
  EXPECT_EQ(longp.code, 1);
  EXPECT_NE(longp.out.find("prompt is 20 bytes but the model's context is 16"), std::string::npos) << longp.out;
  const auto kv = run_cli("sample " + m + " --prompt a --kv-cache fp7");
  EXPECT_EQ(kv.code, 1);
  EXPECT_NE(kv.out.find("unknown kv_cache codec 'fp7'"), std::string::npos) << kv.out;
  const auto temp = run_cli("sample " + m + " --prompt a --temperature warm");
  EXPECT_EQ(temp.code, 1);
  EXPECT_NE(temp.out.find("--temperature takes a number, got 'warm'"), std::string::npos) << temp.out;
  const auto tok = run_cli("sample " + m + " --prompt a --tokens -3");
  EXPECT_EQ(tok.code, 1);
  EXPECT_NE(tok.out.find("--tokens takes an integer >= 0, got '-3'"), std::string::npos) << tok.out;
  // A checkpoint whose recipe is not a gpt.
  Checkpoint c = load_checkpoint(files().checkpoint);
  c.recipe_text = parse_recipe("name: m\nmodel: {type: mlp, hidden: [8]}\ntrain: {steps: 1}\n", "<mlp>").text;
  const std::string mlp = (fs::path(files().checkpoint).parent_path() / "mlp.h5").string();
  save_checkpoint(mlp, c);
  const auto notgpt = run_cli("sample " + mlp + " --prompt a");
  EXPECT_EQ(notgpt.code, 1);
  EXPECT_NE(notgpt.out.find("holds a 'mlp' model"), std::string::npos) << notgpt.out;
  const auto ev = run_cli("sample " + m + " --eval-kv 2 --kv-cache int8_sym");
  ASSERT_EQ(ev.code, 0) << ev.out;
  EXPECT_NE(ev.out.find("\"kv_cache\": \"int8_sym\""), std::string::npos) << ev.out;
}

}  // namespace
}  // namespace mxqat::trainers
