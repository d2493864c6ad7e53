// Fast paths of the block codecs: OpenMP over rows/blocks (static schedules, so the bits never
// depend on the thread count), AVX-512 where the compiler targets it, and a portable scalar
// build of the same arithmetic. Each must equal Codec::*_reference bit for bit (tests/quant).
// Internal to quant/codec.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "quant/codec/block_formats.h"
#include "quant/codec/codec.h"

namespace mxqat::quant::kernels {

// Below this many elements a parallel region costs more than it saves (small training tensors).
constexpr int64_t kParallelMinElements = int64_t(1) << 16;
// Whether a kernel over n elements opens a parallel region: not for small tensors, and not when
// called from inside one (qgemm runs the fake-quant of row ranges in the GEMM's team, one range
// per thread), where it runs on the calling thread alone.
inline bool split_across_threads(int64_t n) { return n >= kParallelMinElements && !omp_in_parallel(); }

// Row constants of an element format for the rounding trick used by every fast path:
// c = min(|v|, max); M = 2^(max(exp(c), emin) + 23 - mbits); r = (c + M) - M is c rounded to
// the format's grid with ties to even (one binary32 add rounds at exactly the grid spacing).
// kInt rows (|value| < 2, emin 0) get the constant spacing 2^-mbits the same way.
struct ElemParams {
  float maxn;
  uint32_t emin_bits;    // (emin + 127) << 23
  uint32_t magic_off;    // (23 - mbits) << 23
  uint32_t rebias;       // (127 - bias) << mbits: float32 exponent -> element exponent field
  int shift;             // 23 - mbits
  float sub_scale;       // 2^(mbits - emin): subnormal value -> code
  float int_scale;       // kInt: 2^mbits
  uint32_t sign_bit;     // element sign bit
  uint32_t mask;         // element code mask
  bool is_int;
};
ElemParams elem_params(const ElementFormat& f);

inline float round_to_grid(float c, const ElemParams& p) {
  const uint32_t e = std::max(f2u(c) & 0x7F800000u, p.emin_bits);
  const float m = u2f(e + p.magic_off);
  return (c + m) - m;
}
// Code of a rounded magnitude r (>= 0, on the grid) with the sign of x.
inline uint32_t code_from_grid(float r, bool neg, const ElemParams& p) {
  if (p.is_int) {
    const auto q = static_cast<uint32_t>(static_cast<int>(r * p.int_scale));
    return (neg ? 0u - q : q) & p.mask;
  }
  const uint32_t rb = f2u(r);
  const uint32_t mag = rb >= p.emin_bits ? (rb >> p.shift) - p.rebias
                                         : static_cast<uint32_t>(static_cast<int>(r * p.sub_scale));
  return mag | (neg ? p.sign_bit : 0u);
}

// max |x| over the finite elements of x[0..n) (0 if none).
float finite_amax(const float* x, int64_t n);

void fake_quant(const KernelSpec& k, const Nvfp4Global& g, const float* x, int64_t R, float* y,
                uint8_t* mask, bool simd);
void encode(const KernelSpec& k, const Nvfp4Global& g, const float* x, int64_t R, EncodedTensor& e);
void decode(const KernelSpec& k, const EncodedTensor& e, float* y);

// Per-family implementations (kernels_fp.cpp: MX and NVFP4; kernels_int.cpp: INT).
void fp_fake_quant(const KernelSpec& k, const Nvfp4Global& g, const float* x, int64_t R, float* y,
                   uint8_t* mask, bool simd);
void fp_encode(const KernelSpec& k, const Nvfp4Global& g, const float* x, int64_t R, EncodedTensor& e);
void fp_decode(const KernelSpec& k, const EncodedTensor& e, float* y);
void int_fake_quant(const KernelSpec& k, const float* x, int64_t R, float* y, uint8_t* mask, bool simd);
void int_encode(const KernelSpec& k, const float* x, int64_t R, EncodedTensor& e);
void int_decode(const KernelSpec& k, const EncodedTensor& e, float* y);

}  // namespace mxqat::quant::kernels
