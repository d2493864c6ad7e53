// Generation speed of the byte-level gpt with the KV cache: a 16-byte prompt, then 112 sampled
// bytes (128 = the context), with kv_cache none / mxfp8_e4m3 / int8_sym on 1 and 2 threads. The
// model has recipes/kjv_gpt.yaml's sizes (read from that file: run from the repository root, or
// set MXQAT_RECIPE) and seeded random weights; full-precision projections. tokens_per_s counts
// the 112 new bytes over the whole call (prompt pass included). Before timing, each setting
// checks that its text is the same on 1 and 2 threads. Run:
//   build/bench/bench_generate --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// BM_GenerateModel does the same with a trained model: MXQAT_MODEL=EXPORT.h5 (or a checkpoint),
// on the export's reference path (path:0) and on the fused packed kernels (path:1, `--fast`):
//   MXQAT_MODEL=runs/kjv_gpt_mxfp4/export/model.h5 build/bench/bench_generate
//     --benchmark_filter=GenerateModel --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdlib>
#include <functional>
#include <memory>
#include <string>

#include "layers/gpt.h"
#include "trainers/model/model_factory.h"
#include "trainers/recipe/recipe.h"
#include "trainers/runtime/generate.h"
#include "trainers/util/process.h"

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

// MXQAT_MODEL's gpt on inference path p (0 reference, 1 fast), loaded once per path.
layers::Gpt& trained(int p) {
  static std::unique_ptr<trainers::InferenceModel> m[2];
  if (!m[p]) {
    const char* env = std::getenv("MXQAT_MODEL");
    MXQAT_CHECK(env != nullptr, "set MXQAT_MODEL to a gpt export (or checkpoint) to time a trained model");
    m[p] = std::make_unique<trainers::InferenceModel>(
        trainers::load_gpt(env, p ? trainers::InferPath::kFast : trainers::InferPath::kReference));
  }
  return trainers::gpt_of(*m[p]);
}

// Generation with kv_cache kKvCache[state.range(0)] on `threads` threads, after checking that
// 1 and 2 threads give the same text.
void time_generation(benchmark::State& state, const std::function<layers::Gpt&()>& get, int threads) {
  const int kv = static_cast<int>(state.range(0));
  trainers::tune_allocator();
  layers::Gpt* m = nullptr;
  try {
    m = &get();
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
  omp_set_num_threads(threads);
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

void BM_Generate(benchmark::State& state) {
  time_generation(state, model, static_cast<int>(state.range(1)));
}
BENCHMARK(BM_Generate)
    ->ArgNames({"kv", "threads"})
    ->ArgsProduct({{0, 1, 2}, {1, 2}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_GenerateModel(benchmark::State& state) {
  const int p = static_cast<int>(state.range(1));
  time_generation(state, [p]() -> layers::Gpt& { return trained(p); }, static_cast<int>(state.range(2)));
}
BENCHMARK(BM_GenerateModel)
    ->ArgNames({"kv", "path", "threads"})
    ->ArgsProduct({{0, 1, 2}, {0, 1}, {1, 2}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
