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

// Appends one line per write, never through a symbolic link (O_NOFOLLOW), and knows its length,
// which checkpoints record so that a resumed run cuts the file back to the checkpoint's lines.
class JsonlWriter {
 public:
  JsonlWriter() = default;
  JsonlWriter(const JsonlWriter&) = delete;
  JsonlWriter& operator=(const JsonlWriter&) = delete;
  ~JsonlWriter();
  // Opens `path` (created if missing) and cuts it to its first `keep_bytes` bytes: 0 for a fresh
  // run, a checkpoint's "metrics_bytes" counter on resume.
  void open(const std::string& path, int64_t keep_bytes);
  // A writer that writes nothing (every process of a data-parallel run but rank 0); bytes()
  // still counts what would have been written.
  void open_discard() { discard_ = true; }
  void write(const JsonObject& o);
  bool is_open() const { return fd_ >= 0 || discard_; }
  int64_t bytes() const { return bytes_; }  // the file's length after the last write

 private:
  int fd_ = -1;
  bool discard_ = false;
  int64_t bytes_ = 0;
  std::string path_;
};

// Writes `text` to path via a new temporary file (O_EXCL, unpredictable name, in the same
// directory) and a rename, which replaces a link at `path` rather than following it; never
// leaves half a file.
void write_file_atomic(const std::string& path, const std::string& text);
std::string read_file(const std::string& path);  // throws naming the path

}  // namespace mxqat::trainers
