// The compressed-tensors export read back with the safetensors reader: Hugging Face names and the
// q/k row order, the packed tensors of both pack formats (our codes and scales, copied), the float
// tensors, config.json's llama sizes and quantization_config (groups, targets, ignore), and the
// refusals. The bit-exact decode is checked independently by scripts/check_compressed_tensors.py
// (ctest Interop.CompressedTensorsNumpy).
#include <gtest/gtest.h>

#include <cstring>
#include <set>

#include "tests/test_util.h"
#include "tests/trainers/tiny_gpt_export.h"
#include "trainers/interop/compressed_tensors.h"
#include "trainers/interop/safetensors.h"
#include "trainers/util/json_read.h"

namespace mxqat::trainers {
namespace {

using mxqat::testing::expect_error;

TEST(CompressedTensors, HuggingFaceNames) {
  for (const auto& c : gpt_name_cases()) EXPECT_EQ(hf_llama_name(c.ours), c.hf);
  expect_error([] { hf_llama_name("fc1.weight"); }, {"fc1.weight", "LlamaForCausalLM"});
}

TEST(CompressedTensors, RopeRowsFollowRotateHalf) {
  // Head size 8: Hugging Face rows (0 1 2 3 | 4 5 6 7) are our rows (0 2 4 6 | 1 3 5 7).
  const int64_t want[16] = {0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15};
  for (int64_t r = 0; r < 16; ++r) EXPECT_EQ(hf_rope_row(r, 8), want[r]) << r;
  std::set<int64_t> seen;  // a permutation
  for (int64_t r = 0; r < 96; ++r) seen.insert(hf_rope_row(r, 32));
  EXPECT_EQ(seen.size(), 96u);
  EXPECT_EQ(*seen.rbegin(), 95);
}

// Row r of a packed [R, bytes] matrix.
std::vector<uint8_t> row(const std::vector<uint8_t>& m, int64_t R, int64_t r) {
  const size_t n = m.size() / size_t(R);
  return std::vector<uint8_t>(m.begin() + long(n * size_t(r)), m.begin() + long(n * size_t(r + 1)));
}

TEST(CompressedTensors, MixedExportHoldsOurCodesUnderHuggingFaceNames) {
  const ExportModel m = tiny_gpt_export("mxfp4", "nvfp4");
  const auto dir = mxqat::testing::fresh_dir("ct_mixed");
  const CompressedTensorsSummary s = write_compressed_tensors(m, (dir / "out").string(), FloatDtype::kF32);
  EXPECT_EQ(s.quantized, 14);
  EXPECT_EQ(s.format, "mixed-precision");
  SafetensorsReader st((dir / "out" / "model.safetensors").string());
  EXPECT_EQ(int64_t(st.entries().size()), s.tensors);
  std::map<std::string, const ExportTensor*> ours;
  for (const auto& t : m.tensors) ours[t.name] = &t;

  // MXFP4 q projection: rows permuted, codes and E8M0 scales copied.
  const quant::EncodedTensor& q = ours.at("blocks.1.attn.q.weight")->packed;
  const auto& qp = st.at("model.layers.1.self_attn.q_proj.weight_packed");
  const auto& qs = st.at("model.layers.1.self_attn.q_proj.weight_scale");
  EXPECT_EQ(qp.dtype, "U8");
  EXPECT_EQ(qp.shape, (std::vector<int64_t>{64, 32}));
  EXPECT_EQ(qs.dtype, "U8");
  EXPECT_EQ(qs.shape, (std::vector<int64_t>{64, 2}));
  const auto qpb = st.read_bytes(qp.name), qsb = st.read_bytes(qs.name);
  for (int64_t r = 0; r < 64; ++r) {
    EXPECT_EQ(row(qpb, 64, r), row(q.codes, 64, hf_rope_row(r, 32))) << r;
    EXPECT_EQ(row(qsb, 64, r), row(q.scale_codes, 64, hf_rope_row(r, 32))) << r;
  }
  // v is not rotated: rows in our order.
  EXPECT_EQ(st.read_bytes("model.layers.0.self_attn.v_proj.weight_packed"),
            ours.at("blocks.0.attn.v.weight")->packed.codes);

  // NVFP4 MLP: E4M3 scales and the global scale S_enc.
  const quant::EncodedTensor& d = ours.at("blocks.0.mlp.down.weight")->packed;
  EXPECT_EQ(st.at("model.layers.0.mlp.down_proj.weight_scale").dtype, "F8_E4M3");
  EXPECT_EQ(st.at("model.layers.0.mlp.down_proj.weight_scale").shape, (std::vector<int64_t>{64, 6}));
  EXPECT_EQ(st.read_bytes("model.layers.0.mlp.down_proj.weight_packed"), d.codes);
  EXPECT_EQ(st.read_bytes("model.layers.0.mlp.down_proj.weight_scale"), d.scale_codes);
  const auto g = st.read_f32("model.layers.0.mlp.down_proj.weight_global_scale");
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0], d.global_encode_scale);
  EXPECT_EQ(1.0f / g[0], d.global_decode_scale);

