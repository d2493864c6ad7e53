// Codec throughput: fake_quant, encode and decode of every MX codec and nvfp4 on a 4096 x 4096
// float32 tensor at 1 and 2 OpenMP threads, in GB/s, next to memcpy of the same bytes. Before
// timing, every fast path is checked bitwise against its scalar reference on a slice.
//   build-codec/bench/bench_codec --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// Bytes counted: fake_quant 4 read + 4 written per element; encode 4 read + codes + scales
// written; decode codes + scales read + 4 written; memcpy 4 read + 4 written per element.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "quant/codec/codec.h"

namespace {

using mxqat::quant::Codec;
using mxqat::quant::CodecOptions;
using mxqat::quant::EncodedTensor;

constexpr int64_t kR = 4096, kK = 4096, kN = kR * kK;

// 64-byte aligned like the framework's tensors (Eigen with AVX-512), so both memcpy and the
// codecs may use streaming stores.
struct Buffer {
  float* p;
  explicit Buffer(float fill) : p(static_cast<float*>(std::aligned_alloc(64, kN * 4))) {
    for (int64_t i = 0; i < kN; ++i) p[i] = fill;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { std::free(p); }
  float* data() const { return p; }
};

const Buffer& input() {
  static Buffer x(0.0f);
  static const bool filled = [] {
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::uniform_int_distribution<int> ex(-8, 8);
    for (int64_t i = 0; i < kN; ++i) x.p[i] = std::ldexp(nd(rng), ex(rng));  // varied block amax
    return true;
  }();
  (void)filled;
  return x;
}

const Buffer& output() {
  static const Buffer y(1.0f);
  return y;
}

void set_rate(benchmark::State& st, int64_t bytes_per_iter) {
  st.SetBytesProcessed(st.iterations() * bytes_per_iter);
  st.counters["GB/s"] = benchmark::Counter(static_cast<double>(st.iterations() * bytes_per_iter) / 1e9,
                                           benchmark::Counter::kIsRate);
}

bool same_bits(const float* a, const float* b, int64_t n) { return std::memcmp(a, b, static_cast<size_t>(n) * 4) == 0; }

// Fast == reference on the first 64 rows (and on a ragged slice); abort if not.
void check_against_reference(const Codec& c, const std::string& label) {
  const float* x = input().data();
  for (int64_t K : {kK, int64_t(1000)}) {
    const int64_t R = 64, n = R * K;
    std::vector<float> y(n), y_ref(n), d(n), d_ref(n);
    std::vector<uint8_t> m(n), m_ref(n);
    c.fake_quant(x, R, K, y.data(), m.data());
    c.fake_quant_reference(x, R, K, y_ref.data(), m_ref.data());
    const EncodedTensor e = c.encode(x, R, K), e_ref = c.encode_reference(x, R, K);
    c.decode(e, d.data());
    c.decode_reference(e, d_ref.data());
    const bool ok = same_bits(y.data(), y_ref.data(), n) && m == m_ref && e.codes == e_ref.codes &&
                    e.scale_codes == e_ref.scale_codes && same_bits(d.data(), d_ref.data(), n) &&
                    same_bits(d.data(), y.data(), n);
    if (!ok) {
      std::fprintf(stderr, "bench_codec: %s fast path != scalar reference (K=%lld); not timing\n", label.c_str(),
                   static_cast<long long>(K));
      std::exit(1);
    }
  }
  // The whole tensor (this takes the streaming-store path) against the portable build.
  std::vector<float> y_port(static_cast<size_t>(kN));
  c.fake_quant(x, kR, kK, output().data());
  c.fake_quant_portable(x, kR, kK, y_port.data());
  if (!same_bits(output().data(), y_port.data(), kN)) {
    std::fprintf(stderr, "bench_codec: %s fast fake_quant != portable on the full tensor\n", label.c_str());
    std::exit(1);
  }
}

void bm_memcpy(benchmark::State& st) {
  omp_set_num_threads(static_cast<int>(st.range(0)));
  const float* x = input().data();
  float* y = output().data();
  for (auto _ : st) {
#pragma omp parallel
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      const int64_t lo = kN * t / nt, hi = kN * (t + 1) / nt;
      std::memcpy(y + lo, x + lo, static_cast<size_t>(hi - lo) * 4);
    }
    benchmark::ClobberMemory();
  }
  set_rate(st, kN * 8);
}

void bm_fake_quant(benchmark::State& st, const Codec& c) {
  omp_set_num_threads(static_cast<int>(st.range(0)));
  for (auto _ : st) {
    c.fake_quant(input().data(), kR, kK, output().data());
    benchmark::ClobberMemory();
  }
  set_rate(st, kN * 8);
}

void bm_encode(benchmark::State& st, const Codec& c) {
  omp_set_num_threads(static_cast<int>(st.range(0)));
  int64_t bytes = 0;
  for (auto _ : st) {
    EncodedTensor e = c.encode(input().data(), kR, kK);
    bytes = kN * 4 + mxqat::quant::encoded_bytes(e);
    benchmark::DoNotOptimize(e.codes.data());
  }
  set_rate(st, bytes);
}

void bm_decode(benchmark::State& st, const Codec& c) {
  omp_set_num_threads(static_cast<int>(st.range(0)));
  const EncodedTensor e = c.encode(input().data(), kR, kK);
  for (auto _ : st) {
    c.decode(e, output().data());
    benchmark::ClobberMemory();
  }
  set_rate(st, mxqat::quant::encoded_bytes(e) + kN * 4);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  std::vector<std::pair<std::string, Codec>> codecs;
  for (const char* name : {"mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4", "mxint8", "nvfp4"})
    codecs.emplace_back(name, Codec::make(name));
  CodecOptions given;
  given.global_amax = 40.0f;  // NVFP4 with a caller-supplied amax: no extra pass over the tensor
  codecs.emplace_back("nvfp4_given_amax", Codec::make("nvfp4", given));
  for (auto& [label, c] : codecs) check_against_reference(c, label);

  benchmark::RegisterBenchmark("memcpy", bm_memcpy)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
  for (auto& [label, c] : codecs) {
    const Codec* cp = &c;
    benchmark::RegisterBenchmark(("fake_quant/" + label).c_str(), [cp](benchmark::State& s) { bm_fake_quant(s, *cp); })
        ->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("encode/" + label).c_str(), [cp](benchmark::State& s) { bm_encode(s, *cp); })
        ->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("decode/" + label).c_str(), [cp](benchmark::State& s) { bm_decode(s, *cp); })
        ->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
