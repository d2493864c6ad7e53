// The passes that make the mx_native products' operands (quant/codec/gemm/mx_gemm.h, docs/formats.md
// §14.2-14.3) on the GPT of bench_gpt_step (2048 tokens; d 256, SwiGLU 768), each inside one
// parallel region cut by mx_dynamic_parts as qgemm runs it, at 1 and 2 OpenMP threads (or the list in
// MXQAT_BENCH_THREADS). These passes read and write whole activations, so they are the part of a
// quantized step that memory bandwidth, not arithmetic, limits as threads are added:
//   fwd/D     - the forward's input operand from x [2048, D]: MXFP4 fake-quant (round to nearest)
//               and block integers along D as qgemm's mx_forward makes it when the backward does
//               not read Q(x): each part of at most 256 KB quantized into the thread's own buffer
//               and made block integers from there while in cache
//   fwd_two_pass/D - the same in two passes, as before: Q(x) into a [2048, D] buffer, then its block
//               integers (what mx_forward still does where the backward reads Q(x))
//   sr_rows/D - a backward A operand stochastically rounded along rows: dY [2048, D] (dX's dY)
//   sr_cols_a/D - an A operand rounded along the tokens, from dY [2048, D] read by columns (dW's dYᵀ)
//   sr_cols_b/D - B panels rounded along the tokens, from x [2048, D] read by columns (dW's Xᵀ)
// GB/s counts the float operand read once (the pass's unavoidable traffic).
//   MXQAT_BENCH_THREADS=1,2 build/bench/bench_mx_operands --benchmark_repetitions=5
//     --benchmark_report_aggregates_only=true --benchmark_enable_random_interleaving=true
#include <benchmark/benchmark.h>
#include <omp.h>

#include <random>
#include <string>
#include <vector>

#include "bench/bench_threads.h"
#include "quant/codec/codec.h"
#include "quant/codec/gemm/mx_gemm.h"

namespace {

using namespace mxqat;

constexpr int64_t kTokens = 2048;

const std::vector<float>& activations(int64_t d) {
  static std::vector<float> v256, v768;
  std::vector<float>& v = d == 256 ? v256 : v768;
  if (v.empty()) {
    std::mt19937 rng(static_cast<uint32_t>(d));
    std::normal_distribution<float> nd(0.f, 1.f);
    v.resize(static_cast<size_t>(kTokens * d));
    for (float& f : v) f = nd(rng);
  }
  return v;
}

void sr_pass(const std::string& pass, const quant::ElementFormat& e, const float* x, quant::MxOperand& out,
             int t, int T) {
  if (pass == "sr_rows") quant::mx_sr_rows_part(e, 7, x, out, t, T);
  else quant::mx_sr_cols_part(e, 7, x, out, pass == "sr_cols_b", t, T);
}

void run(benchmark::State& state, const std::string& pass, int64_t d) {
  const int threads = static_cast<int>(state.range(0));
  const std::vector<float>& x = activations(d);
  const quant::Codec codec = quant::Codec::make("mxfp4");
  const quant::ElementFormat& e = *codec.element_format();
  std::vector<float> xq(x.size());
  quant::MxOperand out;
  if (pass == "sr_cols_b") quant::mx_panels_shape(out, d, kTokens);
  else if (pass == "sr_cols_a") quant::mx_operand_shape(out, d, kTokens);
  else quant::mx_operand_shape(out, kTokens, d);
  for (auto _ : state) {
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
      if (pass == "fwd") {
        const auto quantize = [&](int64_t r0, int64_t r1, float* dst) {
          codec.fake_quant(x.data() + r0 * d, r1 - r0, d, dst);
        };
        quant::mx_dynamic_parts(
            [&](int t, int T) {
              quant::mx_quantized_rows(quantize, kTokens * t / T, kTokens * (t + 1) / T, out);
            },
            quant::mx_chunk_parts(kTokens * d));
      } else if (pass == "fwd_two_pass") {
        quant::mx_dynamic_parts([&](int t, int T) {
          const int64_t r0 = kTokens * t / T, r1 = kTokens * (t + 1) / T;
          codec.fake_quant(x.data() + r0 * d, r1 - r0, d, xq.data() + r0 * d);
        });
        quant::mx_dynamic_parts([&](int t, int T) {
          quant::mx_operand_rows(xq.data(), kTokens * t / T, kTokens * (t + 1) / T, out);
        });
      } else {
        quant::mx_dynamic_parts([&](int t, int T) { sr_pass(pass, e, x.data(), out, t, T); });
      }
    }
    benchmark::DoNotOptimize(out.exps.data());
    benchmark::DoNotOptimize(out.panel_exps.data());
  }
  state.counters["GB/s"] = benchmark::Counter(4e-9 * double(x.size()) * double(state.iterations()),
                                              benchmark::Counter::kIsRate);
}

[[maybe_unused]] const bool kRegistered = [] {
  for (const char* pass : {"fwd", "fwd_two_pass", "sr_rows", "sr_cols_a", "sr_cols_b"})
    for (int64_t d : {256, 768}) {
      if (std::string(pass).rfind("sr_", 0) == 0 && !quant::mx_sr_fused()) continue;  // AVX-512 only
      bench::register_per_thread_count(std::string(pass) + "/" + std::to_string(d),
                                       [pass, d](benchmark::State& st) { run(st, pass, d); });
    }
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
