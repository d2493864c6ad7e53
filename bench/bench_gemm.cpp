// GEMM throughput on the shapes the framework runs: the eight GEMMs of the MLP 784-1024-1024-10
// training step (batch 256; forward, dx and dw as autograd/ops/matmul.cpp `linear` calls them)
// and the im2col GEMMs of the Fashion CNN (batch 128, 5x5 kernels) and of a 3x3 conv. Three
// kernels side by side, 1 and 2 OpenMP threads, GFLOP/s:
//   eigen    - the GEMM mxqat had before the packed kernel: the output cut into 1..4 parts by
//              shape, one single-threaded Eigen product per part (kept here only);
//   packed   - autograd::gemm (AVX-512 micro-kernels on this build);
//   portable - autograd::gemm_portable (what a build without AVX-512 runs).
// Before timing, packed and portable are checked bitwise against autograd::gemm_reference.
//   build/bench/bench_gemm --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//   build/bench/bench_gemm --benchmark_filter='mlp_.*/(eigen|packed)/'   (a subset)
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "autograd/kernels.h"
#include "autograd/tensor.h"

namespace {

using namespace mxqat::autograd;

struct Shape3 {
  const char* name;
  int64_t m, n, k;
  bool trans_a, trans_b;
};

// Named as in the model; m, n, k as gemm receives them.
const Shape3 kShapes[] = {
    {"mlp_fc1_fwd", 256, 1024, 784, false, true},  // y = x w^T
    {"mlp_fc2_fwd", 256, 1024, 1024, false, true},
    {"mlp_head_fwd", 256, 10, 1024, false, true},
    {"mlp_head_dx", 256, 1024, 10, false, false},  // dx = dy w
    {"mlp_fc2_dx", 256, 1024, 1024, false, false},
    {"mlp_head_dw", 10, 1024, 256, true, false},  // dw = dy^T x
    {"mlp_fc2_dw", 1024, 1024, 256, true, false},
    {"mlp_fc1_dw", 1024, 784, 256, true, false},
    {"cnn5_conv1_fwd", 128 * 28 * 28, 16, 25, false, true},  // [B*H*W, C*k*k] x [O, C*k*k]^T
    {"cnn5_conv1_dw", 16, 25, 128 * 28 * 28, true, false},
    {"cnn5_conv2_fwd", 128 * 14 * 14, 32, 400, false, true},
    {"cnn5_conv2_dx", 128 * 14 * 14, 400, 32, false, false},
    {"cnn5_conv2_dw", 32, 400, 128 * 14 * 14, true, false},
    {"conv3x3_fwd", 32 * 16 * 16, 64, 32 * 9, false, true},  // 32x16x16, 32 -> 64 channels
    {"conv3x3_dx", 32 * 16 * 16, 32 * 9, 64, false, false},
    {"conv3x3_dw", 64, 32 * 9, 32 * 16 * 16, true, false},
};

// ---- the Eigen GEMM this kernel replaced (autograd/ops/matmul.cpp before the packed kernel) ----
using StrideMap = Eigen::Map<const RowMat, 0, Eigen::OuterStride<>>;
using MutStrideMap = Eigen::Map<RowMat, 0, Eigen::OuterStride<>>;

void gemm_eigen(const float* a, bool trans_a, const float* b, bool trans_b, float* c, int64_t m,
                int64_t n, int64_t k) {
  const bool rows = m > n;
  const int64_t dim = rows ? m : n;
  int64_t parts = std::clamp<int64_t>(dim / 256, 1, 4);
  if (m * n * k < (int64_t{1} << 21)) parts = 1;
  const int64_t chunk = ((dim + parts - 1) / parts + 15) / 16 * 16;
  parts = (dim + chunk - 1) / chunk;
  const int64_t a_rows = trans_a ? k : m, a_cols = trans_a ? m : k;
  const int64_t b_rows = trans_b ? n : k, b_cols = trans_b ? k : n;
#pragma omp parallel for schedule(static) if (parts > 1)
  for (int64_t t = 0; t < parts; ++t) {
    const int64_t lo = t * chunk;
    const int64_t r0 = rows ? lo : 0, c0 = rows ? 0 : lo;
    const int64_t mr = rows ? std::min(chunk, m - lo) : m;
    const int64_t nc = rows ? n : std::min(chunk, n - lo);
    StrideMap A(a, a_rows, a_cols, Eigen::OuterStride<>(a_cols));
    StrideMap B(b, b_rows, b_cols, Eigen::OuterStride<>(b_cols));
    MutStrideMap C(c + r0 * n + c0, mr, nc, Eigen::OuterStride<>(n));
    auto at = [&](auto&& lhs) {
      if (trans_b) C.noalias() = lhs * B.middleRows(c0, nc).transpose();
      else C.noalias() = lhs * B.middleCols(c0, nc);
    };
    if (trans_a) at(A.middleCols(r0, mr).transpose());
    else at(A.middleRows(r0, mr));
  }
}

struct Operands {
  Tensor a, b, c;
};

Operands make_operands(const Shape3& s) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  Operands o{Tensor(Shape{s.m * s.k}), Tensor(Shape{s.k * s.n}), Tensor(Shape{s.m * s.n})};
  for (Tensor* t : {&o.a, &o.b}) std::generate(t->data(), t->data() + t->size(), [&] { return u(rng); });
  return o;
}

