// The GGUF writer and the gpt -> llama GGUF export, read back by a small independent parser:
// header, metadata values, tensor infos (ggml's reversed dimensions), alignment of the offsets
// and of the data section, the MXFP4 block packing (element j low nibble, j + 16 high, scale byte
// first) against our codec's codes and decoded values, the llama metadata and tensor names of
// an export, and the refusals.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <random>

#include "quant/codec/codec.h"
#include "tests/test_util.h"
#include "tests/trainers/tiny_gpt_export.h"
#include "trainers/io/export.h"
#include "trainers/interop/gguf.h"
#include "trainers/util/json_write.h"

namespace mxqat::trainers {
namespace {

using mxqat::testing::expect_error;

// A minimal GGUF v3 reader (only what the writer emits).
struct Parsed {
  struct Info {
    std::vector<uint64_t> ne;
    uint32_t type;
    uint64_t offset;
  };
  uint32_t version = 0;
  std::map<std::string, uint32_t> kv_type;
  std::map<std::string, std::string> strings;
  std::map<std::string, uint64_t> ints;  // u32 / i32 / bool
  std::map<std::string, float> floats;
  std::map<std::string, std::vector<std::string>> string_arrays;
  std::map<std::string, size_t> array_sizes;
  std::vector<std::string> tensor_order;
  std::map<std::string, Info> tensors;
  size_t data_start = 0;
};

class Cursor {
 public:
  explicit Cursor(const std::string& b) : b_(b) {}
  template <typename T>
  T get() {
    EXPECT_LE(pos_ + sizeof(T), b_.size());
    T v{};
    if (pos_ + sizeof(T) <= b_.size()) std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str() {
    const uint64_t n = get<uint64_t>();
    std::string s = b_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  size_t pos() const { return pos_; }

 private:
  const std::string& b_;
  size_t pos_ = 0;
};

Parsed parse(const std::string& b, uint32_t alignment = 32) {
  Parsed p;
  Cursor c(b);
  EXPECT_EQ(b.substr(0, 4), "GGUF");
  c.get<uint32_t>();
  p.version = c.get<uint32_t>();
  const uint64_t nt = c.get<uint64_t>(), nkv = c.get<uint64_t>();
  for (uint64_t i = 0; i < nkv; ++i) {
    const std::string key = c.str();
    const uint32_t type = c.get<uint32_t>();
    p.kv_type[key] = type;
    switch (type) {
      case 4: p.ints[key] = c.get<uint32_t>(); break;
      case 5: p.ints[key] = uint64_t(c.get<int32_t>()); break;
      case 6: p.floats[key] = c.get<float>(); break;
      case 7: p.ints[key] = c.get<uint8_t>(); break;
      case 8: p.strings[key] = c.str(); break;
      case 9: {
        const uint32_t et = c.get<uint32_t>();
        const uint64_t n = c.get<uint64_t>();
        p.array_sizes[key] = n;
        for (uint64_t j = 0; j < n; ++j) {
          if (et == 8) p.string_arrays[key].push_back(c.str());
          else c.get<uint32_t>();  // f32 / i32
        }
        break;
      }
      default: ADD_FAILURE() << "unexpected value type " << type << " of " << key; return p;
    }
  }
  for (uint64_t i = 0; i < nt; ++i) {
    const std::string name = c.str();
    Parsed::Info info;
    const uint32_t nd = c.get<uint32_t>();
    for (uint32_t d = 0; d < nd; ++d) info.ne.push_back(c.get<uint64_t>());
    info.type = c.get<uint32_t>();
    info.offset = c.get<uint64_t>();
    p.tensor_order.push_back(name);
    p.tensors[name] = info;
  }
  p.data_start = (c.pos() + alignment - 1) / alignment * alignment;
  return p;
}

TEST(Gguf, LayoutMetadataAndAlignment) {
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_u32("llama.block_count", 7);
  w.add_f32("llama.rope.freq_base", 10000.f);
  w.add_bool("tokenizer.ggml.add_bos_token", false);
  w.add_string_array("tokenizer.ggml.tokens", {"a", "bc"});
  const std::vector<float> a = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};  // [3, 5]
  w.add_f32_tensor("first", {3, 5}, a.data());
  std::vector<uint8_t> blocks(size_t(2 * 2 * kGgmlMxfp4BlockBytes));
  for (size_t i = 0; i < blocks.size(); ++i) blocks[i] = uint8_t(i * 7 + 1);
  w.add_mxfp4_tensor("second", 2, 64, blocks);
  const std::string b = w.serialize();
  const Parsed p = parse(b);
  EXPECT_EQ(p.version, 3u);
  EXPECT_EQ(p.strings.at("general.architecture"), "llama");
  EXPECT_EQ(p.ints.at("llama.block_count"), 7u);
  EXPECT_EQ(p.kv_type.at("llama.block_count"), 4u);
  EXPECT_EQ(p.floats.at("llama.rope.freq_base"), 10000.f);
  EXPECT_EQ(p.ints.at("tokenizer.ggml.add_bos_token"), 0u);
  EXPECT_EQ(p.string_arrays.at("tokenizer.ggml.tokens"), (std::vector<std::string>{"a", "bc"}));
  ASSERT_EQ(p.tensor_order, (std::vector<std::string>{"first", "second"}));
  const auto& f = p.tensors.at("first");
  const auto& s = p.tensors.at("second");
  EXPECT_EQ(f.ne, (std::vector<uint64_t>{5, 3}));  // innermost first
  EXPECT_EQ(f.type, 0u);
  EXPECT_EQ(s.ne, (std::vector<uint64_t>{64, 2}));
  EXPECT_EQ(s.type, 39u);
  EXPECT_EQ(f.offset, 0u);
  EXPECT_EQ(s.offset, 64u);  // 60 bytes of floats padded to 32
  EXPECT_EQ(p.data_start % 32, 0u);
  ASSERT_EQ(b.size(), p.data_start + 64 + 96);  // 68 bytes of blocks padded to 96
  EXPECT_EQ(std::memcmp(b.data() + p.data_start, a.data(), 60), 0);
  EXPECT_EQ(std::memcmp(b.data() + p.data_start + 64, blocks.data(), blocks.size()), 0);
  for (size_t i = p.data_start + 60; i < p.data_start + 64; ++i) EXPECT_EQ(b[i], '\0');
}

TEST(Gguf, OtherAlignmentIsWrittenAndHonoured) {
  GgufWriter w(64);
  const std::vector<float> a(3, 1.f);
  w.add_f32_tensor("x", {3}, a.data());
  w.add_f32_tensor("y", {3}, a.data());
  const std::string b = w.serialize();
  const Parsed p = parse(b, 64);
  EXPECT_EQ(p.ints.at("general.alignment"), 64u);
  EXPECT_EQ(p.tensors.at("y").offset, 64u);
  EXPECT_EQ(p.data_start % 64, 0u);
  EXPECT_EQ(b.size(), p.data_start + 128);
}

TEST(Gguf, RefusesBadInput) {
  GgufWriter w;
  w.add_u32("k", 1);
  expect_error([&] { w.add_u32("k", 2); }, {"'k'", "twice"});
  expect_error([] { GgufWriter(48); }, {"alignment 48"});
  const float x[4] = {};
  expect_error([&] { w.add_f32_tensor("t", {2, 0}, x); }, {"'t'", "dimension of 0"});
  expect_error([&] { w.add_f32_tensor(std::string(64, 'n'), {4}, x); }, {"63 characters"});
  expect_error([&] { w.add_mxfp4_tensor("m", 1, 48, std::vector<uint8_t>(17)); }, {"'m'", "48", "multiple of 32"});
  expect_error([&] { w.add_mxfp4_tensor("m", 1, 32, std::vector<uint8_t>(16)); }, {"'m'", "17 bytes", "got 16"});
}

// Random weights with a spread of magnitudes, negatives that round to -0, and a zero block.
std::vector<float> weights(int64_t R, int64_t K, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0.f, 1.f);
  std::vector<float> x(size_t(R * K));
  for (int64_t i = 0; i < R * K; ++i) x[size_t(i)] = n(rng) * std::ldexp(1.f, int(i / 32 % 9) - 4);
  for (int64_t i = 0; i < 32; ++i) x[size_t(K + i)] = 0.f;  // row 1, block 0
  x[5] = -1e-6f;                                            // underflows to -0 under its scale
  return x;
}

TEST(Gguf, Mxfp4BlocksHoldOurCodesInGgmlOrder) {
  const int64_t R = 3, K = 96;
  const auto x = weights(R, K, 11);
  const quant::Codec c = quant::Codec::make("mxfp4");
  const quant::EncodedTensor e = c.encode(x.data(), R, K);
  const std::vector<uint8_t> g = mxfp4_to_ggml(e, "w");
  ASSERT_EQ(g.size(), size_t(R * 3 * 17));
  for (int64_t r = 0; r < R; ++r)
    for (int64_t b = 0; b < 3; ++b) {
      const uint8_t* blk = g.data() + (r * 3 + b) * 17;
      EXPECT_EQ(blk[0], e.scale_codes[size_t(r * 3 + b)]);
      for (int64_t j = 0; j < 32; ++j) {  // our element k of the row: byte k / 2, nibble k % 2
        const int64_t k = b * 32 + j;
        const uint8_t ours = (e.codes[size_t(r * K / 2 + k / 2)] >> (4 * (k % 2))) & 0xF;
        const uint8_t theirs = j < 16 ? blk[1 + j] & 0xF : blk[1 + j - 16] >> 4;
        EXPECT_EQ(ours, theirs) << "row " << r << " element " << k;
      }
    }
  // ggml's decode (doubled E2M1 table, half scale) gives our values; -0 comes back as +0.
  std::vector<float> ours(size_t(R * K));
  c.decode(e, ours.data());
  const std::vector<float> theirs = ggml_mxfp4_dequantize(g.data(), R * K);
  int64_t neg_zero = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    uint32_t a, b;
    std::memcpy(&a, &ours[i], 4);
    std::memcpy(&b, &theirs[i], 4);
    if (a == 0x80000000u && b == 0u) ++neg_zero;
    else EXPECT_EQ(a, b) << "element " << i << ": ours " << ours[i] << ", ggml " << theirs[i];
  }
  EXPECT_GE(neg_zero, 1);
}

TEST(Gguf, Mxfp4ScaleExtremesDecodeAsOurs) {
  // Every scale code 0..254 with every element code: the half-scale table stays exact.
  quant::EncodedTensor e;
  e.codec = "mxfp4";
  e.rows = 255;
  e.cols = 32;
  e.block_size = 32;
  e.codes.resize(255 * 16);
  e.scale_codes.resize(255);
  for (int s = 0; s < 255; ++s) {
    e.scale_codes[size_t(s)] = uint8_t(s);
    for (int j = 0; j < 16; ++j) e.codes[size_t(s * 16 + j)] = uint8_t((j + s) % 16 | ((15 - j) << 4));
  }
  std::vector<float> ours(255 * 32);
  quant::Codec::make("mxfp4").decode(e, ours.data());
  const auto g = mxfp4_to_ggml(e, "w");
  const auto theirs = ggml_mxfp4_dequantize(g.data(), 255 * 32);
  for (size_t i = 0; i < ours.size(); ++i)
    if (!(ours[i] == 0.f && theirs[i] == 0.f)) {
      uint32_t a, b;
      std::memcpy(&a, &ours[i], 4);
      std::memcpy(&b, &theirs[i], 4);
      ASSERT_EQ(a, b) << "scale " << i / 32 << " element " << i % 32;
    }
}

TEST(Gguf, Mxfp4RefusesWhatGgmlCannotHold) {
  const auto x = weights(2, 64, 3);
  quant::EncodedTensor e = quant::Codec::make("mxfp4").encode(x.data(), 2, 64);
  e.scale_codes[3] = 0xFF;
  expect_error([&] { mxfp4_to_ggml(e, "blocks.0.attn.q.weight"); },
               {"blocks.0.attn.q.weight", "row 1 block 1", "0xFF"});
  const auto y = weights(2, 48, 3);
  expect_error([&] { mxfp4_to_ggml(quant::Codec::make("mxfp4").encode(y.data(), 2, 48), "w"); },
               {"rows of 48", "--weights f32"});
  expect_error([&] { mxfp4_to_ggml(quant::Codec::make("nvfp4").encode(x.data(), 2, 64), "w"); },
               {"nvfp4", "only mxfp4"});
}

TEST(Gguf, TensorNamesFollowLlamaCpp) {
  for (const auto& c : gpt_name_cases()) EXPECT_EQ(gguf_tensor_name(c.ours), c.gguf);
  expect_error([] { gguf_tensor_name("blocks.0.attn.qkv.weight"); }, {"blocks.0.attn.qkv.weight", "llama"});
}

TEST(Gguf, GptExportCarriesLlamaMetadataAndOurWeights) {
  const ExportModel m = tiny_gpt_export();
  const auto dir = mxqat::testing::fresh_dir("gguf_export");
  const GgufSummary s = write_gguf(m, (dir / "p.gguf").string(), GgufWeights::kPacked);
  EXPECT_EQ(s.tensors, 21);
  EXPECT_EQ(s.mxfp4_tensors, 14);
  ASSERT_EQ(s.decoded.size(), 1u);
  EXPECT_EQ(s.decoded[0], "head.weight (mxfp8_e4m3)");
  std::string b = read_file((dir / "p.gguf").string());
  EXPECT_EQ(s.bytes, int64_t(b.size()));
  const Parsed p = parse(b);
  EXPECT_EQ(p.strings.at("general.architecture"), "llama");
  EXPECT_EQ(p.ints.at("llama.block_count"), 2u);
  EXPECT_EQ(p.ints.at("llama.embedding_length"), 64u);
  EXPECT_EQ(p.ints.at("llama.feed_forward_length"), 96u);
  EXPECT_EQ(p.ints.at("llama.attention.head_count"), 2u);
  EXPECT_EQ(p.ints.at("llama.attention.head_count_kv"), 2u);
  EXPECT_EQ(p.ints.at("llama.rope.dimension_count"), 32u);
  EXPECT_EQ(p.ints.at("llama.context_length"), 16u);
  EXPECT_EQ(p.floats.at("llama.rope.freq_base"), 10000.f);
  EXPECT_EQ(p.floats.at("llama.attention.layer_norm_rms_epsilon"), 1e-5f);
  EXPECT_EQ(p.strings.at("tokenizer.ggml.model"), "llama");
  const auto& tokens = p.string_arrays.at("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.size(), 256u);
  EXPECT_EQ(tokens[0x41], "<0x41>");
  EXPECT_EQ(tokens[0x20], "\xe2\x96\x81");  // sentencepiece's space
  EXPECT_EQ(p.array_sizes.at("tokenizer.ggml.token_type"), 256u);
  // Tensor names, types and contents.
  std::map<std::string, const ExportTensor*> ours;
  for (const auto& t : m.tensors) ours[gguf_tensor_name(t.name)] = &t;
  ASSERT_EQ(p.tensors.size(), 21u);
  for (const auto& [name, info] : p.tensors) {
    ASSERT_TRUE(ours.count(name)) << name;
    const ExportTensor& t = *ours.at(name);
    EXPECT_EQ(info.offset % 32, 0u);
    EXPECT_EQ(info.ne.back(), uint64_t(t.shape[0])) << name;
    const char* data = b.data() + p.data_start + info.offset;
    if (t.quantized && t.packed.codec == "mxfp4") {
      EXPECT_EQ(info.type, 39u) << name;
      const auto g = mxfp4_to_ggml(t.packed, t.name);
      EXPECT_EQ(std::memcmp(data, g.data(), g.size()), 0) << name;
    } else {
      EXPECT_EQ(info.type, 0u) << name;
      const autograd::Tensor v = t.decoded();
      EXPECT_EQ(std::memcmp(data, v.data(), size_t(v.size()) * 4), 0) << name;
    }
  }
  // --weights f32: every tensor float32, the quantized ones decoded.
  const GgufSummary f = write_gguf(m, (dir / "f.gguf").string(), GgufWeights::kF32);
  EXPECT_EQ(f.mxfp4_tensors, 0);
  b = read_file((dir / "f.gguf").string());
  const Parsed q = parse(b);
  const auto& qi = q.tensors.at("blk.1.ffn_down.weight");
  EXPECT_EQ(qi.type, 0u);
  const autograd::Tensor v = ours.at("blk.1.ffn_down.weight")->decoded();
  EXPECT_EQ(std::memcmp(b.data() + q.data_start + qi.offset, v.data(), size_t(v.size()) * 4), 0);
}

TEST(Gguf, RefusesModelsLlamaCppCannotRun) {
  ExportModel m = tiny_gpt_export();
  ExportModel mlp = m;
  mlp.recipe_text = "name: m\ndata: {dataset: fashion_mnist}\nmodel: {type: mlp}\n"
                    "train: {steps: 1, optimizer: {type: adamw, lr: 1.0e-3}}\n";
  const auto dir = mxqat::testing::fresh_dir("gguf_refuse");
  expect_error([&] { write_gguf(mlp, (dir / "x.gguf").string(), GgufWeights::kPacked); },
               {"only gpt", "'mlp'"});
  ExportModel missing = m;
  missing.tensors.pop_back();
  expect_error([&] { write_gguf(missing, (dir / "x.gguf").string(), GgufWeights::kPacked); },
               {"20 tensors", "21"});
  EXPECT_FALSE(std::filesystem::exists(dir / "x.gguf"));
}

}  // namespace
}  // namespace mxqat::trainers
