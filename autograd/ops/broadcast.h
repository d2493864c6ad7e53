// NumPy broadcasting for the op family files: the broadcast shape, a loop plan that merges
// dimensions so the inner loop is long and contiguous, the binary kernel that runs it, and the
// sum over axes that undoes a broadcast in backward. Internal to autograd/ops; not differentiable.
// Everything is deterministic: each output element is computed by one thread in a fixed order.
#pragma once
#include <vector>

#include "autograd/ops/row_kernels.h"
#include "autograd/tensor.h"

namespace mxqat::autograd::detail {

// NumPy rule (trailing dims aligned, size 1 stretches); `op` names the caller in the error.
Shape broadcast_shape(const char* op, const Shape& a, const Shape& b);

// out = a (op) b with a, b broadcast to out, as at most 4 merged dims. Dims of size 1 are dropped
// and neighbours broadcast the same way are merged, so [B, T, C] + [C] becomes [B*T, C].
struct BroadcastPlan {
  int64_t size[4] = {1, 1, 1, 1};
  int64_t sa[4] = {0, 0, 0, 0};  // element strides of a (0 where a is broadcast)
  int64_t sb[4] = {0, 0, 0, 0};
  int64_t outer() const { return size[0] * size[1] * size[2]; }
};
BroadcastPlan plan_broadcast(const Shape& out, const Shape& a, const Shape& b);

// y[i] = f(a[i*sa], b[i*sb]) for i < n, with the stride cases split so each loop vectorises.
template <class F>
inline void binary_row(const float* a, int64_t sa, const float* b, int64_t sb, float* y,
                       int64_t n, F f) {
  if (sa && sb) {
    for (int64_t i = 0; i < n; ++i) y[i] = f(a[i], b[i]);
  } else if (sa) {
    const float bv = *b;
    for (int64_t i = 0; i < n; ++i) y[i] = f(a[i], bv);
  } else if (sb) {
    const float av = *a;
    for (int64_t i = 0; i < n; ++i) y[i] = f(av, b[i]);
  } else {
    std::fill(y, y + n, f(*a, *b));
  }
}

// y (contiguous, the plan's full shape) = f(a, b) broadcast. Parallel over (outer row, chunk).
template <class F>
void broadcast_binary(const BroadcastPlan& p, const float* a, const float* b, float* y, F f) {
  const int64_t inner = p.size[3], outer = p.outer();
  const int64_t per_row = (inner + kChunk - 1) / kChunk, tasks = outer * per_row;
#pragma omp parallel for schedule(static) if (tasks > 1 && outer * inner > kParallelMin)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t o = t / per_row, c0 = (t % per_row) * kChunk;
    const int64_t i2 = o % p.size[2], i1 = (o / p.size[2]) % p.size[1],
                  i0 = o / (p.size[2] * p.size[1]);
    const int64_t oa = i0 * p.sa[0] + i1 * p.sa[1] + i2 * p.sa[2] + c0 * p.sa[3];
    const int64_t ob = i0 * p.sb[0] + i1 * p.sb[1] + i2 * p.sb[2] + c0 * p.sb[3];
    binary_row(a + oa, p.sa[3], b + ob, p.sb[3], y + o * inner + c0,
               std::min(kChunk, inner - c0), f);
  }
}

// out = x summed over the axes where `reduced` is true (out holds the kept axes in order).
void reduce_sum(const float* x, const Shape& shape, const std::vector<bool>& reduced, float* out);

// g summed over the axes that broadcasting stretched, so it has `target`'s shape.
Tensor sum_to(Tensor g, const Shape& target);

// x broadcast (copied) to `target`.
Tensor expand_to(const Tensor& x, const Shape& target);

}  // namespace mxqat::autograd::detail
