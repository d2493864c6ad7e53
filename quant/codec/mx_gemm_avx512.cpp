// The AVX-512 VNNI kernel of the mx_native product (mx_gemm.h, docs/formats.md §14.2). Compiled
// for AVX-512 F/BW/DQ/VL + VNNI whatever the build targets (mx_gemm.cpp calls it only after
// checking the CPU at run time). Per output tile of R rows x 16·NV columns and per 32-block:
// eight vpdpbusd (B's block integers + 128 as unsigned bytes, A's as signed bytes broadcast four
// at a time) give D + 128·ΣA exactly in int32, started from −128·ΣA; T_b = vscalefps(float(D),
// e_a + e_b) rounds the exact D · 2^(e_a+e_b) once, and is added to the float32 accumulator in
// block order: the portable kernel's bits.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cfloat>
#include <cstring>

#include "quant/codec/formats.h"
#include "quant/codec/mx_gemm.h"

#if defined(__x86_64__)
// GCC and clang spell "compile the functions below for these features" differently.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")
#endif

namespace mxqat::quant::kernels {
namespace {

constexpr int kBlock = 32;

inline __mmask16 lanes(int n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1u);
}

// Rows i .. i+R-1 of c x panels jp .. jp+NV-1 (cols live columns from the first panel's start).
template <int R, int NV>
void tile(const MxOperand& a, const MxOperand& b, float* c, int64_t ldc, int64_t i, int64_t jp,
          int cols) {
  const int64_t nb = a.nb, kp = nb * kBlock;
  __m512 acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  const int8_t* arow = a.ints.data() + i * kp;
  for (int64_t blk = 0; blk < nb; ++blk) {
    __m512i d[R][NV];
    for (int r = 0; r < R; ++r) {
      const __m512i init = _mm512_set1_epi32(-128 * a.sums[(i + r) * nb + blk]);
      for (int v = 0; v < NV; ++v) d[r][v] = init;
    }
    const uint8_t* bp = b.panel_ints.data() + (jp * nb + blk) * 512;
    const int8_t* ab = arow + blk * kBlock;
#pragma GCC unroll 8
    for (int g = 0; g < 8; ++g) {
      __m512i bv[NV];
      for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_si512(bp + v * nb * 512 + g * 64);
      for (int r = 0; r < R; ++r) {
        int32_t word;
        std::memcpy(&word, ab + r * kp + 4 * g, 4);
        const __m512i av = _mm512_set1_epi32(word);
        for (int v = 0; v < NV; ++v) d[r][v] = _mm512_dpbusd_epi32(d[r][v], bv[v], av);
      }
    }
    __m512 ew[NV];
    for (int v = 0; v < NV; ++v)
      ew[v] = _mm512_loadu_ps(b.panel_exps.data() + ((jp + v) * nb + blk) * 16);
    for (int r = 0; r < R; ++r) {
      const __m512 ex = _mm512_set1_ps(a.exps[(i + r) * nb + blk]);
      for (int v = 0; v < NV; ++v) {
        const __m512 t = _mm512_scalef_ps(_mm512_cvtepi32_ps(d[r][v]), _mm512_add_ps(ex, ew[v]));
        acc[r][v] = _mm512_add_ps(acc[r][v], t);
      }
    }
  }
  const __m512 nan = _mm512_set1_ps(canonical_nan());
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) {
      const __mmask16 isnan = _mm512_cmp_ps_mask(acc[r][v], acc[r][v], _CMP_UNORD_Q);
      _mm512_mask_storeu_ps(c + (i + r) * ldc + (jp + v) * 16, lanes(cols - 16 * v),
                            _mm512_mask_mov_ps(acc[r][v], isnan, nan));
    }
}

template <int NV>
void rows(const MxOperand& a, const MxOperand& b, float* c, int64_t ldc, int64_t i0, int64_t i1,
          int64_t jp, int cols) {
  int64_t i = i0;
  for (; i + 4 <= i1; i += 4) tile<4, NV>(a, b, c, ldc, i, jp, cols);
  switch (i1 - i) {
    case 3: tile<3, NV>(a, b, c, ldc, i, jp, cols); break;
    case 2: tile<2, NV>(a, b, c, ldc, i, jp, cols); break;
    case 1: tile<1, NV>(a, b, c, ldc, i, jp, cols); break;
    default: break;
  }
}

}  // namespace

void mx_gemm_avx512(const MxOperand& a, const MxOperand& b, float* c, int64_t n, int64_t i0,
                    int64_t i1, int64_t j0, int64_t j1) {
  // Two panels (32 columns) at a time: their block integers (nb KiB) stay in L1 while every
  // row of A passes.
  for (int64_t j = j0; j < j1; j += 32) {
    const int cols = static_cast<int>(std::min<int64_t>(32, j1 - j));
    if (cols > 16) rows<2>(a, b, c, n, i0, i1, j / 16, cols);
    else rows<1>(a, b, c, n, i0, i1, j / 16, cols);
  }
}

