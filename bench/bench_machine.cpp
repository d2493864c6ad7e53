// What the machine itself allows when OpenMP threads are added, measured the way mxqat's step uses
// them, so that a thread-scaling figure (bench_gpt_step) can be read against the machine's own
// ceiling. Arg = OpenMP threads (1 and 2, or the list in MXQAT_BENCH_THREADS, e.g. 1,2,4,8,16).
//   BM_FmaOneRegion      register-only FMA chains, one long parallel region: the compute ceiling
//                        (all-core clock, sibling hyperthreads, other guests on the cores)
//   BM_FmaManyRegions    the same total work cut into 200 parallel regions per "step", each split
//                        statically, as the GPT step's ~200 regions are: what fork, join and
//                        waiting for the slowest thread cost at each thread count
//   BM_FmaManyRegionsDynamic  the same 200 regions, each cut into 8 chunks per thread handed out
//                        dynamically: whether finer, dynamic work hides a slow thread
//   BM_ReadPrivate/KB    each thread sums its own buffer of KB kilobytes again and again: the read
//                        bandwidth of L2 (256 KB), L3 (2 MB, 8 MB) and memory (64 MB) as threads
//                        are added
//   BM_Triad             a[i] = b[i] + s * c[i] over 3 x 96 MB shared arrays: memory bandwidth
//   BM_DotRate/KIND      one thread issuing 12 independent chains of one dot-product instruction:
//                        0 vpdpbusd (int8, 64 multiply-adds; the narrow mx_native kernel), 1 vpdpwssd
//                        (int16, 32; the wide kernel), 2 vdpbf16ps (bfloat16, 32; not used: see
//                        docs/formats.md §14.2); skipped where the CPU lacks the instruction
//   BM_PairFma/CPU       two threads pinned to CPU 0 and CPU k (k = 1 .. CPUs - 1) run the FMA
//                        chains: a pair rate near half of two lone threads means k is CPU 0's
//                        sibling hyperthread; bench/README reads these on the 16-core device
// Each reports a rate counter (GFLOP/s or GB/s). Command (bench/README "What the machine allows"):
//   MXQAT_BENCH_THREADS=1,2,4,8,16 build/bench/bench_machine --benchmark_repetitions=3
//     --benchmark_report_aggregates_only=true   (one line)
#include <benchmark/benchmark.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench/bench_threads.h"

namespace {

// Eight independent chains of a * x + b in float, `iters` rounds each; the compiler keeps them in
// registers and vectorizes nothing away because the result is used. 16 FLOPs per round and lane.
// Vectorized by the compiler with the build's -march; portable C++ otherwise.
constexpr int kLanes = 16, kChains = 8;
float fma_chains(int64_t iters, float seed) {
  float acc[kChains][kLanes];
  for (int c = 0; c < kChains; ++c)
    for (int l = 0; l < kLanes; ++l) acc[c][l] = seed + 0.001f * static_cast<float>(c * kLanes + l);
  const float a = 0.999999f, b = 1e-7f;
  for (int64_t i = 0; i < iters; ++i)
    for (int c = 0; c < kChains; ++c)
#pragma omp simd
      for (int l = 0; l < kLanes; ++l) acc[c][l] = acc[c][l] * a + b;
  float s = 0.0f;
  for (int c = 0; c < kChains; ++c)
    for (int l = 0; l < kLanes; ++l) s += acc[c][l];
  return s;
}
constexpr double kFlopsPerIter = 2.0 * kChains * kLanes;

// The "step": 200 regions of this many chain rounds in all (about 0.3 s of one core's work).
constexpr int kRegions = 200;
constexpr int64_t kItersPerRegion = 1 << 15;

void set_threads(const benchmark::State& state) { omp_set_num_threads(static_cast<int>(state.range(0))); }

void BM_FmaOneRegion(benchmark::State& state) {
  set_threads(state);
  const int64_t total = kRegions * kItersPerRegion;
  float sink = 0.0f;
  for (auto _ : state) {
#pragma omp parallel reduction(+ : sink)
    {
      const int t = omp_get_thread_num(), T = omp_get_num_threads();
      sink += fma_chains(total * (t + 1) / T - total * t / T, static_cast<float>(t));
    }
  }
  benchmark::DoNotOptimize(sink);
  state.counters["GFLOPs"] = benchmark::Counter(kFlopsPerIter * static_cast<double>(total) * 1e-9 *
                                                    static_cast<double>(state.iterations()),
                                                benchmark::Counter::kIsRate);
}

void BM_FmaManyRegions(benchmark::State& state) {
  set_threads(state);
  float sink = 0.0f;
  for (auto _ : state) {
    for (int r = 0; r < kRegions; ++r) {
#pragma omp parallel reduction(+ : sink)
      {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        sink += fma_chains(kItersPerRegion * (t + 1) / T - kItersPerRegion * t / T, static_cast<float>(r));
      }
    }
  }
  benchmark::DoNotOptimize(sink);
  state.counters["GFLOPs"] = benchmark::Counter(
      kFlopsPerIter * static_cast<double>(kRegions * kItersPerRegion) * 1e-9 *
          static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate);
}

void BM_FmaManyRegionsDynamic(benchmark::State& state) {
  set_threads(state);
  const int chunks = 8 * static_cast<int>(state.range(0));
  float sink = 0.0f;
  for (auto _ : state) {
    for (int r = 0; r < kRegions; ++r) {
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : sink)
      for (int c = 0; c < chunks; ++c)
        sink += fma_chains(kItersPerRegion * (c + 1) / chunks - kItersPerRegion * c / chunks,
                           static_cast<float>(r));
    }
  }
  benchmark::DoNotOptimize(sink);
  state.counters["GFLOPs"] = benchmark::Counter(
      kFlopsPerIter * static_cast<double>(kRegions * kItersPerRegion) * 1e-9 *
          static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate);
}

