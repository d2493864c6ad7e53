// Hugging Face llama -> gpt (see llama_import.h).
#include "trainers/interop/llama_import.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "autograd/error.h"
#include "trainers/interop/safetensors.h"
#include "trainers/util/json_read.h"
#include "trainers/util/json_write.h"

namespace mxqat::trainers {

namespace {
namespace fs = std::filesystem;
using autograd::Shape;
using autograd::Tensor;

constexpr const char* kConfigAdvice =
    "config.json is damaged; re-download it or write it again with transformers' save_pretrained";

struct Config {
  const Json& root;
  std::string path;

  const Json* get(const std::string& key) const {
    const Json* v = root.find(key);
    return v && v->kind() != Json::Kind::kNull ? v : nullptr;
  }
  // A positive integer; `fallback` < 0 means the key is required.
  int64_t integer(const std::string& key, int64_t fallback = -1) const {
    const Json* v = get(key);
    if (!v) {
      MXQAT_CHECK(fallback >= 0, path, ": the key \"", key, "\" is missing; a llama config.json "
                  "names hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, "
                  "vocab_size and max_position_embeddings");
      return fallback;
    }
    MXQAT_CHECK(v->kind() == Json::Kind::kNumber, path, ": \"", key, "\" must be a number");
    const double d = v->number();
    MXQAT_CHECK(d >= 1 && d <= 1e12 && d == std::floor(d), path, ": \"", key, "\" = ", d,
                " must be a positive integer");
    return static_cast<int64_t>(d);
  }
  double positive(const std::string& key, double fallback) const {
    const Json* v = get(key);
    if (!v) return fallback;
    MXQAT_CHECK(v->kind() == Json::Kind::kNumber && v->number() > 0 && std::isfinite(v->number()),
                path, ": \"", key, "\" must be a positive number");
    return v->number();
  }
  bool flag(const std::string& key, bool fallback) const {
    const Json* v = get(key);
    if (!v) return fallback;
    MXQAT_CHECK(v->kind() == Json::Kind::kBool, path, ": \"", key, "\" must be true or false");
    return v->boolean();
  }
  std::string text(const std::string& key, const std::string& fallback) const {
    const Json* v = get(key);
    if (!v) return fallback;
    MXQAT_CHECK(v->kind() == Json::Kind::kString, path, ": \"", key, "\" must be a string");
    return v->string();
  }
};

struct Parsed {
  ModelCfg model;
  bool tied = false;
};

Parsed parse_config(const std::string& dir) {
  const std::string path = (fs::path(dir) / "config.json").string();
  std::error_code ec;
  MXQAT_CHECK(fs::is_directory(dir, ec), "import: ", dir, " is not a directory; give the folder "
              "of a Hugging Face checkpoint (config.json + model.safetensors)");
  MXQAT_CHECK(fs::is_regular_file(path, ec), "import: ", dir, " has no config.json; give the "
              "folder of a Hugging Face checkpoint (config.json + model.safetensors)");
  const Json root = Json::parse(read_file(path), path, kConfigAdvice);
  MXQAT_CHECK(root.is_object(), path, ": not a JSON object; ", kConfigAdvice);
  const Config c{root, path};

  std::vector<std::string> archs;
  if (const Json* a = c.get("architectures")) {
    MXQAT_CHECK(a->kind() == Json::Kind::kArray, path, ": \"architectures\" must be a list");
    for (const Json& e : a->array())
      archs.push_back(e.kind() == Json::Kind::kString ? e.string() : std::string("?"));
  }
  const std::string type = c.text("model_type", "");
  const bool llama_arch = std::find(archs.begin(), archs.end(), "LlamaForCausalLM") != archs.end();
  MXQAT_CHECK(type == "llama" || (type.empty() && llama_arch), path, ": model_type \"", type,
              "\"", archs.empty() ? std::string() : " (architectures " + archs.front() + ")",
              " is not supported; mxqat imports llama checkpoints (model_type llama, "
              "LlamaForCausalLM)");
  MXQAT_CHECK(archs.empty() || llama_arch, path, ": architectures [", archs.front(),
              "] is not supported; mxqat imports LlamaForCausalLM");
  const std::string act = c.text("hidden_act", "silu");
  MXQAT_CHECK(act == "silu", path, ": hidden_act \"", act, "\" is not supported; the gpt "
              "model's MLP is SwiGLU (silu)");
  MXQAT_CHECK(!c.flag("attention_bias", false) && !c.flag("mlp_bias", false), path,
              ": attention_bias / mlp_bias are true; the gpt model has no biases");
  MXQAT_CHECK(!c.get("rope_scaling"), path, ": rope_scaling is set; only plain rotary "
              "embeddings (rope_scaling: null) are supported");
  for (const char* key : {"sliding_window", "attn_logit_softcapping", "final_logit_softcapping"})
    MXQAT_CHECK(!c.get(key), path, ": \"", key, "\" is set, which llama does not use; this "
                "checkpoint is not a plain llama");

  Parsed p;
  ModelCfg& m = p.model;
  m.type = "gpt";
  m.vocab = c.integer("vocab_size");
  m.layers = c.integer("num_hidden_layers");
  m.d_model = c.integer("hidden_size");
  m.heads = c.integer("num_attention_heads");
  m.kv_heads = c.integer("num_key_value_heads", m.heads);
  m.context = c.integer("max_position_embeddings");
  m.mlp_hidden = c.integer("intermediate_size");
  m.rope_theta = c.positive("rope_theta", 10000.0);
  m.norm_eps = c.positive("rms_norm_eps", 1e-6);
  m.from = dir;
  p.tied = c.flag("tie_word_embeddings", false);
  MXQAT_CHECK(m.d_model % m.heads == 0, path, ": hidden_size ", m.d_model,
              " is not a multiple of num_attention_heads ", m.heads);
  const int64_t D = m.d_model / m.heads;
  MXQAT_CHECK(D % 2 == 0, path, ": the head size ", D, " is odd; rotary embeddings need pairs");
  const int64_t hd = c.integer("head_dim", D);
  MXQAT_CHECK(hd == D, path, ": head_dim ", hd, " differs from hidden_size / num_attention_heads = ",
              D, "; the gpt model has head size d_model / heads");
  MXQAT_CHECK(m.kv_heads <= m.heads && m.heads % m.kv_heads == 0, path, ": num_key_value_heads ",
              m.kv_heads, " does not divide num_attention_heads ", m.heads);
  return p;
}

// Which file holds each tensor: one model.safetensors, or the shards of the index.
std::map<std::string, std::string> tensor_files(const std::string& dir) {
  std::error_code ec;
  const fs::path single = fs::path(dir) / "model.safetensors";
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  std::map<std::string, std::string> where;
  if (fs::is_regular_file(single, ec)) {
    SafetensorsReader r(single.string());
    for (const auto& e : r.entries()) where[e.name] = single.string();
    return where;
  }
  MXQAT_CHECK(fs::is_regular_file(index, ec), "import: ", dir, " has neither model.safetensors "
              "nor model.safetensors.index.json",
              fs::exists(fs::path(dir) / "pytorch_model.bin", ec)
                  ? "; it holds pytorch_model.bin, which mxqat does not read: save the model "
                    "with safe_serialization=True"
                  : "");
  const std::string ipath = index.string();
  const Json root = Json::parse(read_file(ipath), ipath, kConfigAdvice);
  const Json* map = root.find("weight_map");
  MXQAT_CHECK(map && map->is_object(), ipath, ": \"weight_map\" (tensor name -> shard file) is "
              "missing or not an object");
  for (const auto& [name, file] : map->object()) {
    MXQAT_CHECK(file.kind() == Json::Kind::kString, ipath, ": the shard of \"", name,
                "\" is not a file name");
    const std::string& f = file.string();
    MXQAT_CHECK(!f.empty() && f.find('/') == std::string::npos && f.find('\\') == std::string::npos &&
                    f != "." && f != "..",
                ipath, ": shard \"", f, "\" of \"", name, "\" must be a file name in ", dir);
    where[name] = (fs::path(dir) / f).string();
  }
  return where;
}

// Rows of a q or k projection [H * D, C], per head: row i -> 2i, row i + D/2 -> 2i + 1.
Tensor rotate_half_to_pairs(const Tensor& w, int64_t heads) {
  const int64_t rows = w.dim(0), cols = w.dim(1), D = rows / heads;
  Tensor out(w.shape());
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < D / 2; ++i) {
      const float* a = w.data() + (h * D + i) * cols;
      const float* b = w.data() + (h * D + i + D / 2) * cols;
      std::copy(a, a + cols, out.data() + (h * D + 2 * i) * cols);
      std::copy(b, b + cols, out.data() + (h * D + 2 * i + 1) * cols);
    }
  return out;
}
}  // namespace

