// Schema-table queries and value handling shared by the recipe reader and emitter.
#include "trainers/recipe/recipe_table.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

namespace mxqat::trainers::schema::detail {

std::string join(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  return a + "." + b;
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  if (s.empty()) return parts;
  size_t start = 0;
  for (size_t pos; (pos = s.find(sep, start)) != std::string::npos; start = pos + 1)
    parts.push_back(s.substr(start, pos - start));
  parts.push_back(s.substr(start));
  return parts;
}

std::vector<std::string> split_key(const std::string& key) {
  std::string dotted;  // a.b[2].c -> a.b.2.c
  for (size_t i = 0; i < key.size(); ++i) {
    if (key[i] == '[') {
      dotted += '.';
    } else if (key[i] == ']') {
      if (i + 1 < key.size() && key[i + 1] != '.' && key[i + 1] != '[') dotted += '.';
    } else {
      dotted += key[i];
    }
  }
  auto parts = split(dotted, '.');
  if (parts.empty()) parts.push_back("");  // an empty key: the caller reports it
  return parts;
}

bool is_index(const std::string& name) {
  if (name.empty() || name.size() > 9) return false;
  for (char c : name)
    if (c < '0' || c > '9') return false;
  return true;
}

std::string parent(const std::string& path) {
  size_t dot = path.rfind('.');
  return dot == std::string::npos ? "" : path.substr(0, dot);
}

std::string last_name(const std::string& path) {
  size_t dot = path.rfind('.');
  return dot == std::string::npos ? path : path.substr(dot + 1);
}

std::string comma_list(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& item : items) s += (s.empty() ? "" : ", ") + item;
  return s;
}

const Field* find_field(const Table& t, const std::string& path) {
  for (const auto& f : t.fields)
    if (f.path == path) return &f;
  return nullptr;
}

bool is_section(const Table& t, const std::string& path) {
  for (const auto& f : t.fields)
    if (path.empty() || starts_with(f.path, path + ".")) return true;
  return false;
}

