// `mxqat run` end to end on a tiny slice of real Fashion-MNIST, through the real executable:
// stopped after every stage and rerun, it ends with the same report as an uninterrupted run; a
// damaged stage file is redone; bad arguments fail before any work.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "tests/test_util.h"
#include "trainers/util/json_read.h"
#include "trainers/util/json_write.h"

namespace mxqat::trainers {
namespace {

namespace fs = std::filesystem;
using mxqat::testing::fresh_dir;
using mxqat::testing::run_cli;

const char* kTinyRun = R"(name: tinyrun
seed: 11
data: {dataset: fashion_mnist, batch_size: 32, val_size: 200, train_limit: 1000, test_limit: 300}
model: {type: mlp, hidden: [32, 24], activation: relu}
train: {steps: 30, optimizer: {type: adamw, lr: 3.0e-3}, log_every: 10}
quant:
  weight: mxfp4
  input: mxfp4
  schedule: [{until: 0.5, format: mxfp8_e4m3}, {until: 1.0, format: mxfp4}]
  rules: [{match: head, weight: mxfp8_e4m3, input: mxfp8_e4m3}]
qat: {steps: 12, optimizer: {type: adamw, lr: 1.0e-3}, log_every: 4, monitor_every: 0}
ptq: {methods: [rtn, mse, gptq], calib_samples: 64}
compare: {formats: [mxfp4, mxfp8_e4m3]}
)";

std::string recipe_file(const fs::path& d) {
  const std::string p = (d / "tinyrun.yaml").string();
  write_file_atomic(p, kTinyRun);
  return p;
}

// report.json's rows as "codec method value bytes" lines (the numbers, bit for bit as printed).
std::vector<std::string> rows_of(const fs::path& run) {
  const Json j = Json::read((run / "report/report.json").string());
  std::vector<std::string> out;
  for (const Json& r : j.at("rows").array())
    out.push_back(r.at("codec").string() + " " + r.at("method").string() + " " +
                  std::to_string(r.at("value").number()) + " " + std::to_string(r.at("bytes").number()));
  return out;
}

// A tiny gpt run's recipe d/NAME.yaml (seed 3, 8 training steps) on d/{train,val,test}.txt (one
// verse 30, 3 and 4 times); `rest` gives the model and the quant, qat, ptq and compare sections.
std::string gpt_recipe(const fs::path& d, const std::string& name, const std::string& rest) {
  const std::string verse = "In the beginning God created the heaven and the earth.\n";
  for (auto [split, copies] : {std::pair<const char*, int>{"train", 30}, {"val", 3}, {"test", 4}}) {
    std::string text;
    for (int i = 0; i < copies; ++i) text += verse;
    write_file_atomic((d / (std::string(split) + ".txt")).string(), text);
  }
  const std::string recipe = (d / (name + ".yaml")).string();
  write_file_atomic(recipe, "name: " + name + "\nseed: 3\ndata: {dataset: text, dir: " + d.string() +
                                ", batch_size: 4}\ntrain: {steps: 8, optimizer: {type: adamw, lr: 3.0e-3}, "
                                "log_every: 4}\n" + rest);
  return recipe;
}

TEST(Run, StoppedAfterEachStageThenRerunMatchesOneGo) {
  const fs::path d = fresh_dir("run_stages");
  const std::string recipe = recipe_file(d);
  const fs::path staged = d / "staged", whole = d / "whole";
  const char* stages[] = {"baseline", "ptq", "qat", "export", "verify"};
  const char* outputs[] = {"baseline/summary.json", "ptq/summary.json", "qat/summary.json",
                           "export/mxfp4_progressive.h5", "export/alignment.json"};
  for (int i = 0; i < 5; ++i) {
    auto r = run_cli("run " + recipe + " --out " + staged.string() + " --stop-after " + stages[i]);
    ASSERT_EQ(r.code, 0) << stages[i] << ": " << r.out;
    EXPECT_TRUE(fs::exists(staged / outputs[i])) << stages[i];
    if (i < 4) {
      EXPECT_FALSE(fs::exists(staged / outputs[i + 1])) << stages[i];
    }
  }
  auto r = run_cli("run " + recipe + " --out " + staged.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("report/report.md"), std::string::npos) << r.out;
  for (const char* f : {"report.md", "report.csv", "report.json", "report.html"})
    EXPECT_TRUE(fs::exists(staged / "report" / f)) << f;
  ASSERT_EQ(run_cli("run " + recipe + " --out " + whole.string()).code, 0);
  EXPECT_EQ(rows_of(staged), rows_of(whole));

  const Json rep = Json::read((staged / "report/report.json").string());
  std::vector<std::string> methods;
  for (const Json& row : rep.at("rows").array())
    if (row.at("codec").string() == "mxfp4") methods.push_back(row.at("method").string());
  EXPECT_EQ(methods, (std::vector<std::string>{"rtn", "mse", "gptq", "qat_direct", "qat_progressive"}));
  EXPECT_TRUE(rep.at("alignment").at("bitwise_equal").boolean());
  EXPECT_EQ(rep.at("alignment").at("max_abs_diff").number(), 0.0);
  EXPECT_EQ(rep.at("alignment").at("samples").number(), 300);
  EXPECT_EQ(rep.at("qat_loss").string(), "cross-entropy on the labels");
  // The PTQ rtn row and the QAT stage's direct cast are the same computation.
  const Json q = Json::read((staged / "qat/mxfp4_direct/summary.json").string());
  EXPECT_EQ(rep.at("rows").array()[1].at("method").string(), "rtn");
  EXPECT_EQ(rep.at("rows").array()[1].at("value").number(), q.at("direct_cast").number());
  EXPECT_NE(read_file((staged / "report/report.html").string()).find("<svg"), std::string::npos);

  // A damaged stage file means: redo that stage (and the run still completes).
  write_file_atomic((staged / "ptq/summary.json").string(), "{\"rows\": [");
  r = run_cli("run " + recipe + " --out " + staged.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("redoing"), std::string::npos) << r.out;
  EXPECT_EQ(rows_of(staged), rows_of(whole));
  // The export's CLI views.
  r = run_cli("inspect " + (staged / "export/model.h5").string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("compression"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"bitwise_equal\": true"), std::string::npos) << r.out;
  r = run_cli("infer " + (staged / "export/model.h5").string() + " --fast --limit 50");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\"samples\": 50"), std::string::npos) << r.out;
}

