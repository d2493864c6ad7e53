// Recipes: the shipped files parse to the intended settings; every class of mistake is an error
// naming the file, the line and the key path (and the nearest valid key); --set overrides; the
// effective text reproduces the recipe. The schema machinery itself (lists of maps, nesting)
// is tested on a test-only schema at the end.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include <fstream>

#include "autograd/error.h"
#include "trainers/recipe/recipe.h"
#include "trainers/recipe/recipe_schema.h"

namespace mxqat::trainers {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const std::string kSrc = "recipes/x.yaml";
const std::string kMinimal = "model:\n  type: mlp\ntrain:\n  epochs: 1\n";

// The message of the error that parsing throws ("" and a test failure when it does not throw).
std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    parse_recipe(yaml, kSrc, overrides);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error for:\n" << yaml;
  return "";
}

std::string repo(const std::string& rel) { return std::string(MXQAT_SOURCE_DIR) + "/" + rel; }

void expect_round_trip(const Recipe& r) {
  Recipe again = parse_recipe(r.text, "<checkpoint>");
  EXPECT_TRUE(again == r) << ::testing::PrintToString(recipe_diff(r, again));
  EXPECT_EQ(again.text, r.text);
  EXPECT_EQ(again.name, r.name);
}

TEST(Recipe, ShippedMlpRecipe) {
  Recipe r = load_recipe(repo("recipes/fashion_mlp.yaml"));
  EXPECT_EQ(r.name, "fashion_mlp");
  EXPECT_EQ(r.seed, 1);
  EXPECT_EQ(r.source, repo("recipes/fashion_mlp.yaml"));
  EXPECT_EQ(r.model.type, "mlp");
  EXPECT_EQ(r.model.hidden, (std::vector<int64_t>{512, 256}));
  EXPECT_EQ(r.model.activation, "relu");
  EXPECT_EQ(r.model.dropout, 0.1);
  EXPECT_EQ(r.data.batch_size, 128);
  EXPECT_EQ(r.train.epochs, 12);
  EXPECT_EQ(r.train.steps, 0);
  EXPECT_EQ(r.train.optimizer.type, "adamw");
  EXPECT_EQ(r.train.optimizer.lr, 1e-3);
  EXPECT_EQ(r.train.optimizer.weight_decay, 0.01);
  EXPECT_EQ(r.train.lr_schedule.type, "cosine");
  EXPECT_EQ(r.train.lr_schedule.warmup_steps, 200);
  EXPECT_EQ(r.train.lr_schedule.min_lr, 1e-5);
  EXPECT_EQ(r.train.label_smoothing, 0.05);
  EXPECT_EQ(r.train.eval_every, 0);
  expect_round_trip(r);
}

// Every shipped recipe parses as is and round-trips; the QAT ones carry a quant policy and a
// QAT length (and the fine-tuning ones a schedule unless named "direct").
TEST(Recipe, EveryShippedRecipeParses) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(repo("recipes"))) {
    if (e.path().extension() != ".yaml") continue;
    Recipe r = load_recipe(e.path().string());
    expect_round_trip(r);
    if (r.name.find("mxfp4") != std::string::npos) {
      EXPECT_EQ(r.quant.weight, "mxfp4") << r.name;
      EXPECT_GT(r.qat.train.epochs + r.qat.train.steps, 0) << r.name;
      if (r.qat.init == "baseline") {  // fine-tuning recipes: progressive unless named direct
        EXPECT_EQ(r.quant.schedule.empty(), r.name.find("direct") != std::string::npos) << r.name;
      }
    }
    ++n;
  }
  EXPECT_GE(n, 6);
}

TEST(Recipe, ShippedCnnRecipe) {
  Recipe r = load_recipe(repo("recipes/fashion_cnn.yaml"));
  EXPECT_EQ(r.name, "fashion_cnn");
  EXPECT_EQ(r.model.type, "cnn");
  EXPECT_EQ(r.model.channels, (std::vector<int64_t>{16, 32}));
  EXPECT_EQ(r.model.kernel, 5);
  EXPECT_EQ(r.model.fc, 128);
  EXPECT_EQ(r.model.dropout, 0.2);
  EXPECT_EQ(r.train.epochs, 10);
  EXPECT_EQ(r.train.optimizer.lr, 2e-3);
  EXPECT_EQ(r.train.lr_schedule.type, "cosine");
  EXPECT_EQ(r.data.batch_size, 128);
  expect_round_trip(r);
}