void BM_ReadPrivate(benchmark::State& state) {
  set_threads(state);
  const int64_t n = state.range(1) * 1024 / static_cast<int64_t>(sizeof(float));
  const int T = static_cast<int>(state.range(0));
  std::vector<std::vector<float>> bufs(static_cast<size_t>(T));
  // Each thread allocates and touches its own buffer (first touch).
#pragma omp parallel num_threads(T)
  bufs[static_cast<size_t>(omp_get_thread_num())].assign(static_cast<size_t>(n), 1.0f);
  // About 256 MB read per thread per iteration, whatever the buffer size.
  const int64_t passes = std::max<int64_t>(1, (int64_t{256} << 20) / (n * 4));
  float sink = 0.0f;
  for (auto _ : state) {
#pragma omp parallel num_threads(T) reduction(+ : sink)
    {
      const float* p = bufs[static_cast<size_t>(omp_get_thread_num())].data();
      float acc[16] = {};
      for (int64_t k = 0; k < passes; ++k)
        for (int64_t i = 0; i + 16 <= n; i += 16)
#pragma omp simd
          for (int l = 0; l < 16; ++l) acc[l] += p[i + l];
      for (float v : acc) sink += v;
    }
  }
  benchmark::DoNotOptimize(sink);
  state.counters["GBs"] = benchmark::Counter(static_cast<double>(T) * static_cast<double>(passes) *
                                                 static_cast<double>(n) * 4e-9 *
                                                 static_cast<double>(state.iterations()),
                                             benchmark::Counter::kIsRate);
}

void BM_Triad(benchmark::State& state) {
  set_threads(state);
  const int64_t n = (int64_t{96} << 20) / 4;
  std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n)), c(static_cast<size_t>(n));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) a[i] = 0.0f, b[i] = 1.0f, c[i] = 2.0f;
  for (auto _ : state) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) a[i] = b[i] + 0.5f * c[i];
    benchmark::ClobberMemory();
  }
  state.counters["GBs"] = benchmark::Counter(12.0 * static_cast<double>(n) * 1e-9 *
                                                 static_cast<double>(state.iterations()),
                                             benchmark::Counter::kIsRate);
}

#if defined(__x86_64__)
// n rounds of 12 independent chains of the instruction; returns a value that depends on all.
__attribute__((target("avx512f,avx512bw,avx512vnni"))) int dot_int(int64_t n, bool wide) {
  __m512i acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_epi32(i);
  __m512i u = _mm512_set1_epi32(0x01010101), v = _mm512_set1_epi32(0x01020102);
  for (int64_t r = 0; r < n; ++r) {
    for (int i = 0; i < 12; ++i)
      acc[i] = wide ? _mm512_dpwssd_epi32(acc[i], u, v) : _mm512_dpbusd_epi32(acc[i], u, v);
    __asm__ volatile("" : "+v"(u));  // keeps the loop from being folded
  }
  int s = 0;
  for (int i = 0; i < 12; ++i) s += _mm512_cvtsi512_si32(acc[i]);
  return s;
}
__attribute__((target("avx512f,avx512bw,avx512bf16"))) float dot_bf16(int64_t n) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  __m512i u = _mm512_set1_epi32(0x3F803F80), v = _mm512_set1_epi32(0x3F803F80);  // pairs of 1.0
  for (int64_t r = 0; r < n; ++r) {
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], (__m512bh)u, (__m512bh)v);
    __asm__ volatile("" : "+v"(u));
  }
  float s = 0.0f;
  for (int i = 0; i < 12; ++i) s += _mm512_cvtss_f32(acc[i]);
  return s;
}
#endif

