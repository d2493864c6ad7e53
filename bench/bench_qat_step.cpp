// One QAT training step (forward + backward + AdamW) of the MLP 784-1024-1024-10 (ReLU), batch 256,
// with every Linear's weight and input activation through MXFP4 (FLOOR scale, clipped STE): a
// QuantGemm attached to each GemmLayer with set_quantizer, the framework's own code path. The FP32
// step of the same model runs in the same binary, so QAT / FP32 is measured side by side.
// Arg = OpenMP threads. PyTorch counterpart: bench/torch_qat_step.py.
// Run: bench/compare_qat_step.sh (side by side with PyTorch), or
//   build/bench/bench_qat_step --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// Agreement check input for the PyTorch script (written before any benchmark runs):
//   build/bench/bench_qat_step --dump FILE
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench/bench_quant.h"
#include "layers/models.h"
#include "quant/codec/codec.h"
#include "trainers/recipe/recipe.h"
#include "trainers/train/optim.h"
#include "trainers/util/process.h"

namespace {

using namespace mxqat;
using autograd::Tensor;
using autograd::Var;

void run_steps(benchmark::State& state, bool qat) {
  omp_set_num_threads(static_cast<int>(state.range(0)));
  trainers::tune_allocator();
  layers::Mlp model(layers::MlpConfig{784, {1024, 1024}, 10, "relu", 0.f}, 1);
  if (qat && bench::quantize_mxfp4(model) != 3) {
    state.SkipWithError("expected 3 GEMM layers (fc1, fc2, head)");
    return;
  }
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

void BM_MlpFp32Step(benchmark::State& state) { run_steps(state, false); }
void BM_MlpQatMxfp4Step(benchmark::State& state) { run_steps(state, true); }
BENCHMARK(BM_MlpFp32Step)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
BENCHMARK(BM_MlpQatMxfp4Step)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();

// ---- --dump FILE: inputs and mxqat's MXFP4 fake-quant output for bench/torch_qat_step.py ----
// File layout (little-endian): "MXQD" u32 version=1, u32 count; per tensor: i64 R, i64 K,
// f32 x[R*K], f32 y[R*K] (y = Codec("mxfp4", FLOOR).fake_quant(x)), u8 mask[R*K].

float from_bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

struct Case {
  int64_t R, K;
  std::vector<float> x;
};

std::vector<Case> dump_cases() {
  std::mt19937_64 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::uniform_int_distribution<int> ue(-140, 120);
  std::vector<Case> cs;
  // 1) Gaussian rows with per-row magnitudes spanning the exponent range, ragged K = 784 % 32.
  {
    Case c{24, 784, {}};
    for (int64_t r = 0; r < c.R; ++r) {
      const float mag = std::ldexp(1.f, static_cast<int>(r) * 10 - 120);
      for (int64_t k = 0; k < c.K; ++k) c.x.push_back(nd(rng) * mag);
    }
    cs.push_back(std::move(c));
  }
  // 2) Blocks built for the edge cases, K = 100 (three full blocks and a ragged one of 4).
  {
    Case c{24, 100, {}};
    c.x.assign(static_cast<size_t>(c.R * c.K), 0.f);
    auto row = [&](int64_t r) { return c.x.data() + r * c.K; };
    // r0: all zeros, with -0.0 in some places; r1: tiny and subnormal values.
    for (int64_t k = 0; k < c.K; ++k) row(0)[k] = (k % 3 == 0) ? -0.f : 0.f;
    for (int64_t k = 0; k < c.K; ++k)
      row(1)[k] = from_bits(static_cast<uint32_t>(rng() % 0x00C00000u)) * ((k & 1) ? -1.f : 1.f);
    // r2..r5: E2M1 ties and grid points after scaling: block amax 4 (s = 0), values k/4 and
    // midpoints 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5, 7 (saturates), times 2^e for several e.
    const float ties[] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.f, 7.f, 6.f, 7.99f,
                          0.5f,  1.f,   1.5f,  2.f,   3.f,  4.f,  0.f, 0.1f, 0.3f, 0.26f};
    const int exps[] = {0, -3, 17, -120};
    for (int i = 0; i < 4; ++i) {
      float* p = row(2 + i);
      const float sc = std::ldexp(1.f, exps[i]);
      for (int64_t k = 0; k < c.K; ++k) {
        const float v = (k % 32 == 0) ? 4.f : ties[k % 20];
        p[k] = v * sc * ((k / 7) % 2 ? -1.f : 1.f);
      }
    }
    // r6: s = -127 and subnormal outputs (amax 2^-125 .. 2^-130).
    for (int64_t k = 0; k < c.K; ++k)
      row(6)[k] = std::ldexp(ties[k % 20], -126 - static_cast<int>(k % 5)) * ((k & 2) ? -1.f : 1.f);
    // r7: amax just below a power of two (nextafter(2^e, 0)), blocks with a wide spread.
    for (int64_t k = 0; k < c.K; ++k) {
      const int e = static_cast<int>(k / 32) * 9 - 10;
      row(7)[k] = (k % 32 == 5) ? std::nextafter(std::ldexp(1.f, e), 0.f)
                                : std::ldexp(nd(rng), e - 3);
    }
    // r8: amax exactly a power of two; r9: one outlier per block (rest flushed or coarse).
    for (int64_t k = 0; k < c.K; ++k) row(8)[k] = (k % 32 == 3) ? -8.f : nd(rng) * 0.5f;
    for (int64_t k = 0; k < c.K; ++k) row(9)[k] = (k % 32 == 17) ? 3.0e4f : nd(rng);
    // r10: largest finite floats; r11: a NaN block and an Inf block (rest finite).
    for (int64_t k = 0; k < c.K; ++k)
      row(10)[k] = (k % 32 == 1) ? std::numeric_limits<float>::max() : nd(rng) * 1e37f;
    for (int64_t k = 0; k < c.K; ++k) row(11)[k] = nd(rng);
    row(11)[40] = std::numeric_limits<float>::quiet_NaN();
    row(11)[70] = -std::numeric_limits<float>::infinity();
    // r12..r23: random float32 exponents (incl. subnormal) and mantissas per element.
    for (int64_t r = 12; r < c.R; ++r)
      for (int64_t k = 0; k < c.K; ++k) {
        const float m = 1.f + static_cast<float>(rng() % 8388608) / 8388608.f;
        row(r)[k] = std::ldexp(m, ue(rng)) * ((rng() & 1) ? -1.f : 1.f);
      }
    cs.push_back(std::move(c));
  }
  // 3) One ragged row shorter than a block, and the model's activation shape piece [8, 1024].
  {
    Case c{3, 7, {}};
    for (int64_t k = 0; k < c.R * c.K; ++k) c.x.push_back(nd(rng) * 3.f);
    cs.push_back(std::move(c));
  }
  {
    Case c{8, 1024, {}};
    for (int64_t k = 0; k < c.R * c.K; ++k) c.x.push_back(std::max(0.f, nd(rng)));
    cs.push_back(std::move(c));
  }
  return cs;
}

int write_dump(const char* path) {
  const quant::Codec codec = quant::Codec::make("mxfp4");
  FILE* f = std::fopen(path, "wb");
  if (!f) {
    std::fprintf(stderr, "cannot write %s\n", path);
    return 1;
  }
  const auto cs = dump_cases();
  const uint32_t head[3] = {0x4451584Du, 1u, static_cast<uint32_t>(cs.size())};  // "MXQD"
  std::fwrite(head, 4, 3, f);
  int64_t total = 0;
  for (const auto& c : cs) {
    std::vector<float> y(c.x.size());
    std::vector<uint8_t> mask(c.x.size());
    codec.fake_quant(c.x.data(), c.R, c.K, y.data(), mask.data());
    // The fast path must equal the scalar reference (the value PyTorch is checked against).
    std::vector<float> yr(c.x.size());
    std::vector<uint8_t> mr(c.x.size());
    codec.fake_quant_reference(c.x.data(), c.R, c.K, yr.data(), mr.data());
    if (std::memcmp(y.data(), yr.data(), 4 * y.size()) != 0 || mask != mr) {
      std::fprintf(stderr, "fast path != reference on a dump case [%lld, %lld]\n",
                   static_cast<long long>(c.R), static_cast<long long>(c.K));
      std::fclose(f);
      return 1;
    }
    const int64_t dims[2] = {c.R, c.K};
    std::fwrite(dims, 8, 2, f);
    std::fwrite(c.x.data(), 4, c.x.size(), f);
    std::fwrite(y.data(), 4, y.size(), f);
    std::fwrite(mask.data(), 1, mask.size(), f);
    total += c.R * c.K;
  }
  std::fclose(f);
  std::printf("wrote %lld values in %zu tensors to %s\n", static_cast<long long>(total), cs.size(),
              path);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--dump") == 0) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "usage: %s --dump FILE\n", argv[0]);
        return 2;
      }
      return write_dump(argv[i + 1]);
    }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
