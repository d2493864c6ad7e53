// Data of the language model, as token ids: data.dataset text reads the train/val/test splits as
// raw bytes from data.dir/{train,val,test}.txt (scripts/prepare_kjv.sh writes them; vocabulary =
// the 256 byte values); data.dataset tokens reads data.dir/{train,val,test}.bin, little-endian
// uint16 or uint32 ids (data.token_bytes) that the user's own tokenizer wrote, each below the
// model's vocabulary. Seeded random training windows that are a pure function of (seed, step), so
// a resumed run sees the same batches, and the metrics on fixed contiguous windows of val/test.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/tensor.h"
#include "layers/module.h"
#include "trainers/data/evaluate.h"

namespace mxqat::trainers {

struct DataCfg;

using TokenIds = std::vector<int32_t>;

struct TextData {
  TokenIds train, val, test;
  std::string unit = "byte";  // what one id is: "byte" (text) or "token" (tokens), for metric names
  int64_t context = 128;  // T: each example predicts T next ids from T ids
  int64_t batch = 16;
  uint64_t seed = 0;
  std::string description;  // for the log

  // Training batch of `step`: window b starts at a position drawn from (seed, step, b), uniform
  // over the train split. x [batch, T] byte values as floats, y batch * T next bytes.
  void train_batch(int64_t step, autograd::Tensor& x, std::vector<int32_t>& y) const;
  // Windows of T + 1 bytes in a T-wide stride: the steps per "epoch" (one pass of the split).
  int64_t windows(const TokenIds& split) const;
};

// Reads the three splits; a missing or empty file is an error that says to run
// scripts/prepare_kjv.sh. Each split must hold at least context + 1 bytes.
// Token files: a size that is not a whole number of ids, or an id >= vocab, is an error naming the
// file, the position and the value.
TextData load_text(const DataCfg& cfg, int64_t context, int64_t batch, uint64_t seed,
                   int64_t vocab = 256);

// Fixed contiguous windows w = first .. first + count - 1 of `split`: window w is the bytes
// [w T, w T + T + 1). x [count, T], y count * T.
void text_windows(const TokenIds& split, int64_t T, int64_t first, int64_t count,
                  autograd::Tensor& x, std::vector<int32_t>& y);

// Mean next-byte cross-entropy (nats) and top-1 accuracy over every window of `split` (each byte
// after the first predicted once), in eval mode, no_grad; the model maps [B, T] to [B, T, V].
EvalResult evaluate_text(layers::Module& model, const TokenIds& split, int64_t context,
                         int64_t batch = 32);

// Language-model views of a mean cross-entropy in nats.
double bits_per_byte(double loss_nats);
double perplexity(double loss_nats);

}  // namespace mxqat::trainers
