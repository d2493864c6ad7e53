// Small writers for the run directory: JSON objects (summary.json) and arrays, JSON-lines metrics
// (metrics.jsonl, appended and flushed per line), and atomic text files (temp + rename).
#pragma once
#include <cstdint>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace mxqat::trainers {

// An ordered JSON object built key by key; values are numbers, strings, bools or raw JSON.
class JsonObject {
 public:
  JsonObject& num(const std::string& key, double v);
  JsonObject& integer(const std::string& key, int64_t v);
  JsonObject& str(const std::string& key, const std::string& v);
  JsonObject& boolean(const std::string& key, bool v);
  JsonObject& raw(const std::string& key, const std::string& json);
  std::string dump() const;  // one line

 private:
  std::vector<std::pair<std::string, std::string>> items_;
};

// A JSON array built element by element: objects, numbers or raw JSON. dump() writes it on one
// line, "[a, b]"; dump_lines() one element per line, "[\n  a,\n  b]" (files people read).
class JsonArray {
 public:
  JsonArray& add(const JsonObject& o) { return raw(o.dump()); }
  JsonArray& integer(int64_t v);
  JsonArray& raw(const std::string& json);
  bool empty() const { return items_.empty(); }
  std::string dump() const;
  std::string dump_lines() const;

 private:
  std::vector<std::string> items_;
};

std::string json_escape(const std::string& s);

class JsonlWriter {
 public:
  void open(const std::string& path);  // appends
  void write(const JsonObject& o);
  bool is_open() const { return out_.is_open(); }

 private:
  std::ofstream out_;
  std::string path_;
};

// Writes `text` to path via a temporary file and a rename; never leaves half a file.
void write_file_atomic(const std::string& path, const std::string& text);
std::string read_file(const std::string& path);  // throws naming the path

}  // namespace mxqat::trainers
