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
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <random>
#include <vector>

#include "autograd/profile.h"
#include "bench/bench_quant.h"
#include "bench/bench_threads.h"
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

// MXQAT_BENCH_PROFILE=FILE: appends this run's phase profile (autograd/profile.h) to FILE as
// tab-separated rows: benchmark, threads, steps, label, then in all: wall seconds, process CPU
// seconds, calling thread's CPU seconds, laps
// (benchmark: fp32, qat, qat_mx_native, sr, sr_mx_native; bench/profile_gpt_step.sh runs the benchmark that way and tabulates the rows).
void write_profile(const char* path, const char* name, const benchmark::State& state, uint64_t steps) {
  autograd::profile::stop();
  FILE* f = std::fopen(path, "a");
  if (!f) {
    std::fprintf(stderr, "bench_gpt_step: cannot append to MXQAT_BENCH_PROFILE=%s\n", path);
    return;
  }
  for (const auto& e : autograd::profile::entries())
    std::fprintf(f, "%s\t%lld\t%llu\t%s\t%.9f\t%.9f\t%.9f\t%lld\n", name,
                 static_cast<long long>(state.range(0)), static_cast<unsigned long long>(steps),
                 e.label.c_str(), e.seconds, e.process_cpu, e.thread_cpu, static_cast<long long>(e.count));
  std::fclose(f);
}

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
  auto train_step = [&] {
    for (auto& g : gemms) g->set_rounding_counter(step);  // fresh random numbers every step
    ++step;
    Var logits = autograd::reshape(model.forward_ids(ids, kContext), {kBatch * kContext, cfg.vocab});
    Var loss = autograd::cross_entropy(logits, targets);
    loss.backward();
    opt->step(1e-3);
    autograd::profile::lap("optimizer step");
    opt->zero_grad();
    benchmark::DoNotOptimize(loss.value().data());
    logits = loss = Var();  // the graph is freed here, inside the step and its profile
    autograd::profile::lap("free graph");
  };
  train_step();  // untimed: the first step's allocations (buffers kept from then on) are not a step's
  const bool mx = product == quant::Product::kMxNative;
  const char* profile_path = std::getenv("MXQAT_BENCH_PROFILE");
  if (profile_path && *profile_path) autograd::profile::start();
  for (auto _ : state) {
    autograd::profile::reset_clock();
    train_step();
  }
  state.counters["threads"] = static_cast<double>(state.range(0));
  if (profile_path && *profile_path) write_profile(profile_path,
                  !qat ? "fp32" : sr_backward ? (mx ? "sr_mx_native" : "sr") : (mx ? "qat_mx_native" : "qat"),
                  state, static_cast<uint64_t>(state.iterations()));
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
  for (int64_t t : bench::thread_counts()) b->Arg(t);
  b->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();
}

BENCHMARK(BM_GptFp32Step)->Apply(thread_args);
BENCHMARK(BM_GptQatMxfp4Step)->Apply(thread_args);
BENCHMARK(BM_GptQatMxfp4MxNativeStep)->Apply(thread_args);
BENCHMARK(BM_GptQatMxfp4SrStep)->Apply(thread_args);
BENCHMARK(BM_GptQatMxfp4SrMxNativeStep)->Apply(thread_args);

}  // namespace

BENCHMARK_MAIN();