// A baseline trained from a recipe with no quant section (as `mxqat train recipes/kjv_gpt.yaml`
// makes it) is exported by the run with the run recipe's policy: "FP32 baseline inferred with the
// codec" is then the rtn row, not the FP32 model again.
TEST(Run, BaselineFromAnFp32RecipeIsExportedWithTheRunPolicy) {
  const fs::path d = fresh_dir("run_fp32_baseline");
  const std::string recipe = recipe_file(d);
  const std::string text = kTinyRun;
  const std::string fp32 = (d / "fp32.yaml").string();
  write_file_atomic(fp32, text.substr(0, text.find("quant:")));
  const fs::path run = d / "run";
  auto r = run_cli("train " + fp32 + " --out " + (run / "baseline").string());
  ASSERT_EQ(r.code, 0) << r.out;
  r = run_cli("run " + recipe + " --out " + run.string());
  ASSERT_EQ(r.code, 0) << r.out;
  const Json rep = Json::read((run / "report/report.json").string());
  double rtn = -1;
  for (const Json& row : rep.at("rows").array())
    if (row.at("codec").string() == "mxfp4" && row.at("method").string() == "rtn") rtn = row.at("value").number();
  const Json al = Json::read((run / "export/alignment.json").string());
  EXPECT_EQ(al.at("matrix").at("fp32_codec").number(), rtn);
  r = run_cli("inspect " + (run / "export/baseline_rtn.h5").string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("mxfp4"), std::string::npos) << r.out;
}

