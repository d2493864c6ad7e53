// Shared by the fuzz targets: a private scratch directory per process and writing the input
// there. Each target defines LLVMFuzzerTestOneInput; only mxqat::Error may leave the code under
// test (anything else, a crash, a hang or a leak is a finding).
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace mxqat::fuzz {

// $TMPDIR/mxqat_fuzz_<pid>: created once, removed at exit.
inline const std::string& scratch() {
  static const std::string dir = [] {
    namespace fs = std::filesystem;
    fs::path d = fs::temp_directory_path() / ("mxqat_fuzz_" + std::to_string(::getpid()));
    fs::create_directories(d);
    static const std::string keep = d.string();
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(keep, ec);
    });
    return d.string();
  }();
  return dir;
}

inline std::string write_input(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = scratch() + "/" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path;
}

}  // namespace mxqat::fuzz
