// mxqat::Error and MXQAT_CHECK: the one way library code reports bad input (STYLE.md §10).
// Header-only and dependency-free, so every folder (quant/codec included) may use it.
// Only trainers/cli catches, prints and exits.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace mxqat {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
}  // namespace detail

}  // namespace mxqat

// MXQAT_CHECK(cond, "Linear \"", name, "\": input has ", k, " features ...");
// The message pieces are streamed together; file:line is appended.
#define MXQAT_CHECK(cond, ...)                                                        \
  do {                                                                                \
    if (!(cond))                                                                      \
      throw ::mxqat::Error(::mxqat::detail::concat(__VA_ARGS__, " [", __FILE__, ":", \
                                                   __LINE__, "]"));                   \
  } while (0)

#define MXQAT_FAIL(...) MXQAT_CHECK(false, __VA_ARGS__)