TEST(Recipe, DefaultsFillWhatTheFileLeavesOut) {
  Recipe r = parse_recipe(kMinimal, kSrc);
  Recipe expected;  // the struct defaults, plus the two required settings
  expected.model.type = "mlp";
  expected.train.epochs = 1;
  expected.name = "x";
  EXPECT_TRUE(r == expected) << ::testing::PrintToString(recipe_diff(expected, r));
  EXPECT_EQ(r.name, "x");  // the file's stem
  EXPECT_EQ(parse_recipe(kMinimal).name, "recipe");
  EXPECT_EQ(r.data.dir, "/usr/share/datasets/fashion-mnist");
  EXPECT_EQ(r.train.optimizer.beta2, 0.999);
  EXPECT_EQ(r.train.log_every, 50);
  // The text spells out every key, defaults included, so it does not depend on this build.
  EXPECT_THAT(r.text, HasSubstr("name: x\n"));
  EXPECT_THAT(r.text, HasSubstr("    eps: 1e-08\n"));
  EXPECT_THAT(r.text, HasSubstr("  hidden: [256]\n"));
  EXPECT_THAT(r.text, HasSubstr("  normalize: true\n"));
  EXPECT_THAT(r.text, HasSubstr("  dropout: 0.0\n"));
  expect_round_trip(r);
}

TEST(Recipe, EmptySectionsKeepDefaultsAndFlowStyleWorks) {
  Recipe r = parse_recipe("data:\ntrain: {epochs: 2, optimizer: {type: sgd, momentum: 0.9, "
                          "nesterov: true}}\nmodel: {type: cnn, channels: [8]}\n", kSrc);
  EXPECT_EQ(r.data.batch_size, 128);
  EXPECT_EQ(r.train.optimizer.type, "sgd");
  EXPECT_EQ(r.train.optimizer.momentum, 0.9);
  EXPECT_TRUE(r.train.optimizer.nesterov);
  EXPECT_EQ(r.model.channels, (std::vector<int64_t>{8}));
  expect_round_trip(r);
}

TEST(Recipe, IntegersWrittenAsIntegralFloatsAreAccepted) {
  Recipe r = parse_recipe("model: {type: mlp}\ntrain: {steps: 1e4, optimizer: {lr: 1}}\n", kSrc);
  EXPECT_EQ(r.train.steps, 10000);
  EXPECT_EQ(r.train.optimizer.lr, 1.0);
}

// ---- errors --------------------------------------------------------------------------------

TEST(RecipeErrors, UnknownKeyNamesPathLineAndNearestKey) {
  std::string e = error_of("model:\n  type: mlp\ntrain:\n  epoch: 3\n");
  EXPECT_THAT(e, HasSubstr("recipes/x.yaml:4:3: unknown key 'train.epoch' (did you mean "
                           "'train.epochs'?)"));
}

TEST(RecipeErrors, UnclosedFlowCollectionNamesWhereItOpened) {
  // yaml-cpp reports where it gave up (here line 4); the error names the '{' left open.
  std::string tail;
  for (int i = 0; i < 200; ++i) tail += "# line " + std::to_string(i) + "\nx" + std::to_string(i) + ": 1\n";
  EXPECT_THAT(error_of("model: {type: mlp}\ntrain: {steps: 1, optimizer: {lr: 1}\n" + tail),
              HasSubstr("recipes/x.yaml:2:8: the '{' opened here is never closed"));
  EXPECT_THAT(error_of("model: {type: mlp, hidden: [8, 4}\n"), HasSubstr("never closed"));
  // brackets in comments, quoted scalars and plain scalars are not flow collections
  Recipe r = parse_recipe(
      "model: {type: mlp, hidden: [8, 4]}  # [ {\ntrain: {steps: 1, optimizer: {lr: 1}}\n"
      "quant:\n  weight: mxfp4\n  rules:\n    - {match: \"fc[12\", weight: mxfp4}\n"
      "    - match: fc.[0-3]\n      weight: mxfp4\n",
      kSrc);
  EXPECT_EQ(r.model.hidden.size(), 2u);
}

TEST(RecipeErrors, StrayTokenAtTheTopLevelIsRefusedInBoundedTime) {
  // yaml-cpp 0.7's LoadAll appends an empty document per turn, forever, at a top-level token no
  // node can start with (a fuzz find: memory grew by ~0.5 GB/s). Each parse runs in a child with
  // a 5 s alarm, so a regression fails here instead of hanging the suite.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {",\n" + kMinimal, "recipes/x.yaml:1:1: malformed YAML: ',' cannot start a value here"},
      {kMinimal + ",\n", "recipes/x.yaml:"},  // inside the block map: yaml-cpp's own error
      {"[1, 2]\n,\n", "recipes/x.yaml:2:1: malformed YAML: ',' cannot start a value here"},
      {"- a\n,\n", "recipes/x.yaml:"},
      {"&a ,\n", "malformed YAML"},
      {"---\n" + kMinimal + ",\n", "recipes/x.yaml:"},
  };
  for (const auto& [text, expected] : cases) {
    EXPECT_EXIT(
        {
          alarm(5);
          const std::string e = error_of(text);
          std::_Exit(e.find(expected) != std::string::npos ? 0 : 1);
        },
        ::testing::ExitedWithCode(0), "")
        << text;
  }
}

