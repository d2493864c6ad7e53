// Fuzz target: the export loader on arbitrary file bytes (integrity block, spec §9 groups,
// manifest JSON, hashes), then decoding every tensor it accepted.
#include <cstdint>
#include <string>

#include "autograd/error.h"
#include "tests/fuzz/fuzz_util.h"
#include "trainers/io/export.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mxqat::trainers;
  const std::string path = mxqat::fuzz::write_input("export.h5", data, size);
  try {
    const ExportModel m = read_export(path);
    for (const ExportTensor& t : m.tensors) (void)t.decoded();
  } catch (const mxqat::Error&) {
  }
  return 0;
}
