// Import of Hugging Face llama checkpoints (written here, never downloaded): the logits against a
// plain-PyTorch llama (scripts/llama_reference.py; skipped without python3-torch), the rotary row
// permutation, the `mxqat import` command, and the refusals (missing, extra, mis-shaped tensors,
// dtypes, unsupported configs, a recipe that does not match).
#include "trainers/interop/llama_import.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "layers/gpt.h"
#include "tests/test_util.h"
#include "tests/trainers/llama_fixture.h"
#include "trainers/io/ckpt.h"
#include "trainers/model/model_factory.h"

namespace mxqat::trainers {
namespace {

using autograd::Tensor;
using testing::LlamaSpec;

std::string fixture_dir(const std::string& name) {
  static const auto root = testing::fresh_dir("llama_import");
  return (root / name).string();
}

// The recipe of an imported checkpoint, as `mxqat import` builds it.
Recipe recipe_for(const LlamaCheckpoint& ck) {
  return parse_recipe("data: {dataset: tokens, dir: data/tokens}\nmodel: {type: gpt}\n", "<test>",
                      llama_model_overrides(ck.model, 0));
}

std::shared_ptr<layers::Gpt> imported_model(const std::string& dir) {
  const LlamaCheckpoint ck = read_llama(dir);
  const Recipe r = recipe_for(ck);
  check_llama_model(r.model, ck);
  auto m = std::dynamic_pointer_cast<layers::Gpt>(build_model(r, r.model.context, r.model.vocab));
  load_llama(*m, ck);
  m->train(false);
  return m;
}

bool have_torch() {
  return std::system("/usr/bin/python3 -c 'import torch, numpy' > /dev/null 2>&1") == 0;
}

template <typename T>
void write_raw(const std::string& path, const std::vector<T>& v) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * sizeof(T)));
}

LlamaSpec spec(int64_t kv, bool tied, const char* dtype, int shards, double theta, double eps) {
  LlamaSpec s;
  s.kv_heads = kv, s.tied = tied, s.dtype = dtype, s.shards = shards, s.rope_theta = theta, s.eps = eps;
  s.seed = uint64_t(kv * 7 + shards * 3 + (tied ? 1 : 0));
  return s;
}

// Two layers, d_model 64, 4 heads, four checkpoints (GQA / MQA / MHA, untied / tied, F32 / BF16 /
// F16, one file / sharded): the imported model's logits on two sequences of 24 tokens equal the
// PyTorch llama's (float64 from the same stored weights) within 1e-4 of the largest logit.
TEST(Import, ImportedLogitsMatchThePytorchLlama) {
  if (!have_torch())
    GTEST_SKIP() << "python3-torch is not installed (scripts/install_deps.sh --torch): the "
                    "PyTorch reference of the llama import is not run";
  const std::vector<std::pair<std::string, LlamaSpec>> cases = {
      {"gqa_untied_f32", spec(2, false, "F32", 1, 10000.0, 1e-6)},
      {"mqa_tied_bf16", spec(1, true, "BF16", 1, 500000.0, 1e-5)},
      {"mha_untied_f16_sharded", spec(4, false, "F16", 3, 10000.0, 1e-6)},
      {"gqa_tied_bf16_sharded", spec(2, true, "BF16", 2, 1e6, 1e-5)}};
  std::string dirs;
  for (const auto& [name, s] : cases) {
    const std::string dir = testing::write_llama(fixture_dir(name), s);
    auto m = imported_model(dir);
    const int64_t T = 24;
    std::vector<int32_t> ids(size_t(2 * T));
    std::mt19937 rng(5);
    for (auto& id : ids) id = int32_t(rng() % uint32_t(s.vocab));
    const Tensor logits = m->forward_ids(ids, T).value();
    write_raw(dir + "/ids.i32", ids);
    write_raw(dir + "/logits.f32", std::vector<float>(logits.data(), logits.data() + logits.size()));
    write_file_atomic(dir + "/seq_len.txt", std::to_string(T));
    dirs += " '" + dir + "'";
  }
  const std::string report = fixture_dir("reference.txt");
  const std::string cmd = "/usr/bin/python3 '" MXQAT_SOURCE_DIR "/scripts/llama_reference.py' "
                          "--tol 1e-4" + dirs + " > '" + report + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  const std::string out = read_file(report);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 4) << out;
  std::cout << out;
}