ModelCfg read_llama_config(const std::string& dir) { return parse_config(dir).model; }

LlamaCheckpoint read_llama(const std::string& dir) {
  const Parsed p = parse_config(dir);
  const ModelCfg& m = p.model;
  LlamaCheckpoint ck;
  ck.dir = dir;
  ck.model = m;
  ck.tied = p.tied;
  const int64_t C = m.d_model, D = C / m.heads, KV = m.kv_heads * D, I = m.mlp_hidden, V = m.vocab;

  // The expected tensors: Hugging Face name, our name, shape, and whether rows are permuted.
  struct Want {
    std::string hf, ours;
    std::vector<int64_t> shape;
    int64_t rope_heads = 0;  // > 0: q or k projection of that many heads
  };
  std::vector<Want> want;
  want.push_back({"model.embed_tokens.weight", "tok_emb.weight", {V, C}});
  for (int64_t l = 0; l < m.layers; ++l) {
    const std::string h = "model.layers." + std::to_string(l) + ".", o = "blocks." + std::to_string(l) + ".";
    want.push_back({h + "input_layernorm.weight", o + "attn_norm.weight", {C}});
    want.push_back({h + "self_attn.q_proj.weight", o + "attn.q.weight", {C, C}, m.heads});
    want.push_back({h + "self_attn.k_proj.weight", o + "attn.k.weight", {KV, C}, m.kv_heads});
    want.push_back({h + "self_attn.v_proj.weight", o + "attn.v.weight", {KV, C}});
    want.push_back({h + "self_attn.o_proj.weight", o + "attn.o.weight", {C, C}});
    want.push_back({h + "post_attention_layernorm.weight", o + "mlp_norm.weight", {C}});
    want.push_back({h + "mlp.gate_proj.weight", o + "mlp.gate.weight", {I, C}});
    want.push_back({h + "mlp.up_proj.weight", o + "mlp.up.weight", {I, C}});
    want.push_back({h + "mlp.down_proj.weight", o + "mlp.down.weight", {C, I}});
  }
  want.push_back({"model.norm.weight", "norm.weight", {C}});
  if (!p.tied) want.push_back({"lm_head.weight", "head.weight", {V, C}});

  const auto where = tensor_files(dir);
  // Missing and extra names, all listed at once. Rotary caches some exporters save are buffers,
  // not weights: skipped. A tied checkpoint may still carry lm_head (equal to the embedding).
  std::set<std::string> expected;
  for (const Want& w : want) expected.insert(w.hf);
  std::vector<std::string> missing, extra;
  for (const Want& w : want)
    if (!where.count(w.hf)) missing.push_back(w.hf);
  for (const auto& [name, file] : where) {
    const std::string buf = "rotary_emb.inv_freq";
    const bool buffer = name.size() > buf.size() && name.compare(name.size() - buf.size(), buf.size(), buf) == 0;
    if (!expected.count(name) && !buffer && !(p.tied && name == "lm_head.weight")) extra.push_back(name);
  }
  auto list = [](const std::vector<std::string>& v) {
    std::string s;
    for (size_t i = 0; i < v.size() && i < 8; ++i) s += (i ? ", " : "") + v[i];
    return v.size() > 8 ? s + " and " + std::to_string(v.size() - 8) + " more" : s;
  };
  MXQAT_CHECK(missing.empty(), "import ", dir, ": ", missing.size(), " tensor(s) the config (",
              m.layers, " layers", p.tied ? ", tied embeddings" : ", untied head",
              ") needs are missing: ", list(missing),
              "; is the checkpoint complete and config.json the one saved with it?");
  MXQAT_CHECK(extra.empty(), "import ", dir, ": ", extra.size(), " tensor(s) a llama of this config "
              "does not have: ", list(extra), "; the checkpoint is another architecture, or "
              "config.json does not match the weights");

  // Read file by file (each shard opened once), then put the parameters in model order.
  std::map<std::string, std::vector<const Want*>> by_file;
  for (const Want& w : want) by_file[where.at(w.hf)].push_back(&w);
  std::map<std::string, Tensor> got;
  std::set<std::string> dtypes;
  for (const auto& [file, ws] : by_file) {
    SafetensorsReader r(file);
    ++ck.files;
    for (const Want* w : ws) {
      const SafetensorsEntry* e = r.find(w->hf);
      MXQAT_CHECK(e != nullptr, "import ", dir, ": the index puts \"", w->hf, "\" in ", file,
                  ", which does not hold it; the shards and the index do not match");
      MXQAT_CHECK(e->shape == w->shape, "import ", dir, ": tensor \"", w->hf, "\" has shape ",
                  autograd::shape_str(e->shape), " but config.json implies ", autograd::shape_str(w->shape),
                  " (hidden_size ", C, ", heads ", m.heads, ", kv heads ", m.kv_heads,
                  ", intermediate_size ", I, ", vocab_size ", V, "); the config does not match "
                  "the weights");
      dtypes.insert(e->dtype);
      std::vector<float> data = r.read_f32(w->hf);
      Shape s(w->shape.begin(), w->shape.end());
      Tensor t(s);
      std::copy(data.begin(), data.end(), t.data());
      got[w->ours] = w->rope_heads > 0 ? rotate_half_to_pairs(t, w->rope_heads) : std::move(t);
    }
  }
  if (p.tied) {
    Tensor head(Shape{V, C});
    const Tensor& emb = got.at("tok_emb.weight");
    std::copy(emb.data(), emb.data() + emb.size(), head.data());
    if (where.count("lm_head.weight")) {  // a tied file that kept lm_head: it must be the same
      SafetensorsReader r(where.at("lm_head.weight"));
      const SafetensorsEntry& e = r.at("lm_head.weight");
      MXQAT_CHECK(e.shape == std::vector<int64_t>({V, C}) && r.read_f32("lm_head.weight") ==
                      std::vector<float>(emb.data(), emb.data() + emb.size()),
                  "import ", dir, ": tie_word_embeddings is true but lm_head.weight differs from "
                  "model.embed_tokens.weight; set tie_word_embeddings to false in config.json if "
                  "the head is its own tensor");
    }
    got["head.weight"] = std::move(head);
  }
  // Model order: tok_emb, blocks..., norm, head (as layers::Gpt registers them).
  for (const Want& w : want) ck.params.emplace_back(w.ours, std::move(got.at(w.ours)));
  if (p.tied) ck.params.emplace_back("head.weight", std::move(got.at("head.weight")));
  for (const auto& d : dtypes) ck.dtypes += (ck.dtypes.empty() ? "" : ", ") + d;
  return ck;
}