// A gpt run (PTQ rtn, awq+gptq, smoothquant+rtn): the report step writes the samples (the same
// prompt and seed through the baseline, its RTN export and both QAT exports) and the KV-cache
// table, and the report shows them;
// `compare` keeps them while the exports are unchanged and writes the same again without them.
TEST(Run, GptRunReportsSamplesAndKvCache) {
  const fs::path d = fresh_dir("run_gpt");
  const std::string recipe =
      gpt_recipe(d, "tinygpt", "model: {type: gpt, layers: 1, d_model: 48, heads: 2, context: 16, mlp_hidden: 32}\n"
                    "quant: {weight: mxfp4, input: mxfp4,\n"
                    "        schedule: [{until: 0.5, format: mxfp8_e4m3}, {until: 1.0, format: mxfp4}]}\n"
                    "qat: {steps: 6, optimizer: {type: adamw, lr: 1.0e-3}, log_every: 3, monitor_every: 3}\n"
                    "ptq: {methods: [rtn, awq+gptq, smoothquant+rtn], calib_samples: 8}\n"
                    "compare: {formats: [mxfp4]}\n");
  const fs::path run = d / "run";
  auto r = run_cli("run " + recipe + " --out " + run.string() + " --threads 1");
  ASSERT_EQ(r.code, 0) << r.out;
  // the smoothed methods are rows of their own in the report, each with its smoothing recorded
  const std::vector<std::string> rows = rows_of(run);
  for (const char* m : {"mxfp4 awq+gptq ", "mxfp4 smoothquant+rtn "})
    EXPECT_TRUE(std::any_of(rows.begin(), rows.end(), [&](const std::string& x) { return x.rfind(m, 0) == 0; })) << m;
  const Json awq = Json::read((run / "ptq/mxfp4_awq+gptq.json").string());
  EXPECT_EQ(awq.at("smoothing").array().size(), 5u);  // attn_norm, v, mlp_norm, up, norm
  const std::string samples_text = read_file((run / "sample/samples.json").string());
  const Json samples = Json::parse(samples_text, "samples.json");
  // the test split's second line: context / 2 bytes, cut at a word
  EXPECT_EQ(samples.at("prompt").string(), "In the ");
  EXPECT_EQ(samples.at("seed").number(), 3);
  std::vector<std::string> models;
  for (const Json& s : samples.at("samples").array()) {
    models.push_back(s.at("model").string() + " " + s.at("file").string());
    EXPECT_EQ(s.at("text").string().size(), 160u) << s.at("model").string();
  }
  EXPECT_EQ(models, (std::vector<std::string>{"baseline (FP32) baseline/checkpoint.h5",
                                              "baseline, round to nearest export/baseline_rtn.h5",
                                              "QAT mxfp4_direct export/mxfp4_direct.h5",
                                              "QAT mxfp4_progressive export/mxfp4_progressive.h5"}));
  const Json kv = Json::read((run / "sample/kv_cache.json").string());
  EXPECT_EQ(kv.at("windows").number(), 13);  // (4 x 56 - 1) / 16 test windows, fewer than 32
  ASSERT_EQ(kv.at("settings").array().size(), 3u);
  EXPECT_EQ(kv.at("settings").array()[1].at("kv_cache").string(), "mxfp8_e4m3");
  const std::string html = read_file((run / "report/report.html").string());
  EXPECT_NE(html.find("<span class=\"prompt\">In the </span>"), std::string::npos);
  EXPECT_NE(html.find("id=\"kv-cache\""), std::string::npos);
  EXPECT_NE(html.find("id=\"heat-sqnr-w\""), std::string::npos);
  // compare keeps the files while the exports are unchanged, and writes the same without them
  const auto stamp = fs::last_write_time(run / "sample/samples.json");
  ASSERT_EQ(run_cli("compare " + run.string()).code, 0);
  EXPECT_EQ(fs::last_write_time(run / "sample/samples.json"), stamp);
  fs::remove_all(run / "sample");
  r = run_cli("compare " + run.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(read_file((run / "sample/samples.json").string()), samples_text);
}

// A gpt run under quant.rotation: hadamard (seeded signs) at NVFP4 (its global scale taken from
// the rotated operands): PTQ (rtn, awq+gptq, smoothquant+rtn with its alpha searched), QAT direct
// and with learned scales, export and verify, which fails the run unless the export infers
// bitwise like training; the export records the rotation and stores rotated weights, and the
// formats whose runtimes do not rotate refuse it. The smoothed and rotated model the PTQ stage
// saved (ptq.save_models) and the learned-scale QAT export verify bitwise on every test window.
const char* kRotatedGpt = R"(model: {type: gpt, layers: 1, d_model: 64, heads: 2, context: 16, mlp_hidden: 96}
quant: {weight: nvfp4, input: nvfp4, rotation: hadamard, rotation_seed: 5}
qat: {steps: 4, optimizer: {type: adamw, lr: 1.0e-3}, log_every: 2, monitor_every: 0}
ptq: {methods: [rtn, awq+gptq, smoothquant+rtn], calib_samples: 8, save_models: true, smoothquant_grid: 4}
compare: {formats: [nvfp4], qat_progressive: false, qat_lsq: true}
)";

