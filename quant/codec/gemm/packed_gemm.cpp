// packed_linear: argument checks, layout of x for the kernels, dispatch (AVX-512 or portable),
// the portable build of both kernels, the decode-then-multiply path of the INT codecs, and the
// scalar reference. The AVX-512 kernels are in packed_gemm_avx512.cpp.
#include "quant/codec/gemm/packed_gemm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "autograd/error.h"
#include "quant/codec/kernels/kernels.h"
#include "quant/codec/pack.h"
#include "quant/codec/simd_avx512.h"

namespace mxqat::quant {
namespace {

using kernels::finish_output;
using kernels::PackedWeight;

bool is_fused_scheme(BlockScheme s) { return s == BlockScheme::kMx || s == BlockScheme::kNvfp4; }

// The codec of w, after checking w's sizes against it (the checks of Codec::decode) and the
// pointers against M.
Codec checked_codec(const EncodedTensor& w, const float* x, int64_t M, float* y) {
  const Codec c = Codec::make(w.codec);  // unknown name -> error listing the known ones
  MXQAT_CHECK(w.rows >= 0 && w.cols >= 1, "packed_linear: weight shape [", w.rows, ", ", w.cols,
              "] is invalid; need N >= 0 output rows and K >= 1 inputs");
  const bool is_int = !is_fused_scheme(c.block_format().scheme);
  MXQAT_CHECK(is_int ? w.block_size >= 1 : w.block_size == c.block_format().block, "packed_linear \"",
              w.codec, "\": block_size ", w.block_size, " is invalid (MX 32, NVFP4 16, INT >= 1)");
  const int64_t nb = (w.cols + w.block_size - 1) / w.block_size;
  const int64_t bpr = packed_bytes(nb * w.block_size, c.element_bits());
  MXQAT_CHECK(w.codes.size() == static_cast<size_t>(w.rows * bpr), "packed_linear \"", w.codec, "\": ",
              w.codes.size(), " code bytes, expected ", w.rows, " x ", bpr, " (truncated weight?)");
  if (!is_int)
    MXQAT_CHECK(w.scale_codes.size() == static_cast<size_t>(w.rows * nb), "packed_linear \"", w.codec,
                "\": ", w.scale_codes.size(), " scale codes, expected ", w.rows, " x ", nb);
  MXQAT_CHECK(M >= 0, "packed_linear: batch size M = ", M, " is negative");
  MXQAT_CHECK(M == 0 || x, "packed_linear: input pointer is null for x [", M, ", ", w.cols, "]");
  MXQAT_CHECK(M == 0 || w.rows == 0 || y, "packed_linear: output pointer is null for y [", M, ", ",
              w.rows, "]");
  return c;
}

PackedWeight packed_weight(const Codec& c, const EncodedTensor& w) {
  PackedWeight p{};
  p.codes = w.codes.data();
  p.scale_codes = w.scale_codes.data();
  p.N = w.rows;
  p.K = w.cols;
  p.G = static_cast<int>(w.block_size);
  p.nb = (w.cols + p.G - 1) / p.G;
  p.bits = c.element_bits();
  p.bytes_per_row = packed_bytes(p.nb * p.G, p.bits);
  p.spans = (w.cols + 31) / 32;
  p.lut = decode_lut(*c.element_format());
  p.scale_lut = decode_lut(element_format(c.block_format().scale));
  p.s_dec = w.global_decode_scale;
  p.nv = c.block_format().scheme == BlockScheme::kNvfp4;
  const ElementFormat& f = *c.element_format();
  p.bytes = PackedWeight::Bytes::kTable;
  p.nan_magnitude = 0xFFFF;
  if (p.bits == 8 && f.kind == FormatKind::kInt) {
    p.bytes = PackedWeight::Bytes::kInt;
    p.int_scale = pow2f(-f.mbits);
  } else if (p.bits == 8 && f.kind == FormatKind::kFloat && f.ebits <= 5 && f.mbits <= 10 &&
             (f.specials == Specials::kNanOnly || (f.specials == Specials::kIeee && f.ebits == 5))) {
    p.bytes = PackedWeight::Bytes::kHalf;  // kIeee with 5 exponent bits: binary16's own Inf/NaN
    p.half_shift = 10 - f.mbits;
    p.half_scale = pow2f(15 - f.bias);
    if (f.specials == Specials::kNanOnly) p.nan_magnitude = code_mask(f) >> 1;
  }
  return p;
}

// Code j < nb*G of row n (spec §8).
uint32_t code_at(const PackedWeight& w, int64_t n, int64_t j) {
  const uint8_t* row = w.codes + n * w.bytes_per_row;
  switch (w.bits) {
    case 8: return row[j];
    case 4: return (row[j / 2] >> (4 * (j % 2))) & 0xFu;
    default: {  // 6: four codes per little-endian 3-byte word
      const uint8_t* p = row + 3 * (j / 4);
      const uint32_t word = p[0] | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16;
      return (word >> (6 * (j % 4))) & 0x3Fu;
    }
  }
}

// Element j < K of row n, decoded as Codec::decode does (code value × block scale).
float weight_at(const PackedWeight& w, int64_t n, int64_t j) {
  return w.lut[code_at(w, n, j)] * w.block_scale(n, j / w.G);
}

// Element of span s, lane j of half h (0: lo, 1: hi) in the lane order of packed_gemm.h.
int64_t span_element(int bits, int64_t s, int h, int j) {
  return bits == 4 ? 32 * s + 2 * j + h : 32 * s + 16 * h + j;
}

// x [M, K] -> xp [M, spans*32]: zero padded, in span lane order.
std::vector<float> gemv_layout(const PackedWeight& w, const float* x, int64_t M) {
  const int64_t Kp = w.spans * 32;
  std::vector<float> xp(static_cast<size_t>(M * Kp), 0.0f);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t s = 0; s < w.spans; ++s)
      for (int h = 0; h < 2; ++h)
        for (int j = 0; j < 16; ++j) {
          const int64_t k = span_element(w.bits, s, h, j);
          if (k < w.K) xp[static_cast<size_t>(m * Kp + 32 * s + 16 * h + j)] = x[m * w.K + k];
        }
  return xp;
}

#if MXQAT_CODEC_AVX512
// x [M, K] -> xt [spans*32, Mp]: transposed, zero padded.
std::vector<float> batch_layout(const PackedWeight& w, const float* x, int64_t M, int64_t Mp) {
  std::vector<float> xt(static_cast<size_t>(w.spans * 32 * Mp), 0.0f);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < w.K; ++k) xt[static_cast<size_t>(k * Mp + m)] = x[m * w.K + k];
  return xt;
}
#endif

