// What the llama.cpp programs of bench/llamacpp share: starting llama.cpp with the CPU backends
// of its library folder, loading a GGUF on the CPU, and filling a one-sequence batch.
#pragma once
#include <ggml-backend.h>
#include <llama.h>

#include <cstdio>
#include <string>

#include "autograd/error.h"

#ifndef MXQAT_LLAMACPP_LIBDIR
#define MXQAT_LLAMACPP_LIBDIR ""
#endif

namespace mxqat::llamacpp {

// llama.cpp's log: errors to stderr, the rest dropped.
inline void errors_only_log(ggml_log_level level, const char* text, void*) {
  if (level == GGML_LOG_LEVEL_ERROR) std::fputs(text, stderr);
}

// Sets llama.cpp's log, loads the CPU backends found in `libdir` (ggml picks the variant for this
// CPU) and initialises llama.cpp. Pair with llama_backend_free().
inline void start(const std::string& libdir, ggml_log_callback log = errors_only_log) {
  llama_log_set(log, nullptr);
  ggml_backend_load_all_from_path(libdir.c_str());
  llama_backend_init();
}

// A GGUF loaded on the CPU; free with llama_model_free().
inline llama_model* load_model(const std::string& path) {
  llama_model_params mp = llama_model_default_params();
  mp.n_gpu_layers = 0;
  llama_model* m = llama_model_load_from_file(path.c_str(), mp);
  MXQAT_CHECK(m, "llama.cpp could not load ", path, " (its log above says why)");
  return m;
}

// Batch of n tokens of sequence 0 at positions pos0 .. pos0 + n - 1; logits for every position
// (all_logits) or for the last one only.
template <typename Id>
void fill_batch(llama_batch& b, const Id* ids, int32_t n, llama_pos pos0, bool all_logits) {
  b.n_tokens = n;
  for (int32_t i = 0; i < n; ++i) {
    b.token[i] = llama_token(ids[i]);
    b.pos[i] = pos0 + i;
    b.n_seq_id[i] = 1;
    b.seq_id[i][0] = 0;
    b.logits[i] = all_logits || i + 1 == n;
  }
}

}  // namespace mxqat::llamacpp
