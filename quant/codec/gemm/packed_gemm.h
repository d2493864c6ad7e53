// Fused decode + matrix product for packed weights, the inference runtime's fast path:
// y = x · decode(w)ᵀ + bias with w an EncodedTensor that stays packed (codes are decoded block by
// block inside the product). Not the training GEMM: it sums in its own fixed order, so it is
// tested against packed_linear_reference within a tolerance (tests/quant/packed_gemm_test.cpp).
// Used by the inference runtime and bench/bench_packed_gemm.cpp. Never logs.
#pragma once
#include <cstdint>
#include <string>

#include "quant/codec/codec.h"

namespace mxqat::quant {

// Batches of at least this many rows take the batch kernel (lanes over x rows); smaller ones the
// matrix-vector kernel (lanes over K).
constexpr int64_t kPackedBatchRows = 16;

// True for the codecs whose codes are decoded inside the product (MX: mxfp8_e4m3, mxfp8_e5m2,
// mxfp6_e2m3, mxfp6_e3m2, mxfp4, mxint8; and nvfp4). The INT codecs are decoded to float32
// first and then multiplied (same results, none of the savings).
bool packed_linear_is_fused(const std::string& codec);

// y [M, N] = x [M, K] · decode(w)ᵀ + bias [N]; w [N, K] = [out, in] as encoded by Codec::encode
// (or loaded from an export); bias nullable. Every decoded weight is bit for bit the value
// Codec::decode gives (code value × block scale); only the order of the sums differs from the
// reference. The order is fixed, so the bits never depend on the thread count:
// * M >= kPackedBatchRows, and every INT codec: y[m][n] = fma chain over k = 0..K-1 from +0,
//   exactly as packed_linear_reference (bitwise equal to it).
// * M < kPackedBatchRows: 16 lane sums, each an fma chain over the row's 32-element spans, lane j
//   taking elements 32s+j and 32s+16+j of span s (4-bit codes: 32s+2j and 32s+2j+1, the two
//   nibbles of byte 16s+j); then the lanes are added as a tree (j + j+8, j + j+4, j + j+2, j + j+1).
// Then + bias[n] (one add); a NaN result is stored as 0x7FC00000. Padding codes past K are ignored.
// Throws mxqat::Error on an inconsistent w (sizes, unknown codec) or a null pointer with data.
void packed_linear(const EncodedTensor& w, const float* x, int64_t M, const float* bias, float* y);

// The same arithmetic in portable C++ (no SIMD): bitwise equal to packed_linear.
void packed_linear_portable(const EncodedTensor& w, const float* x, int64_t M, const float* bias,
                            float* y);

// Scalar reference: Codec::decode_reference(w), then for each (m, n) an fma chain over k in order
// from +0, + bias[n]. Slow; for tests and the bench's check.
void packed_linear_reference(const EncodedTensor& w, const float* x, int64_t M, const float* bias,
                             float* y);

namespace kernels {

// One fused-decodable weight as the kernels see it (internal to quant/codec).
struct PackedWeight {
  const uint8_t* codes;        // [N, bytes_per_row], spec §8
  const uint8_t* scale_codes;  // [N, nb]: E8M0 (MX) or E4M3 (NVFP4) codes
  int64_t N, K, nb, bytes_per_row;
  int64_t spans;               // ceil(K / 32): 32-element spans per row
  int bits;                    // 4, 6 or 8
  int G;                       // block size: 32 (MX) or 16 (NVFP4)
  const float* lut;            // element code -> value
  const float* scale_lut;      // scale code -> value
  float s_dec;                 // NVFP4 global decode scale
  bool nv;                     // NVFP4: block scale = scale value × s_dec
  // How 8-bit codes are decoded (derived from the element row; every way gives lut[c] exactly):
  // kHalf: FP formats with <= 5 exponent bits are binary16 once the magnitude is shifted left by
  // half_shift (10 - mbits) and the sign moved to bit 15, times half_scale = 2^(15 - bias), with
  // magnitude nan_magnitude (E4M3FN's 0x7F) made NaN; kInt: two's complement q × int_scale;
  // kTable: lut[c].
  enum class Bytes : uint8_t { kTable, kHalf, kInt } bytes;
  int half_shift;
  float half_scale, int_scale;
  uint32_t nan_magnitude;      // 0xFFFF: none

  // The per-block multiplier exactly as Codec::decode computes it.
  float block_scale(int64_t n, int64_t b) const {
    const float d = scale_lut[scale_codes[n * nb + b]];
    return nv ? d * s_dec : d;
  }
};

// AVX-512 kernels (packed_gemm_avx512.cpp; absent from non-AVX-512 builds). xp: x rows padded to
// spans*32 with zeros (and for 4-bit codes permuted to the span lane order), [M, spans*32];
// xt: x transposed and padded, [spans*32, Mp] with Mp = M rounded up to 16.
void packed_gemv_avx512(const PackedWeight& w, const float* xp, int64_t M, const float* bias,
                        float* y);
void packed_batch_avx512(const PackedWeight& w, const float* xt, int64_t M, int64_t Mp,
                         const float* bias, float* y);

inline float finish_output(float acc, const float* bias, int64_t n) {
  const float v = bias ? acc + bias[n] : acc;
  return v != v ? canonical_nan() : v;
}

}  // namespace kernels
}  // namespace mxqat::quant