TEST(RecipeErrors, RecipeOverTheSizeLimitIsRefusedBeforeParsing) {
  std::string big = kMinimal;
  while (big.size() <= schema::detail::kMaxYamlBytes) big += "# padding padding padding padding\n";
  EXPECT_THAT(error_of(big), HasSubstr("recipes/x.yaml: " + std::to_string(big.size()) +
                                       " bytes of YAML; a recipe is at most 1048576 bytes"));
  big.resize(schema::detail::kMaxYamlBytes);
  big.back() = '\n';
  EXPECT_EQ(parse_recipe(big, kSrc).train.epochs, 1);
}

TEST(RecipeErrors, KeyInTheWrongSectionPointsToWhereItBelongs) {
  EXPECT_THAT(error_of(kMinimal + "  lr: 0.1\n"),
              HasSubstr("unknown key 'train.lr' (did you mean 'train.optimizer.lr'?)"));
  EXPECT_THAT(error_of(kMinimal + "optimizer:\n  lr: 0.1\n"),
              HasSubstr("unknown key 'optimizer' (did you mean 'train.optimizer'?)"));
  EXPECT_THAT(error_of("model:\n  tpye: mlp\ntrain:\n  epochs: 1\n"),
              HasSubstr("recipes/x.yaml:2:3: unknown key 'model.tpye' (did you mean 'model.type'?)"));
}

TEST(RecipeErrors, FarOffKeyListsTheValidOnes) {
  std::string e = error_of(kMinimal + "  zzzzzzzz: 1\n");
  EXPECT_THAT(e, HasSubstr("unknown key 'train.zzzzzzzz'; valid keys under 'train': epochs, "
                           "steps, optimizer, lr_schedule, grad_clip"));
  EXPECT_THAT(e, Not(HasSubstr("did you mean")));
  EXPECT_THAT(error_of(kMinimal + "wibblewobble: 1\n"),
              HasSubstr("valid keys at the top level: name, seed, data, model, train"));
}

TEST(RecipeErrors, WrongTypesNameExpectedAndFound) {
  std::string e = error_of(kMinimal + "  optimizer:\n    lr: fast\n");
  EXPECT_THAT(e, HasSubstr("recipes/x.yaml:6:9: train.optimizer.lr: expected a number, got \"fast\""));
  EXPECT_THAT(error_of(kMinimal + "data:\n  batch_size: 1.5\n"),
              HasSubstr("recipes/x.yaml:6:15: data.batch_size: expected an integer, got 1.5"));
  EXPECT_THAT(error_of(kMinimal + "data:\n  normalize: yes\n"),
              HasSubstr("data.normalize: expected true or false, got \"yes\""));
  EXPECT_THAT(error_of(kMinimal + "seed: \"3\"\n"),
              HasSubstr("seed: expected an integer, got the quoted string \"3\" (drop the quotes)"));
  EXPECT_THAT(error_of(kMinimal + "seed:\n"), HasSubstr("recipes/x.yaml:5:1: seed: expected an "
                                                        "integer, got nothing"));
  EXPECT_THAT(error_of(kMinimal + "name: [a, b]\n"), HasSubstr("name: expected a string, got a list"));
  EXPECT_THAT(error_of(kMinimal + "seed: 99999999999999999999\n"),
              HasSubstr("seed: expected an integer, got 99999999999999999999"));
}

TEST(RecipeErrors, ListsAndMapsHaveTheirShape) {
  EXPECT_THAT(error_of("model:\n  type: mlp\n  hidden: 256\ntrain: {epochs: 1}\n"),
              HasSubstr("recipes/x.yaml:3:11: model.hidden: expected a list of integers, e.g. "
                        "[512, 256], got 256 (write it as [256])"));
  EXPECT_THAT(error_of("model:\n  type: mlp\n  hidden: [512, x]\ntrain: {epochs: 1}\n"),
              HasSubstr("recipes/x.yaml:3:17: model.hidden[1]: expected an integer, got \"x\""));
  EXPECT_THAT(error_of("model: {type: mlp}\ntrain: 5\n"),
              HasSubstr("recipes/x.yaml:2:8: train: expected a map with keys epochs, steps, "
                        "optimizer, lr_schedule"));
  EXPECT_THAT(error_of("- model\n- train\n"), HasSubstr("the recipe: expected a map with keys "
                                                       "name, seed, data, model, train, quant, qat, ptq, compare, got a list"));
}

TEST(RecipeErrors, MissingRequiredKey) {
  EXPECT_THAT(error_of("train: {epochs: 1}\n"),
              HasSubstr("recipes/x.yaml: missing required key 'model.type' (add it; one of: mlp, cnn, gpt)"));
  EXPECT_THAT(error_of("train: {epochs: 1}\nmodel:\n  hidden: [3]\n"),
              HasSubstr("recipes/x.yaml:3:3: missing required key 'model.type'"));
  EXPECT_THAT(error_of(""), HasSubstr("missing required key 'model.type'"));
}