TEST(Import, PermutesQueryAndKeyRowsPerHeadAndCopiesATiedHead) {
  LlamaSpec s = spec(2, true, "F32", 1, 10000.0, 1e-6);
  const std::string dir = testing::write_llama(fixture_dir("rows"), s);
  const auto hf = testing::llama_tensors(s);
  auto find = [&](const std::string& n) -> const std::vector<float>& {
    for (const auto& [name, t] : hf)
      if (name == n) return t.second;
    throw std::runtime_error(n);
  };
  const LlamaCheckpoint ck = read_llama(dir);
  EXPECT_TRUE(ck.tied);
  EXPECT_EQ(ck.dtypes, "F32");
  std::map<std::string, const Tensor*> p;
  for (const auto& [n, t] : ck.params) p[n] = &t;
  ASSERT_EQ(ck.params.size(), 1 + 2 * 9 + 2u);
  EXPECT_EQ(ck.params.back().first, "head.weight");
  const int64_t C = 64, D = 16;
  for (const auto& [ours, theirs, heads] :
       std::vector<std::tuple<std::string, std::string, int64_t>>{
           {"blocks.1.attn.q.weight", "model.layers.1.self_attn.q_proj.weight", 4},
           {"blocks.1.attn.k.weight", "model.layers.1.self_attn.k_proj.weight", 2}}) {
    const Tensor& w = *p.at(ours);
    const std::vector<float>& h = find(theirs);
    ASSERT_EQ(w.dim(0), heads * D);
    for (int64_t hd = 0; hd < heads; ++hd)
      for (int64_t i = 0; i < D / 2; ++i)
        for (int64_t c = 0; c < C; ++c) {
          ASSERT_EQ(w[(hd * D + 2 * i) * C + c], h[size_t((hd * D + i) * C + c)]) << ours;
          ASSERT_EQ(w[(hd * D + 2 * i + 1) * C + c], h[size_t((hd * D + i + D / 2) * C + c)]) << ours;
        }
  }
  // v, o and the MLP are not permuted; the tied head is the embedding.
  EXPECT_EQ(std::vector<float>(p.at("blocks.0.attn.v.weight")->data(),
                               p.at("blocks.0.attn.v.weight")->data() + 32 * 64),
            find("model.layers.0.self_attn.v_proj.weight"));
  EXPECT_TRUE(p.at("head.weight")->same_bits(*p.at("tok_emb.weight")));
}

