// Training checkpoints: parameters and optimizer state by name, step/epoch, RNG state, the recipe
// text and small named extras, in one HDF5 file written atomically (temporary file + rename).
// Not exports (packed quantized tensors for inference): those live in their own files.
// Layout (h5dump-able):
//   /                      attrs mxqat_format="checkpoint", mxqat_checkpoint_version=1,
//                                mxqat_version, step, epoch (int64)
//   /recipe                string          the effective recipe YAML
//   /rng_state             string          serialised RNG state(s)
//   /index/params          string [P]      parameter names, in model order
//   /index/optimizer       string [S]      optimizer state keys "<param>/<slot>", in order
//   /params/<name>         float32 [shape] one dataset per parameter (names used verbatim)
//   /optimizer/<param>/<slot>  float32     one dataset per optimizer state tensor
//                          (each tensor dataset has an int64 attr crc32, checked on load)
//   /meta                  group, string attrs   (e.g. optimizer, model, policy)
//   /scalars               group, float64 attrs  (e.g. best_val_accuracy)
//   /counters              group, int64 attrs    (e.g. skipped_steps, data_cursor)
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.h"

namespace mxqat::trainers {

inline constexpr int64_t kCheckpointVersion = 1;

struct Checkpoint {
  std::string recipe_text;  // effective YAML
  int64_t step = 0, epoch = 0;
  std::vector<std::pair<std::string, autograd::Tensor>> params;           // by parameter name
  std::vector<std::pair<std::string, autograd::Tensor>> optimizer_state;  // "<param>/<slot>"
  std::map<std::string, std::string> meta;   // "optimizer" -> "adamw", "policy" -> table text
  std::map<std::string, double> scalars;     // "best_val_accuracy"
  std::map<std::string, int64_t> counters;   // "skipped_steps", "data_cursor"
  std::string rng_state;                     // opaque text
};

// Writes `path` atomically: on any error nothing is left behind and an existing file is kept.
void save_checkpoint(const std::string& path, const Checkpoint& c);
// Reads and validates; throws mxqat::Error naming the file, the problem and a fix.
Checkpoint load_checkpoint(const std::string& path);
// True if `path` opens as an mxqat checkpoint of a version this build reads, with every required
// object present and well-typed (tensor data is not read). Never throws.
bool is_checkpoint(const std::string& path);

// Throws naming the first parameter that is missing, extra or of another shape than `expected`
// (the model's named parameter shapes). `what` names the checkpoint in the message.
void check_shapes(const Checkpoint& c,
                  const std::vector<std::pair<std::string, autograd::Shape>>& expected,
                  const std::string& what);

}  // namespace mxqat::trainers
