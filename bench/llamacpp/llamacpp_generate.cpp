// llamacpp_generate: generation speed of mxqat's packed MXFP4 fast path vs llama.cpp's CPU
// backend on the MXFP4 GGUF written from the same export (the prebuilt libraries of npm
// @node-llama-cpp/linux-x64, installed by scripts/install_deps.sh --llamacpp). Both generate
// greedily from the same prompt (token id = byte), the same number of tokens, on the same number
// of threads, in one process:
//   - mxqat: trainers::generate on the export's fast path (`mxqat sample --fast --temperature 0`),
//     float32 KV cache (kv_cache none), OpenMP threads;
//   - llama.cpp: llama_decode of the prompt as one batch, then one token per call, argmax of the
//     logits (ties: the lower id, as ours), in three contexts: llama.cpp's defaults (F16 KV
//     cache, flash attention auto; what it resolved to is in the JSON), an F32 cache (like ours)
//     with flash attention auto, an F32 cache without flash attention; a persistent ggml
//     threadpool per thread count (default parameters: polling 50, as llama-cli and llama-bench
//     use), paused after each generation so that its polling threads do not run into the next
//     timed generation.
// First the tokens are compared: free greedy runs (length of the common prefix) and teacher-forced
// (llama.cpp fed mxqat's tokens one at a time: how many of its argmaxes equal mxqat's token).
// Then `--rounds` rounds; each round times one generation of every implementation on every thread
// count, the order of the implementations alternating between rounds, 30 ms apart (untimed: the
// idle threads of the previous one have gone to sleep). Per implementation and
// thread count it reports the medians of:
//   prompt tokens/s     = prompt tokens / (prompt pass up to its logits),
//   generation tokens/s = (tokens - 1) one-token steps / (the rest: tokens argmaxes, tokens - 1 steps),
// and the ratios mxqat / llama.cpp of those medians (> 1: mxqat is faster).
//   llamacpp_generate --export MODEL.h5 --gguf MODEL-mxfp4.gguf [--prompt TEXT] [--tokens N]
//                     [--threads 1,2] [--rounds 15] [--out R.json] [--libdir DIR]
// (default prompt "In the beginning", default tokens: up to the context, no cache refill).
// Prints one JSON object; exits 2 on an error.
#include <dlfcn.h>
#include <ggml-backend.h>
#include <ggml-cpu.h>
#include <ggml.h>
#include <link.h>
#include <llama.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "trainers/cli/cli_args.h"
#include "trainers/runtime/generate.h"
#include "trainers/util/json_write.h"
#include "trainers/util/process.h"
#include "bench/llamacpp/llama_util.h"

namespace {

using namespace mxqat;
using namespace mxqat::trainers;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// llama.cpp's log: errors go to stderr; the lines about flash attention are kept for the JSON.
std::string g_flash_attn_log;
void keep_log(ggml_log_level level, const char* text, void* user) {
  llamacpp::errors_only_log(level, text, user);
  const std::string s(text);
  if (s.find("flash_attn") != std::string::npos || s.find("Flash Attention") != std::string::npos) {
    std::string line = s.substr(0, s.find_last_not_of("\n") + 1);
    if (g_flash_attn_log.find(line) == std::string::npos)
      g_flash_attn_log += (g_flash_attn_log.empty() ? "" : " | ") + line;
  }
}

// The ggml CPU backend library that ggml_backend_load_all_from_path chose for this CPU (one of
// libggml-cpu-<variant>.so, loaded privately) and its threadpool functions, found with dlsym.
struct CpuBackend {
  std::string path;
  decltype(&ggml_threadpool_new) tp_new = nullptr;
  decltype(&ggml_threadpool_free) tp_free = nullptr;
  decltype(&ggml_threadpool_pause) tp_pause = nullptr;
  void* handle = nullptr;

