// Helpers shared by the test suites: the message of a thrown mxqat::Error, an assertion on its
// parts, scratch directories, and running the mxqat executable (suites that define MXQAT_BINARY).
#pragma once
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "autograd/error.h"

namespace mxqat::testing {

// The message of the mxqat::Error that fn throws; "" when it throws none.
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// fn must throw an mxqat::Error whose message holds every one of `parts`.
inline void expect_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  const std::string msg = error_of(fn);
  ASSERT_FALSE(msg.empty()) << "expected an mxqat::Error";
  for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in: " << msg;
}

// A new empty directory under the system temp dir, unique to this process and `name`.
inline std::filesystem::path fresh_dir(const std::string& name) {
  namespace fs = std::filesystem;
  fs::path p = fs::temp_directory_path() / ("mxqat_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

struct CliResult {
  int code;         // exit status (-1 if killed by a signal)
  std::string out;  // stdout and stderr together
};

// A shell command line (sh -c), its stdout and stderr together.
inline CliResult run_shell(const std::string& command) {
  const std::string cmd = command + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

#ifdef MXQAT_BINARY
inline CliResult run_cli(const std::string& args) { return run_shell(std::string(MXQAT_BINARY) + " " + args); }
#endif

}  // namespace mxqat::testing

// EXPECT_ERROR_HAS(statement, "part", "part", ...): the statement throws an mxqat::Error whose
// message holds every part.
#define EXPECT_ERROR_HAS(stmt, ...)                                                          \
  do {                                                                                       \
    const std::string msg_ = ::mxqat::testing::error_of([&] { stmt; });                      \
    ASSERT_FALSE(msg_.empty()) << #stmt " did not throw mxqat::Error";                       \
    for (const char* part_ : {__VA_ARGS__})                                                  \
      EXPECT_NE(msg_.find(part_), std::string::npos) << "missing '" << part_ << "' in: " << msg_; \
  } while (0)