bool parallel(const PackedWeight& w, int64_t M) { return w.N * w.K * M >= kernels::kParallelMinElements; }

// Portable matrix-vector kernel: the 16 lane sums and the tree of packed_gemm.h.
void gemv_portable(const PackedWeight& w, const float* xp, int64_t M, const float* bias, float* y) {
  const int64_t Kp = w.spans * 32;
#pragma omp parallel for schedule(static) if (parallel(w, M))
  for (int64_t n = 0; n < w.N; ++n) {
    float wv[2][16];
    std::vector<float> acc(static_cast<size_t>(M * 16), 0.0f);
    for (int64_t s = 0; s < w.spans; ++s) {
      for (int h = 0; h < 2; ++h)
        for (int j = 0; j < 16; ++j) {
          const int64_t k = span_element(w.bits, s, h, j);
          wv[h][j] = k < w.K ? weight_at(w, n, k) : 0.0f;
        }
      for (int64_t m = 0; m < M; ++m)
        for (int h = 0; h < 2; ++h)
          for (int j = 0; j < 16; ++j) {
            float& a = acc[static_cast<size_t>(m * 16 + j)];
            a = std::fma(xp[m * Kp + 32 * s + 16 * h + j], wv[h][j], a);
          }
    }
    for (int64_t m = 0; m < M; ++m) {
      float* a = acc.data() + m * 16;
      for (int h = 8; h >= 1; h /= 2)
        for (int j = 0; j < h; ++j) a[j] = a[j] + a[j + h];
      y[m * w.N + n] = finish_output(a[0], bias, n);
    }
  }
}

