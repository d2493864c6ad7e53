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
#include <cstring>

#include "quant/codec/formats.h"
#include "quant/codec/mx_gemm.h"

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")

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

#pragma GCC pop_options
#else
namespace mxqat::quant::kernels {  // never called: mx_gemm_has_avx512() is false off x86-64
void mx_gemm_avx512(const MxOperand&, const MxOperand&, float*, int64_t, int64_t, int64_t, int64_t,
                    int64_t) {}
void mx_pack_b_avx512(MxOperand&, int64_t, int64_t) {}
}  // namespace mxqat::quant::kernels
#endif
