// Writing a struct back out through its schema::Table: as YAML (every key, in row order, so the
// text is complete and stable) and as a key-by-key comparison. Includes yaml-cpp (STYLE.md §1).
#include <yaml-cpp/yaml.h>

#include "trainers/recipe/recipe_table.h"

namespace mxqat::trainers::schema::detail {

namespace {

void emit_map(YAML::Emitter& out, const Table& t, const void* obj, const std::string& section);

template <class T>
void emit_scalar(YAML::Emitter& out, const T& v) {
  if constexpr (std::is_same_v<T, double>) out << format_double(v);  // round-trips exactly
  else out << v;
}

void emit_field(YAML::Emitter& out, const Field& f, const void* obj) {
  if (f.kind == Kind::kMapList) {
    size_t n = f.count(obj);
    if (n == 0) out << YAML::Flow;
    out << YAML::BeginSeq;
    for (size_t i = 0; i < n; ++i)
      emit_map(out, *f.element, f.item(const_cast<void*>(obj), i), "");
    out << YAML::EndSeq;
    return;
  }
  std::visit([&](const auto& v) {
    using T = std::decay_t<decltype(v)>;
    if constexpr (is_vector<T>::value) {
      out << YAML::Flow << YAML::BeginSeq;
      for (const auto& e : v) emit_scalar(out, e);
      out << YAML::EndSeq;
    } else {
      emit_scalar(out, v);
    }
  }, f.get(obj));
}

void emit_map(YAML::Emitter& out, const Table& t, const void* obj, const std::string& section) {
  out << YAML::BeginMap;
  for (const auto& name : children(t, section)) {
    std::string path = join(section, name);
    out << YAML::Key << name << YAML::Value;
    if (const Field* f = find_field(t, path))
      emit_field(out, *f, obj);
    else
      emit_map(out, t, obj, path);
  }
  out << YAML::EndMap;
}

void diff_into(const Table& t, const void* a, const void* b, const std::string& base,
               std::vector<std::string>& out) {
  for (const auto& f : t.fields) {
    std::string shown = join(base, f.path);
    if (f.kind != Kind::kMapList) {
      Value va = f.get(a), vb = f.get(b);
      if (va != vb) out.push_back(shown + ": " + format_value(va) + " -> " + format_value(vb));
      continue;
    }
    size_t na = f.count(a), nb = f.count(b);
    if (na != nb) {
      out.push_back(shown + ": " + std::to_string(na) + " entries -> " + std::to_string(nb));
      continue;
    }
    for (size_t i = 0; i < na; ++i)
      diff_into(*f.element, f.item(const_cast<void*>(a), i), f.item(const_cast<void*>(b), i),
                shown + "[" + std::to_string(i) + "]", out);
  }
}

}  // namespace

std::string emit_any(const Table& table, const void* obj) {
  if (!table.validated) validate_table(table);
  YAML::Emitter out;
  emit_map(out, table, obj, "");
  MXQAT_CHECK(out.good(), "writing the recipe as YAML failed: ", out.GetLastError());
  return std::string(out.c_str()) + "\n";
}

std::vector<std::string> diff_any(const Table& table, const void* a, const void* b) {
  std::vector<std::string> out;
  diff_into(table, a, b, "", out);
  return out;
}

}  // namespace mxqat::trainers::schema::detail