std::vector<std::string> children(const Table& t, const std::string& section) {
  std::vector<std::string> names;
  std::string prefix = section.empty() ? "" : section + ".";
  for (const auto& f : t.fields) {
    if (!starts_with(f.path, prefix)) continue;
    std::string name = f.path.substr(prefix.size());
    name = name.substr(0, name.find('.'));
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  return names;
}

std::vector<std::string> key_paths(const Table& t) {
  std::vector<std::string> paths;
  for (const auto& f : t.fields)
    for (std::string p = f.path; !p.empty(); p = parent(p))
      if (std::find(paths.begin(), paths.end(), p) == paths.end()) paths.push_back(p);
  return paths;
}

namespace {
bool numeric(Kind k) {
  return k == Kind::kInt || k == Kind::kFloat || k == Kind::kIntList || k == Kind::kFloatList;
}
bool stringy(Kind k) { return k == Kind::kString || k == Kind::kStringList; }
bool listy(Kind k) {
  return k == Kind::kIntList || k == Kind::kFloatList || k == Kind::kStringList || k == Kind::kMapList;
}

void validate_field(const Table& t, const Field& f, std::set<std::string>& paths) {
  const char* type = t.type ? t.type->name() : "?";
  MXQAT_CHECK(!f.path.empty(), "schema table for ", type,
              ": a row has an empty path");
  for (const auto& name : split(f.path, '.'))
    MXQAT_CHECK(!name.empty(), "schema table for ", type, ": row '", f.path, "' has an empty part");
  MXQAT_CHECK(paths.insert(f.path).second, "schema table for ", type, ": row '", f.path,
              "' appears twice; remove one");
  MXQAT_CHECK(!is_section(t, f.path), "schema table for ", type, ": '", f.path,
              "' is both a value and a section; rename one of the rows");
  MXQAT_CHECK(f.allowed.empty() || stringy(f.kind), "schema table for ", type, ": row '", f.path,
              "' lists allowed values but is not a string");
  MXQAT_CHECK((!f.lo && !f.hi && !f.is_odd) || numeric(f.kind), "schema table for ", type,
              ": row '", f.path, "' has numeric bounds but is not a number");
  MXQAT_CHECK(f.min_items == 0 || listy(f.kind), "schema table for ", type, ": row '", f.path,
              "' has a minimum length but is not a list");
  if (f.kind == Kind::kMapList) {
    MXQAT_CHECK(f.element && f.count && f.resize && f.item, "schema table for ", type, ": row '",
                f.path, "' is a list of maps without an element table; build it with schema::list");
    validate_table(*f.element);
  } else {
    MXQAT_CHECK(f.get && f.set, "schema table for ", type, ": row '", f.path,
                "' has no accessors; build it with schema::field");
  }
}
}  // namespace

void validate_table(const Table& t) {
  MXQAT_CHECK(t.type, "schema table without a type; build it with schema::table<T>");
  std::set<std::string> paths;
  for (const auto& f : t.fields) validate_field(t, f, paths);
  for (const auto& r : t.rules)
    MXQAT_CHECK(r.check && (r.path.empty() || find_field(t, r.path) || is_section(t, r.path)),
                "schema table for ", t.type->name(), ": rule at '", r.path,
                "' names no key of the table");
}

std::optional<double> parse_float(const std::string& s) {
  bool digit = false;
  for (char c : s) {
    if (c >= '0' && c <= '9') digit = true;
    else if (c != '+' && c != '-' && c != '.' && c != 'e' && c != 'E') return std::nullopt;
  }
  if (!digit) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (*end != '\0' || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::optional<int64_t> parse_int(const std::string& s) {
  size_t start = !s.empty() && (s[0] == '+' || s[0] == '-');
  if (s.size() > start && s.find_first_not_of("0123456789", start) == std::string::npos) {
    errno = 0;
    long long v = std::strtoll(s.c_str(), nullptr, 10);
    if (errno == ERANGE) return std::nullopt;
    return static_cast<int64_t>(v);
  }
  auto v = parse_float(s);  // "1e4", "2.0": integral values written as floats
  if (v && std::floor(*v) == *v && std::fabs(*v) <= 9007199254740992.0)
    return static_cast<int64_t>(*v);
  return std::nullopt;
}

namespace {
std::string shortest(double v) {
  char buf[40];
  for (int p = 1; p <= 17; ++p) {
    std::snprintf(buf, sizeof buf, "%.*g", p, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

// A bound in the field's own style: integers as integers.
std::string bound(const Field& f, double v) {
  bool integral = f.kind == Kind::kInt || f.kind == Kind::kIntList;
  return integral ? std::to_string(static_cast<int64_t>(v)) : shortest(v);
}

std::string check_number(const Field& f, double x, const std::string& shown) {
  bool lo_ok = !f.lo || (f.lo_open ? x > *f.lo : x >= *f.lo);
  bool hi_ok = !f.hi || (f.hi_open ? x < *f.hi : x <= *f.hi);
  if (!lo_ok || !hi_ok) {
    if (f.lo && f.hi)
      return "must be in " + std::string(f.lo_open ? "(" : "[") + bound(f, *f.lo) + ", " +
             bound(f, *f.hi) + (f.hi_open ? ")" : "]") + ", got " + shown;
    if (f.lo) return "must be " + std::string(f.lo_open ? "> " : ">= ") + bound(f, *f.lo) + ", got " + shown;
    return "must be " + std::string(f.hi_open ? "< " : "<= ") + bound(f, *f.hi) + ", got " + shown;
  }
  if (f.is_odd && std::fmod(x, 2.0) == 0.0) return "must be odd, got " + shown;
  return "";
}
}  // namespace

std::string format_double(double v) {
  std::string s = shortest(v);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";  // 'n': inf, nan
  return s;
}

std::string format_value(const Value& v) {
  return std::visit([](const auto& x) -> std::string {
    using T = std::decay_t<decltype(x)>;
    if constexpr (std::is_same_v<T, int64_t>) return std::to_string(x);
    else if constexpr (std::is_same_v<T, double>) return shortest(x);
    else if constexpr (std::is_same_v<T, bool>) return x ? "true" : "false";
    else if constexpr (std::is_same_v<T, std::string>) return "'" + x + "'";
    else {
      std::string s;
      for (const auto& e : x) s += (s.empty() ? "" : ", ") + format_value(Value(e));
      return "[" + s + "]";
    }
  }, v);
}

std::string check_scalar(const Field& f, const Value& v) {
  if (const auto* i = std::get_if<int64_t>(&v)) return check_number(f, double(*i), std::to_string(*i));
  if (const auto* d = std::get_if<double>(&v)) return check_number(f, *d, shortest(*d));
  if (const auto* s = std::get_if<std::string>(&v)) {
    if (f.allowed.empty() || std::find(f.allowed.begin(), f.allowed.end(), *s) != f.allowed.end())
      return "";
    return "unknown value '" + *s + "'; known: " + comma_list(f.allowed);
  }
  return "";
}

}  // namespace mxqat::trainers::schema::detail
