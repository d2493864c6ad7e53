// gpt export -> Hugging Face llama directory in the compressed-tensors layout.
#include "trainers/interop/compressed_tensors.h"

#include <filesystem>
#include <map>
#include <set>

#include "autograd/error.h"
#include "trainers/interop/gpt_names.h"
#include "trainers/interop/safetensors.h"
#include "trainers/io/export.h"
#include "trainers/model/model_factory.h"
#include "trainers/recipe/recipe.h"
#include "trainers/util/json_write.h"

namespace mxqat::trainers {

namespace {

// The compressed-tensors pack format of a codec; "" when it has none.
std::string pack_format(const std::string& codec) {
  if (codec == "mxfp4") return "mxfp4-pack-quantized";
  if (codec == "nvfp4") return "nvfp4-pack-quantized";
  return "";
}

// QuantizationArgs of a 4-bit float codec (weights, or dynamic input activations).
std::string quant_args(const std::string& codec, bool dynamic) {
  const bool mx = codec == "mxfp4";
  return JsonObject()
      .integer("num_bits", 4).str("type", "float").boolean("symmetric", true)
      .integer("group_size", mx ? 32 : 16).str("strategy", mx ? "group" : "tensor_group")
      .boolean("dynamic", dynamic).raw("actorder", "null").raw("block_structure", "null")
      .raw("observer", dynamic ? "null" : "\"minmax\"").raw("observer_kwargs", "{}")
      .dump();
}

std::string string_list(const std::vector<std::string>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + json_escape(v[i]);
  return s + "]";
}

// Rows of a [R, bytes] row-major byte matrix reordered into Hugging Face's q/k order.
std::vector<uint8_t> hf_rows(const std::vector<uint8_t>& src, int64_t R, int64_t D) {
  const size_t row = src.size() / size_t(R);
  std::vector<uint8_t> out(src.size());
  for (int64_t r = 0; r < R; ++r)
    std::copy_n(src.data() + size_t(hf_rope_row(r, D)) * row, row, out.data() + size_t(r) * row);
  return out;
}
std::vector<float> hf_rows(const autograd::Tensor& t, int64_t R, int64_t D) {
  const int64_t row = t.size() / R;
  std::vector<float> out(size_t(t.size()));
  for (int64_t r = 0; r < R; ++r)
    std::copy_n(t.data() + hf_rope_row(r, D) * row, row, out.data() + r * row);
  return out;
}

}  // namespace

std::string hf_llama_name(const std::string& n) {
  static const GptNameTable hf = {
      "a LlamaForCausalLM", "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
      "model.layers.",
      {"input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
       "self_attn.o_proj", "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj",
       "mlp.down_proj"}};
  return rename_gpt_param(n, hf);
}

int64_t hf_rope_row(int64_t r, int64_t D) {
  const int64_t h = r / D, j = r % D, half = D / 2;
  return h * D + 2 * (j % half) + j / half;
}

CompressedTensorsSummary write_compressed_tensors(const ExportModel& m, const std::string& dir,
                                                  FloatDtype dtype) {
  const Recipe r = parse_recipe(m.recipe_text, m.source + ":/recipe");
  MXQAT_CHECK(r.model.type == "gpt", "compressed-tensors: only gpt models map onto a Hugging Face "
              "llama; this export holds a '", r.model.type, "' model (use --format h5)");
  const layers::GptConfig c = gpt_config(r.model);
  const int64_t D = c.head_dim();
  std::map<std::string, std::string> input;
  for (const auto& a : m.activations) input[a.layer] = a.codec;

  SafetensorsWriter st;
  st.set_metadata("format", "pt");
  // (weight codec, input codec) -> Hugging Face module names; Linear modules left out.
  std::map<std::pair<std::string, std::string>, std::vector<std::string>> groups;
  std::vector<std::string> ignore;
  CompressedTensorsSummary s;
  for (const auto& t : m.tensors) {
    const std::string hf = hf_llama_name(t.name);
    const std::string module = hf.substr(0, hf.size() - 7);  // without ".weight"
    auto has = [&t](const char* part) { return t.name.find(part) != std::string::npos; };
    const bool rope = has(".attn.q.") || has(".attn.k.");
    const bool linear = has(".attn.") || has(".mlp.") || t.name == "head.weight";
    const std::string fmt = t.quantized ? pack_format(t.packed.codec) : "";
    if (!fmt.empty() && t.packed.cols % t.packed.block_size == 0) {
      const quant::EncodedTensor& e = t.packed;
      const int64_t R = e.rows, K = e.cols, nb = K / e.block_size;
      MXQAT_CHECK(int64_t(e.codes.size()) == R * K / 2 && int64_t(e.scale_codes.size()) == R * nb,
                  "compressed-tensors: ", t.name, " holds ", e.codes.size(), " code bytes and ",
                  e.scale_codes.size(), " scales for [", R, ", ", K, "]");
      const auto codes = rope ? hf_rows(e.codes, R, D) : e.codes;
      const auto scales = rope ? hf_rows(e.scale_codes, R, D) : e.scale_codes;
      st.add_u8(module + ".weight_packed", {R, K / 2}, codes.data());
      s.tensors += e.codec == "nvfp4" ? 3 : 2;
      if (e.codec == "mxfp4") {
        for (uint8_t sc : scales)
          MXQAT_CHECK(sc != 0xFF, "compressed-tensors: ", t.name, " has a NaN block (scale 0xFF)");
        st.add_u8(module + ".weight_scale", {R, nb}, scales.data());
      } else {
        // value = e2m1 * S_b / global: global = S_enc, whose float32 reciprocal is our S_dec.
        MXQAT_CHECK(1.0f / e.global_encode_scale == e.global_decode_scale, "compressed-tensors: ",
                    t.name, ": the NVFP4 global decode scale ", e.global_decode_scale,
                    " is not the reciprocal of the encode scale ", e.global_encode_scale);
        st.add_f8_e4m3(module + ".weight_scale", {R, nb}, scales.data());
        st.add_f32(module + ".weight_global_scale", {1}, &e.global_encode_scale);
      }
      const auto in = input.find(t.name.substr(0, t.name.size() - 7));
      const std::string in_codec = in != input.end() && in->second == "mxfp4" ? "mxfp4" : "none";
      groups[{e.codec, in_codec}].push_back(module);
      ++s.quantized;
      continue;
    }
    if (linear) ignore.push_back(module);
    const autograd::Tensor v = t.decoded();
    const std::vector<float> rows =
        rope ? hf_rows(v, t.shape[0], D) : std::vector<float>(v.data(), v.data() + v.size());
    if (dtype == FloatDtype::kBF16) st.add_bf16(hf, t.shape, rows.data());
    else st.add_f32(hf, t.shape, rows.data());
    ++s.tensors;
  }
  MXQAT_CHECK(s.quantized > 0, "compressed-tensors: ", m.source, " has no mxfp4 or nvfp4 weight to "
              "pack; export it with --format h5, or --format gguf --weights f32");

  std::string config_groups = "{";
  std::set<std::string> formats;
  int gi = 0;
  for (const auto& [key, modules] : groups) {
    const std::string fmt = pack_format(key.first);
    formats.insert(fmt);
    const std::string g = JsonObject()
                              .raw("targets", string_list(modules))
                              .raw("weights", quant_args(key.first, false))
                              .raw("input_activations",
                                   key.second == "none" ? "null" : quant_args(key.second, true))
                              .raw("output_activations", "null")
                              .str("format", fmt)
                              .dump();
    config_groups += (gi ? ", " : "") + json_escape("group_" + std::to_string(gi)) + ": " + g;
    ++gi;
  }
  config_groups += "}";
  s.format = formats.size() == 1 ? *formats.begin() : "mixed-precision";
  const std::string qcfg = JsonObject()
                               .str("quant_method", "compressed-tensors")
                               .str("format", s.format)
                               .str("quantization_status", "compressed")
                               .raw("config_groups", config_groups)
                               .raw("ignore", string_list(ignore))
                               .raw("kv_cache_scheme", "null")
                               .raw("sparsity_config", "{}")
                               .raw("global_compression_ratio", "null")
                               .dump();
  const std::string config =
      JsonObject()
          .raw("architectures", "[\"LlamaForCausalLM\"]").str("model_type", "llama")
          .integer("vocab_size", c.vocab).integer("hidden_size", c.d_model)
          .integer("intermediate_size", c.mlp_hidden).integer("num_hidden_layers", c.layers)
          .integer("num_attention_heads", c.heads).integer("num_key_value_heads", c.kv_head_count())
          .integer("head_dim", D).integer("max_position_embeddings", c.context)
          .num("rms_norm_eps", r.model.norm_eps).num("rope_theta", r.model.rope_theta)
          .raw("rope_scaling", "null").str("hidden_act", "silu").boolean("attention_bias", false)
          .boolean("mlp_bias", false).boolean("tie_word_embeddings", false)
          .raw("bos_token_id", "null").raw("eos_token_id", "null")
          .str("torch_dtype", dtype == FloatDtype::kBF16 ? "bfloat16" : "float32")
          .raw("quantization_config", qcfg)
          .dump();
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  const std::string bytes = st.serialize();
  write_file_atomic((fs::path(dir) / "model.safetensors").string(), bytes);
  write_file_atomic((fs::path(dir) / "config.json").string(), config + "\n");
  s.bytes = int64_t(bytes.size());
  return s;
}

}  // namespace mxqat::trainers
