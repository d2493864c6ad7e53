// Text data and the gpt train stage on a tiny synthetic corpus: windows as pure functions of
// (seed, step), contiguous evaluation windows, the language-model summary, bitwise resume, and
// the refusals (missing corpus, d_model not divisible by heads, gpt on image data).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "tests/test_util.h"
#include "trainers/data/text_data.h"
#include "trainers/recipe/recipe.h"
#include "trainers/stages/train_stage.h"

namespace mxqat::trainers {
namespace {

namespace fs = std::filesystem;
using mxqat::testing::fresh_dir;

// A small repetitive corpus in dir/{train,val,test}.txt.
std::string tiny_corpus() {
  static const std::string dir = [] {
    fs::path d = fresh_dir("kjv_tiny");
    const std::string verse = "And God said, Let there be light: and there was light.\n";
    for (auto [name, copies] : {std::pair<const char*, int>{"train", 40}, {"val", 3}, {"test", 3}}) {
      std::ofstream f(d / (std::string(name) + ".txt"), std::ios::binary);
      for (int i = 0; i < copies; ++i) f << verse;
    }
    return d.string();
  }();
  return dir;
}

std::string tiny_recipe() {
  return "name: tinygpt\nseed: 3\ndata: {dataset: text, dir: " + tiny_corpus() +
         ", batch_size: 4}\n"
         "model: {type: gpt, layers: 1, d_model: 16, heads: 2, context: 12, mlp_hidden: 24}\n"
         "train: {steps: 12, optimizer: {type: adamw, lr: 3.0e-3}, eval_every: 6, log_every: 3}\n";
}

TEST(TextData, TrainWindowsArePureFunctionsOfSeedAndStep) {
  DataCfg cfg;
  cfg.dataset = "text";
  cfg.dir = tiny_corpus();
  const TextData d = load_text(cfg, 12, 4, 7);
  autograd::Tensor x1, x2, x3;
  std::vector<int32_t> y1, y2, y3;
  d.train_batch(5, x1, y1);
  d.train_batch(9, x3, y3);
  d.train_batch(5, x2, y2);
  EXPECT_TRUE(x1.same_bits(x2));
  EXPECT_EQ(y1, y2);
  EXPECT_NE(y1, y3);
  ASSERT_EQ(x1.shape(), (autograd::Shape{4, 12}));
  for (int64_t b = 0; b < 4; ++b)  // y is x shifted by one byte
    for (int64_t t = 0; t + 1 < 12; ++t) EXPECT_EQ(float(y1[size_t(b * 12 + t)]), x1[b * 12 + t + 1]);
}

TEST(TextData, EvaluationWindowsAreContiguous) {
  const TokenIds s{'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'};
  autograd::Tensor x;
  std::vector<int32_t> y;
  text_windows(s, 3, 0, 2, x, y);  // windows [0, 4) and [3, 7): every byte after the first once
  EXPECT_EQ(x[0], 'a');
  EXPECT_EQ(x[3], 'd');
  EXPECT_EQ(y, (std::vector<int32_t>{'b', 'c', 'd', 'e', 'f', 'g'}));
  EXPECT_ERROR_HAS(text_windows(s, 3, 1, 2, x, y), "run past");
  EXPECT_NEAR(bits_per_byte(std::log(2.0)), 1.0, 1e-12);
  EXPECT_NEAR(perplexity(std::log(3.0)), 3.0, 1e-12);
}

TEST(TextData, MissingCorpusSaysHowToPrepareIt) {
  Recipe r = parse_recipe(tiny_recipe(), "<tiny>", {"data.dir=/nonexistent/kjv"});
  fs::path d = fresh_dir("nocorpus");
  EXPECT_ERROR_HAS(train(r, TrainOptions{d.string(), false, -1}), "/nonexistent/kjv/train.txt",
                   "scripts/prepare_kjv.sh");
}

TEST(TextData, RecipeRefusesBadGptShapes) {
  EXPECT_ERROR_HAS(parse_recipe(tiny_recipe(), "<tiny>", {"model.d_model=18", "model.heads=4"}),
                   "d_model 18 is not divisible by heads 4");
  EXPECT_ERROR_HAS(parse_recipe(tiny_recipe(), "<tiny>", {"data.dataset=fashion_mnist"}),
                   "gpt trains on dataset: text");
}

TEST(GptTrain, SummaryHasLanguageModelMetricsAndResumeIsBitwise) {
  Recipe r = parse_recipe(tiny_recipe(), "<tiny>");
  fs::path a = fresh_dir("gpt_full"), b = fresh_dir("gpt_part");
  TrainSummary full = train(r, TrainOptions{a.string(), false, -1});
  ASSERT_TRUE(full.completed);
  EXPECT_TRUE(std::isfinite(full.test.loss));
  EXPECT_LT(full.test.loss, std::log(256.0));  // learned something about a repeated verse
  EXPECT_EQ(full.test.samples, (3 * 56 - 1) / 12 * 12);
  std::ifstream sj(a / "summary.json");
  const std::string summary((std::istreambuf_iterator<char>(sj)), std::istreambuf_iterator<char>());
  for (const char* key : {"\"test_bits_per_byte\"", "\"test_perplexity\"", "\"val_bits_per_byte\""})
    EXPECT_NE(summary.find(key), std::string::npos) << key << " in " << summary;
  EXPECT_FALSE(train(r, TrainOptions{b.string(), false, 5}).completed);
  TrainSummary rest = train(r, TrainOptions{b.string(), true, -1});
  ASSERT_TRUE(rest.completed);
  Checkpoint ka = load_checkpoint((a / "checkpoint.h5").string());
  Checkpoint kb = load_checkpoint((b / "checkpoint.h5").string());
  ASSERT_EQ(ka.params.size(), kb.params.size());
  for (size_t i = 0; i < ka.params.size(); ++i)
    EXPECT_TRUE(ka.params[i].second.same_bits(kb.params[i].second)) << ka.params[i].first;
  EXPECT_EQ(full.test.loss, rest.test.loss);
}

}  // namespace
}  // namespace mxqat::trainers
