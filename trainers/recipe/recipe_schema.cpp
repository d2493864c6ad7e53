// Reading and validating YAML against a schema::Table (see recipe_schema.h): unknown keys with
// the nearest valid one, wrong types, ranges, enumerations, missing keys and cross-field rules,
// each reported as "source:line:col: path: message"; plus the --set overrides.
// One of the two files that include yaml-cpp (STYLE.md §1); emission lives in recipe_emit.cpp.
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include "trainers/recipe/recipe_table.h"
#include "trainers/util/nearest.h"

namespace mxqat::trainers::schema::detail {

namespace {

constexpr size_t kMaxErrors = 20;

// Collects every problem of one parse; each line says where (file:line:col, or the --set
// argument that put the value there) and what.
struct Report {
  std::string source;
  std::vector<std::pair<std::string, std::string>> overridden;  // shown key path, raw argument
  std::vector<std::string> errors;

  void add(const YAML::Mark& at, const std::string& shown, const std::string& msg) {
    std::string where = source;
    if (at.line >= 0) where += ":" + std::to_string(at.line + 1) + ":" + std::to_string(at.column + 1);
    for (const auto& [path, raw] : overridden)
      if (shown == path || starts_with(shown, path + ".") || starts_with(shown, path + "["))
        where = source + ": --set " + raw;
    errors.push_back(where + ": " + msg);
  }
};

const YAML::Mark kNoMark = YAML::Mark::null_mark();

std::string describe(Kind k) {
  switch (k) {
    case Kind::kInt: return "an integer";
    case Kind::kFloat: return "a number";
    case Kind::kBool: return "true or false";
    case Kind::kString: return "a string";
    case Kind::kIntList: return "a list of integers, e.g. [512, 256]";
    case Kind::kFloatList: return "a list of numbers, e.g. [0.5, 1.0]";
    case Kind::kStringList: return "a list of strings, e.g. [a, b]";
    case Kind::kMapList: return "a list of maps, one '- key: value' entry each";
  }
  return "?";
}

// What the user wrote, for "expected X, got Y".
std::string got(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return "nothing (an empty value)";
  if (n.IsMap()) return "a map";
  if (n.IsSequence()) return "a list";
  const std::string& s = n.Scalar();
  if (n.Tag() == "!") return "the quoted string \"" + s + "\" (drop the quotes)";
  return parse_float(s) ? s : "\"" + s + "\"";
}

// A plain or quoted scalar as `k`; nullopt when it is not one. Quoted scalars are strings only.
std::optional<Value> read_scalar(Kind k, const YAML::Node& n) {
  if (!n.IsDefined() || !n.IsScalar()) return std::nullopt;
  const std::string& s = n.Scalar();
  bool quoted = n.Tag() == "!";
  if (k == Kind::kString) return Value(s);
  if (quoted) return std::nullopt;
  if (k == Kind::kBool) {
    if (s == "true" || s == "True" || s == "TRUE") return Value(true);
    if (s == "false" || s == "False" || s == "FALSE") return Value(false);
    return std::nullopt;
  }
  if (k == Kind::kInt) {
    auto v = parse_int(s);
    return v ? std::optional<Value>(Value(*v)) : std::nullopt;
  }
  auto v = parse_float(s);
  return v ? std::optional<Value>(Value(*v)) : std::nullopt;
}

Kind element_kind(Kind list) {
  return list == Kind::kIntList ? Kind::kInt : list == Kind::kFloatList ? Kind::kFloat : Kind::kString;
}

// Appends one scalar to the list held in `acc` (which starts as the empty list of its kind).
void push_back(Value& acc, const Value& v) {
  std::visit([&](auto& list) {
    using L = std::decay_t<decltype(list)>;
    if constexpr (is_vector<L>::value) list.push_back(std::get<typename L::value_type>(v));
  }, acc);
}

Value empty_list(Kind k) {
  if (k == Kind::kIntList) return std::vector<int64_t>{};
  if (k == Kind::kFloatList) return std::vector<double>{};
  return std::vector<std::string>{};
}

void bind_table(Report& rep, const Table& t, void* obj, const YAML::Node& node,
                const std::string& base, const YAML::Mark& at);

// Reads one scalar (or scalar-list element) and checks it; false after reporting a problem.
bool read_checked(Report& rep, const Field& f, Kind k, const YAML::Node& n, const YAML::Mark& at,
                  const std::string& shown, Value* out) {
  auto v = read_scalar(k, n);
  if (!v) {
    rep.add(at, shown, shown + ": expected " + describe(k) + ", got " + got(n));
    return false;
  }
  std::string why = check_scalar(f, *v);
  if (!why.empty()) {
    rep.add(at, shown, shown + ": " + why);
    return false;
  }
  *out = std::move(*v);
  return true;
}

void bind_list(Report& rep, const Field& f, void* obj, const YAML::Node& n, const YAML::Mark& at,
               const std::string& shown) {
  Value acc = empty_list(f.kind);
  bool ok = true;
  for (size_t i = 0; i < n.size(); ++i) {
    Value v;
    if (read_checked(rep, f, element_kind(f.kind), n[i], n[i].Mark(),
                     shown + "[" + std::to_string(i) + "]", &v))
      push_back(acc, v);
    else
      ok = false;
  }
  if (n.size() < f.min_items) {
    rep.add(at, shown, shown + ": needs at least " + std::to_string(f.min_items) +
                           " entr" + (f.min_items == 1 ? "y" : "ies") + ", got an empty list");
    ok = false;
  }
  if (ok) f.set(obj, acc);
}

void bind_map_list(Report& rep, const Field& f, void* obj, const YAML::Node& n,
                   const std::string& shown) {
  f.resize(obj, n.size());
  for (size_t i = 0; i < n.size(); ++i) {
    std::string item = shown + "[" + std::to_string(i) + "]";
    if (!n[i].IsMap()) {
      rep.add(n[i].Mark(), item, item + ": expected a map of keys, got " + got(n[i]));
      continue;
    }
    bind_table(rep, *f.element, f.item(obj, i), n[i], item, n[i].Mark());
  }
}

// The value of one known key: type, range and enumeration checks, then stored.
void bind_value(Report& rep, const Field& f, void* obj, const YAML::Node& n,
                const YAML::Mark& key_mark, const std::string& shown) {
  const YAML::Mark at = n.IsNull() ? key_mark : n.Mark();
  if (f.kind == Kind::kInt || f.kind == Kind::kFloat || f.kind == Kind::kBool ||
      f.kind == Kind::kString) {
    Value v;
    if (read_checked(rep, f, f.kind, n, at, shown, &v)) f.set(obj, v);
    return;
  }
  if (!n.IsSequence()) {
    rep.add(at, shown, shown + ": expected " + describe(f.kind) + ", got " + got(n) +
                           (n.IsScalar() ? " (write it as [" + n.Scalar() + "])" : ""));
    return;
  }
  if (f.kind == Kind::kMapList)
    bind_map_list(rep, f, obj, n, shown);
  else
    bind_list(rep, f, obj, n, at, shown);
}

// "unknown key 'train.epoch' (did you mean 'train.epochs'?)": the closest key by edit distance
// of the last name, anywhere in the table (a sibling wins ties), else the valid keys here.
std::string unknown_key(const Table& t, const std::string& rel, const std::string& key,
                        const std::string& base) {
  std::string msg = "unknown key '" + join(base, join(rel, key)) + "'";
  std::string best;
  size_t best_score = SIZE_MAX;
  for (const auto& p : key_paths(t)) {
    const std::string name = last_name(p);
    // Only distances up to 2 count, so names whose lengths differ by more need no distance (a
    // long mistyped key against every key path was most of a recipe's parse time).
    if (name.size() > key.size() + 2 || key.size() > name.size() + 2) continue;
    size_t d = edit_distance(key, name);
    if (d > 2 || d >= key.size()) continue;
    size_t score = d + (parent(p) == rel ? 0 : 1);
    if (score < best_score) best_score = score, best = p;
  }
  if (!best.empty()) return msg + " (did you mean '" + join(base, best) + "'?)";
  std::string where = join(base, rel);
  return msg + "; valid keys " + (where.empty() ? "at the top level" : "under '" + where + "'") +
         ": " + comma_list(children(t, rel)) + " (remove it or fix the spelling)";
}

// The keys of one map (section `rel` of table t): each known key is bound, the rest reported.
void bind_map(Report& rep, const Table& t, void* obj, const YAML::Node& node,
              const std::string& rel, const std::string& base, std::set<std::string>& seen) {
  std::string here = join(base, rel);
  if (!node.IsDefined() || node.IsNull()) return;  // an empty section keeps the defaults
  if (!node.IsMap()) {
    rep.add(node.Mark(), here, (here.empty() ? "the recipe" : here) + ": expected a map with keys " +
                                   comma_list(children(t, rel)) + ", got " + got(node));
    return;
  }
  std::map<std::string, int> first_line;
  for (auto it = node.begin(); it != node.end(); ++it) {
    const YAML::Node k = it->first, value = it->second;  // copies: *it is a temporary
    if (!k.IsScalar()) {
      rep.add(k.Mark(), here, (here.empty() ? "the recipe" : here) + ": keys must be plain names");
      continue;
    }
    std::string p = join(rel, k.Scalar()), shown = join(base, p);
    if (!first_line.emplace(p, k.Mark().line + 1).second) {
      rep.add(k.Mark(), shown, "duplicate key '" + shown + "' (first at line " +
                                   std::to_string(first_line[p]) + "); keep one");
      continue;
    }
    if (const Field* f = find_field(t, p)) {
      seen.insert(p);
      bind_value(rep, *f, obj, value, k.Mark(), shown);
    } else if (is_section(t, p)) {
      bind_map(rep, t, obj, value, p, base, seen);
    } else {
      // Past kMaxErrors only the count is shown: no hint to compute.
      rep.add(k.Mark(), shown, rep.errors.size() < kMaxErrors ? unknown_key(t, rel, k.Scalar(), base)
                                                              : "unknown key");
    }
  }
}

// Where the node at `path` is, or the deepest existing map on the way to it (for pointing at
// where a missing key belongs and at what a cross-field rule is about).
YAML::Mark mark_of(const YAML::Node& node, const std::string& path, const YAML::Mark& at) {
  YAML::Node cur = node;
  YAML::Mark mark = at;
  for (const auto& name : split(path, '.')) {
    if (!cur.IsMap()) break;
    const YAML::Node& map = cur;  // const lookup: never inserts the key
    YAML::Node next = map[name];
    if (!next.IsDefined() || next.IsNull()) break;
    cur.reset(next);
    mark = cur.Mark();
  }
  return mark;
}

void bind_table(Report& rep, const Table& t, void* obj, const YAML::Node& node,
                const std::string& base, const YAML::Mark& at) {
  size_t before = rep.errors.size();
  std::set<std::string> seen;
  bind_map(rep, t, obj, node, "", base, seen);
  for (const auto& f : t.fields) {
    if (!f.is_required || seen.count(f.path)) continue;
    std::string shown = join(base, f.path);
    rep.add(mark_of(node, parent(f.path), at), shown,
            "missing required key '" + shown + "'" +
                (f.allowed.empty() ? "" : " (add it; one of: " + comma_list(f.allowed) + ")"));
  }
  if (rep.errors.size() != before) return;  // cross-field rules assume valid fields
  for (const auto& r : t.rules) {
    std::string why = r.check(obj);
    if (why.empty()) continue;
    std::string shown = join(base, r.path);
    rep.add(mark_of(node, r.path, at), shown, (shown.empty() ? "" : shown + ": ") + why);
  }
}

// ---- --set overrides ----------------------------------------------------------------------

struct Override {
  std::string raw;    // "train.optimizer.lr=3e-4"
  std::string shown;  // "train.optimizer.lr"
  std::vector<std::string> names;  // "train", "optimizer", "lr"; list indices as "2"
  YAML::Node value;
};

// Walks the key through the schema (list-of-maps entries by index) and returns it as shown in
// messages; throws naming the nearest key when it does not exist.
std::string resolve(const Table& top, const Override& o, const std::string& source) {
  const Table* t = &top;
  std::string rel, base;
  for (const auto& name : o.names) {
    const Field* f = rel.empty() ? nullptr : find_field(*t, rel);
    if (f && f->kind == Kind::kMapList) {
      MXQAT_CHECK(is_index(name), source, ": --set ", o.raw, ": '", join(base, rel),
                  "' is a list; address an entry by index, e.g. ", join(base, rel), "[0].",
                  f->element->fields.empty() ? "" : f->element->fields[0].path);
      base = join(base, rel) + "[" + name + "]", t = f->element, rel.clear();
      continue;
    }
    MXQAT_CHECK(!f, source, ": --set ", o.raw, ": '", join(base, rel), "' holds ",
                f ? describe(f->kind) : "", ", not keys; set it whole: --set ", join(base, rel),
                "=VALUE");
    std::string p = join(rel, name);
    MXQAT_CHECK(find_field(*t, p) || is_section(*t, p), source, ": --set ", o.raw, ": ",
                unknown_key(*t, rel, name, base));
    rel = p;
  }
  return join(base, rel);
}

Override parse_override(const Table& t, const std::string& raw, const std::string& source) {
  size_t eq = raw.find('=');
  MXQAT_CHECK(eq != std::string::npos && eq > 0, source, ": --set '", raw,
              "': expected KEY=VALUE, e.g. --set train.optimizer.lr=3e-4");
  Override o;
  o.raw = raw;
  o.names = split_key(raw.substr(0, eq));
  for (const auto& n : o.names)
    MXQAT_CHECK(!n.empty(), source, ": --set '", raw, "': the key has an empty part; write it "
                "as a.b.c or a.list[0].c");
  o.shown = resolve(t, o, source);
  try {
    o.value = YAML::Load(raw.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    MXQAT_FAIL(source, ": --set ", raw, ": the value is malformed YAML (", e.msg,
               "); quote it if it holds ':', '#', '[' or '{', e.g. --set name='\"a: b\"'");
  }
  return o;
}

// Puts o.value into the document, creating the maps on the way.
void apply(YAML::Node& doc, const Override& o, const std::string& source) {
  YAML::Node cur = doc;  // a handle: move it with reset(), never '=' (that would assign)
  std::string here;
  for (size_t i = 0; i < o.names.size(); ++i) {
    const std::string& name = o.names[i];
    bool last = i + 1 == o.names.size();
    std::string shown = here.empty() ? "the recipe" : "'" + here + "'";
    if (is_index(name)) {  // resolve() allowed an index only into a list of maps
      MXQAT_CHECK(cur.IsSequence(), source, ": --set ", o.raw, ": ", shown, " is not a list in "
                  "the recipe (it is ", got(cur), "); set the whole list: --set ", here, "=[...]");
      size_t idx = std::stoul(name);
      MXQAT_CHECK(idx < cur.size(), source, ": --set ", o.raw, ": ", shown, " has ", cur.size(),
                  " entries, so index ", idx, " does not exist; set the whole list instead");
      here += "[" + name + "]";
      if (last) {
        cur[idx] = o.value;
        break;
      }
      YAML::Node next = cur[idx];
      cur.reset(next);
      continue;
    }
    MXQAT_CHECK(cur.IsMap() || cur.IsNull() || !cur.IsDefined(), source, ": --set ", o.raw,
                ": ", shown, " is not a map", here.empty() ? "" : " in the recipe", " (it is ",
                got(cur), ")");
    here = join(here, name);
    if (last) {
      cur[name] = o.value;
      break;
    }
    YAML::Node next = cur[name];
    cur.reset(next);
  }
}

// Diagnosis only, for YAML that yaml-cpp has already refused: yaml-cpp reports a flow collection
// that is never closed where it gave up (often the end of the file), so the '[' or '{' that was
// left open is found here and named by line and column. Counted outside comments, quoted scalars
// and block scalars, and only where a node starts (line start, after ": ", "- ", ',', '[' or '{'),
// so plain scalars like "blocks.[0-3]" are not flow collections. Returns "" when all are closed.
std::string unclosed_flow_collection(const std::string& text, const std::string& source) {
  struct Open { char c; int line, col; };
  std::vector<Open> open;
  char quote = 0;             // inside a '...' or "..." scalar (they may span lines)
  int block_indent = -1;      // inside a | or > block scalar: lines indented deeper than this
  int line = 1;
  size_t i = 0;
  while (i < text.size()) {
    const size_t end = std::min(text.find('\n', i), text.size());
    const size_t first = text.find_first_not_of(' ', i);
    const int indent = int((first == std::string::npos ? end : std::min(first, end)) - i);
    const bool blank = first == std::string::npos || first >= end;
    if (block_indent >= 0 && (blank || indent > block_indent)) { i = end + 1; ++line; continue; }
    block_indent = -1;
    bool node_start = true;   // a node may start at the first character of a line
    for (size_t k = i; k < end; ++k) {
      const char c = text[k];
      if (quote) {
        if (c == '\\' && quote == '"') ++k;
        else if (c == quote && quote == '\'' && k + 1 < end && text[k + 1] == '\'') ++k;
        else if (c == quote) { quote = 0; node_start = false; }
        continue;
      }
      if (c == ' ' || c == '\t' || c == '\r') continue;
      if (c == '#' && (k == i || text[k - 1] == ' ' || text[k - 1] == '\t')) break;
      if (node_start && (c == '\'' || c == '"')) { quote = c; continue; }
      if (node_start && (c == '[' || c == '{')) { open.push_back({c, line, int(k - i) + 1}); continue; }
      if (node_start && open.empty() && (c == '|' || c == '>')) { block_indent = indent; break; }
      if (!open.empty() && (c == ']' || c == '}')) { open.pop_back(); node_start = false; continue; }
      const bool next_space = k + 1 >= end || text[k + 1] == ' ' || text[k + 1] == '\t';
      node_start = (c == ',' && !open.empty()) || ((c == ':' || c == '-' || c == '?') && next_space);
    }
    i = end + 1;
    ++line;
  }
  if (open.empty()) return "";
  const Open& o = open.back();
  return source + ":" + std::to_string(o.line) + ":" + std::to_string(o.col) + ": the '" + o.c +
         "' opened here is never closed (malformed YAML); close the flow " +
         (o.c == '[' ? "list with ']'" : "map with '}'") + " (on this line or a later one)";
}

// Counts the documents of a YAML stream without building them, stopping at the second.
struct DocumentStarts : YAML::EventHandler {
  std::vector<YAML::Mark> starts;
  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

// A recipe is one YAML document of at most kMaxYamlBytes. Parsing is bounded in time and memory:
// yaml-cpp 0.7's YAML::LoadAll loops forever on a token no node can start with at the top level
// (a stray ',' as in ",\nseed: 1", found by the recipe fuzzer): its parser reports an empty
// document there without consuming the token, and LoadAll appends one more null document per
// turn until memory runs out (fixed upstream after 0.7: jbeder/yaml-cpp PR 1319). So the
// documents are counted by the event parser, which stops at the second one, and only the first is
// built (YAML::Load). Everything else yaml-cpp does is linear in the text (measured up to 1 MiB:
// deep nesting stops at its depth guard, long unclosed flow collections and quoted scalars fail at
// the end of the text), and the size limit bounds that.
YAML::Node load_document(const std::string& text, const std::string& source) {
  MXQAT_CHECK(text.size() <= kMaxYamlBytes, source, ": ", text.size(), " bytes of YAML; a recipe "
              "is at most ", kMaxYamlBytes, " bytes (shipped recipes are a few kB): check that this "
              "is the right file");
  DocumentStarts docs;
  YAML::Node doc(YAML::NodeType::Null);  // an empty text: no document, every default
  try {
    std::istringstream in(text);
    YAML::Parser parser(in);
    while (docs.starts.size() < 2 && parser.HandleNextDocument(docs)) {}
    if (docs.starts.size() == 1) doc = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    std::string unclosed = unclosed_flow_collection(text, source);
    MXQAT_CHECK(unclosed.empty(), unclosed);
    std::string where = e.mark.line >= 0 ? ":" + std::to_string(e.mark.line + 1) + ":" +
                                               std::to_string(e.mark.column + 1) : "";
    MXQAT_FAIL(source, where, ": malformed YAML: ", e.msg,
               " (check the indentation, colons and brackets at or just before this line)");
  }
  if (docs.starts.size() == 2) {
    const YAML::Mark& m = docs.starts[1];
    const std::string at = source + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
    // A '---' or '...' line after the first document's start and up to the second's: two
    // documents. Else the parser started a document at a token it could not use.
    bool separator = false;
    for (const char* marker : {"---", "..."})
      for (size_t p = text.find(marker, size_t(docs.starts[0].pos) + 1);
           p != std::string::npos && p <= size_t(m.pos); p = text.find(marker, p + 1))
        separator = separator || ((p == 0 || text[p - 1] == '\n') &&
                                  (p + 3 == text.size() || std::strchr(" \t\r\n", text[p + 3])));
    MXQAT_CHECK(!separator, at, ": a second YAML document starts here; a recipe is one document "
                "(remove the '---' or '...' separator and what follows, or merge the two)");
    MXQAT_FAIL(at, ": malformed YAML: '", text.substr(size_t(m.pos), 1), "' cannot start a value "
               "here (a stray ',', ']' or '}' outside a [list] or {map}?); remove it or put the "
               "value in brackets");
  }
  return doc;
}

std::string join_errors(const std::vector<std::string>& errors) {
  std::string all;
  for (size_t i = 0; i < errors.size() && i < kMaxErrors; ++i) all += (i ? "\n" : "") + errors[i];
  if (errors.size() > kMaxErrors)
    all += "\n... and " + std::to_string(errors.size() - kMaxErrors) + " more problems";
  return all;
}

}  // namespace

void parse_any(const Table& table, void* obj, const std::string& yaml_text,
               const std::string& source, const std::vector<std::string>& overrides) {
  if (!table.validated) validate_table(table);
  YAML::Node doc = load_document(yaml_text, source);
  Report rep{source, {}, {}};
  for (const auto& raw : overrides) {
    Override o = parse_override(table, raw, source);
    apply(doc, o, source);
    rep.overridden.emplace_back(o.shown, raw);
  }
  bind_table(rep, table, obj, doc, "", kNoMark);
  MXQAT_CHECK(rep.errors.empty(), join_errors(rep.errors));
}

}  // namespace mxqat::trainers::schema::detail
