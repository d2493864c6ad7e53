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
void load(const std::string& path, bool dispatch) {
  using namespace mxqat::trainers;
  if (dispatch) {
    try {
      (void)mxqat_format_of(path);
    } catch (const mxqat::Error&) {
    }
  }
  try {
    const Checkpoint c = load_checkpoint(path);
    if (c.step < 0) __builtin_trap();  // the loader's range checks hold
  } catch (const mxqat::Error&) {
  }
  mxqat::fuzz::expect_no_open_hdf5_objects();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Pass 1 checks the integrity block once (the dispatch would check the same block again: a
  // second SHA-256 of the file, when hashing is already most of this target's time).
  const std::string sealed = mxqat::fuzz::resealed(data, size);
  load(mxqat::fuzz::write_input("checkpoint.h5", data, size), sealed.empty());
  if (!sealed.empty())
    load(mxqat::fuzz::write_input("resealed.h5", sealed.data(), sealed.size()), true);
  return 0;
}
