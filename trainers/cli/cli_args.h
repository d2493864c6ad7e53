// A small argument parser for the subcommands of trainers/cli: positionals, `--flag value`,
// `--flag=value`, repeated flags (`--set a=1 --set b=2`) and boolean switches. Unknown flags
// are errors naming the nearest known one.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mxqat::trainers {

struct ArgSpec {
  std::string name;   // "--out"
  bool takes_value;   // false: a switch
  bool repeated = false;
};

class Args {
 public:
  Args(const std::string& command, const std::vector<std::string>& argv,
       const std::vector<ArgSpec>& spec, size_t min_pos, size_t max_pos);
  const std::vector<std::string>& positional() const { return pos_; }
  bool has(const std::string& flag) const { return values_.count(flag) > 0; }
  std::optional<std::string> get(const std::string& flag) const;
  std::string get_or(const std::string& flag, const std::string& fallback) const;
  const std::vector<std::string>& all(const std::string& flag) const;

 private:
  std::vector<std::string> pos_;
  std::map<std::string, std::vector<std::string>> values_;
};

// The integer value of `flag` (>= min_value), or `fallback` when the flag is absent; anything
// else is an mxqat::Error naming the flag and the value.
int64_t int_flag(const Args& a, const std::string& flag, int64_t fallback, int64_t min_value);
// The same for a finite number.
double float_flag(const Args& a, const std::string& flag, double fallback);
// --threads N (1..1024) sets the OpenMP threads; results never depend on it.
void apply_threads(const Args& a);

}  // namespace mxqat::trainers
