// The training loop on a tiny slice of real Fashion-MNIST: bitwise resume, thread invariance,
// summary/metrics files; and the CLI's answers to bad input (exit code + message, no damage).
#include <gtest/gtest.h>
#include <omp.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "tests/test_util.h"
#include "trainers/io/ckpt.h"
#include "trainers/recipe/recipe.h"
#include "trainers/stages/train_stage.h"
#include "trainers/train/optim.h"
#include "trainers/util/json_write.h"

namespace mxqat::trainers {
namespace {

namespace fs = std::filesystem;
using mxqat::testing::CliResult;
using mxqat::testing::fresh_dir;
using mxqat::testing::run_cli;

const char* kTiny = R"(name: tiny
seed: 3
data: {dataset: fashion_mnist, batch_size: 32, val_size: 200, train_limit: 1200, test_limit: 300}
model: {type: mlp, hidden: [24], activation: relu, dropout: 0.1}
train:
  steps: 24
  optimizer: {type: adamw, lr: 2.0e-3, weight_decay: 0.01}
  lr_schedule: {type: cosine, warmup_steps: 4, min_lr: 1.0e-5}
  grad_clip: 1.0
  label_smoothing: 0.1
  eval_every: 10
  log_every: 5
)";

void expect_same_state(const Checkpoint& a, const Checkpoint& b) {
  ASSERT_EQ(a.step, b.step);
  ASSERT_EQ(a.params.size(), b.params.size());
  for (size_t i = 0; i < a.params.size(); ++i) {
    EXPECT_EQ(a.params[i].first, b.params[i].first);
    EXPECT_TRUE(a.params[i].second.same_bits(b.params[i].second)) << a.params[i].first;
  }
  ASSERT_EQ(a.optimizer_state.size(), b.optimizer_state.size());
  for (size_t i = 0; i < a.optimizer_state.size(); ++i)
    EXPECT_TRUE(a.optimizer_state[i].second.same_bits(b.optimizer_state[i].second))
        << a.optimizer_state[i].first;
}

TEST(Train, StopAndResumeIsBitwiseIdentical) {
  Recipe r = parse_recipe(kTiny, "<tiny>");
  fs::path a = fresh_dir("full"), b = fresh_dir("resumed");
  TrainSummary full = train(r, TrainOptions{a.string(), false, -1});
  ASSERT_TRUE(full.completed);
  TrainSummary part = train(r, TrainOptions{b.string(), false, 7});
  EXPECT_FALSE(part.completed);
  EXPECT_EQ(load_checkpoint((b / "checkpoint.h5").string()).step, 7);
  TrainSummary rest = train(r, TrainOptions{b.string(), true, -1});
  ASSERT_TRUE(rest.completed);
  expect_same_state(load_checkpoint((a / "checkpoint.h5").string()),
                    load_checkpoint((b / "checkpoint.h5").string()));
  EXPECT_EQ(full.test.accuracy, rest.test.accuracy);
  // summary.json carries the promised keys
  const std::string summary = read_file((a / "summary.json").string());
  for (const char* key : {"test_accuracy", "test_loss", "steps", "epochs", "wall_s", "params"})
    EXPECT_NE(summary.find(std::string("\"") + key + "\""), std::string::npos) << key;
  EXPECT_NE(read_file((a / "metrics.jsonl").string()).find("\"split\": \"val\""), std::string::npos);
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST(Train, SameBitsOnOneAndTwoThreads) {
  Recipe r = parse_recipe(kTiny, "<tiny>", {"train.steps=6", "model.hidden=[300]", "data.batch_size=128"});
  fs::path a = fresh_dir("t1"), b = fresh_dir("t2");
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  train(r, TrainOptions{a.string(), false, -1});
  omp_set_num_threads(2);
  train(r, TrainOptions{b.string(), false, -1});
  omp_set_num_threads(saved);
  expect_same_state(load_checkpoint((a / "checkpoint.h5").string()),
                    load_checkpoint((b / "checkpoint.h5").string()));
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST(Train, LearnsOnRealData) {
  Recipe r = parse_recipe(kTiny, "<tiny>", {"train.steps=120", "model.dropout=0.0"});
  fs::path a = fresh_dir("learn");
  TrainSummary s = train(r, TrainOptions{a.string(), false, -1});
  EXPECT_GT(s.test.accuracy, 0.65);  // chance is 0.10
  fs::remove_all(a);
}

// ---- the CLI on bad input -------------------------------------------------------------------

void write(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

void expect_error(const CliResult& r, std::initializer_list<const char*> needles) {
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("error"), std::string::npos) << r.out;
  for (const char* n : needles) EXPECT_NE(r.out.find(n), std::string::npos) << "missing '" << n << "' in: " << r.out;
}

// The learned scale offsets (names ending in weight_scale_offset) step with lr x scale_lr_factor,
// every other parameter with lr: one step of each optimizer on equal gradients.
TEST(Optim, ScaleOffsetsStepWithTheirFactor) {
  for (const char* type : {"adamw", "sgd"}) {
    OptimizerCfg c;
    c.type = type;
    c.lr = 1e-2;
    c.weight_decay = 0.1;
    c.scale_lr_factor = 8.0;  // a power of two: the 8x ratio below is exact for sgd
    layers::NamedParams ps;
    for (const char* name : {"fc.bias", "fc.weight_scale_offset"}) {
      autograd::Var v(autograd::Tensor::zeros({3}), true);
      v.grad() = autograd::Tensor::zeros({3});
      for (int64_t j = 0; j < 3; ++j) v.grad().data()[j] = 0.5f * float(j + 1);
      ps.emplace_back(name, v);
    }
    make_optimizer(c, ps)->step(c.lr);
    for (int64_t j = 0; j < 3; ++j) {
      const float bias = ps[0].second.value().data()[j], offset = ps[1].second.value().data()[j];
      EXPECT_LT(bias, 0.f) << type;
      EXPECT_NEAR(offset, 8.0f * bias, 1e-6f) << type << " element " << j;
    }
  }
}

TEST(Cli, HelpAndVersion) {
  CliResult h = run_cli("--help");
  EXPECT_EQ(h.code, 0);
  EXPECT_NE(h.out.find("train"), std::string::npos);
  EXPECT_EQ(run_cli("--version").code, 0);
  CliResult u = run_cli("trian x.yaml");
  EXPECT_NE(u.code, 0);
  EXPECT_NE(u.out.find("did you mean 'train'"), std::string::npos) << u.out;
}

TEST(Cli, RecipeErrors) {
  fs::path d = fresh_dir("cli_recipe");
  expect_error(run_cli("train " + (d / "nope.yaml").string()), {"nope.yaml"});
  write(d / "bad.yaml", "seed: 1\nmodel: {type: mlp\ntrain: [\n");
  expect_error(run_cli("train " + (d / "bad.yaml").string()), {"bad.yaml", "line"});
  write(d / "typo.yaml", std::string(kTiny) + "trian: {}\n");
  expect_error(run_cli("train " + (d / "typo.yaml").string()), {"trian", "train"});
  expect_error(run_cli("train " + (d / "typo.yaml").string() + " --set train.steps=many"),
               {"train.steps"});
  fs::remove_all(d);
}

TEST(Cli, MissingDatasetSaysWhichPackage) {
  fs::path d = fresh_dir("cli_data");
  write(d / "r.yaml", kTiny);
  expect_error(run_cli("train " + (d / "r.yaml").string() + " --out " + (d / "run").string() +
                       " --set data.dir=" + (d / "empty").string()),
               {"dataset-fashion-mnist"});
  fs::remove_all(d);
}

TEST(Cli, BadCheckpointsAndShapeMismatch) {
  fs::path d = fresh_dir("cli_ckpt");
  write(d / "r.yaml", kTiny);
  const std::string run = (d / "run").string();
  ASSERT_EQ(run_cli("train " + (d / "r.yaml").string() + " --out " + run + " --set train.steps=3 --set train.lr_schedule.warmup_steps=1").code, 0);
  const fs::path ck = fs::path(run) / "checkpoint.h5";
  // eval works on the good one
  CliResult ok = run_cli("eval " + ck.string());
  EXPECT_EQ(ok.code, 0) << ok.out;
  EXPECT_NE(ok.out.find("test_accuracy"), std::string::npos);
  // resume with a different model: refused before anything is written
  const auto before = fs::last_write_time(ck);
  expect_error(run_cli("train " + (d / "r.yaml").string() + " --out " + run +
                       " --resume --set model.hidden=[25]"),
               {"fc1.weight", "[25, 784]", "[24, 784]"});
  EXPECT_EQ(fs::last_write_time(ck), before);
  // truncated copy
  fs::copy_file(ck, d / "trunc.h5");
  fs::resize_file(d / "trunc.h5", fs::file_size(ck) / 2);
  expect_error(run_cli("eval " + (d / "trunc.h5").string()), {"trunc.h5"});
  // not HDF5 at all
  write(d / "junk.h5", "this is not hdf5");
  expect_error(run_cli("eval " + (d / "junk.h5").string()), {"junk.h5"});
  fs::remove_all(d);
}

}  // namespace
}  // namespace mxqat::trainers