TEST(RecipeErrors, UnknownEnumValueListsTheKnownOnes) {
  EXPECT_THAT(error_of("model:\n  type: rnn\ntrain: {epochs: 1}\n"),
              HasSubstr("recipes/x.yaml:2:9: model.type: unknown value 'rnn'; known: mlp, cnn"));
  EXPECT_THAT(error_of(kMinimal + "  optimizer: {type: adam}\n"),
              HasSubstr("train.optimizer.type: unknown value 'adam'; known: adamw, sgd"));
  EXPECT_THAT(error_of(kMinimal + "  lr_schedule: {type: step}\n"),
              HasSubstr("known: constant, cosine, linear"));
  EXPECT_THAT(error_of("model: {type: mlp, activation: swish}\ntrain: {epochs: 1}\n"),
              HasSubstr("known: relu, gelu, silu, tanh"));
}

TEST(RecipeErrors, RangesAreChecked) {
  struct Case { std::string yaml, message; };
  const std::vector<Case> cases = {
      {kMinimal + "data: {batch_size: 0}\n", "data.batch_size: must be >= 1, got 0"},
      {kMinimal + "  optimizer: {lr: 0}\n", "train.optimizer.lr: must be > 0, got 0"},
      {kMinimal + "  optimizer: {lr: -1e-3}\n", "train.optimizer.lr: must be > 0, got -0.001"},
      {kMinimal + "  label_smoothing: 1\n", "train.label_smoothing: must be in [0, 1), got 1"},
      {kMinimal + "  optimizer: {beta2: 1.0}\n", "train.optimizer.beta2: must be in [0, 1), got 1"},
      {kMinimal + "  log_every: 0\n", "train.log_every: must be >= 1, got 0"},
      {"model: {type: mlp}\ntrain: {epochs: -2, steps: 5}\n", "train.epochs: must be >= 0, got -2"},
      {"model: {type: mlp, dropout: 1}\ntrain: {epochs: 1}\n", "model.dropout: must be in [0, 1), got 1"},
      {"model: {type: cnn, kernel: 4}\ntrain: {epochs: 1}\n", "model.kernel: must be odd, got 4"},
      {"model: {type: cnn, kernel: -1}\ntrain: {epochs: 1}\n", "model.kernel: must be >= 1, got -1"},
      {"model: {type: mlp, hidden: [512, 0]}\ntrain: {epochs: 1}\n",
       "model.hidden[1]: must be >= 1, got 0"},
      {"model: {type: cnn, channels: []}\ntrain: {epochs: 1}\n",
       "model.channels: needs at least 1 entry, got an empty list"},
      {kMinimal + "seed: -1\n", "seed: must be >= 0, got -1"},
  };
  for (const auto& c : cases) EXPECT_THAT(error_of(c.yaml), HasSubstr(c.message)) << c.yaml;
}

TEST(RecipeErrors, CrossFieldRules) {
  EXPECT_THAT(error_of("model: {type: mlp}\ntrain:\n  epochs: 3\n  steps: 100\n"),
              HasSubstr("recipes/x.yaml:3:3: train: set only one of epochs and steps (got "
                        "epochs: 3, steps: 100)"));
  EXPECT_THAT(error_of("model: {type: mlp}\n"),
              HasSubstr("train: set train.epochs or train.steps to a positive number"));
  EXPECT_THAT(error_of(kMinimal + "qat: {epochs: 1, steps: 5}\n"),
              HasSubstr("qat: set only one of epochs and steps"));
  EXPECT_THAT(error_of(kMinimal + "  optimizer: {momentum: 0.9}\n"),
              HasSubstr("train.optimizer: momentum and nesterov apply to type: sgd only"));
  EXPECT_THAT(error_of(kMinimal + "  optimizer: {type: sgd, nesterov: true}\n"),
              HasSubstr("train.optimizer: nesterov needs momentum > 0"));
  EXPECT_THAT(error_of(kMinimal + "  lr_schedule: {type: cosine, min_lr: 0.1}\n"),
              HasSubstr("train.lr_schedule: min_lr 0.1 is above optimizer.lr 0.001"));
  EXPECT_THAT(error_of("model: {type: mlp}\ntrain: {steps: 10, lr_schedule: {warmup_steps: 20}}\n"),
              HasSubstr("train.lr_schedule: warmup_steps 20 exceeds the 10 training steps"));
  EXPECT_THAT(error_of(kMinimal + "name: my run\n"),
              HasSubstr("name: 'my run' may hold only letters, digits"));
}

TEST(RecipeErrors, NameFromAnUnsuitableFileName) {
  try {
    parse_recipe(kMinimal, "recipes/my run.yaml");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("recipes/my run.yaml: the recipe's name defaults to its file name"));
    EXPECT_THAT(e.what(), HasSubstr("add a name: key"));
  }
  EXPECT_EQ(parse_recipe(kMinimal + "name: ok\n", "recipes/my run.yaml").name, "ok");
}

