// A small JSON reader for the files mxqat itself writes (summary.json, report.json, manifests), so
// that `run` can tell a finished stage from a half-done one and `compare` can collect results.
// Numbers are doubles; null reads as NaN through number(). Not a general-purpose JSON library.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mxqat::trainers {

class Json {
 public:
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };

  // Throws mxqat::Error naming `source` and the byte offset of the first problem, then `advice`
  // (what to do; by default the advice for mxqat's own files).
  static Json parse(const std::string& text, const std::string& source,
                    const std::string& advice = kOwnFileAdvice);
  static constexpr const char* kOwnFileAdvice =
      "the file is damaged or was not written by mxqat (delete it to redo the stage)";
  static Json read(const std::string& path);  // parse(read_file(path), path)

  Kind kind() const { return kind_; }
  bool is_object() const { return kind_ == Kind::kObject; }
  const Json* find(const std::string& key) const;  // nullptr if absent or not an object
  // Typed access; a missing key or wrong type throws naming the key and `source`.
  const Json& at(const std::string& key) const;
  double number() const;  // null -> NaN
  bool boolean() const;
  const std::string& string() const;
  const std::vector<Json>& array() const;
  const std::vector<std::pair<std::string, Json>>& object() const { return obj_; }
  double number_or(const std::string& key, double fallback) const;
  std::string string_or(const std::string& key, const std::string& fallback) const;

 private:
  friend class JsonParser;
  Kind kind_ = Kind::kNull;
  bool bool_ = false;
  double num_ = 0;
  std::string str_;
  std::vector<Json> arr_;
  std::vector<std::pair<std::string, Json>> obj_;
  std::shared_ptr<const std::string> source_;
};

}  // namespace mxqat::trainers
