// Plain-array kernels shared by ops, layers, quant and the inference runtime, so that training
// and inference run literally the same arithmetic. Not differentiable: see ops.h for that.
#pragma once
#include <cstdint>

namespace mxqat::autograd {

// C[M, N] = op(A) op(B) (+ C if accumulate), op = optional transpose; A is [M, K] or, if
// trans_a, [K, M]; B is [K, N] or, if trans_b, [N, K]; all row-major and contiguous.
// The output is cut into parts that depend on the shape alone (never on the thread count) and
// each part is one single-threaded Eigen product, so the bits never depend on OMP_NUM_THREADS.
void gemm(const float* a, bool trans_a, const float* b, bool trans_b, float* c, int64_t m,
          int64_t n, int64_t k, bool accumulate = false);

// out[j] = sum_i x[i, j] over rows, x [rows, cols]; fixed summation order.
void sum_rows(const float* x, int64_t rows, int64_t cols, float* out, bool accumulate = false);

}  // namespace mxqat::autograd
