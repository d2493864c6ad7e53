// Text generation with a byte-level gpt: loading a gpt for inference (export or checkpoint),
// seeded sampling (our own splitmix64 generator, no thread-dependent state), generation with the
// KV cache, and the effect of KV-cache quantization on test bits per byte. What `mxqat sample`
// and bench/bench_generate.cpp call. Not the model (layers/gpt.h) nor the cache (layers/kv_cache.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "layers/gpt.h"
#include "trainers/data/text_data.h"
#include "trainers/runtime/infer.h"

namespace mxqat::trainers {

// splitmix64 (Steele, Lea, Flood 2014): the generator behind every sampled token.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next();
  double uniform();  // [0, 1) with 53 random bits

 private:
  uint64_t state_;
};

// A gpt rebuilt from an export (reference or fast inference path) or a checkpoint (fake-quant at
// its final phase if it is a QAT checkpoint). A file whose recipe is not a gpt is an error.
InferenceModel load_gpt(const std::string& path, InferPath p = InferPath::kReference);
layers::Gpt& gpt_of(const InferenceModel& m);

struct SampleOptions {
  int64_t tokens = 200;       // new bytes to generate
  float temperature = 1.f;    // 0 = greedy (argmax, the lowest index among ties)
  int64_t top_k = 0;          // 0 = all of the vocabulary
  uint64_t seed = 0;
  std::string kv_cache = "none";  // none | a codec name (mxfp8_e4m3, int8_sym, ...)
};

// One token from logits [V]: softmax(logits / temperature) restricted to the top_k largest
// (ties: lower index first), drawn with one rng.uniform(); sums in double, in index order.
int32_t sample_token(const float* logits, int64_t V, float temperature, int64_t top_k,
                     SplitMix64& rng);

struct Generation {
  std::string text;            // the new bytes only
  int64_t prompt_tokens = 0, new_tokens = 0;
  int64_t refills = 0;         // times the full cache was restarted from the last context/2 bytes
  int64_t kv_bytes_per_token = 0;
  double prefill_s = 0, decode_s = 0;  // prompt pass; the rest (decode steps + sampling)
};

// The prompt (1 .. context bytes; longer is an error naming both lengths) is run through the model
// at once, then one token per step. When the cache is full, the last context/2 bytes are run again
// from position 0 (the windows the model was trained on start at 0), so any length can be asked.
Generation generate(layers::Gpt& model, const std::string& prompt, const SampleOptions& o);

// Teacher-forced incremental decoding over `windows` contiguous test windows of context + 1 bytes
// (text_windows' windows 0 .. windows - 1): each window from an empty cache, one byte per step.
struct KvEval {
  std::string kv_cache;
  int64_t windows = 0, predictions = 0;
  double bits_per_byte = 0;       // incremental decoding with this cache
  double full_bits_per_byte = 0;  // forward on the whole windows (no cache), the same bytes
  double max_abs_logit_diff = 0;  // incremental vs full-forward logits, over every position
  int64_t bytes_per_token = 0;    // KvCache::bytes_per_token
  double seconds = 0;
};
KvEval eval_kv_cache(layers::Gpt& model, const TokenIds& split, int64_t windows,
                     const std::string& kv_cache);

}  // namespace mxqat::trainers