// packed and portable against the definition (one fma chain per element, autograd/kernels.h),
// with and without accumulation, on sampled rows and columns (the first, middle and last eight of
// each; a full reference product would take longer than the benchmark); exits on a mismatch.
void check_against_reference(const Shape3& s) {
  const Operands o = make_operands(s);
  std::vector<int64_t> rows, cols;
  for (int64_t base : {int64_t{0}, s.m / 2, s.m - 8})
    for (int64_t i = std::max<int64_t>(base, 0); i < std::min(s.m, base + 8); ++i) rows.push_back(i);
  for (int64_t base : {int64_t{0}, s.n / 2, s.n - 8})
    for (int64_t j = std::max<int64_t>(base, 0); j < std::min(s.n, base + 8); ++j) cols.push_back(j);
  for (bool acc : {false, true}) {
    Tensor fast(Shape{s.m * s.n}), port(Shape{s.m * s.n});
    for (Tensor* t : {&fast, &port}) std::fill(t->data(), t->data() + t->size(), 0.5f);
    gemm(o.a.data(), s.trans_a, o.b.data(), s.trans_b, fast.data(), s.m, s.n, s.k, acc);
    gemm_portable(o.a.data(), s.trans_a, o.b.data(), s.trans_b, port.data(), s.m, s.n, s.k, acc);
    for (int64_t i : rows)
      for (int64_t j : cols) {
        float ref = acc ? 0.5f : 0.f;
        for (int64_t p = 0; p < s.k; ++p)
          ref = std::fma(s.trans_a ? o.a[p * s.m + i] : o.a[i * s.k + p],
                         s.trans_b ? o.b[j * s.k + p] : o.b[p * s.n + j], ref);
        const float f = fast[i * s.n + j], q = port[i * s.n + j];
        if (std::memcmp(&f, &ref, 4) != 0 || std::memcmp(&q, &ref, 4) != 0) {
          std::fprintf(stderr, "%s (accumulate %d) C[%ld, %ld]: gemm %a, gemm_portable %a, "
                       "reference %a\n", s.name, acc, static_cast<long>(i), static_cast<long>(j),
                       f, q, ref);
          std::exit(1);
        }
      }
  }
}

enum class Impl { kEigen, kPacked, kPortable };

void bm_gemm(benchmark::State& st, const Shape3& s, Impl impl) {
  omp_set_num_threads(static_cast<int>(st.range(0)));
  Operands o = make_operands(s);
  for (auto _ : st) {
    if (impl == Impl::kEigen)
      gemm_eigen(o.a.data(), s.trans_a, o.b.data(), s.trans_b, o.c.data(), s.m, s.n, s.k);
    else if (impl == Impl::kPacked)
      gemm(o.a.data(), s.trans_a, o.b.data(), s.trans_b, o.c.data(), s.m, s.n, s.k);
    else
      gemm_portable(o.a.data(), s.trans_a, o.b.data(), s.trans_b, o.c.data(), s.m, s.n, s.k);
    benchmark::ClobberMemory();
  }
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * s.m * s.n * s.k * st.iterations() / 1e9,
                                              benchmark::Counter::kIsRate);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  for (const Shape3& s : kShapes) check_against_reference(s);
  const std::pair<const char*, Impl> impls[] = {
      {"eigen", Impl::kEigen}, {"packed", Impl::kPacked}, {"portable", Impl::kPortable}};
  for (const Shape3& s : kShapes)
    for (auto [label, impl] : impls) {
      const Shape3* sp = &s;
      const Impl im = impl;
      benchmark::RegisterBenchmark((std::string(s.name) + "/" + label).c_str(),
                                   [sp, im](benchmark::State& st) { bm_gemm(st, *sp, im); })
          ->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
    }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
