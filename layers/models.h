// Models selectable from a recipe: `mlp` and `cnn` (LeNet-like) for image classification.
// Parameter names: mlp fc1..fcN + head; cnn conv1, conv2, fc1, head (what quant rules match).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "layers/basic.h"

namespace mxqat::layers {

struct MlpConfig {
  int64_t in = 784;
  std::vector<int64_t> hidden{256};
  int64_t out = 10;
  std::string activation = "relu";
  float dropout = 0.f;
};

struct CnnConfig {
  int64_t in_ch = 1, height = 28, width = 28;
  std::vector<int64_t> channels{32, 64};  // conv1, conv2 (each conv -> act -> 2x2 max-pool)
  int kernel = 5;                          // odd; "same" padding
  int64_t fc = 128;
  int64_t out = 10;
  std::string activation = "relu";
  float dropout = 0.f;
};

// x [B, in] -> logits [B, out]
class Mlp : public Module {
 public:
  Mlp(const MlpConfig& cfg, uint64_t seed);
  Var forward(const Var& x) override { return net_->forward(x); }
  std::string kind() const override { return "mlp"; }

 private:
  std::shared_ptr<Sequential> net_;
};

// x [B, C*H*W] (flat images) or [B, C, H, W] -> logits [B, out]
class Cnn : public Module {
 public:
  Cnn(const CnnConfig& cfg, uint64_t seed);
  Var forward(const Var& x) override;
  std::string kind() const override { return "cnn"; }

 private:
  CnnConfig cfg_;
  std::shared_ptr<Sequential> features_, classifier_;
};

// Sets every Dropout's call counter (its mask stream position): used on resume, where the
// counter equals the number of training steps taken.
void set_dropout_calls(Module& m, uint64_t calls);
// Sets every Dropout's first sample (see Dropout::set_first_sample): for micro-batches.
void set_dropout_first_sample(Module& m, int64_t first_sample);

}  // namespace mxqat::layers