void check_llama_model(const ModelCfg& r, const LlamaCheckpoint& ck) {
  const ModelCfg& m = ck.model;
  std::ostringstream bad;
  auto cmp = [&](const char* key, double recipe, double ckpt) {
    if (recipe != ckpt) bad << "\n  model." << key << ": recipe " << recipe << ", checkpoint " << ckpt;
  };
  MXQAT_CHECK(r.type == "gpt", "model.from imports a llama checkpoint into a gpt model; the recipe "
              "has model.type ", r.type);
  cmp("vocab", double(r.vocab), double(m.vocab));
  cmp("layers", double(r.layers), double(m.layers));
  cmp("d_model", double(r.d_model), double(m.d_model));
  cmp("heads", double(r.heads), double(m.heads));
  cmp("kv_heads", double(r.kv_heads == 0 ? r.heads : r.kv_heads), double(m.kv_heads));
  cmp("mlp_hidden", double(r.mlp_hidden), double(m.mlp_hidden));
  // The recipe holds these as doubles from YAML, the checkpoint as read from JSON: both are the
  // same decimal text's nearest double, and the model uses them as float.
  if (float(r.rope_theta) != float(m.rope_theta)) cmp("rope_theta", r.rope_theta, m.rope_theta);
  if (float(r.norm_eps) != float(m.norm_eps)) cmp("norm_eps", r.norm_eps, m.norm_eps);
  if (r.context > m.context)
    bad << "\n  model.context: recipe " << r.context << " is longer than the checkpoint's "
        << "max_position_embeddings " << m.context;
  MXQAT_CHECK(bad.str().empty(), "the recipe's model does not match the llama checkpoint ", ck.dir,
              ":", bad.str(), "\nset these keys to the checkpoint's values (`mxqat import ", ck.dir,
              " --print-recipe` prints a matching recipe)");
}

