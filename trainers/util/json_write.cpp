// JSON / JSONL / atomic file writers.
#include "trainers/util/json_write.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "autograd/error.h"

namespace mxqat::trainers {

std::string json_escape(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\t': o += "\\t"; break;
      case '\r': o += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", c);
          o += b;
        } else {
          o += c;
        }
    }
  }
  return o + "\"";
}

JsonObject& JsonObject::num(const std::string& key, double v) {
  if (!std::isfinite(v)) return raw(key, "null");  // JSON has no NaN/Inf
  char b[32];
  std::snprintf(b, sizeof b, "%.9g", v);
  return raw(key, b);
}
JsonObject& JsonObject::integer(const std::string& key, int64_t v) { return raw(key, std::to_string(v)); }
JsonObject& JsonObject::str(const std::string& key, const std::string& v) { return raw(key, json_escape(v)); }
JsonObject& JsonObject::boolean(const std::string& key, bool v) { return raw(key, v ? "true" : "false"); }
JsonObject& JsonObject::raw(const std::string& key, const std::string& json) {
  items_.emplace_back(key, json);
  return *this;
}

std::string JsonObject::dump() const {
  std::string o = "{";
  for (size_t i = 0; i < items_.size(); ++i)
    o += (i ? ", " : "") + json_escape(items_[i].first) + ": " + items_[i].second;
  return o + "}";
}

JsonArray& JsonArray::integer(int64_t v) { return raw(std::to_string(v)); }
JsonArray& JsonArray::raw(const std::string& json) {
  items_.push_back(json);
  return *this;
}

std::string JsonArray::dump() const {
  std::string o = "[";
  for (size_t i = 0; i < items_.size(); ++i) o += (i ? ", " : "") + items_[i];
  return o + "]";
}

std::string JsonArray::dump_lines() const {
  std::string o = "[";
  for (size_t i = 0; i < items_.size(); ++i) o += (i ? ",\n  " : "\n  ") + items_[i];
  return o + "]";
}

void JsonlWriter::open(const std::string& path) {
  path_ = path;
  out_.open(path, std::ios::app);
  MXQAT_CHECK(out_.good(), "cannot open ", path, " for appending; check that the directory is writable");
}

void JsonlWriter::write(const JsonObject& o) {
  out_ << o.dump() << '\n';
  out_.flush();
  MXQAT_CHECK(out_.good(), "writing ", path_, " failed (disk full?)");
}

void write_file_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    MXQAT_CHECK(f.good(), "cannot write ", tmp, "; check that the directory exists and is writable");
    f << text;
    f.flush();
    if (!f.good()) {
      std::filesystem::remove(tmp);
      MXQAT_FAIL("writing ", path, " failed (disk full?)");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp);
    MXQAT_FAIL("cannot move ", tmp, " onto ", path, ": ", ec.message());
  }
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  MXQAT_CHECK(f.good(), "cannot read ", path, ": no such file or not readable");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace mxqat::trainers
