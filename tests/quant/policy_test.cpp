// Tests of quant/policy: glob matching, first-match-wins resolution with inheritance, errors that
// name the rule, the table, the text round trip, and QuantPlan's schedule-driven specs.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "autograd/error.h"
#include "quant/policy/plan.h"
#include "quant/policy/policy.h"
#include "tests/test_util.h"

namespace mxqat::quant {
namespace {

using mxqat::testing::error_of;
using mxqat::testing::expect_error;

const std::vector<std::string> kLayers = {"fc1", "blocks.0.attn.qkv", "blocks.0.mlp.fc1",
                                          "blocks.0.mlp.fc2", "blocks.1.attn.qkv",
                                          "blocks.1.mlp.fc1", "blocks.1.mlp.fc2", "head"};


std::vector<Phase> progressive() {
  return {Phase::format(0.3, "mxfp8_e4m3"), Phase::format(0.6, "mxfp6_e2m3"),
          Phase::format(1.0, "mxfp4")};
}

PolicyConfig config() {
  PolicyConfig c;
  c.weight = "mxfp4";
  c.input = "mxfp4";
  c.schedule = progressive();
  c.rules = {{"fc1", "mxfp8_e4m3", "mxfp8_e4m3", "", {}},
             {"head", "fp32", "none", "", {}},
             {"blocks.*.attn.*", "", "", "mxfp8_e5m2",
              {Phase::format(0.5, "mxfp8_e4m3"), Phase::format(1.0, "mxfp6_e2m3")}},
             {"blocks.?.mlp.fc2", "nvfp4", "", "", {}}};
  return c;
}

TEST(Glob, StarQuestionAndDots) {
  EXPECT_TRUE(glob_match("*", "blocks.3.mlp.fc"));
  EXPECT_TRUE(glob_match("blocks.*.mlp.*", "blocks.3.mlp.fc"));
  EXPECT_TRUE(glob_match("blocks.*.fc", "blocks.3.mlp.fc"));  // * crosses dots
  EXPECT_FALSE(glob_match("blocks.*.mlp.*", "blocks.3.attn.fc"));
  EXPECT_TRUE(glob_match("fc?", "fc1"));
  EXPECT_FALSE(glob_match("fc?", "fc12"));
  EXPECT_FALSE(glob_match("fc1", "fc12"));
  EXPECT_TRUE(glob_match("*fc*2", "blocks.1.mlp.fc2"));
  EXPECT_TRUE(glob_match("a*b*c", "aXbYbZc"));
  EXPECT_FALSE(glob_match("a*b*c", "aXbYbZ"));
  EXPECT_TRUE(glob_match("", ""));
  EXPECT_FALSE(glob_match("", "a"));
  EXPECT_TRUE(glob_match("**", ""));
}

TEST(Policy, FirstMatchWinsAndFieldsInherit) {
  const ResolvedPolicy p = resolve_policy(config(), kLayers);
  ASSERT_EQ(p.layers.size(), kLayers.size());
  const LayerPolicy& fc1 = p.at("fc1");
  EXPECT_EQ(fc1.weight, "mxfp8_e4m3");
  EXPECT_EQ(fc1.rule, 0);
  EXPECT_TRUE(fc1.schedule.empty());  // a rule without schedule is static
  EXPECT_EQ(p.at("head").weight, "none");  // "fp32" is stored as "none"
  const LayerPolicy& qkv = p.at("blocks.1.attn.qkv");
  EXPECT_EQ(qkv.rule, 2);
  EXPECT_EQ(qkv.weight, "mxfp4");  // "" inherits the default
  EXPECT_EQ(qkv.grad_output, "mxfp8_e5m2");
  EXPECT_EQ(qkv.schedule.size(), 2u);
  const LayerPolicy& fc2 = p.at("blocks.0.mlp.fc2");
  EXPECT_EQ(fc2.rule, 3);
  EXPECT_EQ(fc2.weight, "nvfp4");
  EXPECT_EQ(fc2.input, "mxfp4");
  const LayerPolicy& mlp1 = p.at("blocks.1.mlp.fc1");  // no rule: defaults and default schedule
  EXPECT_EQ(mlp1.rule, -1);
  EXPECT_EQ(mlp1.schedule.size(), 3u);
  EXPECT_EQ(p.find("nope"), nullptr);
  expect_error([&] { p.at("nope"); }, {"no layer \"nope\"", "blocks.0.mlp.fc1"});
}

TEST(Policy, ParameterNamesMatchTheirLayer) {
  PolicyConfig c;
  c.rules = {{"blocks.0.mlp.fc1.weight", "mxfp4", "", "", {}}};
  const ResolvedPolicy p = resolve_policy(c, kLayers);
  EXPECT_EQ(p.at("blocks.0.mlp.fc1").weight, "mxfp4");
  EXPECT_EQ(p.at("blocks.1.mlp.fc1").weight, "none");
}

TEST(Policy, SpecsFollowTheSchedule) {
  const ResolvedPolicy p = resolve_policy(config(), kLayers);
  const LayerPolicy& mlp = p.at("blocks.0.mlp.fc1");
  EXPECT_EQ(p.spec_at(mlp, 0, 100).describe(), "w=mxfp8_e4m3 a=mxfp8_e4m3 g=none ste=clipped");
  EXPECT_EQ(p.spec_at(mlp, 30, 100).describe(), "w=mxfp6_e2m3 a=mxfp6_e2m3 g=none ste=clipped");
  EXPECT_EQ(p.spec_at(mlp, 99, 100).describe(), "w=mxfp4 a=mxfp4 g=none ste=clipped");
  EXPECT_EQ(p.spec(p.at("head")).describe(), "w=none a=none g=none ste=clipped");
  EXPECT_TRUE(p.spec(p.at("head")).full_precision());
  const GemmQuantSpec attn = p.spec_at(p.at("blocks.0.attn.qkv"), 70, 100);
  EXPECT_EQ(attn.describe(), "w=mxfp6_e2m3 a=mxfp6_e2m3 g=mxfp8_e5m2 ste=clipped");
  PolicyConfig c = config();
  c.scale_rule = ScaleRule::kRceil;
  c.group_size = 32;
  const ResolvedPolicy r = resolve_policy(c, kLayers);
  EXPECT_EQ(r.spec(r.at("fc1")).weight->options().scale_rule, ScaleRule::kRceil);
  EXPECT_EQ(r.spec(r.at("fc1")).weight->options().group_size, 32);
}

TEST(Policy, ErrorsNameTheRule) {
  PolicyConfig c = config();
  c.rules[2].weight = "mxfp5";
  expect_error([&] { resolve_policy(c, kLayers); },
               {"unknown codec \"mxfp5\"", "quant rule 2", "blocks.*.attn.*", "mxfp4", "int8_sym"});
  c = config();
  c.rules.push_back({"decoder.*", "mxfp4", "", "", {}});
  expect_error([&] { resolve_policy(c, kLayers); },
               {"quant rule 4", "decoder.*", "matches no GEMM layer", "blocks.1.mlp.fc2", "head"});
  c = config();
  c.rules.insert(c.rules.begin(), QuantRule{"*", "mxfp4", "", "", {}});
  expect_error([&] { resolve_policy(c, kLayers); }, {"quant rule 1", "never applies"});
  c = config();
  c.rules[2].schedule = {Phase::format(0.5, "mxfp8_e4m3"), Phase::format(0.8, "mxfp4")};
  expect_error([&] { resolve_policy(c, kLayers); }, {"quant rule 2", "schedule", "until: 1.0"});
  c = config();
  c.input = "int3";
  expect_error([&] { resolve_policy(c, kLayers); }, {"default input codec", "int3"});
  c = config();
  c.rules[0].match = "";
  expect_error([&] { resolve_policy(c, kLayers); }, {"quant rule 0", "empty pattern"});
}

TEST(Policy, TableListsEveryLayer) {
  const std::string t = resolve_policy(config(), kLayers).table();
  for (const std::string& l : kLayers) EXPECT_NE(t.find(l), std::string::npos) << t;
  EXPECT_NE(t.find("mxfp8_e4m3 until 0.3, mxfp6_e2m3 until 0.6, mxfp4 until 1"), std::string::npos)
      << t;
  EXPECT_NE(t.find("2 \"blocks.*.attn.*\""), std::string::npos) << t;
  // Aligned: the header's "input" column starts where every row's input codec starts.
  const size_t col = t.find("input", t.find('\n'));
  const size_t line = t.rfind('\n', col) + 1;
  EXPECT_EQ(t.substr(t.find("head  ") + (col - line), 4), "none") << t;
}

TEST(Policy, TextRoundTripsExactly) {
  PolicyConfig c = config();
  c.ste = Ste::kIdentity;
  c.scale_rule = ScaleRule::kRceil;
  c.rules[2].schedule = {Phase{0.1 + 0.2, false, "mxfp8_e4m3", ""},
                         Phase{1.0, false, "", "mxfp6_e3m2"}};
  const ResolvedPolicy p = resolve_policy(c, kLayers);
  const std::string text = p.to_text();
  const ResolvedPolicy q = ResolvedPolicy::from_text(text);
  EXPECT_EQ(q.to_text(), text);
  EXPECT_EQ(q.ste, Ste::kIdentity);
  EXPECT_EQ(q.scale_rule, ScaleRule::kRceil);
  const LayerPolicy& qkv = q.at("blocks.0.attn.qkv");
  EXPECT_EQ(qkv.schedule.phases()[0].until, 0.1 + 0.2);  // 17 digits: the exact double
  EXPECT_EQ(qkv.schedule.phases()[0].input, "");
  EXPECT_EQ(q.spec_at(qkv, 40, 100).describe(), p.spec_at(p.at("blocks.0.attn.qkv"), 40, 100).describe());
  EXPECT_EQ(q.at("fc1").match, "fc1");
  expect_error([] { ResolvedPolicy::from_text("hello 1\n"); }, {"line 1", "mxqat_policy"});
  expect_error([] { ResolvedPolicy::from_text("mxqat_policy 2\n"); }, {"version 2"});
  expect_error([&] {
    std::string bad = text;
    bad.replace(bad.find("weight=mxfp8_e4m3"), 17, "weight=mxfp9");
    ResolvedPolicy::from_text(bad);
  }, {"unknown codec \"mxfp9\"", "line 5"});
}

// quant.rotation: every layer with a weight or input codec is rotated; the text keeps the seed, and
// an inference policy (weights none, stored rotated) still rotates the inputs of those layers.
TEST(Policy, RotationRoundTripsAndSurvivesInferenceWeights) {
  PolicyConfig c = config();
  c.rotation = Hadamard{42};
  ResolvedPolicy p = resolve_policy(c, kLayers);
  const std::string text = p.to_text();
  EXPECT_NE(text.find("rotation hadamard 42\n"), std::string::npos);
  ResolvedPolicy q = ResolvedPolicy::from_text(text);
  EXPECT_EQ(q.to_text(), text);
  EXPECT_TRUE(q.at("fc1").rotated);
  EXPECT_FALSE(q.at("head").rotated);  // full precision: nothing to rotate for
  EXPECT_EQ(q.spec(q.at("fc1")).rotation->seed, 42u);
  EXPECT_FALSE(q.spec(q.at("head")).rotation);
  q.weights_rotated = true;
  LayerPolicy infer = q.at("fc1");
  infer.weight = "none";
  const GemmQuantSpec s = q.spec(infer);
  EXPECT_TRUE(s.rotation && s.weight_rotated);
  EXPECT_EQ(resolve_policy(config(), kLayers).to_text().find("rotation"), std::string::npos);  // off: as before
  expect_error([&] {
    std::string bad = text;
    bad.replace(bad.find("rotation hadamard 42"), 20, "rotation walsh 42");
    ResolvedPolicy::from_text(bad);
  }, {"rotation hadamard SEED"});
}

TEST(QuantPlan, UpdatesSpecsAtPhaseBoundariesOnly) {
  QuantPlan plan(resolve_policy(config(), kLayers), 10);
  ASSERT_EQ(plan.size(), kLayers.size());
  auto mlp = plan.quantizer("blocks.1.mlp.fc1");
  EXPECT_EQ(mlp->spec().weight->name(), "mxfp8_e4m3");  // phase 0 from construction
  EXPECT_TRUE(plan.update(0).empty());
  EXPECT_TRUE(plan.update(2).empty());
  auto ev = plan.update(3);  // 0.3 * 10: the default-schedule layers move to mxfp6
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].layer, "blocks.0.mlp.fc1");
  EXPECT_EQ(ev[0].phase, 1);
  EXPECT_EQ(ev[0].weight, "mxfp6_e2m3");
  EXPECT_EQ(mlp->spec().weight->name(), "mxfp6_e2m3");
  ev = plan.update(5);  // attention's 0.5 boundary
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[1].layer, "blocks.1.attn.qkv");
  EXPECT_EQ(plan.quantizer("blocks.1.attn.qkv")->spec().grad_output->name(), "mxfp8_e5m2");
  // Resume: a fresh plan updated to step 7 holds the same specs as the one that ran there.
  plan.update(7);
  QuantPlan resumed(resolve_policy(config(), kLayers), 10);
  resumed.update(7);
  for (size_t i = 0; i < plan.size(); ++i) {
    EXPECT_EQ(resumed.phase(i), plan.phase(i));
    EXPECT_EQ(resumed.quantizer(i)->describe(), plan.quantizer(i)->describe());
  }
  plan.set_final();
  EXPECT_EQ(plan.quantizer("blocks.0.mlp.fc1")->spec().weight->name(), "mxfp4");
  EXPECT_EQ(plan.quantizer("fc1")->describe(), "w=mxfp8_e4m3 a=mxfp8_e4m3 g=none ste=clipped");
  expect_error([&] { plan.quantizer("nope"); }, {"no layer \"nope\""});
}

}  // namespace
}  // namespace mxqat::quant
