// One training step (forward + backward + AdamW) of the llama-style GPT of recipes/kjv_gpt.yaml
// (4 layers, d_model 256, 4 heads, SwiGLU 768, context 128, vocabulary 256), batch 16, in FP32
// and with every projection's weight and input activation through MXFP4 (FLOOR scale, clipped
// STE; q, k, v, o, gate, up, down and the head: 29 GEMM layers), the latter on the fp32_chain and
// on the mx_native forward product (docs/formats.md §14); and with recipes/kjv_gpt_mxfp4_sr.yaml's
// stochastically rounded MXFP4 backward operands, every product fp32_chain or mx_native (forward
// and backward, §14.3). Arg = OpenMP threads: 1 and 2, or the
// list in MXQAT_BENCH_THREADS (e.g. MXQAT_BENCH_THREADS=1,4,16 on a 16-core machine).
// PyTorch counterpart: bench/torch_gpt_step.py; side by side: bench/compare_gpt_step.sh, or
//   build/bench/bench_gpt_step --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>
#include <random>
#include <vector>

#include "bench/bench_quant.h"
#include "layers/gpt.h"
#include "quant/codec/codec.h"
#include "trainers/recipe/recipe.h"
#include "trainers/train/optim.h"
#include "trainers/util/process.h"

namespace {

using namespace mxqat;
using autograd::Tensor;
using autograd::Var;

constexpr int64_t kBatch = 16, kContext = 128;

void run_steps(benchmark::State& state, bool qat, quant::Product product = quant::Product::kFp32Chain,
               bool sr_backward = false) {
  omp_set_num_threads(static_cast<int>(state.range(0)));
  trainers::tune_allocator();
  layers::GptConfig cfg;  // 4 layers, d 256, 4 heads, context 128, SwiGLU 768, vocab 256
  layers::Gpt model(cfg, 1);
  std::vector<std::shared_ptr<quant::QuantGemm>> gemms;
  if (qat && bench::quantize_mxfp4(model, product, sr_backward, &gemms) != 7 * cfg.layers + 1) {
    state.SkipWithError("expected 7 projections per block plus the head");
    return;
  }
  trainers::OptimizerCfg oc;
  oc.type = "adamw";
  oc.lr = 1e-3;
  oc.weight_decay = 0.1;
  auto opt = trainers::make_optimizer(oc, model.named_parameters());
  std::mt19937_64 rng(2);
  std::vector<int32_t> ids(kBatch * kContext), targets(kBatch * kContext);
  for (auto& v : ids) v = static_cast<int32_t>(rng() % 256);
  for (auto& v : targets) v = static_cast<int32_t>(rng() % 256);
  uint64_t step = 0;
  for (auto _ : state) {
    for (auto& g : gemms) g->set_rounding_counter(step);  // fresh random numbers every step
    ++step;
    Var logits = autograd::reshape(model.forward_ids(ids, kContext), {kBatch * kContext, cfg.vocab});
    Var loss = autograd::cross_entropy(logits, targets);
    loss.backward();
    opt->step(1e-3);
    opt->zero_grad();
    benchmark::DoNotOptimize(loss.value().data());
  }
  state.counters["threads"] = static_cast<double>(state.range(0));
}

void BM_GptFp32Step(benchmark::State& state) { run_steps(state, false); }
void BM_GptQatMxfp4Step(benchmark::State& state) { run_steps(state, true); }
void BM_GptQatMxfp4MxNativeStep(benchmark::State& state) {
  run_steps(state, true, quant::Product::kMxNative);
}
// recipes/kjv_gpt_mxfp4_sr.yaml's quantization: MXFP4 forward and stochastically rounded MXFP4
// backward operands (dY, W and X requantized), every product of the step's 29 projections
// (forward, dX and dW) fp32_chain or mx_native.
void BM_GptQatMxfp4SrStep(benchmark::State& state) {
  run_steps(state, true, quant::Product::kFp32Chain, true);
}
void BM_GptQatMxfp4SrMxNativeStep(benchmark::State& state) {
  run_steps(state, true, quant::Product::kMxNative, true);
}
// Thread counts: 1 and 2, or the comma-separated list in MXQAT_BENCH_THREADS (e.g. 1,4,16).
void thread_args(benchmark::internal::Benchmark* b) {
  const char* env = std::getenv("MXQAT_BENCH_THREADS");
  std::string list = env && *env ? env : "1,2";
  for (size_t pos = 0; pos < list.size();) {
    const size_t comma = std::min(list.find(',', pos), list.size());
    b->Arg(std::max(1, std::atoi(list.substr(pos, comma - pos).c_str())));
    pos = comma + 1;
  }
  b->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();
}

BENCHMARK(BM_GptFp32Step)->Apply(thread_args);
BENCHMARK(BM_GptQatMxfp4Step)->Apply(thread_args);
BENCHMARK(BM_GptQatMxfp4MxNativeStep)->Apply(thread_args);
BENCHMARK(BM_GptQatMxfp4SrStep)->Apply(thread_args);
BENCHMARK(BM_GptQatMxfp4SrMxNativeStep)->Apply(thread_args);

}  // namespace

BENCHMARK_MAIN();