  CpuBackend() {
    dl_iterate_phdr(
        [](dl_phdr_info* info, size_t, void* self) {
          const std::string name = info->dlpi_name ? info->dlpi_name : "";
          if (name.find("libggml-cpu") != std::string::npos) static_cast<CpuBackend*>(self)->path = name;
          return 0;
        },
        this);
    MXQAT_CHECK(!path.empty(), "no libggml-cpu-*.so was loaded; is --libdir the folder of llama.cpp's libraries?");
    handle = dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
    MXQAT_CHECK(handle != nullptr, "dlopen(", path, ", RTLD_NOLOAD) failed: ", dlerror());
    tp_new = reinterpret_cast<decltype(tp_new)>(dlsym(handle, "ggml_threadpool_new"));
    tp_free = reinterpret_cast<decltype(tp_free)>(dlsym(handle, "ggml_threadpool_free"));
    tp_pause = reinterpret_cast<decltype(tp_pause)>(dlsym(handle, "ggml_threadpool_pause"));
    MXQAT_CHECK(tp_new && tp_free && tp_pause, path, " lacks ggml_threadpool_new/free/pause; use the "
                "llama.cpp that scripts/install_deps.sh --llamacpp installs");
  }
  ~CpuBackend() {
    if (handle) dlclose(handle);
  }
  CpuBackend(const CpuBackend&) = delete;
  CpuBackend& operator=(const CpuBackend&) = delete;
  std::string file() const { return path.substr(path.find_last_of('/') + 1); }
};

struct Run {
  double prefill_s = 0, decode_s = 0;
  std::vector<int32_t> tokens;
};

int32_t argmax(const float* l, int32_t n) { return int32_t(std::max_element(l, l + n) - l); }

// One llama.cpp model and context (n_ctx = the model's context) with a KV cache of type `kv`, and
// one threadpool per thread count.
class LlamaGen {
 public:
  // kv: the cache's type, or GGML_TYPE_COUNT for llama.cpp's default; flash attention: true =
  // llama.cpp's default (auto), false = disabled. flash_attn_log: what llama.cpp logged about it.
  LlamaGen(llama_model* model, int64_t n_ctx, ggml_type kv, bool default_flash_attn, const CpuBackend& cpu)
      : cpu_(cpu), model_(model) {
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = cp.n_batch = cp.n_ubatch = uint32_t(n_ctx);
    cp.n_seq_max = 1;
    if (kv != GGML_TYPE_COUNT) cp.type_k = cp.type_v = kv;
    if (!default_flash_attn) cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.no_perf = true;
    g_flash_attn_log.clear();
    ctx_ = llama_init_from_model(model_, cp);
    MXQAT_CHECK(ctx_, "llama.cpp could not create a context (KV cache ", ggml_type_name(cp.type_k), ")");
    flash_attn_log = g_flash_attn_log;
    kv_type = ggml_type_name(cp.type_k);
    vocab_ = llama_vocab_n_tokens(llama_model_get_vocab(model_));
    batch_ = llama_batch_init(int32_t(n_ctx), 0, 1);
  }
  ~LlamaGen() {
    llama_detach_threadpool(ctx_);
    llama_batch_free(batch_);
    llama_free(ctx_);
    for (auto& [n, tp] : pools_) cpu_.tp_free(tp);
  }
  LlamaGen(const LlamaGen&) = delete;
  LlamaGen& operator=(const LlamaGen&) = delete;
  std::string flash_attn_log, kv_type;

  void set_threads(int n) {
    auto it = pools_.find(n);
    if (it == pools_.end()) {
      ggml_threadpool_params p = ggml_threadpool_params_default(n);
      ggml_threadpool_t tp = cpu_.tp_new(&p);
      MXQAT_CHECK(tp != nullptr, "ggml_threadpool_new failed for ", n, " threads");
      it = pools_.emplace(n, tp).first;
    }
    llama_attach_threadpool(ctx_, it->second, it->second);
    llama_set_n_threads(ctx_, n, n);
    threads_ = n;
  }

  // Greedy generation of n tokens after `prompt` from an empty cache; with `forced`, the token
  // fed at each step is forced[i] instead of the argmax (the argmaxes are still returned).
  Run generate(const std::vector<int32_t>& prompt, int64_t n, const std::vector<int32_t>* forced = nullptr) {
    llama_memory_clear(llama_get_memory(ctx_), true);
    Run r;
    auto t0 = Clock::now();
    llamacpp::fill_batch(batch_, prompt.data(), int32_t(prompt.size()), 0, false);
    decode();
    const float* logits = llama_get_logits_ith(ctx_, -1);
    r.prefill_s = seconds_since(t0);
    t0 = Clock::now();
    llama_pos pos = llama_pos(prompt.size());
    for (int64_t i = 0; i < n; ++i) {
      const int32_t t = argmax(logits, vocab_);
      r.tokens.push_back(t);
      if (i + 1 == n) break;  // the last token's logits are not needed
      const int32_t next = forced ? (*forced)[size_t(i)] : t;
      llamacpp::fill_batch(batch_, &next, 1, pos++, false);
      decode();
      logits = llama_get_logits_ith(ctx_, -1);
    }
    r.decode_s = seconds_since(t0);
    if (threads_ > 1) cpu_.tp_pause(pools_.at(threads_));  // no polling threads after the run
    return r;
  }

