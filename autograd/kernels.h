// Plain-array kernels shared by ops, layers, quant and the inference runtime, so that training
// and inference run literally the same arithmetic. Not differentiable: see ops.h for that.
#pragma once
#include <cstdint>
#include <functional>

namespace mxqat::autograd {

// C[M, N] = op(A) op(B) (+ C if accumulate), op = optional transpose; A is [M, K] or, if
// trans_a, [K, M]; B is [K, N] or, if trans_b, [N, K]; all row-major and contiguous.
// Bits: each C[i, j] is one sequential fma chain over p = 0..K-1 starting from 0 (or from the old
// C[i, j] if accumulate): acc = fma(A[i, p], B[p, j], acc), exactly as gemm_reference writes it.
// So they never depend on blocking, tiling, OMP_NUM_THREADS or the instruction set. Packed and
// cache-blocked (autograd/ops/gemm.cpp): AVX-512 micro-kernels where the build targets
// AVX-512F, the portable ones otherwise; OpenMP over output rectangles. No allocation per call
// beyond per-thread pack buffers kept for the next call.
// With `mask` ([M, N] bytes, like C), each finished chain is then multiplied by float(mask[i, j]):
// C[i, j] = acc * mask[i, j], the clipped STE's 0/1 gradient mask applied as C is stored rather
// than in a pass of its own.
void gemm(const float* a, bool trans_a, const float* b, bool trans_b, float* c, int64_t m,
          int64_t n, int64_t k, bool accumulate = false, const uint8_t* mask = nullptr);

// Work that produces a GEMM's operands, run inside the GEMM's own parallel region: each of the
// region's T threads calls prepare(t, T) (T = 1 when the product is too small to split), then all
// wait at a barrier before the product starts. qgemm fake-quantizes its input and weight this way,
// so a quantized GEMM forks its threads once, as a plain one does (a parallel region costs a
// wake-up of every sleeping worker). prepare must split its work by t alone and must not open
// parallel regions of its own.
using GemmPrepare = std::function<void(int t, int T)>;
void gemm(const GemmPrepare& prepare, const float* a, bool trans_a, const float* b, bool trans_b,
          float* c, int64_t m, int64_t n, int64_t k, bool accumulate = false,
          const uint8_t* mask = nullptr);

// The causal structure of an attention product, which lets gemm_serial skip work that can only
// meet zeros. It is judged per micro-tile (a few rows of C): rows i of a tile are treated alike.
//   kUpperUnwritten  C[i, j] is needed for j <= i only (S = Q K^T, dP = dO V^T): tiles wholly
//                    above the diagonal are not computed and keep whatever C held.
//   kStepsUpToRow    op(A)[i, p] = 0 for p > i (A = P or dS): chains stop after the tile's last
//                    row (O = P V, dQ = dS K).
//   kStepsFromRow    op(A)[i, p] = 0 for p < i (A = P^T or dS^T): chains start at the tile's
//                    first row (dV = P^T dO, dK = dS^T Q).
// The steps skipped hold exact zeros of A, and fma(0, b, acc) = acc for finite b and any chain
// that starts at +0 (it never becomes -0), so each computed C[i, j] has gemm's bits.
enum class Causal { kNone, kUpperUnwritten, kStepsUpToRow, kStepsFromRow };

// gemm on sub-matrices of larger row-major arrays, on the calling thread: A's rows lie lda floats
// apart, B's ldb, C's ldc. For callers that already share their work among threads (attention
// runs one (batch, head) pair per thread on [T, D] slices of [B, T, C] activations). gemm's bits.
void gemm_serial(const float* a, int64_t lda, bool trans_a, const float* b, int64_t ldb,
                 bool trans_b, float* c, int64_t ldc, int64_t m, int64_t n, int64_t k,
                 bool accumulate = false, Causal causal = Causal::kNone);

// The same blocked GEMM on the portable micro-kernels (what a build without AVX-512 runs);
// gemm's bits. For tests and benchmarks.
void gemm_portable(const float* a, bool trans_a, const float* b, bool trans_b, float* c,
                   int64_t m, int64_t n, int64_t k, bool accumulate = false,
                   const uint8_t* mask = nullptr);

// The definition above as plain loops, one thread: what gemm and gemm_portable are tested against.
void gemm_reference(const float* a, bool trans_a, const float* b, bool trans_b, float* c,
                    int64_t m, int64_t n, int64_t k, bool accumulate = false,
                    const uint8_t* mask = nullptr);

// out[j] = sum_i x[i, j] over rows, x [rows, cols]; fixed summation order.
void sum_rows(const float* x, int64_t rows, int64_t cols, float* out, bool accumulate = false);

}  // namespace mxqat::autograd
