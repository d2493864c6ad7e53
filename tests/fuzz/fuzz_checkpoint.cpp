// Fuzz target: the checkpoint loader on arbitrary file bytes (integrity block, then HDF5 and
// the checkpoint's own checks), and `inspect`'s dispatch on the same file.
#include <cstdint>
#include <string>

#include "autograd/error.h"
#include "tests/fuzz/fuzz_util.h"
#include "trainers/io/ckpt.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mxqat::trainers;
  const std::string path = mxqat::fuzz::write_input("checkpoint.h5", data, size);
  try {
    (void)mxqat_format_of(path);
  } catch (const mxqat::Error&) {
  }
  try {
    const Checkpoint c = load_checkpoint(path);
    if (c.step < 0) __builtin_trap();  // the loader's range checks hold
  } catch (const mxqat::Error&) {
  }
  return 0;
}