TEST(Import, RefusesMissingExtraAndMisshapedTensors) {
  LlamaSpec s;
  const std::string dir = testing::write_llama(fixture_dir("bad"), s);
  auto with_config = [&](const std::string& from, const std::string& to) {
    std::string c = testing::llama_config_json(s);
    const size_t at = c.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    write_file_atomic(dir + "/config.json", c.replace(at, from.size(), to));
  };
  // config.json edits (text replaced -> by) and the parts of the error each must give.
  struct Case {
    std::string from, to;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {"\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3",
       {"missing", "model.layers.2.input_layernorm.weight", "3 layers"}},
      {"\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1",
       {"does not have", "model.layers.1."}},
      {"\"intermediate_size\": 160", "\"intermediate_size\": 150",
       {"model.layers.0.mlp.gate_proj.weight", "[160, 64]", "[150, 64]"}},
      {"\"num_key_value_heads\": 2", "\"num_key_value_heads\": 4",
       {"k_proj.weight", "[32, 64]", "[64, 64]"}},
      {"\"tie_word_embeddings\": false", "\"tie_word_embeddings\": true",
       {"lm_head.weight differs"}},
      {"\"model_type\": \"llama\"", "\"model_type\": \"gpt2\"",
       {"model_type \"gpt2\"", "not supported"}},
      {"\"rope_scaling\": null", "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2}",
       {"rope_scaling"}},
      {"\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"",
       {"hidden_act \"gelu\""}},
      {"\"attention_bias\": false", "\"attention_bias\": true",
       {"bias"}},
      {"\"hidden_size\": 64", "\"hidden_size\": 0",
       {"\"hidden_size\" = 0", "positive integer"}},
      {"\"hidden_size\": 64", "\"hidden_size\": \"64\"",
       {"\"hidden_size\" must be a number"}},
      {"\"vocab_size\": 300,", "",
       {"\"vocab_size\" is missing"}},
      {"\"num_attention_heads\": 4", "\"num_attention_heads\": 3",
       {"not a multiple of num_attention_heads 3"}},
      {"{", "{ broken",
       {"config.json", "not valid JSON"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.to);
    with_config(c.from, c.to);
    testing::expect_error([&] { read_llama(dir); }, c.parts);
  }

  // An extra tensor; a weight in another dtype; no weights at all.
  write_file_atomic(dir + "/config.json", testing::llama_config_json(s));
  auto write_weights = [&](bool extra_bias) {
    SafetensorsWriter w;
    for (const auto& [n, v] : testing::llama_tensors(s)) {
      if (n == "model.norm.weight") w.add_raw(n, "F64", v.first, std::vector<uint8_t>(64 * 8));
      else w.add_f32(n, v.first, v.second.data());
    }
    const float x = 1;
    if (extra_bias) w.add_f32("model.layers.0.self_attn.q_proj.bias", {1}, &x);
    w.write(dir + "/model.safetensors");
  };
  write_weights(true);
  testing::expect_error([&] { read_llama(dir); }, {"q_proj.bias", "does not have"});
  write_weights(false);
  testing::expect_error([&] { read_llama(dir); }, {"model.norm.weight", "dtype F64", "F32, F16 and BF16"});
  std::filesystem::remove(dir + "/model.safetensors");
  testing::expect_error([&] { read_llama(dir); }, {"neither model.safetensors nor"});
  testing::expect_error([&] { read_llama(dir + "/nope"); }, {"not a directory"});
}

TEST(Import, RecipeThatDoesNotMatchIsRefusedListingEveryKey) {
  const std::string dir = testing::write_llama(fixture_dir("match"), LlamaSpec{});
  const LlamaCheckpoint ck = read_llama(dir);
  Recipe r = recipe_for(ck);
  EXPECT_EQ(r.model.kv_heads, 2);
  EXPECT_EQ(r.model.context, 64);
  EXPECT_NO_THROW(check_llama_model(r.model, ck));
  r.model.context = 32;  // shorter training windows are fine
  EXPECT_NO_THROW(check_llama_model(r.model, ck));
  r.model.heads = 8, r.model.kv_heads = 0, r.model.norm_eps = 1e-5, r.model.context = 65;
  testing::expect_error([&] { check_llama_model(r.model, ck); },
                        {"model.heads: recipe 8, checkpoint 4", "model.kv_heads: recipe 8, checkpoint 2",
                         "model.norm_eps", "max_position_embeddings 64", "--print-recipe"});
}

TEST(Import, CommandWritesACheckpointAndTheRecipe) {
  LlamaSpec s = spec(2, false, "BF16", 2, 10000.0, 1e-6);
  const std::string dir = testing::write_llama(fixture_dir("cli"), s);
  const std::string out = fixture_dir("cli_run");
  auto res = testing::run_cli("import '" + dir + "' --out '" + out + "' --context 32");
  ASSERT_EQ(res.code, 0) << res.out;
  EXPECT_NE(res.out.find("BF16"), std::string::npos) << res.out;
  const Checkpoint c = load_checkpoint(out + "/checkpoint.h5");
  const Recipe r = parse_recipe(c.recipe_text);
  EXPECT_EQ(r.model.from, dir);
  EXPECT_EQ(r.model.context, 32);
  EXPECT_EQ(r.model.kv_heads, 2);
  EXPECT_EQ(r.data.dataset, "tokens");
  EXPECT_EQ(read_file(out + "/recipe.yaml"), c.recipe_text);
  const LlamaCheckpoint ck = read_llama(dir);
  ASSERT_EQ(c.params.size(), ck.params.size());
  for (size_t i = 0; i < c.params.size(); ++i) {
    EXPECT_EQ(c.params[i].first, ck.params[i].first);
    EXPECT_TRUE(c.params[i].second.same_bits(ck.params[i].second)) << c.params[i].first;
  }
  res = testing::run_cli("import '" + dir + "' --print-recipe --set data.dir=tok");
  ASSERT_EQ(res.code, 0) << res.out;
  EXPECT_EQ(parse_recipe(res.out).data.dir, "tok");
  // --recipe: the user's recipe with the checkpoint's model section; --out FILE.h5: one file.
  write_file_atomic(out + "/mine.yaml", "name: mine\ndata: {dataset: tokens, dir: t}\n"
                    "model: {type: gpt}\nquant: {weight: mxfp4}\ntrain: {steps: 3}\n");
  res = testing::run_cli("import '" + dir + "' --recipe '" + out + "/mine.yaml' --out '" + out + "/one.h5'");
  ASSERT_EQ(res.code, 0) << res.out;
  const Recipe mine = parse_recipe(load_checkpoint(out + "/one.h5").recipe_text);
  EXPECT_EQ(mine.name, "mine");
  EXPECT_EQ(mine.quant.weight, "mxfp4");
  EXPECT_EQ(mine.model.d_model, 64);
  EXPECT_EQ(mine.model.context, 64);  // max_position_embeddings (below the 1024 cap)
  res = testing::run_cli("import '" + dir + "' --out '" + out + "/x.h5' --set model.heads=2");
  EXPECT_EQ(res.code, 1);
  EXPECT_NE(res.out.find("model.heads: recipe 2, checkpoint 4"), std::string::npos) << res.out;
  res = testing::run_cli("import '" + dir + "'");
  EXPECT_EQ(res.code, 1);
  EXPECT_NE(res.out.find("--out"), std::string::npos) << res.out;
}

// Checkpoints and exports made before the llama keys existed hold recipe texts without them: they
// must build the model they were trained with (multi-head, theta 10000, eps 1e-5, bytes).
TEST(Import, RecipesWithoutTheNewKeysBuildTheModelAsBefore) {
  const Recipe r = parse_recipe(
      "data: {dataset: text, dir: d}\nmodel: {type: gpt, layers: 1, d_model: 16, heads: 2, "
      "context: 8, mlp_hidden: 24}\ntrain: {steps: 1}\n");
  const layers::GptConfig c = gpt_config(r.model), old;
  EXPECT_EQ(c.kv_head_count(), 2);
  EXPECT_EQ(c.rope_theta, old.rope_theta);
  EXPECT_EQ(c.norm_eps, old.norm_eps);
  EXPECT_EQ(r.model.from, "");
  EXPECT_EQ(r.data.token_bytes, 2);
  EXPECT_EQ(parse_recipe(r.text), r);  // the new keys are written out and read back
  EXPECT_NE(r.text.find("kv_heads: 0"), std::string::npos) << r.text;
}

}  // namespace
}  // namespace mxqat::trainers
