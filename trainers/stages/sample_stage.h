// The text a gpt run's models write, for the report (part of the report step of `mxqat run`, and
// of `mxqat compare` on a run directory that lacks it): DIR/sample/samples.json holds the text the
// FP32 baseline, its round-to-nearest export and every QAT export generate from the same prompt
// with the same seed, and DIR/sample/kv_cache.json the exported model's test bits per byte under
// each KV-cache setting (teacher-forced incremental decoding, as `mxqat sample --eval-kv`).
#pragma once
#include <cstdint>
#include <string>

namespace mxqat::trainers {

struct SampleStageOptions {
  int64_t tokens = 160;        // new bytes per sample
  double temperature = 0.8;
  int64_t kv_windows = 32;     // test windows for the KV-cache table (fewer if the split is short)
};

// Does nothing and returns false for a run whose recipe is not a gpt. Keeps both files when they
// are newer than every export they were made from; otherwise writes them (atomically) and
// returns true. The prompt is the start of the test split's second line, cut at a word; the
// seed is the recipe's.
bool write_gpt_samples(const std::string& run_dir, const SampleStageOptions& o = {});

}  // namespace mxqat::trainers
