// Generation speed of the byte-level gpt with the KV cache: a 16-byte prompt, then 112 sampled
// bytes (128 = the context), with kv_cache none / mxfp8_e4m3 / int8_sym on 1 and 2 threads. The
// model has recipes/kjv_gpt.yaml's sizes (read from that file: run from the repository root, or
// set MXQAT_RECIPE) and seeded random weights; full-precision projections. tokens_per_s counts
// the 112 new bytes over the whole call (prompt pass included). Before timing, each setting
// checks that its text is the same on 1 and 2 threads. Run:
//   build/bench/bench_generate --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "layers/gpt.h"
#include "trainers/generate.h"
#include "trainers/model_factory.h"
#include "trainers/recipe.h"
#include "trainers/runtime.h"

namespace {

using namespace mxqat;

const char* const kKvCache[] = {"none", "mxfp8_e4m3", "int8_sym"};
constexpr int64_t kNewTokens = 112;
const std::string kPrompt = "In the beginning";  // 16 bytes

layers::Gpt& model() {
  static std::unique_ptr<layers::Gpt> m = [] {
    const char* env = std::getenv("MXQAT_RECIPE");
    const trainers::Recipe r = trainers::load_recipe(env ? env : "recipes/kjv_gpt.yaml");
    return std::make_unique<layers::Gpt>(trainers::gpt_config(r.model), 7);
  }();
  return *m;
}

trainers::SampleOptions options(int kv) {
  trainers::SampleOptions o;
  o.tokens = kNewTokens;
  o.temperature = 0.8f;
  o.seed = 11;
  o.kv_cache = kKvCache[kv];
  return o;
}

void BM_Generate(benchmark::State& state) {
  const int kv = static_cast<int>(state.range(0));
  trainers::tune_allocator();
  layers::Gpt* m = nullptr;
  try {
    m = &model();
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  omp_set_num_threads(1);
  const std::string one = trainers::generate(*m, kPrompt, options(kv)).text;
  omp_set_num_threads(2);
  const std::string two = trainers::generate(*m, kPrompt, options(kv)).text;
  if (one != two) {
    state.SkipWithError("generated text differs between 1 and 2 threads");
    return;
  }
  omp_set_num_threads(static_cast<int>(state.range(1)));
  int64_t bytes_per_token = 0;
  for (auto _ : state) {
    const trainers::Generation g = trainers::generate(*m, kPrompt, options(kv));
    bytes_per_token = g.kv_bytes_per_token;
    benchmark::DoNotOptimize(g.text.data());
  }
  state.SetLabel(std::string("kv_cache=") + kKvCache[kv]);
  state.counters["tokens_per_s"] =
      benchmark::Counter(double(kNewTokens) * double(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["kv_bytes_per_token"] = double(bytes_per_token);
}
BENCHMARK(BM_Generate)
    ->ArgNames({"kv", "threads"})
    ->ArgsProduct({{0, 1, 2}, {1, 2}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
