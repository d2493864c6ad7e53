// One training step (forward + backward + AdamW) of the MLP 784-1024-1024-10 (ReLU), batch 256,
// as in bench/torch_train_step.py. Arg = OpenMP threads. Reports the median step time in ms.
// Run: bench/compare_train_step.sh (side by side with PyTorch), or
//   build/bench/bench_train_step --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <omp.h>

#include <random>

#include "layers/models.h"
#include "trainers/optim.h"
#include "trainers/recipe.h"
#include "trainers/runtime.h"

namespace {

using namespace mxqat;
using autograd::Tensor;
using autograd::Var;

void BM_MlpTrainStep(benchmark::State& state) {
  omp_set_num_threads(static_cast<int>(state.range(0)));
  trainers::tune_allocator();
  layers::Mlp model(layers::MlpConfig{784, {1024, 1024}, 10, "relu", 0.f}, 1);
  trainers::OptimizerCfg oc;
  oc.type = "adamw";
  oc.lr = 1e-3;
  oc.weight_decay = 0.01;
  auto opt = trainers::make_optimizer(oc, model.named_parameters());
  std::mt19937_64 rng(2);
  Tensor x({256, 784});
  for (int64_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(rng() % 1000) / 1000.f;
  std::vector<int32_t> y(256);
  for (auto& v : y) v = static_cast<int32_t>(rng() % 10);
  for (auto _ : state) {
    Var loss = autograd::cross_entropy(model.forward(Var(x)), y);
    loss.backward();
    opt->step(1e-3);
    opt->zero_grad();
    benchmark::DoNotOptimize(loss.value().data());
  }
  state.counters["threads"] = static_cast<double>(state.range(0));
}
BENCHMARK(BM_MlpTrainStep)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
