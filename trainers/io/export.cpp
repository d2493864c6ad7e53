// Exports: packing with the training codec, the HDF5 layout of export.h, and the hash-checked load.
#include "trainers/io/export.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "quant/codec/codec.h"
#include "quant/codec/transform/hadamard.h"
#include "quant/fake/lsq.h"
#include "quant/policy/policy.h"
#include "trainers/io/ckpt_quant.h"
#include "trainers/io/h5file.h"
#include "trainers/util/json_read.h"
#include "trainers/util/json_write.h"
#include "trainers/util/sha256.h"
#include "trainers/util/version.h"

namespace mxqat::trainers {

namespace {

std::string tensor_path(const std::string& name) { return "tensors/" + name; }

// SHA-256 of the codes and of the scale arrays (scale codes, or INT float scales + zero points).
std::pair<std::string, std::string> packed_hashes(const quant::EncodedTensor& e) {
  Sha256 s;
  s.update(e.scale_codes.data(), e.scale_codes.size());
  s.update(e.scales.data(), e.scales.size() * sizeof(float));
  s.update(e.zero_points.data(), e.zero_points.size());
  return {sha256_hex(e.codes), s.hex()};
}

std::string shape_json(const autograd::Shape& s) {
  JsonArray a;
  for (int64_t d : s) a.integer(d);
  return a.dump();
}

std::string manifest_json(const ExportModel& m) {
  JsonArray tensors;
  for (const ExportTensor& t : m.tensors) {
    JsonObject o;
    o.str("name", t.name).raw("shape", shape_json(t.shape)).integer("bytes", t.bytes());
    if (t.quantized) {
      auto [codes, scales] = packed_hashes(t.packed);
      o.str("codec", t.packed.codec).integer("block_size", t.packed.block_size)
          .str("scale_rule", quant::scale_rule_name(t.packed.scale_rule))
          .raw("gemm_view", shape_json({t.packed.rows, t.packed.cols}))
          .str("sha256_codes", codes).str("sha256_scales", scales)
          .num("sqnr_db", quant::sqnr_for_json(t.sqnr_db));
    } else {
      o.str("codec", "float32").str("sha256", sha256_hex(t.value.data(), size_t(t.value.size()) * 4));
    }
    tensors.add(o);
  }
  JsonArray acts;
  for (const ExportActivation& a : m.activations) acts.add(JsonObject().str("layer", a.layer).str("codec", a.codec));
  return JsonObject().integer("spec_version", kQuantSpecVersion).integer("export_version", kExportVersion)
             .str("mxqat_version", mxqat_version()).str("source", m.source).integer("step", m.step)
             .integer("bytes", m.bytes()).integer("float32_bytes", m.float32_bytes())
             .raw("tensors", tensors.dump_lines()).raw("activations", acts.dump())
             .raw("verification", m.verification).dump() + "\n";
}

// The codecs a layer runs with at the end of training (its schedule's last phase, or static).
std::pair<std::string, std::string> final_codecs(const quant::ResolvedPolicy& p, const quant::LayerPolicy& lp) {
  return p.phase_codecs(lp, lp.schedule.empty() ? -1 : int(lp.schedule.phases().size()) - 1);
}

void check_hashes(const std::string& path, const ExportTensor& t, const Json& entry) {
  const std::string fix = "; the file was damaged or edited after export: export it again";
  if (t.quantized) {
    auto [codes, scales] = packed_hashes(t.packed);
    MXQAT_CHECK(codes == entry.at("sha256_codes").string(), "export ", path, ": tensor '", t.name,
                "': its codes do not match the manifest's SHA-256", fix);
    MXQAT_CHECK(scales == entry.at("sha256_scales").string(), "export ", path, ": tensor '", t.name,
                "': its scales do not match the manifest's SHA-256", fix);
  } else {
    MXQAT_CHECK(sha256_hex(t.value.data(), size_t(t.value.size()) * 4) == entry.at("sha256").string(),
                "export ", path, ": tensor '", t.name, "': its float32 data do not match the "
                "manifest's SHA-256", fix);
  }
}

ExportTensor read_tensor_entry(const H5Reader& r, const std::string& path, const std::string& name) {
  const std::string p = tensor_path(name);
  MXQAT_CHECK(r.exists(p), "export ", path, ": tensor '", name, "' is listed in /index/tensors but "
              "missing under /tensors; the file is incomplete: export it again");
  ExportTensor t;
  t.name = name;
  if (r.is_group(p)) {
    t.quantized = true;
    t.packed = read_quantized(r, p);
    MXQAT_CHECK(r.has_attr(p, "parameter_shape"), "export ", path, ": tensor '", name,
                "' has no parameter_shape attribute; not an mxqat export of this version");
    t.shape = r.attr_i64s(p, "parameter_shape");
    MXQAT_CHECK(!t.shape.empty() && t.shape[0] == t.packed.rows &&
                    autograd::numel_of(t.shape) == t.packed.rows * t.packed.cols,
                "export ", path, ": tensor '", name, "' has parameter_shape ",
                autograd::shape_str(t.shape), " but its packed view is [", t.packed.rows, ", ",
                t.packed.cols, "]; the file is inconsistent: export it again");
    t.sqnr_db = NAN;
  } else {
    t.value = r.read_tensor(p);
    t.shape = t.value.shape();
  }
  return t;
}

}  // namespace

int64_t ExportTensor::bytes() const {
  if (!quantized) return value.size() * 4;
  return quant::encoded_bytes(packed);
}

autograd::Tensor ExportTensor::decoded() const {
  if (!quantized) return value;
  autograd::Tensor w(shape);
  decoder_for(packed).decode(packed, w.data());
  return w;
}

int64_t ExportModel::bytes() const {
  int64_t n = 0;
  for (const auto& t : tensors) n += t.bytes();
  return n;
}

int64_t ExportModel::float32_bytes() const {
  int64_t n = 0;
  for (const auto& t : tensors) n += 4 * autograd::numel_of(t.shape);
  return n;
}

ExportModel make_export(const Checkpoint& c, const std::string& source, const std::string& policy_text) {
  ExportModel m;
  m.recipe_text = c.recipe_text;
  m.policy_text = policy_text;
  m.source = source;
  m.step = c.step;
  const quant::ResolvedPolicy policy = quant::ResolvedPolicy::from_text(policy_text);
  std::map<std::string, std::string> weight_codec;
  std::map<std::string, bool> rotated;
  for (const auto& lp : policy.layers) {
    auto [w, a] = final_codecs(policy, lp);
    weight_codec[lp.layer + ".weight"] = w;
    rotated[lp.layer + ".weight"] = policy.rotation && lp.rotated;
    m.activations.push_back({lp.layer, a});
  }
  for (const auto& [name, master] : c.params) {
    check_finite(source, name, master, "export");
    ExportTensor t;
    t.name = name;
    t.shape = master.shape();
    autograd::Tensor value = master;  // under the policy's rotation: stored rotated (the runtime
    if (rotated.count(name) && rotated.at(name))  // rotates only the inputs), as training sees it
      quant::hadamard_rows(*policy.rotation, master.data(), t.shape[0], master.size() / t.shape[0], value.data());
    auto it = weight_codec.find(name);
    if (it != weight_codec.end() && it->second != "none") {
      const quant::Codec codec = quant::Codec::make(it->second, policy.codec_options());
      const int64_t n = t.shape[0], k = value.size() / n;
      t.quantized = true;
      // Learned scales (quant/fake/lsq.h): the scales training's forward used. A checkpoint
      // without the offsets (an FP32 baseline) has them at 0, the codec's own scales.
      const std::string offsets = name.substr(0, name.size() - std::string("weight").size()) + "weight_scale_offset";
      auto off = std::find_if(c.params.begin(), c.params.end(), [&](const auto& p) { return p.first == offsets; });
      if (policy.learned_scale && off != c.params.end()) {
        MXQAT_CHECK(off->second.size() == n, "export of ", source, ": '", offsets, "' holds ", off->second.size(),
                    " learned scale offsets for a weight of ", n, " rows; the checkpoint is inconsistent");
        t.packed = codec.encode_with_scales(value.data(), n, k,
                                            quant::lsq_scales(codec, value.data(), n, k, off->second.data()));
      } else {
        t.packed = codec.encode(value.data(), n, k);
      }
      t.sqnr_db = quant::sqnr_db(value.data(), t.decoded().data(), value.size());
    } else {
      t.value = value;
    }
    m.tensors.push_back(std::move(t));
  }
  return m;
}

void write_export(const std::string& path, const ExportModel& m) {
  H5Writer w = H5Writer::create(path);
  w.set_attr_string("/", "mxqat_format", "export");
  w.set_attr_i64("/", "mxqat_export_version", kExportVersion);
  w.set_attr_string("/", "mxqat_version", mxqat_version());
  w.write_string("recipe", m.recipe_text);
  w.write_string("policy", m.policy_text);
  std::vector<std::string> names;
  for (const auto& t : m.tensors) {
    names.push_back(t.name);
    if (t.quantized) {
      write_quantized(w, tensor_path(t.name), t.packed, {t.packed.rows, t.packed.cols});
      w.set_attr_i64s(tensor_path(t.name), "parameter_shape", t.shape);
    } else {
      w.write_tensor(tensor_path(t.name), t.value);
    }
  }
  w.write_strings("index/tensors", names);
  w.write_string("manifest", manifest_json(m));
  w.commit();
}

ExportModel read_export(const std::string& path) {
  H5Reader r = H5Reader::open(path);
  const bool ours = r.has_attr("/", "mxqat_format") && r.attr_string("/", "mxqat_format") == "export";
  MXQAT_CHECK(ours, path, " is not an mxqat export (no mxqat_format=\"export\" attribute); make one "
              "with 'mxqat export RUN_DIR_OR_CHECKPOINT --out MODEL.h5'");
  const int64_t version = r.attr_i64("/", "mxqat_export_version");
  MXQAT_CHECK(version == kExportVersion, "export ", path, " is version ", version, ", this build of "
              "mxqat reads version ", kExportVersion, "; export it again with this build");
  for (const char* obj : {"recipe", "policy", "manifest", "index/tensors"})
    MXQAT_CHECK(r.is_dataset(obj), "export ", path, ": /", obj, " is missing; the file is incomplete: "
                "export it again");
  ExportModel m;
  m.recipe_text = r.read_string("recipe");
  m.policy_text = r.read_string("policy");
  const Json manifest = Json::parse(r.read_string("manifest"), path + ":/manifest");
  m.source = manifest.string_or("source", "");
  m.step = static_cast<int64_t>(manifest.number_or("step", 0));
  for (const Json& a : manifest.at("activations").array())
    m.activations.push_back({a.at("layer").string(), a.at("codec").string()});
  m.verification = "null";
  if (const Json* v = manifest.find("verification"); v && v->is_object()) {
    JsonObject o;
    for (const auto& [k, val] : v->object()) {
      if (val.kind() == Json::Kind::kBool) o.boolean(k, val.boolean());
      else if (val.kind() == Json::Kind::kString) o.str(k, val.string());
      else o.num(k, val.number());
    }
    m.verification = o.dump();
  }
  std::map<std::string, const Json*> entries;
  for (const Json& e : manifest.at("tensors").array()) entries[e.at("name").string()] = &e;
  const std::vector<std::string> names = r.read_strings("index/tensors");
  MXQAT_CHECK(names.size() == entries.size(), "export ", path, ": /index/tensors lists ", names.size(),
              " tensors but the manifest ", entries.size(), "; the file is inconsistent: export it again");
  for (const std::string& name : names) {
    auto it = entries.find(name);
    MXQAT_CHECK(it != entries.end(), "export ", path, ": tensor '", name, "' is not in the manifest; "
                "the file is inconsistent: export it again");
    ExportTensor t = read_tensor_entry(r, path, name);
    const std::string want = it->second->at("codec").string();
    const std::string got = t.quantized ? t.packed.codec : "float32";
    MXQAT_CHECK(want == got, "export ", path, ": tensor '", name, "' is stored as ", got,
                " but the manifest says ", want, "; export it again");
    check_hashes(path, t, *it->second);
    if (t.quantized) t.sqnr_db = it->second->number_or("sqnr_db", NAN);
    m.tensors.push_back(std::move(t));
  }
  return m;
}

std::string read_export_manifest(const std::string& path) {
  return H5Reader::open(path).read_string("manifest");
}

bool is_export(const std::string& path) {
  try {
    H5Reader r = H5Reader::open(path);
    return r.has_attr("/", "mxqat_format") && r.attr_string("/", "mxqat_format") == "export";
  } catch (...) {
    return false;
  }
}

}  // namespace mxqat::trainers
