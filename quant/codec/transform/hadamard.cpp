// Block Hadamard rotation (hadamard.h).
#include "quant/codec/transform/hadamard.h"

#include <algorithm>
#include <bitset>
#include <cmath>
#include <cstring>

namespace mxqat::quant {

namespace {
constexpr int kB = static_cast<int>(kHadamardBlock);
constexpr float kNorm = 0.17677669529663687f;  // 1 / sqrt(32), rounded to float

uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// In-place unnormalised Walsh-Hadamard transform of 32 values (natural/Sylvester order).
inline void fwht32(float* v) {
  for (int len = 1; len < kB; len <<= 1)
    for (int i = 0; i < kB; i += len << 1)
      for (int j = i; j < i + len; ++j) {
        const float a = v[j], b = v[j + len];
        v[j] = a + b;
        v[j + len] = a - b;
      }
}
}  // namespace

std::array<float, kHadamardBlock> Hadamard::signs() const {
  std::array<float, kHadamardBlock> s;
  s.fill(1.0f);
  if (seed == 0) return s;
  uint64_t state = seed;
  const uint64_t bits = splitmix64(state);
  for (int i = 0; i < kB; ++i) s[static_cast<size_t>(i)] = (bits >> i) & 1 ? -1.0f : 1.0f;
  return s;
}

std::string Hadamard::describe() const { return seed == 0 ? "hadamard" : "hadamard:" + std::to_string(seed); }

namespace {
// Calls block(xb, yb) for every full 32-block of every row of x [R, K] (yb the same block of y)
// and copies the tails shorter than 32.
template <typename Block>
void each_block(const float* x, int64_t R, int64_t K, float* y, Block block) {
  const int64_t full = K / kHadamardBlock * kHadamardBlock;
  for (int64_t r = 0; r < R; ++r) {
    const float* xr = x + r * K;
    float* yr = y + r * K;
    for (int64_t b = 0; b < full; b += kHadamardBlock) block(xr + b, yr + b);
    if (yr != xr) std::copy(xr + full, xr + K, yr + full);
  }
}
}  // namespace

void hadamard_rows(const Hadamard& h, const float* x, int64_t R, int64_t K, float* y, bool inverse) {
  const std::array<float, kHadamardBlock> d = h.signs();
  each_block(x, R, K, y, [&](const float* xb, float* yb) {
    float v[kB];
    for (int i = 0; i < kB; ++i) v[i] = inverse ? xb[i] : xb[i] * d[static_cast<size_t>(i)];
    fwht32(v);
    for (int i = 0; i < kB; ++i) yb[i] = inverse ? v[i] * kNorm * d[static_cast<size_t>(i)] : v[i] * kNorm;
  });
}

void hadamard_rows_dense(const Hadamard& h, const float* x, int64_t R, int64_t K, float* y, bool inverse) {
  const std::array<float, kHadamardBlock> d = h.signs();
  each_block(x, R, K, y, [&](const float* xb, float* yb) {
    double out[kB];
    for (int j = 0; j < kB; ++j) {  // forward: y_j = sum_i x_i d_i H_ij / sqrt(32)
      double s = 0;
      for (int i = 0; i < kB; ++i) {
        const double hij = std::bitset<8>(static_cast<unsigned>(i & j)).count() % 2 ? -1.0 : 1.0;
        s += static_cast<double>(xb[i]) * hij * (inverse ? 1.0 : d[static_cast<size_t>(i)]);
      }
      out[j] = s / std::sqrt(32.0) * (inverse ? d[static_cast<size_t>(j)] : 1.0);
    }
    for (int j = 0; j < kB; ++j) yb[j] = static_cast<float>(out[j]);
  });
}

}  // namespace mxqat::quant
