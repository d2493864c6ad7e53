// Training checkpoints on top of h5file: the layout is documented in ckpt.h. Validation is
// explicit so that every bad file (foreign, newer, truncated, incomplete) gets a message that
// names the file and the fix, never a crash.
#include "trainers/io/ckpt.h"

#include <algorithm>
#include <set>

#include "trainers/io/h5file.h"
#include "trainers/util/version.h"

namespace mxqat::trainers {

using autograd::Shape;
using autograd::Tensor;
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

namespace {

constexpr const char* kFormat = "checkpoint";
constexpr const char* kRegenerate = "; re-run training (or resume from an earlier checkpoint) "
                                    "to regenerate it";

// Names become HDF5 paths verbatim ('.' is fine, '/' makes groups): refuse what cannot.
void check_names(const std::string& path, const NamedTensors& items, const char* kind) {
  std::set<std::string> seen;
  for (const auto& [name, tensor] : items) {
    bool ok = !name.empty();
    for (size_t start = 0; ok && start <= name.size();) {
      size_t end = std::min(name.find('/', start), name.size());
      std::string part = name.substr(start, end - start);
      ok = !part.empty() && part != "." && part != "..";
      start = end + 1;
    }
    MXQAT_CHECK(ok, "cannot save checkpoint '", path, "': ", kind, " name '", name,
                "' cannot be an HDF5 path (empty, a leading, trailing or double '/', or a '.' "
                "or '..' part); rename it");
    MXQAT_CHECK(seen.insert(name).second, "cannot save checkpoint '", path, "': ", kind, " '",
                name, "' appears twice; names must be unique");
  }
  for (const std::string& name : seen)
    for (size_t pos = name.find('/'); pos != std::string::npos; pos = name.find('/', pos + 1))
      MXQAT_CHECK(!seen.count(name.substr(0, pos)), "cannot save checkpoint '", path, "': ", kind,
                  " names '", name.substr(0, pos), "' and '", name,
                  "' clash (one would be both a dataset and a group); rename one");
}

std::vector<std::string> names_of(const NamedTensors& items) {
  std::vector<std::string> names;
  for (const auto& item : items) names.push_back(item.first);
  return names;
}

// Opens `path` and checks that it is a checkpoint of a version we read.
H5Reader open_checkpoint(const std::string& path) {
  H5Reader r = H5Reader::open(path);
  MXQAT_CHECK(r.has_attr("/", "mxqat_format"), "'", path,
              "' is an HDF5 file but not an mxqat checkpoint (it has no 'mxqat_format' "
              "attribute); pass a checkpoint written by 'mxqat train'");
  std::string format = r.attr_string("/", "mxqat_format");
  MXQAT_CHECK(format != "export", "'", path,
              "' is an mxqat export, not a training checkpoint: it cannot be resumed; evaluate "
              "it with 'mxqat eval', or pass the training checkpoint it came from");
  MXQAT_CHECK(format == kFormat, "'", path, "' is not an mxqat checkpoint (its mxqat_format is '",
              format, "', expected '", kFormat, "')");
  MXQAT_CHECK(r.has_attr("/", "mxqat_checkpoint_version"), "checkpoint '", path,
              "' has no 'mxqat_checkpoint_version' attribute, so it is damaged", kRegenerate);
  int64_t version = r.attr_i64("/", "mxqat_checkpoint_version");
  MXQAT_CHECK(version <= kCheckpointVersion, "checkpoint '", path, "' is version ", version,
              ", this build of mxqat (", mxqat_version(), ") reads version ", kCheckpointVersion,
              "; load it with a newer mxqat");
  MXQAT_CHECK(version >= 1, "checkpoint '", path, "' has the invalid version ", version,
              kRegenerate);
  return r;
}

void require(const H5Reader& r, const std::string& object, bool group) {
  bool ok = group ? r.is_group(object) : r.is_dataset(object);
  MXQAT_CHECK(ok, "checkpoint '", r.file_path(), "' lacks the ", group ? "group" : "dataset", " '",
              object, "' (written by an interrupted or foreign program?)", kRegenerate);
}

// Every required object is there, and /params and /optimizer hold exactly what the index lists.
// Returns the two indexes.
std::pair<std::vector<std::string>, std::vector<std::string>> check_structure(const H5Reader& r) {
  for (const char* attr : {"step", "epoch"})
    MXQAT_CHECK(r.has_attr("/", attr), "checkpoint '", r.file_path(), "' lacks the root attribute '",
                attr, "'", kRegenerate);
  for (const char* ds : {"/recipe", "/rng_state", "/index/params", "/index/optimizer"})
    require(r, ds, false);
  for (const char* g : {"/params", "/optimizer", "/meta", "/scalars", "/counters"}) require(r, g, true);
  std::vector<std::string> params = r.read_strings("/index/params");
  std::vector<std::string> slots = r.read_strings("/index/optimizer");
  auto same_set = [&](const std::string& group, std::vector<std::string> listed) {
    std::vector<std::string> stored = r.datasets_under(group);
    std::sort(listed.begin(), listed.end());
    for (const std::string& name : listed) require(r, group + "/" + name, false);
    MXQAT_CHECK(stored == listed, "checkpoint '", r.file_path(), "': '", group, "' holds ",
                stored.size(), " datasets but its index lists ", listed.size(), kRegenerate);
  };
  same_set("/params", params);
  same_set("/optimizer", slots);
  return {params, slots};
}

NamedTensors read_tensors(const H5Reader& r, const std::string& group,
                          const std::vector<std::string>& names) {
  NamedTensors out;
  for (const std::string& name : names) out.emplace_back(name, r.read_tensor(group + "/" + name));
  return out;
}

}  // namespace

void save_checkpoint(const std::string& path, const Checkpoint& c) {
  check_names(path, c.params, "parameter");
  check_names(path, c.optimizer_state, "optimizer state");
  H5Writer w = H5Writer::create(path);
  w.set_attr_string("/", "mxqat_format", kFormat);
  w.set_attr_i64("/", "mxqat_checkpoint_version", kCheckpointVersion);
  w.set_attr_string("/", "mxqat_version", mxqat_version());
  w.set_attr_i64("/", "step", c.step);
  w.set_attr_i64("/", "epoch", c.epoch);
  w.write_string("/recipe", c.recipe_text);
  w.write_string("/rng_state", c.rng_state);
  w.write_strings("/index/params", names_of(c.params));
  w.write_strings("/index/optimizer", names_of(c.optimizer_state));
  for (const char* g : {"/params", "/optimizer", "/meta", "/scalars", "/counters"})
    w.create_group(g);
  WriteOptions checked;
  checked.checksum = true;  // a damaged weight is an error on load, not a silent change
  for (const auto& [name, t] : c.params) w.write_tensor("/params/" + name, t, checked);
  for (const auto& [name, t] : c.optimizer_state) w.write_tensor("/optimizer/" + name, t, checked);
  for (const auto& [key, value] : c.meta) w.set_attr_string("/meta", key, value);
  for (const auto& [key, value] : c.scalars) w.set_attr_f64("/scalars", key, value);
  for (const auto& [key, value] : c.counters) w.set_attr_i64("/counters", key, value);
  w.commit();
}

Checkpoint load_checkpoint(const std::string& path) {
  H5Reader r = open_checkpoint(path);
  try {
    auto [params, slots] = check_structure(r);
    Checkpoint c;
    c.step = r.attr_i64("/", "step");
    c.epoch = r.attr_i64("/", "epoch");
    c.recipe_text = r.read_string("/recipe");
    c.rng_state = r.read_string("/rng_state");
    c.params = read_tensors(r, "/params", params);
    c.optimizer_state = read_tensors(r, "/optimizer", slots);
    for (const std::string& key : r.list_attrs("/meta")) c.meta[key] = r.attr_string("/meta", key);
    for (const std::string& key : r.list_attrs("/scalars"))
      c.scalars[key] = r.attr_f64("/scalars", key);
    for (const std::string& key : r.list_attrs("/counters"))
      c.counters[key] = r.attr_i64("/counters", key);
    return c;
  } catch (const Error& e) {
    std::string msg = e.what();
    if (msg.rfind("checkpoint '", 0) == 0) throw;  // already says which checkpoint and what to do
    std::string prefix = "HDF5 file '" + path + "': ";
    if (msg.rfind(prefix, 0) == 0) msg.erase(0, prefix.size());
    throw Error("checkpoint '" + path + "' is damaged: " + msg + kRegenerate);
  } catch (const std::exception& e) {  // e.g. bad_alloc for sizes a damaged file claims
    throw Error("checkpoint '" + path + "' is damaged (" + e.what() + ")" + kRegenerate);
  }
}

bool is_checkpoint(const std::string& path) {
  try {
    H5Reader r = open_checkpoint(path);
    check_structure(r);
    return true;
  } catch (...) {
    return false;
  }
}

void check_shapes(const Checkpoint& c, const std::vector<std::pair<std::string, Shape>>& expected,
                  const std::string& what) {
  constexpr const char* kFix =
      "; the recipe's model section differs from the one that wrote the checkpoint";
  std::map<std::string, const Shape*> stored;
  for (const auto& [name, t] : c.params) stored[name] = &t.shape();
  std::set<std::string> wanted;
  for (const auto& [name, shape] : expected) {
    wanted.insert(name);
    auto it = stored.find(name);
    MXQAT_CHECK(it != stored.end(), "checkpoint '", what, "': the model's parameter '", name,
                "' (shape ", autograd::shape_str(shape), ") is missing", kFix);
    MXQAT_CHECK(*it->second == shape, "checkpoint '", what, "': parameter '", name,
                "' has shape ", autograd::shape_str(*it->second), " but the model expects ",
                autograd::shape_str(shape), kFix);
  }
  for (const auto& [name, t] : c.params)
    MXQAT_CHECK(wanted.count(name), "checkpoint '", what, "': parameter '", name, "' (shape ",
                autograd::shape_str(t.shape()), ") is not in the model", kFix);
}

}  // namespace mxqat::trainers
