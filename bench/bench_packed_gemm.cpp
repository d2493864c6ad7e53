// Inference products with a 4096 x 4096 weight: packed_linear (fused decode + product) on MXFP4 and
// MXFP8 (e4m3) weights against the same weights decoded to float32 and multiplied by Eigen, for
// matrix-vector (M = 1) and batch 64, at 1 and 2 OpenMP threads (Eigen is built with
// EIGEN_DONT_PARALLELIZE, so for 2 threads its product is split over weight rows with OpenMP, the
// same partition as packed_linear). Before timing, packed_linear is checked against its scalar
// reference, its portable build and Eigen.
//   build/bench/bench_packed_gemm --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// GB/s counts the weight bytes read per product: codes + scale codes, or 4 per float32 weight.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <Eigen/Core>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "quant/codec/codec.h"
#include "quant/codec/gemm/packed_gemm.h"

namespace {

using mxqat::quant::Codec;
using mxqat::quant::EncodedTensor;
using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

constexpr int64_t kN = 4096, kK = 4096, kMaxM = 64;

const std::vector<float>& weights() {  // [kN, kK], varied block amax
  static const std::vector<float> w = [] {
    std::vector<float> v(static_cast<size_t>(kN * kK));
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::uniform_int_distribution<int> ex(-4, 4);
    for (float& f : v) f = std::ldexp(nd(rng), ex(rng));
    return v;
  }();
  return w;
}

const std::vector<float>& inputs() {  // [kMaxM, kK]
  static const std::vector<float> x = [] {
    std::vector<float> v(static_cast<size_t>(kMaxM * kK));
    std::mt19937 rng(2);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (float& f : v) f = nd(rng);
    return v;
  }();
  return x;
}

struct Weight {
  EncodedTensor packed;
  std::vector<float> decoded;  // [kN, kK] float32, what Eigen multiplies
};

const Weight& weight(const std::string& codec) {
  static std::vector<std::pair<std::string, Weight>> cache;
  for (auto& [name, w] : cache)
    if (name == codec) return w;
  const Codec c = Codec::make(codec);
  Weight w;
  w.packed = c.encode(weights().data(), kN, kK);
  w.decoded.resize(static_cast<size_t>(kN * kK));
  c.decode(w.packed, w.decoded.data());
  cache.emplace_back(codec, std::move(w));
  return cache.back().second;
}

void fail(const std::string& what) {
  std::fprintf(stderr, "bench_packed_gemm: %s; not timing\n", what.c_str());
  std::exit(1);
}

// y [M, kN] = x [M, kK] · Wᵀ by Eigen, weight rows split over the OpenMP threads.
void eigen_linear(const float* w, const float* x, int64_t M, float* y) {
#pragma omp parallel
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t n0 = kN * t / nt, nn = kN * (t + 1) / nt - n0;
    const Eigen::Map<const RowMajor> W(w + n0 * kK, nn, kK);
    if (M == 1) {
      Eigen::Map<Eigen::VectorXf> yv(y + n0, nn);
      yv.noalias() = W * Eigen::Map<const Eigen::VectorXf>(x, kK);
    } else {
      Eigen::Map<RowMajor, 0, Eigen::OuterStride<>> Y(y + n0, M, nn, Eigen::OuterStride<>(kN));
      Y.noalias() = Eigen::Map<const RowMajor>(x, M, kK) * W.transpose();
    }
  }
}

// packed_linear == portable (bitwise) on the whole weight; on its first 256 rows == reference
// (bitwise for the batch kernel, within 1e-5 of Σ|x·w| for matrix-vector); Eigen within 1e-4.
void check(const std::string& codec) {
  const Weight& w = weight(codec);
  const float* x = inputs().data();
  const int64_t Ns = 256;
  const EncodedTensor slice = Codec::make(codec).encode(weights().data(), Ns, kK);
  for (const int64_t M : {int64_t(1), kMaxM}) {
    std::vector<float> y(static_cast<size_t>(M * kN)), y_port(y.size()), y_eigen(y.size()), y_ref(M * Ns);
    mxqat::quant::packed_linear(w.packed, x, M, nullptr, y.data());
    mxqat::quant::packed_linear_portable(w.packed, x, M, nullptr, y_port.data());
    mxqat::quant::packed_linear_reference(slice, x, M, nullptr, y_ref.data());
    eigen_linear(w.decoded.data(), x, M, y_eigen.data());
    if (std::memcmp(y.data(), y_port.data(), y.size() * 4) != 0) fail(codec + ": fast != portable");
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < kN; ++n) {
        double mag = 0;
        for (int64_t k = 0; k < kK; ++k) mag += std::fabs(double(x[m * kK + k]) * w.decoded[n * kK + k]);
        const float got = y[m * kN + n];
        if (n < Ns) {
          const float ref = y_ref[m * Ns + n];
          if (M >= mxqat::quant::kPackedBatchRows ? got != ref : std::fabs(got - ref) > 1e-5 * mag)
            fail(codec + ": fast != reference at M=" + std::to_string(M) + " n=" + std::to_string(n));
        }
        if (std::fabs(got - y_eigen[m * kN + n]) > 1e-4 * mag) fail(codec + ": fast far from Eigen");
      }
  }
}

void set_rate(benchmark::State& st, int64_t weight_bytes) {
  st.counters["GB/s"] = benchmark::Counter(static_cast<double>(st.iterations() * weight_bytes) / 1e9,
                                           benchmark::Counter::kIsRate);
}

void bm_packed(benchmark::State& st, const std::string& codec) {
  omp_set_num_threads(static_cast<int>(st.range(1)));
  const int64_t M = st.range(0);
  const Weight& w = weight(codec);
  std::vector<float> y(static_cast<size_t>(M * kN));
  for (auto _ : st) {
    mxqat::quant::packed_linear(w.packed, inputs().data(), M, nullptr, y.data());
    benchmark::ClobberMemory();
  }
  set_rate(st, mxqat::quant::encoded_bytes(w.packed));
}

void bm_eigen(benchmark::State& st) {
  omp_set_num_threads(static_cast<int>(st.range(1)));
  const int64_t M = st.range(0);
  const Weight& w = weight("mxfp4");  // any float32 weights of this size
  std::vector<float> y(static_cast<size_t>(M * kN));
  for (auto _ : st) {
    eigen_linear(w.decoded.data(), inputs().data(), M, y.data());
    benchmark::ClobberMemory();
  }
  set_rate(st, kN * kK * 4);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const char* codecs[] = {"mxfp4", "mxfp8_e4m3"};
  for (const char* c : codecs) check(c);
  const auto shapes = [](benchmark::internal::Benchmark* b) {
    b->ArgNames({"M", "threads"});
    for (int64_t M : {int64_t(1), kMaxM})
      for (int64_t t : {1, 2}) b->Args({M, t});
    b->UseRealTime()->Unit(benchmark::kMicrosecond);
  };
  benchmark::RegisterBenchmark("float32_eigen", bm_eigen)->Apply(shapes);
  for (const char* c : codecs) {
    const std::string name = c;
    benchmark::RegisterBenchmark(("packed/" + name).c_str(), [name](benchmark::State& s) { bm_packed(s, name); })
        ->Apply(shapes);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