TEST(Run, RotatedGptRunVerifiesBitwise) {
  const fs::path d = fresh_dir("run_rot");
  const std::string recipe = gpt_recipe(d, "rotgpt", kRotatedGpt);
  const fs::path run = d / "run";
  auto r = run_cli("run " + recipe + " --out " + run.string() + " --threads 2 --stop-after verify");
  ASSERT_EQ(r.code, 0) << r.out;
  const Json a = Json::read((run / "export/alignment.json").string());
  EXPECT_TRUE(a.at("bitwise_equal").boolean());
  r = run_cli("inspect " + (run / "export/model.h5").string());
  ASSERT_EQ(r.code, 0) << r.out;
  r = run_cli("export " + (run / "export/model.h5").string() + " --format gguf --out " + (d / "m.gguf").string());
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("rotation"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(d / "m.gguf"));
  // The learned-scale QAT run is a variant of its own, exported and verified like the others.
  const Json q = Json::read((run / "qat/summary.json").string());
  ASSERT_EQ(q.at("variants").array().size(), 2u);
  EXPECT_EQ(q.at("variants").array()[1].at("id").string(), "nvfp4_lsq");
  EXPECT_TRUE(q.at("variants").array()[1].at("lsq").boolean());
  EXPECT_NE(read_file((run / "qat/nvfp4_lsq/recipe.yaml").string()).find("learned_scale: lsq"), std::string::npos);
  r = run_cli("compare " + run.string());  // the report shows it as a row of its own
  ASSERT_EQ(r.code, 0) << r.out;
  const std::vector<std::string> rows = rows_of(run);
  EXPECT_TRUE(std::any_of(rows.begin(), rows.end(), [](const std::string& x) { return x.rfind("nvfp4 qat_lsq ", 0) == 0; }));
  EXPECT_TRUE(std::any_of(rows.begin(), rows.end(), [](const std::string& x) { return x.rfind("nvfp4 qat_direct ", 0) == 0; }));
  // Saved: the models of the rtn methods (awq+gptq's scales are not the rule's: not saved).
  EXPECT_TRUE(fs::exists(run / "ptq/models/nvfp4_rtn.h5"));
  EXPECT_FALSE(fs::exists(run / "ptq/models/nvfp4_awq+gptq.h5"));
  const Json sq = Json::read((run / "ptq/nvfp4_smoothquant+rtn.json").string());
  for (const std::string& model : {(run / "ptq/models/nvfp4_smoothquant+rtn.h5").string(),
                                   (run / "export/nvfp4_lsq.h5").string()}) {
    const std::string out = (d / "check.h5").string();
    if (model.find("/ptq/") != std::string::npos) {
      r = run_cli("export " + model + " --out " + out);
      ASSERT_EQ(r.code, 0) << r.out;
    } else {
      fs::copy_file(model, out, fs::copy_options::overwrite_existing);
    }
    r = run_cli("verify " + out + " --out " + (d / "check.json").string());
    ASSERT_EQ(r.code, 0) << r.out;
    const Json v = Json::read((d / "check.json").string());
    EXPECT_TRUE(v.at("bitwise_equal").boolean()) << model;
    EXPECT_EQ(v.at("samples").number(), 13) << model;  // every test window
    fs::remove(out);
  }
  // The saved model evaluates (fake-quant, its recipe's rotation) to the PTQ row's value.
  r = run_cli("eval " + (run / "ptq/models/nvfp4_smoothquant+rtn.h5").string());
  ASSERT_EQ(r.code, 0) << r.out;
  char want[32];
  std::snprintf(want, sizeof want, "%.4f", sq.at("value").number());
  EXPECT_NE(r.out.find(want), std::string::npos) << want << " in " << r.out;
}

TEST(Run, BadArgumentsFailBeforeAnyWork) {
  const fs::path d = fresh_dir("run_bad");
  const std::string recipe = recipe_file(d);
  auto r = run_cli("run " + recipe + " --out " + (d / "x").string() + " --stop-after lunch");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("--stop-after takes a stage"), std::string::npos) << r.out;
  r = run_cli("run " + recipe + " --out " + (d / "y").string() + " --set compare.formats=[mxfp5]");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("mxfp5"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("mxfp4"), std::string::npos) << r.out;  // lists the known codecs
  EXPECT_FALSE(fs::exists(d / "y" / "baseline"));
  r = run_cli("run " + recipe + " --out " + (d / "z").string() + " --set ptq.methods=[awq]");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("unknown PTQ method 'awq'"), std::string::npos) << r.out;
  r = run_cli("compare " + (d / "nothing").string());
  EXPECT_NE(r.code, 0);
  r = run_cli("verify " + (d / "nothing.h5").string());
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("nothing.h5"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace mxqat::trainers