// Sequential fma chains over k, one per output; w_row(n, row) fills row [K] with row n of W.
template <typename RowFn>
void sequential_product(int64_t N, int64_t K, const float* x, int64_t M, const float* bias, float* y,
                        bool par, RowFn w_row) {
#pragma omp parallel if (par)
  {
    std::vector<float> row(static_cast<size_t>(K)), acc(static_cast<size_t>(M));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      w_row(n, row.data());
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t k = 0; k < K; ++k)
        for (int64_t m = 0; m < M; ++m) acc[m] = std::fma(x[m * K + k], row[k], acc[m]);
      for (int64_t m = 0; m < M; ++m) y[m * N + n] = finish_output(acc[m], bias, n);
    }
  }
}

// INT codecs: decode the whole weight (fast decode), then the sequential product.
void decode_then_multiply(const Codec& c, const EncodedTensor& w, const float* x, int64_t M,
                          const float* bias, float* y) {
  std::vector<float> wf(static_cast<size_t>(w.rows * w.cols));
  c.decode(w, wf.data());
  const int64_t K = w.cols;
  sequential_product(w.rows, K, x, M, bias, y, w.rows * K * M >= kernels::kParallelMinElements,
                     [&](int64_t n, float* row) { std::copy_n(wf.data() + n * K, K, row); });
}

void run(const EncodedTensor& w, const float* x, int64_t M, const float* bias, float* y, bool simd) {
  const Codec c = checked_codec(w, x, M, y);
  if (M == 0 || w.rows == 0) return;
  if (!is_fused_scheme(c.block_format().scheme)) return decode_then_multiply(c, w, x, M, bias, y);
  const PackedWeight p = packed_weight(c, w);
  if (M >= kPackedBatchRows) {
#if MXQAT_CODEC_AVX512
    const int64_t Mp = (M + 15) / 16 * 16;
    if (simd) return kernels::packed_batch_avx512(p, batch_layout(p, x, M, Mp).data(), M, Mp, bias, y);
#endif
    return sequential_product(p.N, p.K, x, M, bias, y, parallel(p, M), [&](int64_t n, float* row) {
      for (int64_t k = 0; k < p.K; ++k) row[k] = weight_at(p, n, k);
    });
  }
  const std::vector<float> xp = gemv_layout(p, x, M);
#if MXQAT_CODEC_AVX512
  if (simd) return kernels::packed_gemv_avx512(p, xp.data(), M, bias, y);
#endif
  (void)simd;
  gemv_portable(p, xp.data(), M, bias, y);
}

}  // namespace

bool packed_linear_is_fused(const std::string& codec) {
  const BlockFormat* f = find_block_format(codec);
  return f && is_fused_scheme(f->scheme);
}

void packed_linear(const EncodedTensor& w, const float* x, int64_t M, const float* bias, float* y) {
  run(w, x, M, bias, y, /*simd=*/true);
}

void packed_linear_portable(const EncodedTensor& w, const float* x, int64_t M, const float* bias,
                            float* y) {
  run(w, x, M, bias, y, /*simd=*/false);
}

void packed_linear_reference(const EncodedTensor& w, const float* x, int64_t M, const float* bias,
                             float* y) {
  const Codec c = checked_codec(w, x, M, y);
  const int64_t N = w.rows, K = w.cols;
  std::vector<float> wf(static_cast<size_t>(N * K));
  c.decode_reference(w, wf.data());
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      float acc = 0.0f;
      for (int64_t k = 0; k < K; ++k) acc = std::fma(x[m * K + k], wf[static_cast<size_t>(n * K + k)], acc);
      y[m * N + n] = finish_output(acc, bias, n);
    }
}

}  // namespace mxqat::quant
