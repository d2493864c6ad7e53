// Small loop helpers shared by the op family files (autograd/ops/*.cpp): fixed-chunk parallel
// loops and fixed-order row reductions. Internal to autograd/ops; not differentiable, no Vars.
// Every helper gives the same bits for any OpenMP thread count: work is cut into pieces whose
// boundaries depend only on the sizes, and each reduction runs inside one piece in a fixed order.
#pragma once
#include <algorithm>
#include <cstdint>

namespace mxqat::autograd::detail {

// Below this many elements (or element-operations), a loop stays on one thread.
constexpr int64_t kParallelMin = 1 << 15;
// Elementwise loops are cut into chunks of this many elements (a multiple of every SIMD width,
// so each chunk starts on the same alignment as the tensor and Eigen takes the same paths).
constexpr int64_t kChunk = 8192;

// body(begin, end) over [0, n) in chunks of kChunk; chunks run in parallel when n is large.
template <class F>
void for_chunks(int64_t n, F&& body) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (n > kParallelMin && chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) body(c * kChunk, std::min(n, (c + 1) * kChunk));
}

// body(r) for each of `rows` independent rows of `cols` elements.
template <class F>
void for_rows(int64_t rows, int64_t cols, F&& body) {
#pragma omp parallel for schedule(static) if (rows > 1 && rows * cols > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) body(r);
}

// Fixed-order sums: 16 independent lanes (so GCC vectorises without -ffast-math), combined in a
// fixed tree. The order depends on n only, never on the pointer's alignment or the thread count.
constexpr int kLanes = 16;

inline float lanes_total(const float* acc) {
  float s8[8];
  for (int j = 0; j < 8; ++j) s8[j] = acc[j] + acc[j + 8];
  for (int j = 0; j < 4; ++j) s8[j] += s8[j + 4];
  return (s8[0] + s8[2]) + (s8[1] + s8[3]);
}

inline float row_sum(const float* x, int64_t n) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += x[i + j];
  for (int j = 0; i < n; ++i, ++j) acc[j] += x[i];
  return lanes_total(acc);
}

inline float row_dot(const float* x, const float* y, int64_t n) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += x[i + j] * y[i + j];
  for (int j = 0; i < n; ++i, ++j) acc[j] += x[i] * y[i];
  return lanes_total(acc);
}

// sum (x - c)
inline float row_sum_shifted(const float* x, float c, int64_t n) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += x[i + j] - c;
  for (int j = 0; i < n; ++i, ++j) acc[j] += x[i] - c;
  return lanes_total(acc);
}

// sum (x - c)^2, for variances computed in two passes.
inline float row_sq_dev(const float* x, float c, int64_t n) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) {
      const float d = x[i + j] - c;
      acc[j] += d * d;
    }
  for (int j = 0; i < n; ++i, ++j) acc[j] += (x[i] - c) * (x[i] - c);
  return lanes_total(acc);
}

// Max over lanes (vectorises; a single running max would not without -ffinite-math-only).
// NaNs are skipped; an all-NaN or empty row gives -inf.
inline float row_max(const float* x, int64_t n) {
  float acc[kLanes];
  for (int j = 0; j < kLanes; ++j) acc[j] = -__builtin_huge_valf();
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
  for (int j = 0; i < n; ++i, ++j) acc[j] = x[i] > acc[j] ? x[i] : acc[j];
  float m = acc[0];
  for (int j = 1; j < kLanes; ++j) m = acc[j] > m ? acc[j] : m;
  return m;
}

// Sum of all n elements: per-chunk partial sums (in parallel), then the partials in order.
float total_sum(const float* x, int64_t n);

}  // namespace mxqat::autograd::detail
