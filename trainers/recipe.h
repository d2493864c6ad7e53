// A recipe: the typed settings of one job (data, model, training), read from YAML and validated
// against the schema table in recipe.cpp. The structs carry the defaults; YAML only overrides.
// No yaml-cpp here (STYLE.md §1): it stays inside trainers/recipe*.cpp.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mxqat::trainers {

struct OptimizerCfg {
  std::string type = "adamw";  // adamw | sgd
  double lr = 1e-3;
  double weight_decay = 0.0;   // decoupled for adamw, L2 for sgd
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adamw
  double momentum = 0.0;       // sgd
  bool nesterov = false;       // sgd, needs momentum > 0
};

struct LrScheduleCfg {
  std::string type = "constant";  // constant | cosine | linear (decay to min_lr after warmup)
  int64_t warmup_steps = 0;       // linear ramp from 0 to lr
  double min_lr = 0.0;
};

struct DataCfg {
  std::string dataset = "fashion_mnist";
  std::string dir = "/usr/share/datasets/fashion-mnist";
  int64_t batch_size = 128;
  int64_t val_size = 5000;   // held out from the training split
  int64_t train_limit = 0;   // 0 = all
  int64_t test_limit = 0;    // 0 = all
  bool normalize = true;
};

struct ModelCfg {
  std::string type;                     // required: mlp | cnn
  std::vector<int64_t> hidden = {256};  // mlp: hidden widths
  std::string activation = "relu";      // relu | gelu | silu | tanh
  double dropout = 0.0;
  std::vector<int64_t> channels = {32, 64};  // cnn: conv widths
  int64_t kernel = 5;                        // cnn: odd kernel size
  int64_t fc = 128;                          // cnn: width of the hidden fully connected layer
};

struct TrainCfg {
  int64_t epochs = 0;  // exactly one of epochs and steps is > 0
  int64_t steps = 0;
  OptimizerCfg optimizer;
  LrScheduleCfg lr_schedule;
  double grad_clip = 0.0;         // global L2 norm; 0 = off
  double label_smoothing = 0.0;
  int64_t eval_every = 0;         // steps; 0 = at each epoch end
  int64_t log_every = 50;         // steps
  int64_t checkpoint_every = 0;   // steps; 0 = only at the end
};

struct Recipe {
  std::string name;  // optional; defaults to the file's stem
  int64_t seed = 0;
  DataCfg data;
  ModelCfg model;
  TrainCfg train;
  std::string source;  // file path or "<string>"
  std::string text;    // the effective recipe as YAML, every field written out, after --set
                       // overrides: stored in checkpoints; parse_recipe(text) reproduces it
};

// Reads, overrides and validates a recipe. Every problem is an mxqat::Error naming the file,
// the line and the key path. Overrides are "a.b=value" with value parsed as YAML
// ("train.optimizer.lr=3e-4", "model.hidden=[512,256]").
Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides = {});
Recipe parse_recipe(const std::string& yaml_text, const std::string& source = "<string>",
                    const std::vector<std::string>& overrides = {});

// Equal settings: every schema field compares equal (source and text are provenance).
bool operator==(const Recipe& a, const Recipe& b);
inline bool operator!=(const Recipe& a, const Recipe& b) { return !(a == b); }
// The settings that differ, one "path: a -> b" line each (e.g. to explain a refused resume).
std::vector<std::string> recipe_diff(const Recipe& a, const Recipe& b);

// Optimizer steps in one epoch: ceil(train_examples / batch_size).
int64_t steps_per_epoch(const Recipe& recipe, int64_t train_examples);

}  // namespace mxqat::trainers
