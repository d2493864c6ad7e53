// Recursive-descent JSON (RFC 8259) reader; \u escapes are kept as UTF-8.
#include "trainers/util/json_read.h"

#include <cmath>
#include <cstdlib>

#include "autograd/error.h"
#include "trainers/util/json_write.h"

namespace mxqat::trainers {

class JsonParser {
 public:
  JsonParser(const std::string& t, std::shared_ptr<const std::string> src, const std::string& advice)
      : t_(t), src_(std::move(src)), advice_(advice) {}

  Json document() {
    Json v = value(0);
    skip();
    expect(i_ == t_.size(), "unexpected text after the value");
    return v;
  }

 private:
  void expect(bool ok, const char* what) const {
    MXQAT_CHECK(ok, *src_, ": not valid JSON at byte ", i_, ": ", what, "; ", advice_);
  }
  void skip() {
    while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\n' || t_[i_] == '\t' || t_[i_] == '\r')) ++i_;
  }
  bool literal(const char* word) {
    const std::string w(word);
    if (t_.compare(i_, w.size(), w) != 0) return false;
    i_ += w.size();
    return true;
  }
  Json value(int depth) {
    expect(depth < 64, "nesting deeper than 64");
    skip();
    expect(i_ < t_.size(), "unexpected end of text");
    Json v;
    v.source_ = src_;
    const char c = t_[i_];
    if (c == '{') return object(std::move(v), depth);
    if (c == '[') {
      ++i_;
      v.kind_ = Json::Kind::kArray;
      skip();
      if (i_ < t_.size() && t_[i_] == ']') return ++i_, v;
      for (;;) {
        v.arr_.push_back(value(depth + 1));
        skip();
        expect(i_ < t_.size() && (t_[i_] == ',' || t_[i_] == ']'), "expected ',' or ']'");
        if (t_[i_++] == ']') return v;
      }
    }
    if (c == '"') return v.kind_ = Json::Kind::kString, v.str_ = string(), v;
    if (literal("true")) return v.kind_ = Json::Kind::kBool, v.bool_ = true, v;
    if (literal("false")) return v.kind_ = Json::Kind::kBool, v;
    if (literal("null")) return v;
    const char* start = t_.c_str() + i_;
    char* end = nullptr;
    v.num_ = std::strtod(start, &end);
    expect(end != start, "expected a value");
    i_ += static_cast<size_t>(end - start);
    v.kind_ = Json::Kind::kNumber;
    return v;
  }
  Json object(Json v, int depth) {
    ++i_;
    v.kind_ = Json::Kind::kObject;
    skip();
    if (i_ < t_.size() && t_[i_] == '}') return ++i_, v;
    for (;;) {
      skip();
      expect(i_ < t_.size() && t_[i_] == '"', "expected a key string");
      std::string key = string();
      skip();
      expect(i_ < t_.size() && t_[i_] == ':', "expected ':'");
      ++i_;
      v.obj_.emplace_back(std::move(key), value(depth + 1));
      skip();
      expect(i_ < t_.size() && (t_[i_] == ',' || t_[i_] == '}'), "expected ',' or '}'");
      if (t_[i_++] == '}') return v;
    }
  }
  void utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) out += char(cp);
    else if (cp < 0x800) out += char(0xC0 | (cp >> 6)), out += char(0x80 | (cp & 0x3F));
    else out += char(0xE0 | (cp >> 12)), out += char(0x80 | ((cp >> 6) & 0x3F)), out += char(0x80 | (cp & 0x3F));
  }
  std::string string() {
    ++i_;
    std::string out;
    for (;;) {
      expect(i_ < t_.size(), "unterminated string");
      const char c = t_[i_++];
      if (c == '"') return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      expect(i_ < t_.size(), "unterminated escape");
      const char e = t_[i_++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          expect(i_ + 4 <= t_.size(), "short \\u escape");
          utf8(out, static_cast<unsigned>(std::strtoul(t_.substr(i_, 4).c_str(), nullptr, 16)));
          i_ += 4;
          break;
        }
        default: out += e;
      }
    }
  }
  const std::string& t_;
  std::shared_ptr<const std::string> src_;
  const std::string& advice_;
  size_t i_ = 0;
};

Json Json::parse(const std::string& text, const std::string& source, const std::string& advice) {
  return JsonParser(text, std::make_shared<const std::string>(source), advice).document();
}

Json Json::read(const std::string& path) { return parse(read_file(path), path); }

const Json* Json::find(const std::string& key) const {
  for (const auto& [k, v] : obj_)
    if (k == key) return &v;
  return nullptr;
}

const Json& Json::at(const std::string& key) const {
  const Json* v = find(key);
  MXQAT_CHECK(v != nullptr, (source_ ? *source_ : std::string("JSON")), ": key \"", key,
              "\" is missing; the file is from another version or damaged (delete it to redo the stage)");
  return *v;
}

double Json::number() const {
  if (kind_ == Kind::kNull) return NAN;
  MXQAT_CHECK(kind_ == Kind::kNumber, (source_ ? *source_ : std::string("JSON")), ": expected a number");
  return num_;
}
bool Json::boolean() const {
  MXQAT_CHECK(kind_ == Kind::kBool, (source_ ? *source_ : std::string("JSON")), ": expected true/false");
  return bool_;
}
const std::string& Json::string() const {
  MXQAT_CHECK(kind_ == Kind::kString, (source_ ? *source_ : std::string("JSON")), ": expected a string");
  return str_;
}
const std::vector<Json>& Json::array() const {
  MXQAT_CHECK(kind_ == Kind::kArray, (source_ ? *source_ : std::string("JSON")), ": expected an array");
  return arr_;
}
double Json::number_or(const std::string& key, double fallback) const {
  const Json* v = find(key);
  return v ? v->number() : fallback;
}
std::string Json::string_or(const std::string& key, const std::string& fallback) const {
  const Json* v = find(key);
  return v && v->kind_ == Kind::kString ? v->str_ : fallback;
}

}  // namespace mxqat::trainers