  // Float tensors, and the MXFP8 head decoded into lm_head.weight.
  const auto emb = st.read_f32("model.embed_tokens.weight");
  EXPECT_EQ(std::memcmp(emb.data(), ours.at("tok_emb.weight")->value.data(), emb.size() * 4), 0);
  const auto head = st.read_f32("lm_head.weight");
  const autograd::Tensor hd = ours.at("head.weight")->decoded();
  EXPECT_EQ(std::memcmp(head.data(), hd.data(), head.size() * 4), 0);
  EXPECT_EQ(st.find("model.layers.0.self_attn.q_proj.weight"), nullptr);

  // config.json
  const Json c = Json::read((dir / "out" / "config.json").string());
  EXPECT_EQ(c.at("architectures").array()[0].string(), "LlamaForCausalLM");
  EXPECT_EQ(c.at("hidden_size").number(), 64);
  EXPECT_EQ(c.at("num_key_value_heads").number(), 2);
  EXPECT_EQ(c.at("head_dim").number(), 32);
  EXPECT_EQ(c.at("vocab_size").number(), 256);
  EXPECT_EQ(c.at("torch_dtype").string(), "float32");
  const Json& qc = c.at("quantization_config");
  EXPECT_EQ(qc.at("quant_method").string(), "compressed-tensors");
  EXPECT_EQ(qc.at("quantization_status").string(), "compressed");
  EXPECT_EQ(qc.at("format").string(), "mixed-precision");
  ASSERT_EQ(qc.at("ignore").array().size(), 1u);
  EXPECT_EQ(qc.at("ignore").array()[0].string(), "lm_head");
  std::map<std::string, const Json*> by_format;
  for (const auto& [name, grp] : qc.at("config_groups").object()) by_format[grp.at("format").string()] = &grp;
  ASSERT_EQ(by_format.size(), 2u);
  const Json& mx = *by_format.at("mxfp4-pack-quantized");
  EXPECT_EQ(mx.at("targets").array().size(), 8u);  // q, k, v, o of 2 layers
  EXPECT_EQ(mx.at("weights").at("strategy").string(), "group");
  EXPECT_EQ(mx.at("weights").at("group_size").number(), 32);
  EXPECT_TRUE(mx.at("input_activations").at("dynamic").boolean());
  const Json& nv = *by_format.at("nvfp4-pack-quantized");
  EXPECT_EQ(nv.at("targets").array().size(), 6u);
  EXPECT_EQ(nv.at("targets").array()[0].string(), "model.layers.0.mlp.gate_proj");
  EXPECT_EQ(nv.at("weights").at("strategy").string(), "tensor_group");
  EXPECT_EQ(nv.at("weights").at("group_size").number(), 16);
  EXPECT_EQ(nv.at("input_activations").kind(), Json::Kind::kNull);
}

TEST(CompressedTensors, Bf16FloatsAndASingleFormat) {
  const ExportModel m = tiny_gpt_export("mxfp4", "mxfp4");
  const auto dir = mxqat::testing::fresh_dir("ct_bf16");
  const CompressedTensorsSummary s = write_compressed_tensors(m, dir.string(), FloatDtype::kBF16);
  EXPECT_EQ(s.format, "mxfp4-pack-quantized");
  SafetensorsReader st((dir / "model.safetensors").string());
  EXPECT_EQ(st.at("model.norm.weight").dtype, "BF16");
  EXPECT_EQ(st.at("lm_head.weight").dtype, "BF16");
  EXPECT_EQ(Json::read((dir / "config.json").string()).at("torch_dtype").string(), "bfloat16");
}

TEST(CompressedTensors, RefusesWhatItCannotCarry) {
  const auto dir = mxqat::testing::fresh_dir("ct_refuse");
  const ExportModel none = tiny_gpt_export("mxfp8_e4m3", "int8_sym");
  expect_error([&] { write_compressed_tensors(none, dir.string(), FloatDtype::kF32); },
               {"no mxfp4 or nvfp4 weight", "--format h5"});
  ExportModel mlp = tiny_gpt_export();
  mlp.recipe_text = "name: m\ndata: {dataset: fashion_mnist}\nmodel: {type: mlp}\n"
                    "train: {steps: 1, optimizer: {type: adamw, lr: 1.0e-3}}\n";
  expect_error([&] { write_compressed_tensors(mlp, dir.string(), FloatDtype::kF32); }, {"only gpt", "'mlp'"});
  ExportModel nan = tiny_gpt_export();
  nan.tensors[2].packed.scale_codes[0] = 0xFF;
  expect_error([&] { write_compressed_tensors(nan, dir.string(), FloatDtype::kF32); },
               {nan.tensors[2].name, "NaN block"});
  EXPECT_FALSE(std::filesystem::exists(dir / "model.safetensors"));
}

}  // namespace
}  // namespace mxqat::trainers
