// Fuzz target: the checkpoint loader on arbitrary file bytes, and `inspect`'s dispatch on the
// same file, twice per input:
//  1. the bytes as they are: the integrity block is checked before HDF5 sees a byte (a mutant
//     almost never passes a SHA-256, so this pass exercises the block's own checks);
//  2. the bytes re-sealed (fuzz_util.h): HDF5 parses the mutant, and the checkpoint's own checks
//     behind it (structure, attribute ranges, CRC-32 of every dataset, shapes) see what HDF5
//     returns.
#include <cstdint>
#include <string>

#include "autograd/error.h"
#include "tests/fuzz/fuzz_util.h"
#include "trainers/io/ckpt.h"

namespace {
void load(const std::string& path) {
  using namespace mxqat::trainers;
  try {
    (void)mxqat_format_of(path);
  } catch (const mxqat::Error&) {
  }
  try {
    const Checkpoint c = load_checkpoint(path);
    if (c.step < 0) __builtin_trap();  // the loader's range checks hold
  } catch (const mxqat::Error&) {
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  load(mxqat::fuzz::write_input("checkpoint.h5", data, size));
  const std::string sealed = mxqat::fuzz::resealed(data, size);
  if (!sealed.empty()) load(mxqat::fuzz::write_input("resealed.h5", sealed.data(), sealed.size()));
  return 0;
}