// Block integers of rows [r0, r1), 32 floats at a time: amax from the bits, e = floor(log2 amax)
// - 5, I = RN32(x · 2^-e) converted to int32, and the grid check I · 2^e == x (exact for
// e >= -127, where I · 2^e is a multiple of 2^-127 below 2^128: a false pass would need x on the
// grid). Blocks with amax below 2^-122 (2^-e not a normal float) take the portable block_ints.
bool mx_operand_rows_avx512(const float* x, int64_t r0, int64_t r1, MxOperand& out) {
  const int64_t k = out.k, nb = out.nb, kp = nb * kBlock;
  const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
  const __m512 fmax = _mm512_set1_ps(FLT_MAX);
  bool ok = true;
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t blk = 0; blk < nb; ++blk) {
      const float* src = x + r * k + blk * kBlock;
      const int span = static_cast<int>(std::min<int64_t>(kBlock, k - blk * kBlock));
      int8_t* dst = out.ints.data() + r * kp + blk * kBlock;
      const __mmask16 m0 = lanes(span), m1 = lanes(span - 16);
      const __m512 v0 = _mm512_maskz_loadu_ps(m0, src), v1 = _mm512_maskz_loadu_ps(m1, src + 16);
      const __m512 a0 = _mm512_and_ps(v0, absmask), a1 = _mm512_and_ps(v1, absmask);
      const bool nonfinite = (_mm512_cmp_ps_mask(a0, fmax, _CMP_NLE_UQ) |
                              _mm512_cmp_ps_mask(a1, fmax, _CMP_NLE_UQ)) != 0;
      // max over 16 lanes of non-negative floats = max of their bit patterns
      __m512i mx = _mm512_max_epu32(_mm512_castps_si512(a0), _mm512_castps_si512(a1));
      mx = _mm512_max_epu32(mx, _mm512_shuffle_i32x4(mx, mx, _MM_SHUFFLE(1, 0, 3, 2)));
      mx = _mm512_max_epu32(mx, _mm512_shuffle_i32x4(mx, mx, _MM_SHUFFLE(2, 3, 0, 1)));
      mx = _mm512_max_epu32(mx, _mm512_shuffle_epi32(mx, _MM_PERM_BADC));
      mx = _mm512_max_epu32(mx, _mm512_shuffle_epi32(mx, _MM_PERM_CDAB));
      const uint32_t abits = static_cast<uint32_t>(_mm_cvtsi128_si32(_mm512_castsi512_si128(mx)));
      const int f = static_cast<int>(abits >> 23);
      float& exp = out.exps[r * nb + blk];
      int32_t& sum = out.sums[r * nb + blk];
      if (nonfinite || abits == 0) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), _mm256_setzero_si256());
        exp = nonfinite ? canonical_nan() : 0.0f;
        sum = 0;
        continue;
      }
      if (f < 5) {  // amax < 2^-122
        ok &= block_ints(src, span, dst, exp, sum);
        continue;
      }
      const int e = f - 127 - 5;
      const __m512 inv = _mm512_set1_ps(pow2f(-e)), scale = _mm512_set1_ps(pow2f(e));
      const __m512i i0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, inv));
      const __m512i i1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, inv));
      const __mmask16 bad =
          _mm512_cmp_ps_mask(_mm512_mul_ps(_mm512_cvtepi32_ps(i0), scale), v0, _CMP_NEQ_UQ) |
          _mm512_cmp_ps_mask(_mm512_mul_ps(_mm512_cvtepi32_ps(i1), scale), v1, _CMP_NEQ_UQ);
      ok &= bad == 0;
      exp = static_cast<float>(e);
      const __m256i bytes = _mm256_inserti128_si256(
          _mm256_castsi128_si256(_mm512_cvtepi32_epi8(i0)), _mm512_cvtepi32_epi8(i1), 1);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), bytes);
      // Σ I = Σ (I + 128) - 32·128, the unsigned sums by vpsadbw
      const __m256i s4 = _mm256_sad_epu8(_mm256_xor_si256(bytes, _mm256_set1_epi8(-128)),
                                         _mm256_setzero_si256());
      const __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(s4), _mm256_extracti128_si256(s4, 1));
      sum = static_cast<int32_t>(_mm_cvtsi128_si64(s2) + _mm_extract_epi64(s2, 1)) - 32 * 128;
    }
  return ok;
}

void mx_pack_b_avx512(MxOperand& b, int64_t panel0, int64_t panel1) {
  const int64_t nb = b.nb, kp = nb * kBlock;
  for (int64_t p = panel0; p < panel1; ++p)
    for (int64_t blk = 0; blk < nb; ++blk) {
      uint8_t* dst = b.panel_ints.data() + (p * nb + blk) * 512;
      float* de = b.panel_exps.data() + (p * nb + blk) * 16;
      for (int lane = 0; lane < 16; ++lane) {
        const int64_t row = p * 16 + lane;
        const bool live = row < b.rows;
        de[lane] = live ? b.exps[row * nb + blk] : 0.0f;
        for (int g = 0; g < 8; ++g)
          for (int t = 0; t < 4; ++t)
            dst[g * 64 + lane * 4 + t] =
                live ? static_cast<uint8_t>(b.ints[row * kp + blk * kBlock + 4 * g + t] + 128) : 128;
      }
    }
}

}  // namespace mxqat::quant::kernels

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#else
namespace mxqat::quant::kernels {  // never called: mx_gemm_has_avx512() is false off x86-64
void mx_gemm_avx512(const MxOperand&, const MxOperand&, float*, int64_t, int64_t, int64_t, int64_t,
                    int64_t) {}
void mx_pack_b_avx512(MxOperand&, int64_t, int64_t) {}
bool mx_operand_rows_avx512(const float*, int64_t, int64_t, MxOperand&) { return false; }
}  // namespace mxqat::quant::kernels
#endif
