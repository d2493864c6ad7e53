// The schema machinery behind trainers/recipe: a table of rows (dotted key path, kind, checks,
// accessors into a struct) drives reading, validation, --set overrides, emission and comparison,
// so a new recipe key is a row plus a struct field, never new parsing code.
// Used by trainers/recipe*.cpp and tests only; yaml-cpp stays in recipe_schema.cpp and
// recipe_emit.cpp.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <variant>
#include <vector>

#include "autograd/error.h"

namespace mxqat::trainers::schema {

enum class Kind { kInt, kFloat, kBool, kString, kIntList, kFloatList, kStringList, kMapList };

// A field's value on its way between YAML and the struct.
using Value = std::variant<int64_t, double, bool, std::string, std::vector<int64_t>,
                           std::vector<double>, std::vector<std::string>>;

struct Table;

// One key. Checks apply to the number or string itself, or to each element of a list.
// Accessors are type-erased over the table's struct; the builders below make them type-safe.
struct Field {
  std::string path;  // relative to the table's struct: "train.optimizer.lr"
  Kind kind = Kind::kInt;
  bool is_required = false;
  std::optional<double> lo, hi;  // numeric bounds
  bool lo_open = false, hi_open = false;
  bool is_odd = false;
  std::vector<std::string> allowed;  // strings: the known values (empty = any)
  size_t min_items = 0;              // lists
  std::function<Value(const void*)> get;             // all kinds but kMapList
  std::function<void(void*, const Value&)> set;      // all kinds but kMapList
  const Table* element = nullptr;                    // kMapList: the element's table
  std::function<size_t(const void*)> count;          // kMapList
  std::function<void(void*, size_t)> resize;         // kMapList
  std::function<void*(void*, size_t)> item;          // kMapList