void load_llama(layers::Module& model, const LlamaCheckpoint& ck) {
  std::map<std::string, const Tensor*> by_name;
  for (const auto& [n, t] : ck.params) by_name[n] = &t;
  const auto params = model.named_parameters();
  MXQAT_CHECK(params.size() == ck.params.size(), "import ", ck.dir, ": the model has ",
              params.size(), " parameters, the checkpoint ", ck.params.size());
  for (auto [name, v] : params) {
    const auto it = by_name.find(name);
    MXQAT_CHECK(it != by_name.end(), "import ", ck.dir, ": the model's parameter ", name,
                " has no tensor in the checkpoint");
    MXQAT_CHECK(it->second->shape() == v.value().shape(), "import ", ck.dir, ": ", name, " is ",
                autograd::shape_str(it->second->shape()), " in the checkpoint but ",
                autograd::shape_str(v.value().shape()), " in the model");
    std::copy(it->second->data(), it->second->data() + it->second->size(), v.value().data());
  }
}

std::vector<std::string> llama_model_overrides(const ModelCfg& m, int64_t context) {
  MXQAT_CHECK(context >= 0 && context <= m.context, "import: context ", context,
              " must lie in 1 .. max_position_embeddings ", m.context, " (0 = that)");
  std::ostringstream theta, eps;
  theta.precision(17), eps.precision(17);
  theta << m.rope_theta, eps << m.norm_eps;
  return {"model.type=gpt",
          "model.vocab=" + std::to_string(m.vocab),
          "model.layers=" + std::to_string(m.layers),
          "model.d_model=" + std::to_string(m.d_model),
          "model.heads=" + std::to_string(m.heads),
          "model.kv_heads=" + std::to_string(m.kv_heads),
          "model.context=" + std::to_string(context > 0 ? context : m.context),
          "model.mlp_hidden=" + std::to_string(m.mlp_hidden),
          "model.rope_theta=" + theta.str(),
          "model.norm_eps=" + eps.str(),
          "model.from=" + json_escape(m.from)};
}

}  // namespace mxqat::trainers
