// The mx_native product (quant/codec/gemm/mx_gemm.h, docs/formats.md §14.2) against the FP32 GEMM
// (autograd::gemm, the fp32_chain product) on the forward GEMMs of the GPT of bench_gpt_step
// (batch 16 x context 128 = 2048 tokens; d 256, SwiGLU 768): y [2048, N] = x [2048, K] w[N, K]ᵀ
// on MXFP4 operands, 1 and 2 OpenMP threads (or the list in MXQAT_BENCH_THREADS), GFLOP/s counted as 2·M·N·K for every kernel:
//   fp32      - autograd::gemm on the dequantized operands (what qgemm runs under fp32_chain);
//   mx        - mx_gemm from the same floats: block integers of both operands, B's panels, product;
//   mx_ready  - the product alone on operands already made block integers (the inference fast
//               path's weights are made once at load);
//   mx_portable - mx_ready on the portable kernel;
//   e3m2_ready, e3m2_portable - the same on MXFP6-E3M2 operands (wide int16 block integers: the
//               AVX-512 VNNI vpdpwssd kernel, and the portable kernel).
// Before timing, the mx kernels are checked bitwise against each other and against
// mx_gemm_reference on the first 32 rows.
//   build/bench/bench_mx_gemm --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "autograd/kernels.h"
#include "bench/bench_threads.h"
#include "quant/codec/codec.h"
#include "quant/codec/gemm/mx_gemm.h"

namespace {

using namespace mxqat;

struct Shape {
  const char* name;
  int64_t m, n, k;
};
const Shape kShapes[] = {
    {"gpt_attn_proj", 2048, 256, 256},  // q, k, v, o (and the head: 256 x 256)
    {"gpt_gate_up", 2048, 768, 256},
    {"gpt_down", 2048, 256, 768},
};

struct Operands {
  std::vector<float> x, w;    // MXFP4 values
  std::vector<float> x6, w6;  // MXFP6-E3M2 values
  quant::MxOperand a, b, b_portable, a6, b6, b6_portable;
};

std::vector<float> mx_values(const char* codec, int64_t rows, int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> v(static_cast<size_t>(rows * k)), q(v.size());
  for (float& f : v) f = nd(rng);
  quant::Codec::make(codec).fake_quant(v.data(), rows, k, q.data());
  return q;
}

// The product of a and b (and of b_portable on the portable kernel) against the reference on the
// first 32 rows of x and w's values: exits on a difference.
void check(const char* name, const quant::MxOperand& a, const quant::MxOperand& b,
           const quant::MxOperand& b_portable, const std::vector<float>& x,
           const std::vector<float>& w, const Shape& s) {
  std::vector<float> c1(static_cast<size_t>(s.m * s.n)), c2(c1.size()), ref(static_cast<size_t>(32 * s.n));
  quant::mx_gemm(a, b, c1.data());
  quant::mx_gemm(a, b_portable, c2.data(), quant::MxPath::kPortable);
  quant::mx_gemm_reference(x.data(), w.data(), ref.data(), 32, s.n, s.k);
  if (std::memcmp(c1.data(), c2.data(), c1.size() * 4) != 0 ||
      std::memcmp(c1.data(), ref.data(), ref.size() * 4) != 0) {
    std::fprintf(stderr, "bench_mx_gemm: %s %s: kernels disagree\n", s.name, name);
    std::exit(1);
  }
}

const Operands& operands(const Shape& s) {
  static std::vector<std::unique_ptr<Operands>> cache(std::size(kShapes));
  auto& slot = cache[static_cast<size_t>(&s - kShapes)];
  if (!slot) {
    slot = std::make_unique<Operands>();
    slot->x = mx_values("mxfp4", s.m, s.k, 1);
    slot->w = mx_values("mxfp4", s.n, s.k, 2);
    slot->a = quant::mx_operand(slot->x.data(), s.m, s.k, "x");
    slot->b = quant::mx_operand(slot->w.data(), s.n, s.k, "w", true);
    slot->b_portable = quant::mx_operand(slot->w.data(), s.n, s.k, "w", true, quant::MxPath::kPortable);
    check("mxfp4", slot->a, slot->b, slot->b_portable, slot->x, slot->w, s);
    slot->x6 = mx_values("mxfp6_e3m2", s.m, s.k, 3);
    slot->w6 = mx_values("mxfp6_e3m2", s.n, s.k, 4);
    slot->a6 = quant::mx_operand(slot->x6.data(), s.m, s.k, "x", false, quant::MxPath::kAuto, true);
    slot->b6 = quant::mx_operand(slot->w6.data(), s.n, s.k, "w", true, quant::MxPath::kAuto, true);
    slot->b6_portable =
        quant::mx_operand(slot->w6.data(), s.n, s.k, "w", true, quant::MxPath::kPortable, true);
    check("mxfp6_e3m2", slot->a6, slot->b6, slot->b6_portable, slot->x6, slot->w6, s);
  }
  return *slot;
}

void run(benchmark::State& state, const Shape& s, const std::string& kernel) {
  omp_set_num_threads(static_cast<int>(state.range(0)));
  const Operands& o = operands(s);
  std::vector<float> c(static_cast<size_t>(s.m * s.n));
  for (auto _ : state) {
    if (kernel == "fp32")
      autograd::gemm(o.x.data(), false, o.w.data(), true, c.data(), s.m, s.n, s.k);
    else if (kernel == "mx")
      quant::mx_gemm(o.x.data(), o.w.data(), c.data(), s.m, s.n, s.k);
    else if (kernel == "mx_ready")
      quant::mx_gemm(o.a, o.b, c.data());
    else if (kernel == "mx_portable")
      quant::mx_gemm(o.a, o.b_portable, c.data(), quant::MxPath::kPortable);
    else if (kernel == "e3m2_ready")
      quant::mx_gemm(o.a6, o.b6, c.data());
    else
      quant::mx_gemm(o.a6, o.b6_portable, c.data(), quant::MxPath::kPortable);
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2e-9 * s.m * s.n * s.k * state.iterations(),
                                                 benchmark::Counter::kIsRate);
}

[[maybe_unused]] const bool kRegistered = [] {
  for (const Shape& s : kShapes)
    for (const char* kernel : {"fp32", "mx", "mx_ready", "mx_portable", "e3m2_ready", "e3m2_portable"})
      bench::register_per_thread_count(std::string(s.name) + "/" + kernel,
                                       [&s, kernel](benchmark::State& st) { run(st, s, kernel); });
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
