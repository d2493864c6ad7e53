// Fuzz target: `mxqat quantize` and `dequantize` as the CLI runs them. The input's first line
// holds the arguments (codec, shape, options; --in/--out/--dequant are set here, never taken
// from the input, so the fuzzer writes only into its scratch directory); the rest is the input
// file: raw float32, or an HDF5 file: mxqat's (re-sealed here, see fuzz_util.h, so that the
// mutant reaches HDF5 and the quantized-tensor checks: the integrity check itself is fuzzed by the
// checkpoint and export targets) or anyone's (parsed in a child process, as the CLI does).
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/error.h"
#include "tests/fuzz/fuzz_util.h"
#include "trainers/cli/commands.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mxqat::trainers;
  if (size > (1 << 20)) return -1;
  const std::string all(reinterpret_cast<const char*>(data), size);
  const size_t nl = all.find('\n');
  const std::string line = all.substr(0, nl == std::string::npos ? all.size() : nl);
  std::string payload = nl == std::string::npos ? "" : all.substr(nl + 1);
  std::vector<std::string> args;
  std::istringstream words(line);
  for (std::string w; words >> w && args.size() < 12;) {
    if (w == "--in" || w == "--out" || w == "--dequant") {
      words >> w;  // drop the flag and its value: the paths are ours
      continue;
    }
    args.push_back(w);
  }
  const std::string& dir = mxqat::fuzz::scratch();
  const bool h5 = payload.size() >= 8 && (std::memcmp(payload.data(), "MXQATH5\n", 8) == 0 ||
                                          std::memcmp(payload.data(), "\x89HDF\r\n\x1a\n", 8) == 0);
  if (h5) {
    const std::string sealed =
        mxqat::fuzz::resealed(reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
    if (!sealed.empty()) payload = sealed;
  }
  const std::string in =
      mxqat::fuzz::write_input(h5 ? "in.h5" : "in.f32", payload.data(), payload.size());
  std::vector<std::string> q = args;
  q.insert(q.end(), {"--in", h5 ? in + ":/tensor" : in, "--out", dir + "/out.h5", "--dequant",
                     dir + "/deq.f32"});
  try {
    cmd_quantize(q);
  } catch (const mxqat::Error&) {
  }
  if (h5) {  // the same file as a quantized tensor to dequantize
    try {
      cmd_dequantize({in, "--out", dir + "/deq2.f32"});
    } catch (const mxqat::Error&) {
    }
  }
  mxqat::fuzz::expect_no_open_hdf5_objects();
  return 0;
}
