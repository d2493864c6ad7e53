// Fuzz target: the export loader on arbitrary file bytes (integrity block, spec §9 groups,
// manifest JSON, hashes), then decoding every tensor it accepted; twice per input, as it is and
// re-sealed (see fuzz_checkpoint.cpp): the second pass is the one where HDF5 and the export's
// own checks parse the mutant.
#include <cstdint>
#include <string>

#include "autograd/error.h"
#include "tests/fuzz/fuzz_util.h"
#include "trainers/io/export.h"

namespace {
void load(const std::string& path) {
  using namespace mxqat::trainers;
  try {
    const ExportModel m = read_export(path);
    for (const ExportTensor& t : m.tensors) (void)t.decoded();
  } catch (const mxqat::Error&) {
  }
  mxqat::fuzz::expect_no_open_hdf5_objects();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  load(mxqat::fuzz::write_input("export.h5", data, size));
  const std::string sealed = mxqat::fuzz::resealed(data, size);
  if (!sealed.empty()) load(mxqat::fuzz::write_input("resealed.h5", sealed.data(), sealed.size()));
  return 0;
}