TEST(RecipeErrors, MalformedYamlGivesTheLine) {
  std::string text = kMinimal + "data:\n  batch_size: 64\n  dir: /tmp\n   val_size: 3\n";
  EXPECT_THAT(error_of(text), HasSubstr("recipes/x.yaml:8:"));
  EXPECT_THAT(error_of(text), HasSubstr(": malformed YAML: "));
  EXPECT_THAT(error_of(kMinimal + "model:\n  hidden: [1, 2\nseed: 3\n"),
              HasSubstr("recipes/x.yaml:6:11: the '[' opened here is never closed"));
  EXPECT_THAT(error_of(kMinimal + "---\nseed: 1\n"),
              HasSubstr("recipes/x.yaml:5:1: a second YAML document starts here; a recipe is one "
                        "document"));
  EXPECT_THAT(error_of(kMinimal + "...\nseed: 1\n"),
              HasSubstr("recipes/x.yaml:6:1: a second YAML document starts here"));
  EXPECT_THAT(error_of("---\n" + kMinimal + "...\n\n# the next one\n---\nseed: 1\n"),
              HasSubstr("recipes/x.yaml:9:1: a second YAML document starts here"));
}

TEST(RecipeErrors, DuplicateKeys) {
  EXPECT_THAT(error_of(kMinimal + "seed: 1\nseed: 2\n"),
              HasSubstr("recipes/x.yaml:6:1: duplicate key 'seed' (first at line 5); keep one"));
}

// scale_lr_factor scales the learned scale offsets' lr: refused where no offset is learned.
TEST(RecipeErrors, ScaleLrFactorNeedsLearnedScales) {
  EXPECT_THAT(error_of(kMinimal + "  optimizer: {scale_lr_factor: 10}\n"),
              HasSubstr("train.optimizer.scale_lr_factor: scale_lr_factor scales the learned scale "
                        "offsets of QAT"));
  const std::string qat = kMinimal + "quant: {weight: mxfp4}\nqat: {steps: 5, optimizer: {scale_lr_factor: 10}}\n";
  EXPECT_THAT(error_of(qat), HasSubstr("qat.optimizer.scale_lr_factor: scale_lr_factor applies to "
                                       "learned scale offsets, and this recipe learns none"));
  EXPECT_EQ(parse_recipe(qat, "r.yaml", {"quant.learned_scale=lsq"}).qat.train.optimizer.scale_lr_factor, 10.0);
  EXPECT_THAT(error_of(qat, {"qat.optimizer.scale_lr_factor=0"}),
              HasSubstr("scale_lr_factor: must be > 0, got 0"));
}

TEST(RecipeErrors, EveryProblemIsReportedAtOnce) {
  std::string e = error_of("model: {type: rnn}\ntrain: {epoch: 1}\ndata: {batch_size: 0}\n");
  EXPECT_THAT(e, HasSubstr("model.type: unknown value 'rnn'"));
  EXPECT_THAT(e, HasSubstr("unknown key 'train.epoch'"));
  EXPECT_THAT(e, HasSubstr("data.batch_size: must be >= 1"));
  EXPECT_EQ(std::count(e.begin(), e.end(), '\n'), 2);
}

TEST(RecipeErrors, MissingFileNamesThePath) {
  try {
    load_recipe("/nonexistent/dir/fashion.yaml");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("recipe '/nonexistent/dir/fashion.yaml' does not exist"));
  }
  try {
    load_recipe(repo("recipes"));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("is not a file"));
  }
}

TEST(RecipeErrors, LoadRecipeReportsTheFilePath) {
  std::string path = ::testing::TempDir() + "recipe_test_bad.yaml";
  std::ofstream(path) << kMinimal << "  optimizer:\n    lr: fast\n";
  try {
    load_recipe(path);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(path + ":6:9: train.optimizer.lr: expected a number"));
  }
  std::remove(path.c_str());
}

// ---- --set overrides -----------------------------------------------------------------------

TEST(RecipeOverrides, ScalarListAndNested) {
  Recipe r = parse_recipe(kMinimal, kSrc,
                          {"train.optimizer.lr=3e-4", "model.hidden=[512,256]", "seed=7",
                           "train.optimizer={type: sgd, momentum: 0.9}", "data.dir=/a=b"});
  EXPECT_EQ(r.train.optimizer.lr, 1e-3);  // the later whole-map override replaced it
  EXPECT_EQ(r.train.optimizer.type, "sgd");
  EXPECT_EQ(r.train.optimizer.momentum, 0.9);
  EXPECT_EQ(r.model.hidden, (std::vector<int64_t>{512, 256}));
  EXPECT_EQ(r.seed, 7);
  EXPECT_EQ(r.data.dir, "/a=b");  // only the first '=' splits
  EXPECT_THAT(r.text, HasSubstr("  hidden: [512, 256]\n"));
  expect_round_trip(r);
  Recipe lr = parse_recipe(kMinimal, kSrc, {"train.optimizer.lr=3e-4"});
  EXPECT_EQ(lr.train.optimizer.lr, 3e-4);
  EXPECT_THAT(lr.text, HasSubstr("    lr: 0.0003\n"));
}

