// Block Hadamard rotation along the reduction axis (QuaRot / the FP4 training recipes): each
// 32-element block b of a row (32 = the MX block) is replaced by R b with R = H D / sqrt(32),
// H the Sylvester Hadamard matrix of size 32 (entries (-1)^popcount(i & j)) and D = diag(signs),
// signs all +1 (seed 0, "fixed") or seeded random +-1. R is orthogonal, so rotating both operands
// of a GEMM along K keeps the product: (x R^T)(w R^T)^T = x w^T in exact arithmetic, while an
// outlier in a block is spread over its 32 entries before quantization. A tail shorter than 32
// (K not a multiple of 32) is left as it is. Deterministic, no state, any thread count.
#pragma once
#include <array>
#include <cstdint>
#include <string>

namespace mxqat::quant {

inline constexpr int64_t kHadamardBlock = 32;

struct Hadamard {
  uint64_t seed = 0;  // 0: fixed (every sign +1); else the signs drawn from this seed
  std::array<float, kHadamardBlock> signs() const;  // D's diagonal
  std::string describe() const;  // "hadamard" or "hadamard:SEED"
  bool operator==(const Hadamard& o) const { return seed == o.seed; }
};

// y [R, K] = x [R, K] with every full 32-block of every row rotated: y_b = x_b D H / sqrt(32)
// (forward), or the inverse y_b = x_b H D / sqrt(32) (H is symmetric, R^-1 = R^T). x == y is
// allowed. The fast Walsh-Hadamard transform: 5 butterfly stages, then the scaling.
void hadamard_rows(const Hadamard& h, const float* x, int64_t R, int64_t K, float* y, bool inverse = false);
// The same as a dense 32 x 32 matrix product in double, rounded once (tests check the fast
// transform against it within float rounding).
void hadamard_rows_dense(const Hadamard& h, const float* x, int64_t R, int64_t K, float* y, bool inverse = false);

}  // namespace mxqat::quant
