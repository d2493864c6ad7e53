// Argument parsing for the CLI subcommands.
#include "trainers/cli/cli_args.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "autograd/error.h"
#include "trainers/util/nearest.h"

namespace mxqat::trainers {

Args::Args(const std::string& command, const std::vector<std::string>& argv,
           const std::vector<ArgSpec>& spec, size_t min_pos, size_t max_pos) {
  std::vector<std::string> names;
  for (const auto& s : spec) names.push_back(s.name);
  for (size_t i = 0; i < argv.size(); ++i) {
    std::string a = argv[i];
    if (a.size() < 2 || a.rfind("--", 0) != 0) {
      pos_.push_back(a);
      continue;
    }
    std::string value;
    bool inline_value = false;
    if (auto eq = a.find('='); eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
      inline_value = true;
    }
    auto it = std::find_if(spec.begin(), spec.end(), [&](const ArgSpec& s) { return s.name == a; });
    MXQAT_CHECK(it != spec.end(), "mxqat ", command, ": unknown option '", a, "' (did you mean '",
                nearest(a, names), "'? see 'mxqat ", command, " --help')");
    if (it->takes_value && !inline_value) {
      MXQAT_CHECK(i + 1 < argv.size(), "mxqat ", command, ": option ", a, " needs a value");
      value = argv[++i];
    }
    MXQAT_CHECK(it->takes_value || !inline_value, "mxqat ", command, ": option ", a,
                " takes no value");
    MXQAT_CHECK(it->repeated || !values_.count(a), "mxqat ", command, ": option ", a,
                " given twice");
    values_[a].push_back(value);
  }
  MXQAT_CHECK(pos_.size() >= min_pos && pos_.size() <= max_pos, "mxqat ", command, ": expected ",
              min_pos == max_pos ? std::to_string(min_pos)
                                 : std::to_string(min_pos) + " to " + std::to_string(max_pos),
              " positional argument(s), got ", pos_.size(), " (see 'mxqat ", command, " --help')");
}

std::optional<std::string> Args::get(const std::string& flag) const {
  auto it = values_.find(flag);
  if (it == values_.end()) return std::nullopt;
  return it->second.back();
}

std::string Args::get_or(const std::string& flag, const std::string& fallback) const {
  auto v = get(flag);
  return v ? *v : fallback;
}

const std::vector<std::string>& Args::all(const std::string& flag) const {
  static const std::vector<std::string> kNone;
  auto it = values_.find(flag);
  return it == values_.end() ? kNone : it->second;
}

int64_t int_flag(const Args& a, const std::string& flag, int64_t fallback, int64_t min_value) {
  const auto v = a.get(flag);
  if (!v) return fallback;
  size_t used = 0;
  int64_t n = min_value - 1;
  try {
    n = std::stoll(*v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  MXQAT_CHECK(used == v->size() && !v->empty() && n >= min_value, flag, " takes an integer >= ",
              min_value, ", got '", *v, "'");
  return n;
}

double float_flag(const Args& a, const std::string& flag, double fallback) {
  const auto v = a.get(flag);
  if (!v) return fallback;
  size_t used = 0;
  double x = 0;
  try {
    x = std::stod(*v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  MXQAT_CHECK(used == v->size() && !v->empty() && std::isfinite(x), flag, " takes a number, got '",
              *v, "'");
  return x;
}

void apply_threads(const Args& a) {
  if (!a.has("--threads")) return;
  const int64_t n = int_flag(a, "--threads", 1, 1);
  MXQAT_CHECK(n <= 1024, "--threads takes an integer from 1 to 1024, got ", n);
  omp_set_num_threads(static_cast<int>(n));
}

}  // namespace mxqat::trainers