TEST(RecipeOverrides, CreateMissingSectionsAndFixTheFile) {
  Recipe r = parse_recipe("", kSrc, {"model.type=cnn", "train.steps=50"});
  EXPECT_EQ(r.model.type, "cnn");
  EXPECT_EQ(r.train.steps, 50);
  // Applied before validation: an override may repair a bad value in the file.
  Recipe fixed = parse_recipe(kMinimal + "  optimizer: {lr: fast}\n", kSrc, {"train.optimizer.lr=0.01"});
  EXPECT_EQ(fixed.train.optimizer.lr, 0.01);
  // The last of two overrides of one key wins.
  EXPECT_EQ(parse_recipe(kMinimal, kSrc, {"seed=1", "seed=2"}).seed, 2);
}

TEST(RecipeOverrides, BadValueIsBlamedOnTheOverride) {
  EXPECT_THAT(error_of(kMinimal, {"train.optimizer.lr=fast"}),
              HasSubstr("recipes/x.yaml: --set train.optimizer.lr=fast: train.optimizer.lr: "
                        "expected a number, got \"fast\""));
  EXPECT_THAT(error_of(kMinimal, {"model={hidden: [4]}"}),
              HasSubstr("--set model={hidden: [4]}: missing required key 'model.type'"));
  EXPECT_THAT(error_of(kMinimal, {"model.kernel=4"}), HasSubstr("--set model.kernel=4: "
                                                                "model.kernel: must be odd"));
}

TEST(RecipeOverrides, InvalidPathNamesTheNearestKey) {
  EXPECT_THAT(error_of(kMinimal, {"train.optimiser.lr=1"}),
              HasSubstr("recipes/x.yaml: --set train.optimiser.lr=1: unknown key "
                        "'train.optimiser' (did you mean 'train.optimizer'?)"));
  EXPECT_THAT(error_of(kMinimal, {"train.epoch=3"}),
              HasSubstr("unknown key 'train.epoch' (did you mean 'train.epochs'?)"));
  EXPECT_THAT(error_of(kMinimal, {"model.hidden.0=3"}),
              HasSubstr("'model.hidden' holds a list of integers, e.g. [512, 256], not keys; set "
                        "it whole: --set model.hidden=VALUE"));
  EXPECT_THAT(error_of(kMinimal, {"train.epochs.x=3"}), HasSubstr("'train.epochs' holds an integer"));
}

TEST(RecipeOverrides, MalformedOverrides) {
  EXPECT_THAT(error_of(kMinimal, {"foo"}),
              HasSubstr("recipes/x.yaml: --set 'foo': expected KEY=VALUE, e.g. --set "
                        "train.optimizer.lr=3e-4"));
  EXPECT_THAT(error_of(kMinimal, {"=3"}), HasSubstr("--set '=3': expected KEY=VALUE"));
  EXPECT_THAT(error_of(kMinimal, {"train..epochs=3"}), HasSubstr("the key has an empty part"));
  EXPECT_THAT(error_of(kMinimal, {"model.hidden=[1, 2"}),
              HasSubstr("--set model.hidden=[1, 2: the value is malformed YAML"));
  EXPECT_THAT(error_of("train: [1, 2]\n", {"train.epochs=3"}),
              HasSubstr("--set train.epochs=3: 'train' is not a map in the recipe (it is a list)"));
  EXPECT_THAT(error_of("train: 5\n", {"train.epochs=3"}),
              HasSubstr("--set train.epochs=3: 'train' is not a map in the recipe (it is 5)"));
}

TEST(RecipeOverrides, DiffNamesTheChangedKeys) {
  Recipe a = parse_recipe(kMinimal, kSrc);
  Recipe b = parse_recipe(kMinimal, kSrc, {"train.optimizer.lr=3e-4", "model.hidden=[8]"});
  EXPECT_TRUE(a != b);
  EXPECT_THAT(recipe_diff(a, b), ::testing::ElementsAre("model.hidden: [256] -> [8]",
                                                        "train.optimizer.lr: 0.001 -> 0.0003"));
  EXPECT_TRUE(recipe_diff(a, a).empty());
}

// ---- the schema machinery on a test-only schema: the shape of the coming quant: rules --------

struct TPhase {
  double until = 1.0;
  std::string format;
};
struct TRule {
  std::string match;
  std::string weight = "fp32";
  std::vector<std::string> tags;
  std::vector<TPhase> schedule;
};
struct TCodec {
  int64_t block = 32;
  std::string scale = "e8m0";
};
struct TDoc {
  std::vector<TRule> rules;
  TCodec weights, inputs;  // one table, nested twice
  std::vector<double> ratios = {0.5};
  bool flag = false;
};

using schema::field;

