// The qat stage on a tiny slice of real Fashion-MNIST: summary and metrics, bitwise resume,
// errors before the first step for bad policies/schedules/baselines, and the NaN/Inf guard.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include <omp.h>

#include "layers/models.h"
#include "quant/codec/gemm/mx_gemm.h"
#include "quant/policy/policy.h"
#include "tests/test_util.h"
#include "trainers/data/data.h"
#include "trainers/data/evaluate.h"
#include "trainers/io/ckpt.h"
#include "trainers/model/policy_model.h"
#include "trainers/runtime/infer.h"
#include "trainers/stages/export_stage.h"
#include "trainers/report/report_telemetry.h"
#include "trainers/stages/qat.h"
#include "trainers/stages/train_stage.h"
#include "trainers/train/stage_run.h"
#include "trainers/util/json_write.h"

namespace mxqat::trainers {
namespace {

namespace fs = std::filesystem;
using mxqat::testing::fresh_dir;

const char* kTinyQat = R"(name: tinyq
seed: 5
data: {dataset: fashion_mnist, batch_size: 32, val_size: 200, train_limit: 1200, test_limit: 300}
model: {type: mlp, hidden: [48, 32], activation: relu}
train:
  steps: 60
  optimizer: {type: adamw, lr: 3.0e-3}
quant:
  weight: mxfp4
  input: mxfp4
  schedule:
    - {until: 0.3, format: mxfp8_e4m3}
    - {until: 0.6, format: mxfp6_e2m3}
    - {until: 1.0, format: mxfp4}
  rules:
    - {match: fc1, weight: mxfp8_e4m3, input: mxfp8_e4m3}
    - {match: head, weight: mxfp8_e4m3, input: none}
qat:
  steps: 20
  optimizer: {type: adamw, lr: 1.0e-3}
  monitor_every: 5
  eval_every: 10
  log_every: 5
)";

void expect_same_params_of(const std::string& a, const std::string& b) {
  Checkpoint ka = load_checkpoint(a), kb = load_checkpoint(b);
  ASSERT_EQ(ka.params.size(), kb.params.size());
  for (size_t i = 0; i < ka.params.size(); ++i)
    EXPECT_TRUE(ka.params[i].second.same_bits(kb.params[i].second)) << ka.params[i].first;
}

// One baseline for the whole suite (a few seconds).
const std::string& baseline() {
  static const std::string path = [] {
    fs::path d = fresh_dir("baseline");
    train(parse_recipe(kTinyQat, "<tinyq>"), TrainOptions{d.string(), false, -1});
    return (d / "checkpoint.h5").string();
  }();
  return path;
}

// quant.product mx_native (docs/formats.md §14.2) end to end: QAT through the progressive
// schedule (fp32_chain in the mxfp8 phase, mx_native after), the choice recorded in the checkpoint
// and the export, verify bitwise, the fast path bitwise the reference path. (On this small MLP
// both products happen to give the same bits: every partial sum is exact in float32; qgemm's
// tests show where they differ.)
TEST(Qat, MxNativeProductTrainsExportsAndVerifiesBitwise) {
  const std::vector<std::string> mx = {"quant.product=mx_native", "quant.rules=[]"};
  fs::path d = fresh_dir("mx_native");
  QatSummary s = qat(parse_recipe(kTinyQat, "<tinyq>", mx), QatOptions{(d / "mx").string(), baseline(), false, -1});
  ASSERT_TRUE(s.completed);
  const std::string ckpt = (d / "mx" / "checkpoint.h5").string();
  EXPECT_NE(load_checkpoint(ckpt).meta.at("policy").find("product mx_native\n"), std::string::npos);
  const std::string out = (d / "mx.h5").string();
  const ExportModel m = export_checkpoint(ckpt, out);
  EXPECT_NE(m.policy_text.find("product mx_native\n"), std::string::npos);
  const Verification v = verify_export(out, VerifyOptions{});
  EXPECT_TRUE(v.bitwise_equal) << v.json;
  EXPECT_EQ(v.samples, 300);
  InferenceModel ref = load_inference(m, out), fast = load_inference(m, out, InferPath::kFast);
  EXPECT_EQ(fast.fast.size(), 3u);
  for (const auto& q : fast.fast) EXPECT_EQ(q->describe().rfind("mx_native", 0), 0u) << q->describe();
  const Splits sp = load_fashion_mnist(ref.recipe.data, 3);
  const autograd::Tensor a = predict(*ref.model, sp.test), b = predict(*fast.model, sp.test);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
  // Training's final-phase specs (as verify attaches them) run the mx_native product.
  const auto plan = attach_final_policy(*ref.model, quant::ResolvedPolicy::from_text(m.policy_text));
  for (const char* layer : {"fc1", "fc2", "head"}) {
    EXPECT_EQ(plan->quantizer(layer)->spec().product, quant::Product::kMxNative) << layer;
    EXPECT_EQ(ref.plan->quantizer(layer)->spec().product, quant::Product::kMxNative) << layer;
  }
  // A recipe whose final codecs mx_native cannot serve is refused before training.
  mxqat::testing::expect_error(
      [&] { qat(parse_recipe(kTinyQat, "<tinyq>", {"quant.product=mx_native"}), QatOptions{(d / "bad").string(), baseline(), false, -1}); },
      {"mx_native", "'fc1'", "mxfp8_e4m3"});
  // MXFP6 E3M2 (wide operands: int16 block integers): fc2 in E3M2, fc1 E3M2
  // weights with MXFP4 inputs; trains, verifies bitwise, the fast path equals the reference.
  const std::vector<std::string> e3m2 = {
      "quant.product=mx_native", "quant.weight=mxfp6_e3m2", "quant.input=mxfp6_e3m2", "quant.schedule=[]",
      "quant.rules=[{match: fc1, weight: mxfp6_e3m2, input: mxfp4}, {match: head, weight: mxfp4, input: mxfp4}]"};
  ASSERT_TRUE(qat(parse_recipe(kTinyQat, "<tinyq>", e3m2), QatOptions{(d / "e3m2").string(), baseline(), false, -1}).completed);
  const std::string out6 = (d / "e3m2.h5").string();
  const ExportModel m6 = export_checkpoint((d / "e3m2" / "checkpoint.h5").string(), out6);
  const Verification v6 = verify_export(out6, VerifyOptions{});
  EXPECT_TRUE(v6.bitwise_equal) << v6.json;
  InferenceModel ref6 = load_inference(m6, out6), fast6 = load_inference(m6, out6, InferPath::kFast);
  ASSERT_EQ(fast6.fast.size(), 3u);
  EXPECT_EQ(fast6.fast[0]->describe(), "mx_native w=mxfp6_e3m2 a=mxfp4");
  const autograd::Tensor a6 = predict(*ref6.model, sp.test), b6 = predict(*fast6.model, sp.test);
  ASSERT_EQ(a6.size(), b6.size());
  EXPECT_EQ(std::memcmp(a6.data(), b6.data(), a6.size() * sizeof(float)), 0);
}

TEST(Qat, SummaryPhasesAndTelemetry) {
  Recipe r = parse_recipe(kTinyQat, "<tinyq>");
  fs::path d = fresh_dir("run");
  QatSummary s = qat(r, QatOptions{d.string(), baseline(), false, -1});
  ASSERT_TRUE(s.completed);
  ASSERT_EQ(s.phases.size(), 3u);  // fc2 goes 8 -> 6 -> 4 bits
  EXPECT_EQ(s.phases[0].format, "mxfp8_e4m3");
  EXPECT_EQ(s.phases[1].format, "mxfp6_e2m3");
  EXPECT_EQ(s.phases[2].format, "mxfp4");
  EXPECT_EQ(s.phases[0].step, 6);
  EXPECT_EQ(s.phases[2].metric, s.qat);
  for (const auto& p : s.phases) EXPECT_TRUE(std::isfinite(p.metric));
  EXPECT_GT(s.baseline, 0.5);
  EXPECT_DOUBLE_EQ(s.recovered, recovered_share(s.baseline, s.direct_cast, s.qat));
  const std::string summary = read_file((d / "summary.json").string());
  for (const char* key : {"\"metric\": \"test_accuracy\"", "\"baseline\"", "\"direct_cast\"", "\"qat\"",
                          "\"recovered\"", "\"phases\"", "\"until\"", "\"format\""})
    EXPECT_NE(summary.find(key), std::string::npos) << key;
  const std::string metrics = read_file((d / "metrics.jsonl").string());
  EXPECT_NE(metrics.find("\"event\": \"phase\""), std::string::npos);
  EXPECT_NE(metrics.find("\"monitor\": \"fc2.weight\""), std::string::npos);
  EXPECT_NE(metrics.find("\"monitor\": \"fc2.input\""), std::string::npos);
  EXPECT_NE(metrics.find("\"sqnr_db\""), std::string::npos);
  // the checkpoint carries the resolved policy
  Checkpoint k = load_checkpoint((d / "checkpoint.h5").string());
  EXPECT_EQ(k.meta.at("stage"), "qat");
  EXPECT_EQ(quant::ResolvedPolicy::from_text(k.meta.at("policy")).at("fc2").weight, "mxfp4");
  // `mxqat eval` evaluates a QAT checkpoint in fake-quant mode, as it was trained
  auto r2 = mxqat::testing::run_cli("eval " + (d / "checkpoint.h5").string());
  ASSERT_EQ(r2.code, 0) << r2.out;
  EXPECT_NE(r2.out.find("\"fake_quant\": true"), std::string::npos) << r2.out;
  const size_t at = r2.out.find("\"test_accuracy\": ");
  ASSERT_NE(at, std::string::npos);
  EXPECT_NEAR(std::stod(r2.out.substr(at + 17)), s.qat, 1e-9);
}

// Every monitor record carries the warnings the run logged for it; the report reads them back
// with their step and tensor, and for a file without them (written before they were recorded)
// re-runs the monitor's check on the recorded statistics, which gives the same list.
TEST(Qat, WarningsAreRecordedWithStepAndTensor) {
  Recipe r = parse_recipe(kTinyQat, "<tinyq>", {"qat.steps=10", "qat.sqnr_warn_db=100", "qat.eval_every=0"});
  fs::path d = fresh_dir("warnings");
  ASSERT_TRUE(qat(r, QatOptions{d.string(), baseline(), false, -1}).completed);
  const auto recorded = read_warnings(d.string(), "v");
  const Telemetry t = read_telemetry(d.string());
  ASSERT_EQ(t.steps, (std::vector<int64_t>{5, 10}));
  ASSERT_EQ(t.tensors.size(), 5u);  // fc1, fc2: weight and input; head: weight only
  EXPECT_EQ(t.tensors[0].name, "fc1.weight");
  ASSERT_EQ(recorded.size(), 10u);  // every tensor at both steps is below 100 dB
  EXPECT_EQ(recorded[0].step, 5);
  EXPECT_EQ(recorded[0].tensor, "fc1.weight");
  EXPECT_EQ(recorded[9].step, 10);
  EXPECT_NE(recorded[0].message.find("below the 100 dB threshold"), std::string::npos) << recorded[0].message;
  std::string text = read_file((d / "metrics.jsonl").string());
  size_t records = 0;  // the run wrote them: one list per monitor record, each with its message
  for (size_t a = 0; (a = text.find("\"warnings\": [\"tensor \\\"", a)) != std::string::npos; ++a) ++records;
  EXPECT_EQ(records, 10u);
  for (size_t a = 0; (a = text.find(", \"warnings\": [", a)) != std::string::npos;) {
    const size_t e = text.find(']', a);
    text.erase(a, e + 1 - a);
  }
  write_file_atomic((d / "metrics.jsonl").string(), text);
  const auto rerun = read_warnings(d.string(), "v");
  ASSERT_EQ(rerun.size(), recorded.size());
  for (size_t i = 0; i < rerun.size(); ++i) {
    EXPECT_EQ(rerun[i].step, recorded[i].step);
    EXPECT_EQ(rerun[i].tensor, recorded[i].tensor);
    EXPECT_EQ(rerun[i].message, recorded[i].message);
  }
}

TEST(Qat, StaticPolicyPhaseIsNamedAfterTheDefaultLayers) {
  // fc1 and head are singled out by rules at mxfp8; the one phase is the defaults' mxfp4
  Recipe r = parse_recipe(kTinyQat, "<tinyq>", {"quant.schedule=[]", "qat.steps=4"});
  fs::path d = fresh_dir("static");
  QatSummary s = qat(r, QatOptions{d.string(), baseline(), false, -1});
  ASSERT_EQ(s.phases.size(), 1u);
  EXPECT_EQ(s.phases[0].format, "mxfp4");
  EXPECT_EQ(s.phases[0].metric, s.qat);
}

TEST(Qat, StopAndResumeIsBitwiseIdentical) {
  Recipe r = parse_recipe(kTinyQat, "<tinyq>");
  fs::path a = fresh_dir("full"), b = fresh_dir("part");
  QatSummary full = qat(r, QatOptions{a.string(), baseline(), false, -1});
  QatSummary part = qat(r, QatOptions{b.string(), baseline(), false, 9});  // inside phase 1
  EXPECT_FALSE(part.completed);
  QatSummary rest = qat(r, QatOptions{b.string(), baseline(), true, -1});
  ASSERT_TRUE(rest.completed);
  Checkpoint ka = load_checkpoint((a / "checkpoint.h5").string());
  Checkpoint kb = load_checkpoint((b / "checkpoint.h5").string());
  ASSERT_EQ(ka.params.size(), kb.params.size());
  for (size_t i = 0; i < ka.params.size(); ++i)
    EXPECT_TRUE(ka.params[i].second.same_bits(kb.params[i].second)) << ka.params[i].first;
  for (size_t i = 0; i < ka.optimizer_state.size(); ++i)
    EXPECT_TRUE(ka.optimizer_state[i].second.same_bits(kb.optimizer_state[i].second));
  EXPECT_EQ(full.qat, rest.qat);
  for (size_t i = 0; i < full.phases.size(); ++i) EXPECT_EQ(full.phases[i].metric, rest.phases[i].metric);
}

// qat.distill: the loss pulls the fake-quant model toward the FP32 baseline's distribution.
TEST(Qat, DistillationFromTheBaseline) {
  // Unquantized, the student starts equal to its teacher: pure distillation has loss 0 and zero
  // gradients, so the weights stay bit-identical to the baseline.
  const std::vector<std::string> fp32 = {"quant.weight=none", "quant.input=none", "quant.rules=[]",
                                         "quant.schedule=[]", "qat.steps=5", "qat.monitor_every=0"};
  std::vector<std::string> o = fp32;
  o.push_back("qat.distill={weight: 1.0, temperature: 2.0}");
  fs::path d = fresh_dir("kd_fp32");
  const Recipe r = parse_recipe(kTinyQat, "<tinyq>", o);
  ASSERT_TRUE(qat(r, QatOptions{d.string(), baseline(), false, -1}).completed);
  Checkpoint base = load_checkpoint(baseline()), k = load_checkpoint((d / "checkpoint.h5").string());
  ASSERT_EQ(base.params.size(), k.params.size());
  for (size_t i = 0; i < k.params.size(); ++i)
    EXPECT_TRUE(k.params[i].second.same_bits(base.params[i].second)) << k.params[i].first;
  EXPECT_NE(read_file((d / "metrics.jsonl").string()).find("\"loss\": 0,"), std::string::npos);
  // Under MXFP4 it trains, differently from labels alone, and resumes bitwise.
  Recipe kd = parse_recipe(kTinyQat, "<tinyq>", {"qat.distill={weight: 0.5}"});
  fs::path a = fresh_dir("kd_full"), b = fresh_dir("kd_part"), c = fresh_dir("kd_none");
  QatSummary full = qat(kd, QatOptions{a.string(), baseline(), false, -1});
  EXPECT_FALSE(qat(kd, QatOptions{b.string(), baseline(), false, 12}).completed);
  QatSummary rest = qat(kd, QatOptions{b.string(), baseline(), true, -1});
  ASSERT_TRUE(rest.completed);
  EXPECT_EQ(full.qat, rest.qat);
  Checkpoint ka = load_checkpoint((a / "checkpoint.h5").string());
  Checkpoint kb = load_checkpoint((b / "checkpoint.h5").string());
  for (size_t i = 0; i < ka.params.size(); ++i)
    EXPECT_TRUE(ka.params[i].second.same_bits(kb.params[i].second)) << ka.params[i].first;
  qat(parse_recipe(kTinyQat, "<tinyq>"), QatOptions{c.string(), baseline(), false, -1});
  Checkpoint kc = load_checkpoint((c / "checkpoint.h5").string());
  EXPECT_FALSE(ka.params[0].second.same_bits(kc.params[0].second));
}

// quant.learned_scale lsq: each quantized layer gains its offsets; they start at 0 (the direct cast
// is the rule's own, bit for bit), train, travel in the checkpoint and resume bitwise; the export
// packs with the learned scales and verifies bitwise on every test sample, for MX (through the
// progressive schedule), NVFP4 and INT4 (groups of 32).
TEST(Qat, LearnedScalesTrainExportAndVerifyBitwise) {
  // (a learning rate at which the offsets cross MX's rounding threshold 0.5 within 20 steps)
  const std::string lr = "qat.optimizer={type: adamw, lr: 5.0e-2}";
  const std::vector<std::vector<std::string>> cases = {
      {lr},
      {lr, "quant.schedule=[]", "quant.rules=[]", "quant.weight=nvfp4", "quant.input=nvfp4"},
      {lr, "quant.schedule=[]", "quant.rules=[]", "quant.weight=int4_sym", "quant.input=none", "quant.group_size=32"}};
  for (const auto& base_overrides : cases) {
    std::vector<std::string> o = base_overrides;
    const std::string what = o.size() == 1 ? "mxfp4 progressive" : o[3];
    fs::path d = fresh_dir("lsq");
    const QatSummary plain = qat(parse_recipe(kTinyQat, "<tinyq>", o), QatOptions{(d / "plain").string(), baseline(), false, -1});
    o.push_back("quant.learned_scale=lsq");
    const Recipe r = parse_recipe(kTinyQat, "<tinyq>", o);
    const QatSummary s = qat(r, QatOptions{(d / "lsq").string(), baseline(), false, -1});
    ASSERT_TRUE(s.completed) << what;
    EXPECT_EQ(s.direct_cast, plain.direct_cast) << what;  // offsets 0: the codecs' own scales
    const std::string ckpt = (d / "lsq" / "checkpoint.h5").string();
    const Checkpoint k = load_checkpoint(ckpt), kp = load_checkpoint((d / "plain" / "checkpoint.h5").string());
    EXPECT_FALSE(k.params[0].second.same_bits(kp.params[0].second)) << what;  // another training
    EXPECT_NE(k.meta.at("policy").find("learned_scale lsq\n"), std::string::npos) << what;
    int offsets = 0, moved = 0;
    for (const auto& [name, t] : k.params) {
      if (name.find("weight_scale_offset") == std::string::npos) continue;
      ++offsets;
      for (int64_t i = 0; i < t.size(); ++i) moved += t[i] != 0.f;
    }
    EXPECT_EQ(offsets, 3) << what;  // fc1, fc2, head
    EXPECT_GT(moved, 0) << what;
    if (base_overrides.size() == 1) {  // resumed mid-run: the same bits
      qat(r, QatOptions{(d / "part").string(), baseline(), false, 9});
      qat(r, QatOptions{(d / "part").string(), baseline(), true, -1});
      expect_same_params_of(ckpt, (d / "part" / "checkpoint.h5").string());
    }
    const std::string out = (d / "lsq.h5").string();
    export_checkpoint(ckpt, out);
    const Verification v = verify_export(out, VerifyOptions{});
    EXPECT_TRUE(v.bitwise_equal) << what << ": " << v.json;
    EXPECT_EQ(v.samples, 300) << what;
    // The packed scales are the learned ones: exported without them, the export would differ.
    const ExportModel m = read_export(out);
    Checkpoint zero = k;
    for (auto& [name, t] : zero.params)
      if (name.find("weight_scale_offset") != std::string::npos) t.fill(0.f);
    const ExportModel m0 = make_export(zero, ckpt, m.policy_text);
    bool differs = false;
    for (size_t i = 0; i < m.tensors.size(); ++i)
      differs = differs || (m.tensors[i].quantized && m.tensors[i].packed.scale_codes != m0.tensors[i].packed.scale_codes) ||
                (m.tensors[i].quantized && m.tensors[i].packed.scales != m0.tensors[i].packed.scales);
    EXPECT_TRUE(differs) << what;
    // An FP32 checkpoint has no offsets: under the learned-scale policy it packs with the codecs'
    // own scales, as without learned scales.
    std::string plain_policy = m.policy_text;
    plain_policy.erase(plain_policy.find("learned_scale lsq\n"), std::string("learned_scale lsq\n").size());
    const Checkpoint fp32 = load_checkpoint(baseline());
    const ExportModel a = make_export(fp32, baseline(), m.policy_text), b = make_export(fp32, baseline(), plain_policy);
    for (size_t i = 0; i < a.tensors.size(); ++i)
      if (a.tensors[i].quantized) {
        EXPECT_EQ(a.tensors[i].packed.codes, b.tensors[i].packed.codes) << what;
        EXPECT_EQ(a.tensors[i].packed.scale_codes, b.tensors[i].packed.scale_codes) << what;
      }
  }
  // Refused before training: an asymmetric INT codec, and lsq without any weight codec.
  fs::path d = fresh_dir("lsq_bad");
  mxqat::testing::expect_error([&] {
    qat(parse_recipe(kTinyQat, "<tinyq>", {"quant.learned_scale=lsq", "quant.rules=[]", "quant.schedule=[]",
                                           "quant.weight=int4_asym"}), QatOptions{(d / "a").string(), baseline(), false, -1});
  }, {"learned_scale", "int4_asym", "symmetric"});
  mxqat::testing::expect_error([&] {
    qat(parse_recipe(kTinyQat, "<tinyq>", {"quant.learned_scale=lsq", "quant.rules=[]", "quant.schedule=[]",
                                           "quant.weight=none"}), QatOptions{(d / "b").string(), baseline(), false, -1});
  }, {"learned_scale", "no effect"});
  mxqat::testing::expect_error([&] { parse_recipe(kTinyQat, "<tinyq>", {"quant.learned_scale=lsqq"}); },
                               {"learned_scale", "lsqq"});
}

void expect_refused(const std::vector<std::string>& overrides, const std::string& from,
                    std::initializer_list<const char*> needles) {
  fs::path d = fresh_dir("refused");
  try {
    qat(parse_recipe(kTinyQat, "<tinyq>", overrides), QatOptions{d.string(), from, false, -1});
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    for (const char* n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(d / "checkpoint.h5"));  // refused before the first step
  fs::remove_all(d);
}

TEST(Qat, BadInputIsRefusedBeforeTraining) {
  expect_refused({"quant.rules[0].weight=mxfp5"}, baseline(), {"mxfp5", "fc1", "mxfp4"});
  expect_refused({"quant.rules[1].match=blocks.*"}, baseline(), {"blocks.*", "fc1", "head"});
  expect_refused({"quant.schedule=[{until: 0.6, format: mxfp8_e4m3}, {until: 0.4, format: mxfp4}, "
                  "{until: 1.0, format: mxfp4}]"},
                 baseline(), {"phase"});
  expect_refused({"quant.schedule=[{until: 0.5, format: mxfp8_e4m3}, {until: 0.9, format: mxfp4}]"},
                 baseline(), {"1.0"});
  expect_refused({"model.hidden=[40, 32]"}, baseline(), {"fc1.weight", "[40, 784]", "[48, 784]"});
  expect_refused({}, "", {"--from"});
  expect_refused({"qat.distill={weight: 1.5}"}, baseline(), {"qat.distill.weight", "1.5"});
  expect_refused({"qat.distill={weight: 1, temperature: 0}"}, baseline(), {"qat.distill.temperature"});
  expect_refused({"quant.grad_rounding=stochastic"}, baseline(), {"grad_rounding: stochastic", "no effect"});
  expect_refused({"quant.grad_rounding=up"}, baseline(), {"grad_rounding", "stochastic"});
  expect_refused({"qat.init=random"}, baseline(), {"qat.init", "scratch"});
}

void expect_same_params(const fs::path& a, const fs::path& b) {
  Checkpoint ka = load_checkpoint(a.string()), kb = load_checkpoint(b.string());
  ASSERT_EQ(ka.params.size(), kb.params.size());
  for (size_t i = 0; i < ka.params.size(); ++i)
    EXPECT_TRUE(ka.params[i].second.same_bits(kb.params[i].second)) << ka.params[i].first;
}

// qat.init: scratch starts from the train stage's seeded initialisation: without quantization and
// with the train stage's settings it is that training, bit for bit ("equal steps" is literal).
TEST(Qat, FromScratchWithoutQuantizationIsTheBaselineTraining) {
  const std::vector<std::string> same = {
      "qat.init=scratch", "quant.weight=none", "quant.input=none", "quant.schedule=[]", "quant.rules=[]",
      "qat.steps=60", "qat.optimizer={type: adamw, lr: 3.0e-3}", "qat.monitor_every=0"};
  Recipe r = parse_recipe(kTinyQat, "<tinyq>", same);
  fs::path d = fresh_dir("scratch_fp32");
  QatSummary s = qat(r, QatOptions{d.string(), baseline(), false, -1});
  ASSERT_TRUE(s.completed);
  EXPECT_TRUE(std::isnan(s.direct_cast));
  EXPECT_EQ(s.qat, s.baseline);
  expect_same_params(d / "checkpoint.h5", fs::path(baseline()));
}

// MXFP4 forward and backward (every backward operand requantized, stochastic rounding) from
// scratch: the same bits on 1 and 2 threads and after a stop and resume.
TEST(Qat, StochasticBackwardFromScratchIsDeterministic) {
  const std::vector<std::string> sr = {
      "qat.init=scratch", "quant.grad_output=mxfp4", "quant.grad_rounding=stochastic",
      "quant.backward_operands=requantize", "quant.schedule=[]", "quant.rules=[]", "qat.steps=12",
      "qat.monitor_every=0", "qat.eval_every=6"};
  Recipe r = parse_recipe(kTinyQat, "<tinyq>", sr);
  fs::path a = fresh_dir("sr1"), b = fresh_dir("sr2"), c = fresh_dir("sr_resume");
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  QatSummary one = qat(r, QatOptions{a.string(), baseline(), false, -1});
  omp_set_num_threads(2);
  qat(r, QatOptions{b.string(), baseline(), false, -1});
  qat(r, QatOptions{c.string(), baseline(), false, 5});
  qat(r, QatOptions{c.string(), baseline(), true, -1});
  omp_set_num_threads(saved);
  EXPECT_GT(one.qat, 0.3);  // it trains (chance is 0.1)
  expect_same_params(a / "checkpoint.h5", b / "checkpoint.h5");
  expect_same_params(a / "checkpoint.h5", c / "checkpoint.h5");
  // Stochastic rounding changes the training: nearest rounding ends elsewhere.
  fs::path n = fresh_dir("nearest");
  std::vector<std::string> nearest = sr;
  nearest[2] = "quant.grad_rounding=nearest";
  qat(parse_recipe(kTinyQat, "<tinyq>", nearest), QatOptions{n.string(), baseline(), false, -1});
  Checkpoint ka = load_checkpoint((a / "checkpoint.h5").string()), kn = load_checkpoint((n / "checkpoint.h5").string());
  EXPECT_FALSE(ka.params[0].second.same_bits(kn.params[0].second));
}

// The same from scratch with quant.product mx_native: every product of the step (forward, dX, dW)
// an exact-integer MXFP4 product (docs/formats.md §14.3), recorded in the checkpoint, the same bits
// on 1 thread (AVX-512 where the CPU has it) and 2 threads on the portable kernels, then exported
// and verified bitwise.
TEST(Qat, MxNativeBackwardFromScratchIsDeterministicAndVerifies) {
  const std::vector<std::string> sr = {
      "qat.init=scratch", "quant.grad_output=mxfp4", "quant.grad_rounding=stochastic",
      "quant.backward_operands=requantize", "quant.schedule=[]", "quant.rules=[]", "qat.steps=12",
      "qat.monitor_every=0", "qat.eval_every=6", "quant.product=mx_native"};
  Recipe r = parse_recipe(kTinyQat, "<tinyq>", sr);
  fs::path a = fresh_dir("mxsr1"), b = fresh_dir("mxsr2");
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  QatSummary one = qat(r, QatOptions{a.string(), baseline(), false, -1});
  omp_set_num_threads(2);
  quant::set_mx_gemm_auto_path(quant::MxPath::kPortable);
  qat(r, QatOptions{b.string(), baseline(), false, -1});
  quant::set_mx_gemm_auto_path(quant::MxPath::kAuto);
  omp_set_num_threads(saved);
  EXPECT_GT(one.qat, 0.3);  // it trains (chance is 0.1)
  expect_same_params(a / "checkpoint.h5", b / "checkpoint.h5");
  const std::string ckpt = (a / "checkpoint.h5").string();
  const quant::ResolvedPolicy p = quant::ResolvedPolicy::from_text(load_checkpoint(ckpt).meta.at("policy"));
  for (const char* layer : {"fc1", "fc2", "head"}) {
    EXPECT_EQ(p.spec(p.at(layer)).product, quant::Product::kMxNative) << layer;
    EXPECT_EQ(p.spec(p.at(layer)).backward_product, quant::Product::kMxNative) << layer;
  }
  const std::string out = (a / "model.h5").string();
  export_checkpoint(ckpt, out);
  const Verification v = verify_export(out, VerifyOptions{});
  EXPECT_TRUE(v.bitwise_equal) << v.json;
}

// The loop's guard: a NaN in a batch makes the loss NaN; `stop` ends the run with the weights of
// the last good step, `skip` skips the step and counts it.
TEST(Loop, NonFiniteLossStopsOrSkipsWithoutTouchingWeights) {
  Recipe r = parse_recipe(kTinyQat, "<tinyq>", {"train.steps=8", "train.log_every=1"});
  StageSetup st = setup_stage(r);
  // poison the first example of the batch taken at step 3
  const int64_t bad = st.order->batch(3)[0];
  for (bool skip : {false, true}) {
    StageSetup fresh = setup_stage(r);
    // the task owns its data read-only; this test writes into it (the object itself is not const)
    Splits& data = *const_cast<Splits*>(fresh.task->images());
    data.train.x[bad * data.train.x.cols()] = NAN;
    auto opt = make_optimizer(r.train.optimizer, fresh.model->named_parameters());
    fs::path d = fresh_dir(skip ? "skip" : "stop");
    JsonlWriter metrics;
    metrics.open((d / "metrics.jsonl").string(), 0);
    LoopContext c;
    c.stage = "train", c.recipe = &r, c.cfg = &r.train, c.model = fresh.model.get();
    c.optimizer = opt.get(), c.task = fresh.task.get(), c.order = fresh.order.get(), c.metrics = &metrics;
    c.ckpt_path = (d / "checkpoint.h5").string();
    c.total_steps = 8;
    c.skip_nonfinite = skip;
    if (!skip) {
      try {
        run_loop(c);
        ADD_FAILURE() << "expected a stop";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("at step 3"), std::string::npos) << e.what();
      }
    } else {
      LoopResult res = run_loop(c);
      EXPECT_TRUE(res.completed);
      EXPECT_EQ(c.skipped, 1);
      EXPECT_EQ(load_checkpoint(c.ckpt_path).counters.at("skipped_steps"), 1);
      // The skip is a warning the report lists, with its step.
      const auto w = read_warnings(d.string(), "train");
      ASSERT_EQ(w.size(), 1u);
      EXPECT_EQ(w[0].step, 3);
      EXPECT_EQ(w[0].tensor, "");
      EXPECT_NE(w[0].message.find("step skipped"), std::string::npos) << w[0].message;
    }
    for (const auto& [name, v] : fresh.model->named_parameters())
      EXPECT_TRUE(v.value().arr().isFinite().all()) << name;
    fs::remove_all(d);
  }
}

}  // namespace
}  // namespace mxqat::trainers
