// GGUF writer and the gpt -> llama GGUF export.
#include "trainers/interop/gguf.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstring>

#include "autograd/error.h"
#include "trainers/interop/gpt_names.h"
#include "trainers/io/export.h"
#include "trainers/model/model_factory.h"
#include "trainers/recipe/recipe.h"
#include "trainers/util/json_write.h"

namespace mxqat::trainers {

namespace {

template <typename T>
void put(std::string& out, T v) {  // little-endian hosts only (x86-64, aarch64)
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}
void put_str(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}
uint64_t pad_to(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

}  // namespace

GgufWriter::GgufWriter(uint32_t alignment) : alignment_(alignment) {
  MXQAT_CHECK(alignment >= 8 && (alignment & (alignment - 1)) == 0, "gguf: alignment ", alignment,
              " must be a power of two >= 8");
  if (alignment != 32) add_u32("general.alignment", alignment);
}

void GgufWriter::check_new_key(const std::string& key) {
  MXQAT_CHECK(!key.empty(), "gguf: empty metadata key");
  for (const auto& k : keys_) MXQAT_CHECK(k != key, "gguf: metadata key '", key, "' added twice");
  keys_.push_back(key);
  ++kv_count_;
  put_str(kv_, key);
}

template <typename T>
void GgufWriter::add_value(const std::string& key, GgufValueType type, T value) {
  check_new_key(key);
  put(kv_, type);
  put(kv_, value);
}
void GgufWriter::add_string(const std::string& key, const std::string& value) {
  check_new_key(key);
  put(kv_, GgufValueType::kString);
  put_str(kv_, value);
}
void GgufWriter::add_u32(const std::string& key, uint32_t v) { add_value(key, GgufValueType::kU32, v); }
void GgufWriter::add_i32(const std::string& key, int32_t v) { add_value(key, GgufValueType::kI32, v); }
void GgufWriter::add_f32(const std::string& key, float v) { add_value(key, GgufValueType::kF32, v); }
void GgufWriter::add_bool(const std::string& key, bool v) {
  add_value<uint8_t>(key, GgufValueType::kBool, v ? 1 : 0);
}
void GgufWriter::add_string_array(const std::string& key, const std::vector<std::string>& values) {
  check_new_key(key);
  put(kv_, GgufValueType::kArray);
  put(kv_, GgufValueType::kString);
  put<uint64_t>(kv_, values.size());
  for (const auto& v : values) put_str(kv_, v);
}
template <typename T>
void GgufWriter::add_array(const std::string& key, GgufValueType type, const std::vector<T>& values) {
  check_new_key(key);
  put(kv_, GgufValueType::kArray);
  put(kv_, type);
  put<uint64_t>(kv_, values.size());
  for (T v : values) put(kv_, v);
}
void GgufWriter::add_f32_array(const std::string& key, const std::vector<float>& values) {
  add_array(key, GgufValueType::kF32, values);
}
void GgufWriter::add_i32_array(const std::string& key, const std::vector<int32_t>& values) {
  add_array(key, GgufValueType::kI32, values);
}

void GgufWriter::check_new_tensor(const std::string& name, const std::vector<int64_t>& shape) {
  MXQAT_CHECK(!name.empty() && name.size() < 64, "gguf: tensor name '", name,
              "' must have 1 to 63 characters (ggml's limit)");
  MXQAT_CHECK(!shape.empty() && shape.size() <= 4, "gguf: tensor '", name, "' has ", shape.size(),
              " dimensions; ggml holds 1 to 4");
  for (int64_t d : shape) MXQAT_CHECK(d > 0, "gguf: tensor '", name, "' has a dimension of ", d);
  for (const auto& t : tensors_) MXQAT_CHECK(t.name != name, "gguf: tensor '", name, "' added twice");
}

void GgufWriter::add_f32_tensor(const std::string& name, const std::vector<int64_t>& shape,
                                const float* data) {
  check_new_tensor(name, shape);
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  Tensor t{name, std::vector<int64_t>(shape.rbegin(), shape.rend()), GgmlType::kF32, {}};
  t.bytes.resize(size_t(n) * 4);
  std::memcpy(t.bytes.data(), data, t.bytes.size());
  tensors_.push_back(std::move(t));
}

void GgufWriter::add_mxfp4_tensor(const std::string& name, int64_t rows, int64_t cols,
                                  std::vector<uint8_t> blocks) {
  check_new_tensor(name, {rows, cols});
  MXQAT_CHECK(cols % kGgmlMxfp4Block == 0, "gguf: MXFP4 tensor '", name, "' has rows of ", cols,
              " elements, not a multiple of ", kGgmlMxfp4Block);
  const size_t want = size_t(rows * (cols / kGgmlMxfp4Block) * kGgmlMxfp4BlockBytes);
  MXQAT_CHECK(blocks.size() == want, "gguf: MXFP4 tensor '", name, "' [", rows, ", ", cols,
              "] needs ", want, " bytes of blocks, got ", blocks.size());
  tensors_.push_back({name, {cols, rows}, GgmlType::kMxfp4, std::move(blocks)});
}

std::string GgufWriter::serialize() const {
  std::string out;
  out += "GGUF";
  put<uint32_t>(out, 3);
  put<uint64_t>(out, tensors_.size());
  put<uint64_t>(out, kv_count_);
  out += kv_;
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    put_str(out, t.name);
    put<uint32_t>(out, uint32_t(t.ne.size()));
    for (int64_t d : t.ne) put<uint64_t>(out, uint64_t(d));
    put<uint32_t>(out, uint32_t(t.type));
    put<uint64_t>(out, offset);
    offset = pad_to(offset + t.bytes.size(), alignment_);
  }
  out.resize(pad_to(out.size(), alignment_), '\0');
  for (const auto& t : tensors_) {
    out.append(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
    out.resize(pad_to(out.size(), alignment_), '\0');
  }
  return out;
}

void GgufWriter::write(const std::string& path) const { write_file_atomic(path, serialize()); }

std::vector<uint8_t> mxfp4_to_ggml(const quant::EncodedTensor& e, const std::string& what) {
  MXQAT_CHECK(e.codec == "mxfp4", "gguf: ", what, " is encoded as ", e.codec,
              "; only mxfp4 maps onto ggml's MXFP4 blocks");
  const int64_t R = e.rows, K = e.cols, nb = K / kGgmlMxfp4Block;
  MXQAT_CHECK(K % kGgmlMxfp4Block == 0, "gguf: ", what, " has rows of ", K,
              " elements; ggml's MXFP4 rows hold whole 32-blocks (export it with --weights f32)");
  MXQAT_CHECK(e.codes.size() == size_t(R * K / 2) && e.scale_codes.size() == size_t(R * nb),
              "gguf: ", what, " holds ", e.codes.size(), " code bytes and ", e.scale_codes.size(),
              " scales for [", R, ", ", K, "]; expected ", R * K / 2, " and ", R * nb);
  std::vector<uint8_t> out(size_t(R * nb * kGgmlMxfp4BlockBytes));
  for (int64_t r = 0; r < R; ++r)
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t scale = e.scale_codes[size_t(r * nb + b)];
      MXQAT_CHECK(scale != 0xFF, "gguf: ", what, " row ", r, " block ", b,
                  " has the NaN scale 0xFF, which ggml's MXFP4 cannot hold");
      const uint8_t* src = e.codes.data() + r * K / 2 + b * 16;  // our pairs (2i, 2i + 1)
      uint8_t* dst = out.data() + (r * nb + b) * kGgmlMxfp4BlockBytes;
      auto code = [src](int64_t j) { return uint8_t((src[j / 2] >> (4 * (j % 2))) & 0xF); };
      dst[0] = scale;
      for (int64_t j = 0; j < 16; ++j) dst[1 + j] = uint8_t(code(j) | code(j + 16) << 4);
    }
  return out;
}

std::vector<float> ggml_mxfp4_dequantize(const uint8_t* blocks, int64_t n) {
  MXQAT_CHECK(n % kGgmlMxfp4Block == 0, "ggml_mxfp4_dequantize: ", n,
              " elements are not whole blocks of 32");
  static const int8_t kValues[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
  std::vector<float> y(static_cast<size_t>(n));
  for (int64_t b = 0; b < n / kGgmlMxfp4Block; ++b) {
    const uint8_t* blk = blocks + b * kGgmlMxfp4BlockBytes;
    // 2^(e - 128): half the E8M0 scale, from bits (subnormal for e < 2).
    const uint32_t bits = blk[0] < 2 ? 0x00200000u << blk[0] : uint32_t(blk[0] - 1) << 23;
    float d;
    std::memcpy(&d, &bits, 4);
    for (int64_t j = 0; j < 16; ++j) {
      y[size_t(b * 32 + j)] = float(kValues[blk[1 + j] & 0xF]) * d;
      y[size_t(b * 32 + j + 16)] = float(kValues[blk[1 + j] >> 4]) * d;
    }
  }
  return y;
}

std::string gguf_tensor_name(const std::string& n) {
  static const GptNameTable llama_cpp = {
      "llama.cpp's llama architecture", "token_embd.weight", "output_norm.weight", "output.weight",
      "blk.",
      {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up",
       "ffn_down"}};
  return rename_gpt_param(n, llama_cpp);
}

GgufSummary write_gguf(const ExportModel& m, const std::string& path, GgufWeights weights) {
  const Recipe r = parse_recipe(m.recipe_text, m.source + ":/recipe");
  MXQAT_CHECK(r.model.type == "gpt", "gguf: only gpt models map onto llama.cpp; this export holds "
              "a '", r.model.type, "' model (use --format h5)");
  const layers::GptConfig c = gpt_config(r.model);
  MXQAT_CHECK(c.vocab == 256, "gguf: the model's vocabulary has ", c.vocab, " entries; the GGUF "
              "export writes the 256-byte vocabulary only");
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_string("general.name", r.name);
  w.add_string("general.description", "mxqat export of " + m.source);
  w.add_u32("general.file_type", weights == GgufWeights::kF32 ? 0u : 25u);  // ALL_F32 / MOSTLY_MXFP4
  w.add_u32("llama.context_length", uint32_t(c.context));
  w.add_u32("llama.embedding_length", uint32_t(c.d_model));
  w.add_u32("llama.block_count", uint32_t(c.layers));
  w.add_u32("llama.feed_forward_length", uint32_t(c.mlp_hidden));
  w.add_u32("llama.attention.head_count", uint32_t(c.heads));
  w.add_u32("llama.attention.head_count_kv", uint32_t(c.kv_head_count()));
  w.add_u32("llama.rope.dimension_count", uint32_t(c.head_dim()));
  w.add_f32("llama.rope.freq_base", c.rope_theta);
  w.add_f32("llama.attention.layer_norm_rms_epsilon", c.norm_eps);
  w.add_u32("llama.vocab_size", uint32_t(c.vocab));
  // Token id = byte value. llama.cpp's sentencepiece tokenizer turns every space into U+2581
  // before looking pieces up, so byte 0x20 is the normal token "\u2581"; every other byte is a
  // byte token "<0xNN>", which its byte fallback emits for any other character.
  std::vector<std::string> tokens;
  std::vector<int32_t> types(256, 6);  // BYTE
  for (int b = 0; b < 256; ++b) {
    char s[8];
    std::snprintf(s, sizeof s, "<0x%02X>", b);
    tokens.push_back(s);
  }
  tokens[0x20] = "\xe2\x96\x81";
  types[0x20] = 1;  // NORMAL
  w.add_string("tokenizer.ggml.model", "llama");
  w.add_string_array("tokenizer.ggml.tokens", tokens);
  w.add_f32_array("tokenizer.ggml.scores", std::vector<float>(256, 0.f));
  w.add_i32_array("tokenizer.ggml.token_type", types);
  w.add_bool("tokenizer.ggml.add_bos_token", false);
  w.add_bool("tokenizer.ggml.add_eos_token", false);
  w.add_bool("tokenizer.ggml.add_space_prefix", false);

  GgufSummary s;
  for (const auto& t : m.tensors) {
    const std::string name = gguf_tensor_name(t.name);
    const bool packed = weights == GgufWeights::kPacked && t.quantized && t.packed.codec == "mxfp4" &&
                        t.packed.cols % kGgmlMxfp4Block == 0;
    if (packed) {
      w.add_mxfp4_tensor(name, t.packed.rows, t.packed.cols, mxfp4_to_ggml(t.packed, t.name));
      ++s.mxfp4_tensors;
    } else {
      if (t.quantized && weights == GgufWeights::kPacked)
        s.decoded.push_back(t.name + " (" + t.packed.codec + ")");
      const autograd::Tensor v = t.decoded();
      w.add_f32_tensor(name, t.shape, v.data());
    }
  }
  MXQAT_CHECK(int64_t(w.tensor_count()) == 3 + 9 * c.layers, "gguf: the export holds ",
              w.tensor_count(), " tensors; a gpt of ", c.layers, " layers has ", 3 + 9 * c.layers);
  const std::string bytes = w.serialize();
  write_file_atomic(path, bytes);
  s.tensors = int64_t(w.tensor_count());
  s.bytes = int64_t(bytes.size());
  for (const auto& d : s.decoded)
    spdlog::info("gguf: {} has no ggml type; written as its decoded float32 values", d);
  return s;
}

}  // namespace mxqat::trainers