const schema::Table& phase_table() {
  static const schema::Table kTable = schema::table<TPhase>({
      field("until", &TPhase::until).gt(0).le(1),
      field("format", &TPhase::format).required().one_of({"mxfp8", "mxfp4"}),
  });
  return kTable;
}

const schema::Table& rule_table() {
  static const schema::Table kTable = schema::table<TRule>({
      field("match", &TRule::match).required(),
      field("weight", &TRule::weight).one_of({"fp32", "mxfp8", "mxfp4"}),
      field("tags", &TRule::tags).one_of({"a", "b"}),
      schema::list("schedule", phase_table(), &TRule::schedule),
      schema::rule<TRule>("schedule", [](const TRule& r) -> std::string {
        for (size_t i = 1; i < r.schedule.size(); ++i)
          if (r.schedule[i].until <= r.schedule[i - 1].until) return "until must increase";
        return "";
      }),
  });
  return kTable;
}

const schema::Table& codec_table() {
  static const schema::Table kTable = schema::table<TCodec>({
      field("block", &TCodec::block).ge(1),
      field("scale", &TCodec::scale).one_of({"e8m0", "ue4m3"}),
  });
  return kTable;
}

const schema::Table& doc_table() {
  static const schema::Table kTable = schema::table<TDoc>({
      schema::list("rules", rule_table(), &TDoc::rules),
      schema::nest("codecs.weights", codec_table(), &TDoc::weights),
      schema::nest("codecs.inputs", codec_table(), &TDoc::inputs),
      field("ratios", &TDoc::ratios).ge(0).le(1),
      field("flag", &TDoc::flag),
  });
  return kTable;
}

const char* kDoc = R"(rules:
  - match: "blocks.*.mlp.*"
    weight: mxfp4
    tags: [a, b]
    schedule:
      - {until: 0.3, format: mxfp8}
      - {until: 1.0, format: mxfp4}
  - match: "*"
codecs:
  inputs: {block: 16, scale: ue4m3}
ratios: [0.25, 1]
)";

TDoc parse_doc(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  TDoc doc;
  schema::parse(doc_table(), doc, yaml, "t.yaml", overrides);
  return doc;
}

std::string doc_error(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    parse_doc(yaml, overrides);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error for:\n" << yaml;
  return "";
}