void BM_DotRate(benchmark::State& state) {
  const int kind = static_cast<int>(state.range(0));
#if defined(__x86_64__)
  const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                   (kind == 2 ? __builtin_cpu_supports("avx512bf16") : __builtin_cpu_supports("avx512vnni"));
#else
  const bool has = false;
#endif
  if (!has) {
    state.SkipWithError("this CPU lacks the instruction");
    return;
  }
  constexpr int64_t kRounds = 1 << 22;
  double sink = 0.0;
  for (auto _ : state) {
#if defined(__x86_64__)
    sink += kind == 2 ? static_cast<double>(dot_bf16(kRounds)) : static_cast<double>(dot_int(kRounds, kind == 1));
#endif
  }
  benchmark::DoNotOptimize(sink);
  const double instr = 12.0 * static_cast<double>(kRounds) * static_cast<double>(state.iterations());
  state.counters["Ginstr"] = benchmark::Counter(instr * 1e-9, benchmark::Counter::kIsRate);
  state.counters["GMAC"] = benchmark::Counter(instr * (kind == 0 ? 64 : 32) * 1e-9, benchmark::Counter::kIsRate);
  state.SetLabel(kind == 0 ? "vpdpbusd" : kind == 1 ? "vpdpwssd" : "vdpbf16ps");
}

bool pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}

// The calling thread's CPUs, and setting them back: the pinned pair must not leave OpenMP's
// threads pinned for the benchmarks after it (a thread the runtime starts later inherits the
// affinity of the thread that starts it).
cpu_set_t affinity() {
  cpu_set_t set;
  CPU_ZERO(&set);
  pthread_getaffinity_np(pthread_self(), sizeof(set), &set);
  return set;
}
void restore(const cpu_set_t& set) { pthread_setaffinity_np(pthread_self(), sizeof(set), &set); }

// Arg = CPU k; k = 0 is the reference: one thread alone on CPU 0 (pair rate / lone rate = 2 for
// two separate cores, about 1 for sibling hyperthreads).
void BM_PairFma(benchmark::State& state) {
  const int k = static_cast<int>(state.range(0));
  const int64_t iters = kRegions * kItersPerRegion / 2;
  float sink = 0.0f;
  bool pinned = true;
  for (auto _ : state) {
#pragma omp parallel num_threads(k == 0 ? 1 : 2) reduction(+ : sink) reduction(&& : pinned)
    {
      const cpu_set_t before = affinity();
      pinned = pin(omp_get_thread_num() == 0 ? 0 : k);
      sink += fma_chains(iters, static_cast<float>(omp_get_thread_num()));
      restore(before);
    }
  }
  benchmark::DoNotOptimize(sink);
  if (!pinned) state.SkipWithError(("cannot pin a thread to CPU " + std::to_string(k)).c_str());
  const double threads = k == 0 ? 1.0 : 2.0;
  state.counters["GFLOPs"] = benchmark::Counter(threads * kFlopsPerIter * static_cast<double>(iters) *
                                                    1e-9 * static_cast<double>(state.iterations()),
                                                benchmark::Counter::kIsRate);
}

void thread_args(benchmark::internal::Benchmark* b) {
  for (int64_t t : mxqat::bench::thread_counts()) b->Arg(t);
  b->Unit(benchmark::kMillisecond)->MinTime(0.5)->UseRealTime();
}

void read_args(benchmark::internal::Benchmark* b) {
  for (int64_t kb : {256, 2048, 8192, 65536})
    for (int64_t t : mxqat::bench::thread_counts()) b->Args({t, kb});
  b->Unit(benchmark::kMillisecond)->MinTime(0.5)->UseRealTime();
}

void pair_args(benchmark::internal::Benchmark* b) {
  const int cpus = std::max(1, static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)));
  for (int k = 0; k < cpus; ++k) b->Arg(k);
  b->Unit(benchmark::kMillisecond)->MinTime(0.3)->UseRealTime();
}

BENCHMARK(BM_FmaOneRegion)->Apply(thread_args);
BENCHMARK(BM_FmaManyRegions)->Apply(thread_args);
BENCHMARK(BM_FmaManyRegionsDynamic)->Apply(thread_args);
BENCHMARK(BM_ReadPrivate)->Apply(read_args);
BENCHMARK(BM_Triad)->Apply(thread_args);
BENCHMARK(BM_PairFma)->Apply(pair_args);
BENCHMARK(BM_DotRate)->DenseRange(0, 2)->Unit(benchmark::kMillisecond)->MinTime(0.5)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