  Field& required() { is_required = true; return *this; }
  Field& ge(double v) { lo = v, lo_open = false; return *this; }
  Field& gt(double v) { lo = v, lo_open = true; return *this; }
  Field& le(double v) { hi = v, hi_open = false; return *this; }
  Field& lt(double v) { hi = v, hi_open = true; return *this; }
  Field& odd() { is_odd = true; return *this; }
  Field& one_of(std::vector<std::string> v) { allowed = std::move(v); return *this; }
  Field& non_empty() { min_items = 1; return *this; }
};

// A check across fields, run once every field of its table has been read and is valid.
// `check` returns "" when fine, else the message; `path` is the key the error points at.
struct Rule {
  std::string path;
  std::function<std::string(const void*)> check;
};

struct Table {
  const std::type_info* type = nullptr;  // the struct the accessors cast to
  std::vector<Field> fields;             // in the order keys are written out
  std::vector<Rule> rules;
  // Set by the owner of a table that never changes once detail::validate_table passed on it
  // (recipe_table()): parse and emit then skip the check, which is otherwise run on every call.
  bool validated = false;
};

namespace detail {
// follow(obj, &A::b, &B::c) is obj.b.c, a reference (const if obj is).
template <class O, class M>
decltype(auto) follow(O& o, M m) { return (o.*m); }
template <class O, class M, class... Ms>
decltype(auto) follow(O& o, M m, Ms... ms) { return follow(o.*m, ms...); }

template <class T>
constexpr Kind kind_of() {
  if constexpr (std::is_same_v<T, int64_t>) return Kind::kInt;
  else if constexpr (std::is_same_v<T, double>) return Kind::kFloat;
  else if constexpr (std::is_same_v<T, bool>) return Kind::kBool;
  else if constexpr (std::is_same_v<T, std::string>) return Kind::kString;
  else if constexpr (std::is_same_v<T, std::vector<int64_t>>) return Kind::kIntList;
  else if constexpr (std::is_same_v<T, std::vector<double>>) return Kind::kFloatList;
  else if constexpr (std::is_same_v<T, std::vector<std::string>>) return Kind::kStringList;
  else static_assert(sizeof(T) == 0, "recipe fields are int64_t, double, bool, std::string or "
                                     "std::vector of those; use schema::list for maps");
}

// The most YAML one parse reads (recipes are a few kB): bounds yaml-cpp's time and memory.
inline constexpr size_t kMaxYamlBytes = size_t{1} << 20;

void parse_any(const Table& table, void* obj, const std::string& yaml_text,
               const std::string& source, const std::vector<std::string>& overrides);
std::string emit_any(const Table& table, const void* obj);
std::vector<std::string> diff_any(const Table& table, const void* a, const void* b);

template <class T>
void check_type(const Table& table) {
  MXQAT_CHECK(table.type && *table.type == typeid(T), "schema table is for ",
              table.type ? table.type->name() : "nothing", ", not ", typeid(T).name());
}
}  // namespace detail

// A scalar or scalar-list key stored at obj.*first.*rest...:
//   field("train.optimizer.lr", &Recipe::train, &TrainCfg::optimizer, &OptimizerCfg::lr).gt(0)
template <class Root, class First, class... Ms>
Field field(std::string path, First Root::*first, Ms... rest) {
  using T = std::decay_t<decltype(detail::follow(std::declval<Root&>(), first, rest...))>;
  Field f;
  f.path = std::move(path);
  f.kind = detail::kind_of<T>();
  f.get = [=](const void* o) {
    return Value(std::in_place_type<T>, detail::follow(*static_cast<const Root*>(o), first, rest...));
  };
  f.set = [=](void* o, const Value& v) {
    detail::follow(*static_cast<Root*>(o), first, rest...) = std::get<T>(v);
  };
  return f;
}

// A sequence of maps stored in a std::vector<E>, each element read with `element` (a table
// for E that must outlive this one, e.g. a function-local static).
template <class Root, class First, class... Ms>
Field list(std::string path, const Table& element, First Root::*first, Ms... rest) {
  using V = std::decay_t<decltype(detail::follow(std::declval<Root&>(), first, rest...))>;
  detail::check_type<typename V::value_type>(element);
  Field f;
  f.path = std::move(path);
  f.kind = Kind::kMapList;
  f.element = &element;
  f.count = [=](const void* o) {
    return detail::follow(*static_cast<const Root*>(o), first, rest...).size();
  };
  f.resize = [=](void* o, size_t n) { detail::follow(*static_cast<Root*>(o), first, rest...).resize(n); };
  f.item = [=](void* o, size_t i) -> void* {
    return &detail::follow(*static_cast<Root*>(o), first, rest...)[i];
  };
  return f;
}

template <class T>
Rule rule(std::string path, std::function<std::string(const T&)> check) {
  return {std::move(path), [check](const void* o) { return check(*static_cast<const T*>(o)); }};
}

// The entries of a table: fields, rules, or a nested struct's whole table (see nest()).
struct Rows {
  std::vector<Field> fields;
  std::vector<Rule> rules;
  Rows(Field f) : fields{std::move(f)} {}  // NOLINT: implicit, so a table lists rows plainly
  Rows(Rule r) : rules{std::move(r)} {}    // NOLINT
  Rows(std::vector<Field> f, std::vector<Rule> r) : fields(std::move(f)), rules(std::move(r)) {}
};

// The rows and rules of `inner` (a table for the struct at obj.*first.*rest...) under the key
// `section`: nest("train.optimizer", optimizer_table, &Recipe::train, &TrainCfg::optimizer).
// A struct's table is thus written once and reused wherever the struct appears.
template <class Root, class First, class... Ms>
Rows nest(const std::string& section, const Table& inner, First Root::*first, Ms... rest) {
  using S = std::decay_t<decltype(detail::follow(std::declval<Root&>(), first, rest...))>;
  detail::check_type<S>(inner);
  auto sub = [=](void* o) -> void* { return &detail::follow(*static_cast<Root*>(o), first, rest...); };
  auto csub = [=](const void* o) -> const void* {
    return &detail::follow(*static_cast<const Root*>(o), first, rest...);
  };
  Rows out({}, {});
  for (Field f : inner.fields) {
    f.path = section + "." + f.path;
    if (f.get) f.get = [g = f.get, csub](const void* o) { return g(csub(o)); };
    if (f.set) f.set = [s = f.set, sub](void* o, const Value& v) { s(sub(o), v); };
    if (f.count) f.count = [c = f.count, csub](const void* o) { return c(csub(o)); };
    if (f.resize) f.resize = [r = f.resize, sub](void* o, size_t n) { r(sub(o), n); };
    if (f.item) f.item = [i = f.item, sub](void* o, size_t k) { return i(sub(o), k); };
    out.fields.push_back(std::move(f));
  }
  for (Rule r : inner.rules) {
    r.path = r.path.empty() ? section : section + "." + r.path;
    r.check = [c = r.check, csub](const void* o) { return c(csub(o)); };
    out.rules.push_back(std::move(r));
  }
  return out;
}

// schema::table<Recipe>({ field(...), nest(...), rule<Recipe>(...) }): fields are written out
// in this order; rules run after every field of the table read cleanly.
template <class T>
Table table(std::initializer_list<Rows> rows) {
  Table t{&typeid(T), {}, {}};
  for (const auto& r : rows) {
    t.fields.insert(t.fields.end(), r.fields.begin(), r.fields.end());
    t.rules.insert(t.rules.end(), r.rules.begin(), r.rules.end());
  }
  return t;
}

// Reads yaml_text into obj (which holds the defaults), applying "a.b=value" overrides first,
// and validates it; throws one mxqat::Error listing every problem as "source:line:col: ...".
template <class T>
void parse(const Table& table, T& obj, const std::string& yaml_text, const std::string& source,
           const std::vector<std::string>& overrides = {}) {
  detail::check_type<T>(table);
  detail::parse_any(table, &obj, yaml_text, source, overrides);
}

// obj as YAML with every key of the table written out; parse() of it gives obj back.
template <class T>
std::string emit(const Table& table, const T& obj) {
  detail::check_type<T>(table);
  return detail::emit_any(table, &obj);
}

// The keys whose values differ, as "path: a -> b" lines; empty when equal.
template <class T>
std::vector<std::string> diff(const Table& table, const T& a, const T& b) {
  detail::check_type<T>(table);
  return detail::diff_any(table, &a, &b);
}

}  // namespace mxqat::trainers::schema