TEST(RecipeSchema, SequencesOfMapsNestedMapsAndScalarLists) {
  TDoc d = parse_doc(kDoc);
  ASSERT_EQ(d.rules.size(), 2u);
  EXPECT_EQ(d.rules[0].match, "blocks.*.mlp.*");
  EXPECT_EQ(d.rules[0].weight, "mxfp4");
  EXPECT_EQ(d.rules[0].tags, (std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(d.rules[0].schedule.size(), 2u);
  EXPECT_EQ(d.rules[0].schedule[0].until, 0.3);
  EXPECT_EQ(d.rules[0].schedule[1].format, "mxfp4");
  EXPECT_EQ(d.rules[1].weight, "fp32");  // element defaults
  EXPECT_TRUE(d.rules[1].schedule.empty());
  EXPECT_EQ(d.weights.block, 32);  // the same table nested twice, independently
  EXPECT_EQ(d.inputs.block, 16);
  EXPECT_EQ(d.inputs.scale, "ue4m3");
  EXPECT_EQ(d.ratios, (std::vector<double>{0.25, 1.0}));
}

TEST(RecipeSchema, EmitThenParseIsTheIdentity) {
  TDoc d = parse_doc(kDoc);
  std::string text = schema::emit(doc_table(), d);
  EXPECT_THAT(text, HasSubstr("rules:\n  - match: blocks.*.mlp.*\n    weight: mxfp4\n"));
  EXPECT_THAT(text, HasSubstr("    tags: []\n    schedule: []\n"));
  TDoc again = parse_doc(text);
  EXPECT_TRUE(schema::diff(doc_table(), d, again).empty()) << text;
  EXPECT_EQ(schema::emit(doc_table(), again), text);
  again.rules[0].schedule[1].until = 0.9;
  EXPECT_THAT(schema::diff(doc_table(), d, again),
              ::testing::ElementsAre("rules[0].schedule[1].until: 1 -> 0.9"));
  again.rules.pop_back();
  EXPECT_THAT(schema::diff(doc_table(), d, again), ::testing::ElementsAre("rules: 2 entries -> 1"));
}

TEST(RecipeSchema, ErrorsInsideListElementsNameTheEntry) {
  std::string bad = R"(rules:
  - match: "*"
    wieght: mxfp4
  - weight: mxfp5
  - 7
codecs:
  weights: {block: 0}
ratios: [0.5, 2]
)";
  std::string e = doc_error(bad);
  EXPECT_THAT(e, HasSubstr("t.yaml:3:5: unknown key 'rules[0].wieght' (did you mean "
                           "'rules[0].weight'?)"));
  EXPECT_THAT(e, HasSubstr("t.yaml:4:13: rules[1].weight: unknown value 'mxfp5'; known: fp32, "
                           "mxfp8, mxfp4"));
  EXPECT_THAT(e, HasSubstr("t.yaml:4:5: missing required key 'rules[1].match'"));
  EXPECT_THAT(e, HasSubstr("t.yaml:5:5: rules[2]: expected a map of keys, got 7"));
  EXPECT_THAT(e, HasSubstr("t.yaml:7:20: codecs.weights.block: must be >= 1, got 0"));
  EXPECT_THAT(e, HasSubstr("t.yaml:8:15: ratios[1]: must be in [0, 1], got 2"));
  EXPECT_THAT(doc_error("rules:\n  - match: x\n    schedule: [{until: 0.5}]\n"),
              HasSubstr("t.yaml:3:16: missing required key 'rules[0].schedule[0].format'"));
  EXPECT_THAT(doc_error("rules:\n  - match: x\n    tags: [c]\n"),
              HasSubstr("rules[0].tags[0]: unknown value 'c'; known: a, b"));
  EXPECT_THAT(doc_error("rules: {match: x}\n"),
              HasSubstr("t.yaml:1:8: rules: expected a list of maps, one '- key: value' entry "
                        "each, got a map"));
  EXPECT_THAT(doc_error("rules:\n  - match: x\n    schedule: [{until: 0.5, format: mxfp8}, "
                        "{until: 0.4, format: mxfp4}]\n"),
              HasSubstr("t.yaml:3:15: rules[0].schedule: until must increase"));
}

TEST(RecipeSchema, OverridesReachIntoListsOfMaps) {
  TDoc d = parse_doc(kDoc, {"rules[1].weight=mxfp8", "rules.0.schedule[0].until=0.2",
                            "codecs.weights.scale=ue4m3", "ratios=[1]"});
  EXPECT_EQ(d.rules[1].weight, "mxfp8");
  EXPECT_EQ(d.rules[0].schedule[0].until, 0.2);
  EXPECT_EQ(d.weights.scale, "ue4m3");
  EXPECT_EQ(d.ratios, (std::vector<double>{1.0}));
  TDoc whole = parse_doc(kDoc, {"rules=[{match: a}]"});
  ASSERT_EQ(whole.rules.size(), 1u);
  EXPECT_EQ(whole.rules[0].match, "a");
  EXPECT_THAT(doc_error(kDoc, {"rules[5].weight=mxfp4"}),
              HasSubstr("t.yaml: --set rules[5].weight=mxfp4: 'rules' has 2 entries, so index 5 "
                        "does not exist"));
  EXPECT_THAT(doc_error("flag: true\n", {"rules[0].weight=mxfp4"}),
              HasSubstr("--set rules[0].weight=mxfp4: 'rules' is not a list in the recipe (it is "
                        "nothing (an empty value)); set the whole list: --set rules=[...]"));
  EXPECT_THAT(doc_error("rules: {a: 1}\n", {"rules[0].weight=mxfp4"}),
              HasSubstr("'rules' is not a list in the recipe (it is a map)"));
  EXPECT_THAT(doc_error("- 1\n", {"flag=true"}),
              HasSubstr("--set flag=true: the recipe is not a map (it is a list)"));
  EXPECT_THAT(doc_error(kDoc, {"rules.weight=mxfp4"}),
              HasSubstr("'rules' is a list; address an entry by index, e.g. rules[0].match"));
  EXPECT_THAT(doc_error(kDoc, {"rules[0].wieght=mxfp4"}),
              HasSubstr("unknown key 'rules[0].wieght' (did you mean 'rules[0].weight'?)"));
  EXPECT_THAT(doc_error(kDoc, {"rules[1].weight=mxfp5"}),
              HasSubstr("t.yaml: --set rules[1].weight=mxfp5: rules[1].weight: unknown value"));
}

TEST(RecipeSchema, InconsistentTablesAreCaught) {
  TDoc d;
  auto twice = schema::table<TDoc>({field("flag", &TDoc::flag), field("flag", &TDoc::flag)});
  EXPECT_THAT([&] { schema::parse(twice, d, "", "t"); },
              ::testing::ThrowsMessage<Error>(HasSubstr("row 'flag' appears twice")));
  auto clash = schema::table<TDoc>({field("flag", &TDoc::flag),
                                    schema::nest("flag", codec_table(), &TDoc::weights)});
  EXPECT_THAT([&] { schema::parse(clash, d, "", "t"); },
              ::testing::ThrowsMessage<Error>(HasSubstr("'flag' is both a value and a section")));
  auto enum_on_number = schema::table<TDoc>({field("flag", &TDoc::flag).one_of({"x"})});
  EXPECT_THAT([&] { schema::parse(enum_on_number, d, "", "t"); },
              ::testing::ThrowsMessage<Error>(HasSubstr("lists allowed values but is not a string")));
  TCodec c;
  EXPECT_THROW(schema::parse(doc_table(), c, "", "t"), Error);  // a table for another type
}

}  // namespace
}  // namespace mxqat::trainers
