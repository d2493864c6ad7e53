// Shared by the fuzz targets: a scratch directory in memory where there is one, the input as a
// file there, and re-sealing. Each target defines LLVMFuzzerTestOneInput;
// only mxqat::Error may leave the code under test (anything else, a crash, a hang or a leak is a
// finding).
#pragma once
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>

#include "autograd/error.h"
#include "trainers/io/h5file.h"
#include "trainers/io/integrity.h"

namespace mxqat::fuzz {

// <tmp>/mxqat_fuzz_<pid>: created once, removed at exit. <tmp> is /dev/shm where it is usable
// (memory: the fsyncs of the outputs a target writes cost nothing there), else $TMPDIR or /tmp.
inline const std::string& scratch() {
  static const std::string dir = [] {
    namespace fs = std::filesystem;
    const fs::path base = ::access("/dev/shm", W_OK | X_OK) == 0 ? fs::path("/dev/shm")
                                                                 : fs::temp_directory_path();
    fs::path d = base / ("mxqat_fuzz_" + std::to_string(::getpid()));
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

// The input as a regular file scratch()/name: opened once per name and rewritten in place per
// input (truncate, write), so no file is created, renamed or removed per input. Not a memfd:
// HDF5 resolves the real path of what it opens, which an anonymous memory file has not.
inline std::string write_input(const std::string& name, const void* data, size_t size) {
  static std::map<std::string, int> fds;
  const std::string path = scratch() + "/" + name;
  auto it = fds.find(name);
  if (it == fds.end())
    it = fds.emplace(name, ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)).first;
  const int fd = it->second;
  if (fd < 0 || ::ftruncate(fd, 0) != 0) std::abort();  // the harness failed: not a finding
  const char* p = static_cast<const char*>(data);
  for (size_t done = 0; done < size;) {
    const ssize_t w = ::pwrite(fd, p + done, size - done, static_cast<off_t>(done));
    if (w <= 0) std::abort();
    done += static_cast<size_t>(w);
  }
  return path;
}

// The input with its integrity block recomputed over its (mutated) payload, as if mxqat had
// written it: what makes HDF5 and the checks behind it parse a mutant that the integrity check
// would otherwise stop. Empty when the input has no HDF5 signature after the block (nothing to
// seal) or was already sealed correctly (the input pass parsed it as it is).
inline std::string resealed(const uint8_t* data, size_t size) {
  std::string image(reinterpret_cast<const char*>(data), size);
  try {
    trainers::seal_image(image, "fuzz input");
  } catch (const mxqat::Error&) {
    return "";
  }
  return std::memcmp(image.data(), data, trainers::kSealBytes) == 0 ? "" : image;
}

// After an input: every HDF5 object the code under test opened is closed again, whatever it
// threw (a handle left open is a finding: LeakSanitizer cannot see it).
inline void expect_no_open_hdf5_objects() {
  if (trainers::hdf5_open_objects() != 0) __builtin_trap();
}

}  // namespace mxqat::fuzz
