// Token-id datasets (data.dataset: tokens): uint16 and uint32 files read as ids, the refusals
// (size not a whole number of ids, an id outside the vocabulary, missing or short splits), the
// recipe rules, and the bar: an imported llama checkpoint (2 layers, d_model 64, GQA) through
// `mxqat run` (baseline = import, ptq, qat, export, verify bitwise, report) on token ids.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/test_util.h"
#include "tests/trainers/llama_fixture.h"
#include "trainers/data/text_data.h"
#include "trainers/io/ckpt.h"
#include "trainers/recipe/recipe.h"
#include "trainers/util/json_read.h"
#include "trainers/util/json_write.h"

namespace mxqat::trainers {
namespace {

namespace fs = std::filesystem;

// Little-endian ids of `width` bytes.
void write_ids(const fs::path& p, const std::vector<uint32_t>& ids, int width) {
  std::ofstream f(p, std::ios::binary);
  for (uint32_t id : ids)
    for (int k = 0; k < width; ++k) f.put(static_cast<char>((id >> (8 * k)) & 0xFF));
}

// A token stream with structure to learn: mostly id -> (3 id + 7) mod vocab, sometimes random.
std::vector<uint32_t> stream(size_t n, uint32_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint32_t> ids(n);
  uint32_t id = seed % vocab;
  for (auto& x : ids) x = id = (rng() % 5 == 0) ? rng() % vocab : (3 * id + 7) % vocab;
  return ids;
}

fs::path token_dir(const std::string& name, int width, uint32_t vocab, size_t train = 3000,
                   size_t eval = 400) {
  const fs::path d = testing::fresh_dir(name);
  write_ids(d / "train.bin", stream(train, vocab, 1), width);
  write_ids(d / "val.bin", stream(eval, vocab, 2), width);
  write_ids(d / "test.bin", stream(eval, vocab, 3), width);
  return d;
}

DataCfg tokens_cfg(const fs::path& d, int width) {
  DataCfg c;
  c.dataset = "tokens";
  c.dir = d.string();
  c.token_bytes = width;
  return c;
}

TEST(Tokens, Uint16AndUint32FilesReadAsIds) {
  for (int width : {2, 4}) {
    const uint32_t vocab = width == 2 ? 300 : 70000;  // uint32: ids past 65535
    const fs::path d = token_dir("tokens_w" + std::to_string(width), width, vocab);
    const TextData t = load_text(tokens_cfg(d, width), 16, 4, 1, vocab);
    EXPECT_EQ(t.unit, "token");
    const auto want = stream(3000, vocab, 1);
    ASSERT_EQ(t.train.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(uint32_t(t.train[i]), want[i]) << i;
    EXPECT_EQ(t.test.size(), 400u);
    EXPECT_NE(t.description.find("uint" + std::to_string(8 * width)), std::string::npos);
    if (width == 4) {
      EXPECT_GT(*std::max_element(t.train.begin(), t.train.end()), 65535);
    }
    // Windows: x holds the ids (as floats), y the next ids.
    autograd::Tensor x;
    std::vector<int32_t> y;
    text_windows(t.test, 16, 1, 2, x, y);
    EXPECT_EQ(x[0], float(t.test[16]));
    EXPECT_EQ(y[0], t.test[17]);
  }
}

TEST(Tokens, BadFilesAreRefusedNamingTheProblem) {
  const fs::path d = token_dir("tokens_bad", 2, 300);
  // An odd number of bytes is not a whole number of uint16 ids.
  { std::ofstream(d / "val.bin", std::ios::binary | std::ios::app).put('\x01'); }
  testing::expect_error([&] { load_text(tokens_cfg(d, 2), 16, 4, 1, 300); },
                        {"val.bin", "801 bytes", "2-byte ids", "data.token_bytes"});
  // uint16 files read as uint32: 800 bytes are 200 ids, but they are not below the vocabulary.
  write_ids(d / "val.bin", stream(400, 300, 2), 2);
  testing::expect_error([&] { load_text(tokens_cfg(d, 4), 16, 4, 1, 300); },
                        {"train.bin", "outside the model's vocabulary of 300"});
  // An id at the vocabulary size.
  auto ids = stream(400, 300, 3);
  ids[123] = 300;
  write_ids(d / "test.bin", ids, 2);
  testing::expect_error([&] { load_text(tokens_cfg(d, 2), 16, 4, 1, 300); },
                        {"test.bin", "token 123 is id 300", "vocabulary of 300", "model.vocab"});
  write_ids(d / "test.bin", stream(10, 300, 3), 2);
  testing::expect_error([&] { load_text(tokens_cfg(d, 2), 16, 4, 1, 300); },
                        {"test.bin", "10 tokens", "model.context + 1 = 17"});
  fs::remove(d / "test.bin");
  testing::expect_error([&] { load_text(tokens_cfg(d, 2), 16, 4, 1, 300); },
                        {"test.bin is missing", "little-endian uint16"});
}

TEST(Tokens, RecipeRules) {
  const std::string base = "train: {steps: 1}\nmodel: {type: gpt, vocab: 100}\n";
  EXPECT_EQ(parse_recipe("data: {dataset: tokens, token_bytes: 4}\n" + base).data.token_bytes, 4);
  testing::expect_error([&] { parse_recipe("data: {dataset: text}\n" + base); },
                        {"model.vocab 100", "byte-level", "tokens"});
  testing::expect_error([&] { parse_recipe("data: {dataset: tokens, token_bytes: 3}\n" + base); },
                        {"token_bytes 3"});
  testing::expect_error([&] { parse_recipe("data: {dataset: tokens}\nmodel: {type: mlp}\ntrain: {steps: 1}\n"); },
                        {"does not read data.dataset tokens"});
  // model.from replaces training: no train length needed; only for gpt.
  EXPECT_EQ(parse_recipe("data: {dataset: tokens}\nmodel: {type: gpt, vocab: 100, from: x}\n").model.from, "x");
  testing::expect_error([&] { parse_recipe("data: {dataset: tokens}\nmodel: {type: gpt, vocab: 100}\n"); },
                        {"train.epochs or train.steps", "model.from"});
}

// The bar of issue 15: import -> ptq -> qat -> export -> verify (bitwise) -> report, on token ids.
TEST(Tokens, ImportedLlamaRunsEndToEnd) {
  const fs::path d = testing::fresh_dir("llama_run");
  testing::LlamaSpec spec;  // 2 layers, d_model 64, 4 heads over 2 kv heads, vocab 300, untied
  spec.dtype = "BF16";
  const std::string hf = testing::write_llama((d / "hf").string(), spec);
  const fs::path tok = token_dir("llama_run_tokens", 2, 300);
  const std::string recipe = (d / "llamarun.yaml").string();
  write_file_atomic(recipe,
                    "name: llamarun\nseed: 3\n"
                    "data: {dataset: tokens, dir: " + tok.string() + ", batch_size: 4}\n"
                    "model: {type: gpt, vocab: 300, layers: 2, d_model: 64, heads: 4, kv_heads: 2,\n"
                    "        context: 32, mlp_hidden: 160, rope_theta: 10000, norm_eps: 1.0e-6,\n"
                    "        from: " + hf + "}\n"
                    "quant: {weight: mxfp4, input: mxfp8_e4m3}\n"
                    "qat: {steps: 6, optimizer: {type: adamw, lr: 1.0e-3}, log_every: 3, monitor_every: 0}\n"
                    "ptq: {methods: [rtn, gptq], calib_samples: 8}\n"
                    "compare: {formats: [mxfp4], qat_progressive: false}\n");
  const fs::path run = d / "run";
  auto r = testing::run_cli("run " + recipe + " --out " + run.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("imported"), std::string::npos) << r.out;

  // The baseline is the imported checkpoint, evaluated in bits per token.
  const Json base = Json::read((run / "baseline/summary.json").string());
  EXPECT_EQ(base.at("metric").string(), "test_bits_per_token");
  EXPECT_EQ(base.at("steps").number(), 0);
  const double bpt = base.at("test_bits_per_token").number();
  EXPECT_GT(bpt, 0);
  EXPECT_LT(bpt, 30);
  const Checkpoint c = load_checkpoint((run / "baseline/checkpoint.h5").string());
  EXPECT_EQ(c.meta.at("imported_from"), hf);
  // The report: every row on the token metric, the export bitwise equal to training.
  const Json rep = Json::read((run / "report/report.json").string());
  EXPECT_EQ(rep.at("metric").string(), "test_bits_per_token");
  std::vector<std::string> methods;
  for (const Json& row : rep.at("rows").array()) methods.push_back(row.at("method").string());
  EXPECT_NE(std::find(methods.begin(), methods.end(), "gptq"), methods.end());
  EXPECT_NE(std::find(methods.begin(), methods.end(), "qat_direct"), methods.end());
  EXPECT_TRUE(rep.at("alignment").at("bitwise_equal").boolean());
  EXPECT_EQ(rep.at("alignment").at("max_abs_diff").number(), 0.0);
  for (const char* f : {"report.md", "report.html"}) EXPECT_TRUE(fs::exists(run / "report" / f)) << f;
  EXPECT_FALSE(fs::exists(run / "sample/samples.json"));  // no tokenizer: no text samples

  // The export through the runtime: the fast path, and incremental decoding with a GQA KV cache
  // (teacher-forced on the test tokens) against the full forward.
  const std::string model = (run / "export/model.h5").string();
  r = testing::run_cli("infer " + model + " --fast");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("test_bits_per_token"), std::string::npos) << r.out;
  r = testing::run_cli("sample " + model + " --eval-kv 2 --kv-cache none");
  ASSERT_EQ(r.code, 0) << r.out;
  const Json kv = Json::parse(r.out.substr(r.out.find('{')), "sample");
  EXPECT_LT(kv.at("max_abs_logit_diff").number(), 1e-4) << r.out;
  EXPECT_EQ(kv.at("kv_bytes_per_token").number(), 2 * 2 * 32 * 4);  // K, V x 2 layers x 2 kv heads x 16
  EXPECT_NEAR(kv.at("test_bits_per_token").number(), kv.at("full_forward_bits_per_token").number(), 1e-4);
  r = testing::run_cli("sample " + model + " --prompt hello");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("no tokenizer"), std::string::npos) << r.out;

  // A recipe whose model does not match the checkpoint stops the baseline with the keys named.
  r = testing::run_cli("run " + recipe + " --out " + (d / "bad").string() + " --set model.mlp_hidden=128");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("model.mlp_hidden: recipe 128, checkpoint 160"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace mxqat::trainers
