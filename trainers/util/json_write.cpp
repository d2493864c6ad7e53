// JSON / JSONL / atomic file writers.
#include "trainers/util/json_write.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "autograd/error.h"
#include "trainers/util/files.h"

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

JsonlWriter::~JsonlWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void JsonlWriter::open(const std::string& path, int64_t keep_bytes) {
  if (fd_ >= 0) ::close(fd_);
  path_ = path;
  fd_ = open_append_nofollow(path);
  struct stat st;
  MXQAT_CHECK(::fstat(fd_, &st) == 0, "cannot stat ", path, ": ", std::strerror(errno));
  bytes_ = std::min<int64_t>(st.st_size, std::max<int64_t>(keep_bytes, 0));
  MXQAT_CHECK(::ftruncate(fd_, bytes_) == 0, "cannot cut ", path, " back to ", bytes_,
              " bytes: ", std::strerror(errno));
}

void JsonlWriter::write(const JsonObject& o) {
  MXQAT_CHECK(fd_ >= 0 || discard_, "metrics file ", path_, " is not open");
  const std::string line = o.dump() + '\n';
  if (discard_) {
    bytes_ += static_cast<int64_t>(line.size());
    return;
  }
  for (size_t done = 0; done < line.size();) {
    ssize_t w = ::write(fd_, line.data() + done, line.size() - done);
    if (w < 0 && errno == EINTR) continue;
    MXQAT_CHECK(w > 0, "writing ", path_, " failed: ", std::strerror(errno), " (disk full?)");
    done += static_cast<size_t>(w);
  }
  bytes_ += static_cast<int64_t>(line.size());
}

void write_file_atomic(const std::string& path, const std::string& text) {
  std::string tmp;
  const int fd = create_temp_file(path, &tmp);
  std::string error;
  for (size_t done = 0; done < text.size() && error.empty();) {
    ssize_t w = ::write(fd, text.data() + done, text.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) error = std::strerror(errno);
    else done += static_cast<size_t>(w);
  }
  if (error.empty() && ::fsync(fd) != 0) error = std::strerror(errno);
  ::close(fd);
  std::error_code ec;
  if (error.empty()) {
    std::filesystem::rename(tmp, path, ec);
    if (ec) error = "cannot move " + tmp + " onto " + path + ": " + ec.message();
  }
  if (!error.empty()) {
    std::filesystem::remove(tmp, ec);
    MXQAT_FAIL("writing ", path, " failed: ", error, " (disk full, or the directory not writable?)");
  }
}

std::string read_file(const std::string& path) {
  const uint64_t size = regular_file_size(path, "file");  // a FIFO or device would block or never end
  MXQAT_CHECK(size <= (uint64_t{1} << 32), "file '", path, "' has ", size, " bytes; mxqat reads "
              "text and raw inputs of at most 4 GiB");
  std::ifstream f(path, std::ios::binary);
  MXQAT_CHECK(f.good(), "cannot read ", path, ": no such file or not readable");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace mxqat::trainers
