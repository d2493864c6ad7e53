// Data for the trainers: Fashion-MNIST read from Debian's gzipped IDX files (validated), split
// into train/validation/test, normalised; and a seeded batch order that is a pure function of
// (seed, step) so a resumed run sees exactly the batches an uninterrupted one would.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/tensor.h"

namespace mxqat::trainers {

struct DataCfg;

struct Dataset {
  autograd::Tensor x;            // [N, features] float32
  std::vector<int32_t> y;        // N labels
  int64_t num_classes = 0;
  int64_t size() const { return static_cast<int64_t>(y.size()); }
  // Rows `idx` -> x [idx.size(), features], labels.
  void gather(const std::vector<int64_t>& idx, autograd::Tensor& xb, std::vector<int32_t>& yb) const;
};

struct Splits {
  Dataset train, val, test;
  std::string description;  // for the log
};


// Reads an IDX file (optionally gzip-compressed); checks magic, dimensions and length.
// Returns the dims and the raw bytes.
std::vector<uint8_t> read_idx(const std::string& path, int expected_ndim, std::vector<int64_t>& dims);

// Fashion-MNIST from cfg.dir: last cfg.val_size training images (after a seeded shuffle) become
// the validation split; pixels scaled to [0,1] then standardised with the train split's mean/std.
Splits load_fashion_mnist(const DataCfg& cfg, uint64_t seed);

// The batch order: epoch e is a seeded permutation of [0, n); step s is batch s % steps_per_epoch
// of epoch s / steps_per_epoch. The last partial batch of an epoch is dropped.
class BatchOrder {
 public:
  BatchOrder(int64_t n, int64_t batch, uint64_t seed);
  int64_t steps_per_epoch() const { return n_ / batch_; }
  std::vector<int64_t> batch(int64_t step);  // indices of the batch at global step `step`

 private:
  int64_t n_, batch_;
  uint64_t seed_;
  int64_t cached_epoch_ = -1;
  std::vector<int64_t> perm_;
};

// Deterministic Fisher-Yates with our own 64-bit generator (splitmix64), identical everywhere.
std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed);

}  // namespace mxqat::trainers