 private:
  void decode() {
    const int32_t rc = llama_decode(ctx_, batch_);
    MXQAT_CHECK(rc == 0, "llama_decode returned ", rc);
    llama_synchronize(ctx_);
  }

  const CpuBackend& cpu_;
  llama_model* model_;
  llama_context* ctx_ = nullptr;
  llama_batch batch_{};
  int32_t vocab_ = 0;
  int threads_ = 1;
  std::map<int, ggml_threadpool_t> pools_;
};

std::vector<int> parse_threads(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    int v = 0;
    try {
      size_t used = 0;
      v = std::stoi(item, &used);
      MXQAT_CHECK(used == item.size(), "");
    } catch (const std::exception&) {
      v = 0;
    }
    MXQAT_CHECK(v >= 1 && v <= 512, "--threads '", s, "': '", item,
                "' is not a thread count (a comma-separated list of 1 .. 512, e.g. 1,2)");
    out.push_back(v);
  }
  MXQAT_CHECK(!out.empty(), "--threads is empty; give e.g. 1,2");
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string text_of(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t t : ids) s.push_back(static_cast<char>(static_cast<unsigned char>(t)));
  return s;
}

int run(const std::vector<std::string>& argv) {
  Args a("llamacpp_generate", argv,
         {{"--export", true}, {"--gguf", true}, {"--prompt", true}, {"--tokens", true},
          {"--threads", true}, {"--rounds", true}, {"--out", true}, {"--libdir", true}},
         0, 0);
  MXQAT_CHECK(a.has("--export") && a.has("--gguf"),
              "llamacpp_generate: --export MODEL.h5 and --gguf MODEL-mxfp4.gguf (written from that "
              "export by `mxqat export MODEL.h5 --format gguf`) are required");
  const std::string export_path = *a.get("--export"), gguf_path = *a.get("--gguf");
  const std::string prompt = a.get_or("--prompt", "In the beginning");
  const std::vector<int> threads = parse_threads(a.get_or("--threads", "1,2"));
  const int64_t rounds = int_flag(a, "--rounds", 15, 1);
  tune_allocator();

  // mxqat: the export's fast path.
  InferenceModel fast = load_gpt(export_path, InferPath::kFast);
  layers::Gpt& gpt = gpt_of(fast);
  const int64_t ctx = gpt.config().context;
  const int64_t P = int64_t(prompt.size());
  MXQAT_CHECK(P >= 1 && P < ctx, "the prompt is ", P, " bytes; give 1 .. ", ctx - 1, " bytes (context ", ctx, ")");
  const int64_t N = int_flag(a, "--tokens", ctx - P, 2);
  MXQAT_CHECK(P + N - 1 <= ctx, "--tokens ", N, " after a ", P, "-byte prompt needs ", P + N - 1,
              " cache positions but the context is ", ctx, "; ask for at most ", ctx - P + 1,
              " tokens (no cache refill in this benchmark)");
  SampleOptions so;
  so.tokens = N;
  so.temperature = 0.f;
  so.kv_cache = "none";
  std::vector<int32_t> prompt_ids;
  for (unsigned char c : prompt) prompt_ids.push_back(int32_t(c));

  // llama.cpp.
  llamacpp::start(a.get_or("--libdir", MXQAT_LLAMACPP_LIBDIR), keep_log);
  const CpuBackend cpu;
  llama_model* model = llamacpp::load_model(gguf_path);
  MXQAT_CHECK(llama_model_n_ctx_train(model) == ctx && llama_vocab_n_tokens(llama_model_get_vocab(model)) ==
                  gpt.config().vocab,
              gguf_path, " has context ", llama_model_n_ctx_train(model), " and vocabulary ",
              llama_vocab_n_tokens(llama_model_get_vocab(model)), "; ", export_path, " has ", ctx, " and ",
              gpt.config().vocab, ": write the GGUF from this export (mxqat export ... --format gguf)");
  struct Impl {
    std::string name;
    std::unique_ptr<LlamaGen> llama;  // null: mxqat
  };
  std::vector<Impl> impls;
  impls.push_back({"mxqat_fast", nullptr});
  // llama.cpp's defaults (F16 cache, flash attention auto); an F32 cache as ours; F32 without
  // flash attention (as llamacpp_check runs).
  impls.push_back({"llamacpp", std::make_unique<LlamaGen>(model, ctx, GGML_TYPE_COUNT, true, cpu)});
  impls.push_back({"llamacpp_kv_f32", std::make_unique<LlamaGen>(model, ctx, GGML_TYPE_F32, true, cpu)});
  impls.push_back({"llamacpp_kv_f32_fa_off", std::make_unique<LlamaGen>(model, ctx, GGML_TYPE_F32, false, cpu)});
  JsonObject config_json;
  for (const Impl& im : impls)
    if (im.llama)
      config_json.raw(im.name, JsonObject().str("kv_cache", im.llama->kv_type)
                                   .str("flash_attn_log", im.llama->flash_attn_log).dump());

  auto run_impl = [&](Impl& im, int t) {
    if (!im.llama) {
      omp_set_num_threads(t);
      const Generation g = generate(gpt, prompt, so);
      Run r;
      r.prefill_s = g.prefill_s;
      r.decode_s = g.decode_s;
      for (unsigned char c : g.text) r.tokens.push_back(int32_t(c));
      return r;
    }
    im.llama->set_threads(t);
    return im.llama->generate(prompt_ids, N);
  };

  // 1. The tokens: the same on every thread count, and mxqat's vs llama.cpp's.
  JsonObject tokens_json;
  std::vector<int32_t> ours;
  for (Impl& im : impls) {
    std::vector<int32_t> first;
    for (int t : threads) {
      const Run r = run_impl(im, t);
      if (first.empty()) first = r.tokens;
      MXQAT_CHECK(r.tokens == first, im.name, " generates other tokens on ", t, " threads than on ",
                  threads[0], ": '", text_of(r.tokens), "' vs '", text_of(first), "'");
    }
    if (!im.llama) {
      ours = first;
      tokens_json.str("mxqat_fast_text", text_of(ours));
      continue;
    }
    int64_t prefix = 0;
    while (prefix < N && first[size_t(prefix)] == ours[size_t(prefix)]) ++prefix;
    im.llama->set_threads(threads[0]);
    const Run forced = im.llama->generate(prompt_ids, N, &ours);
    int64_t agree = 0;
    for (int64_t i = 0; i < N; ++i) agree += forced.tokens[size_t(i)] == ours[size_t(i)];
    tokens_json.str(im.name + "_text", text_of(first))
        .integer(im.name + "_common_prefix", prefix)
        .integer(im.name + "_teacher_forced_agree", agree);
  }

  // 2. Interleaved rounds.
  std::map<std::pair<std::string, int>, std::vector<double>> prompt_tps, gen_tps;
  for (int64_t r = 0; r < rounds; ++r)
    for (int t : threads)
      for (size_t k = 0; k < impls.size(); ++k) {
        Impl& im = impls[r % 2 ? impls.size() - 1 - k : k];
        // A pause between timed generations: the previous one's idle threads (OpenMP's
        // spin-then-sleep, ggml's polling) are asleep before the next starts.
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        const Run run = run_impl(im, t);
        prompt_tps[{im.name, t}].push_back(double(P) / run.prefill_s);
        gen_tps[{im.name, t}].push_back(double(N - 1) / run.decode_s);
      }

  JsonArray results;
  for (int t : threads) {
    JsonObject o;
    o.integer("threads", t);
    const double ours_p = median(prompt_tps[{"mxqat_fast", t}]), ours_g = median(gen_tps[{"mxqat_fast", t}]);
    for (const Impl& im : impls) {
      o.num(im.name + "_prompt_tokens_per_s", median(prompt_tps[{im.name, t}]))
          .num(im.name + "_gen_tokens_per_s", median(gen_tps[{im.name, t}]));
    }
    for (const Impl& im : impls) {
      if (!im.llama) continue;
      o.num("prompt_ratio_mxqat_over_" + im.name, ours_p / median(prompt_tps[{im.name, t}]))
          .num("gen_ratio_mxqat_over_" + im.name, ours_g / median(gen_tps[{im.name, t}]));
    }
    results.add(o);
  }
  impls.clear();  // the contexts before their model
  llama_model_free(model);

  JsonObject out;
  out.str("export", export_path).str("gguf", gguf_path).str("prompt", prompt)
      .integer("prompt_tokens", P).integer("new_tokens", N).integer("rounds", rounds)
      .str("ggml_version", ggml_version()).str("ggml_commit", ggml_commit())
      .str("ggml_cpu_library", cpu.file()).raw("llamacpp_contexts", config_json.dump())
      .str("omp_wait_policy", std::getenv("OMP_WAIT_POLICY") ? std::getenv("OMP_WAIT_POLICY") : "")
      .raw("tokens", tokens_json.dump()).raw("results", results.dump());
  llama_backend_free();
  std::cout << out.dump() << "\n";
  if (auto o = a.get("--out")) write_file_atomic(*o, out.dump() + "\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::exception& e) {
    std::cerr << "llamacpp_generate: error: " << e.what() << "\n";
    return 2;
  }
}
