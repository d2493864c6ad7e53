// Queries over a schema::Table that need no YAML: key lookup by dotted path, value parsing,
// checks and formatting. Internal to trainers/recipe*.cpp (the recipe schema machinery).
#pragma once
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "trainers/recipe/recipe_schema.h"

namespace mxqat::trainers::schema::detail {

template <class T> struct is_vector : std::false_type {};
template <class T> struct is_vector<std::vector<T>> : std::true_type {};

// ---- dotted key paths ("train.optimizer.lr"); "" is the table's root -----------------------
std::string join(const std::string& a, const std::string& b);  // "a.b", or either when one is ""
bool starts_with(const std::string& s, const std::string& prefix);
std::vector<std::string> split(const std::string& s, char sep);  // "" -> {}
std::vector<std::string> split_key(const std::string& key);  // "quant[2].weight" -> quant, 2, weight
bool is_index(const std::string& name);                      // all digits
std::string parent(const std::string& path);                 // "a.b.c" -> "a.b"
std::string last_name(const std::string& path);              // "a.b.c" -> "c"
std::string comma_list(const std::vector<std::string>& items);

const Field* find_field(const Table& t, const std::string& path);
bool is_section(const Table& t, const std::string& path);  // a map holding other keys
std::vector<std::string> children(const Table& t, const std::string& section);  // in row order
std::vector<std::string> key_paths(const Table& t);  // every field and section path

// Throws when the table itself is inconsistent (a programming error, not a user one).
void validate_table(const Table& t);

// ---- values --------------------------------------------------------------------------------
std::optional<int64_t> parse_int(const std::string& s);  // "12", also "1e3"; not "1.5"
std::optional<double> parse_float(const std::string& s);  // finite decimal numbers only
std::string format_double(double v);  // shortest text that reads back to v, with a '.' or 'e'
std::string format_value(const Value& v);  // for messages: 3, 0.001, true, 'adamw', [1, 2]
// "" when v (a scalar, or one element of a list field) passes f's checks, else why not.
std::string check_scalar(const Field& f, const Value& v);

}  // namespace mxqat::trainers::schema::detail
