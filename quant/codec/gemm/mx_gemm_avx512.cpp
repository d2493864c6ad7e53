// The AVX-512 VNNI kernel of the mx_native product (mx_gemm.h, docs/formats.md §14.2), and the
// stochastic rounding of its backward operands straight into block integers (§14.3). Compiled
// for AVX-512 F/BW/DQ/VL + VNNI whatever the build targets (mx_gemm.cpp calls it only after
// checking the CPU at run time). Per output tile of R rows x 16·NV columns and per 32-block:
// eight vpdpbusd (B's block integers + 128 as unsigned bytes, A's as signed bytes broadcast four
// at a time) give D + 128·ΣA exactly in int32, started from −128·ΣA; T_b = vscalefps(float(D),
// e_a + e_b) rounds the exact D · 2^(e_a+e_b) once, and is added to the float32 accumulator in
// block order: the portable kernel's bits. Wide operands (int16 block integers, |I| < 512) take
// sixteen vpdpwssd per block instead (signed pairs, no offset): D is again exact in int32.
#include "quant/codec/simd_avx512.h"  // first: wraps <immintrin.h>

#include <algorithm>
#include <cfloat>
#include <cstring>
#include <type_traits>

#include "quant/codec/block_formats.h"
#include "quant/codec/formats.h"
#include "quant/codec/gemm/mx_gemm.h"

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

inline __mmask16 lanes(int64_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1u);
}

// A finished tile into c, NaN stored canonically.
template <int R, int NV>
void store_tile(const __m512 (&acc)[R][NV], float* c, int64_t ldc, int64_t i, int64_t jp, int cols) {
  const __m512 nan = _mm512_set1_ps(canonical_nan());
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) {
      const __mmask16 isnan = _mm512_cmp_ps_mask(acc[r][v], acc[r][v], _CMP_UNORD_Q);
      _mm512_mask_storeu_ps(c + (i + r) * ldc + (jp + v) * 16, lanes(cols - 16 * v),
                            _mm512_mask_mov_ps(acc[r][v], isnan, nan));
    }
}

// Rows i .. i+R-1 of c x panels jp .. jp+NV-1 (cols live columns from the first panel's start).
// Narrow operands: eight vpdpbusd per block (B's block integers + 128 as unsigned bytes, A's four
// signed bytes broadcast) give D + 128·ΣA from −128·ΣA. Wide ones: sixteen vpdpwssd (B's pairs of
// int16, A's pair broadcast) give D from 0 (|D| < 2^23). Both exact in int32.
template <int R, int NV, bool kWide>
void tile(const MxOperand& a, const MxOperand& b, float* c, int64_t ldc, int64_t i, int64_t jp,
          int cols) {
  using Elem = std::conditional_t<kWide, int16_t, int8_t>;
  constexpr int kGroups = kWide ? 16 : 8, kPerWord = kBlock / kGroups;
  const int64_t nb = a.nb, kp = nb * kBlock;
  const int64_t panel_bytes = nb * 512 * static_cast<int64_t>(sizeof(Elem));  // one panel, all blocks
  __m512 acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  const Elem* arow;
  const char* bpanels;
  if constexpr (kWide) {
    arow = a.wints.data() + i * kp;
    bpanels = reinterpret_cast<const char*>(b.panel_wints.data());
  } else {
    arow = a.ints.data() + i * kp;
    bpanels = reinterpret_cast<const char*>(b.panel_ints.data());
  }
  for (int64_t blk = 0; blk < nb; ++blk) {
    __m512i d[R][NV];
    for (int r = 0; r < R; ++r) {
      __m512i init = _mm512_setzero_si512();
      if constexpr (!kWide) init = _mm512_set1_epi32(-128 * a.sums[(i + r) * nb + blk]);
      for (int v = 0; v < NV; ++v) d[r][v] = init;
    }
    const char* bp = bpanels + jp * panel_bytes + blk * 512 * static_cast<int64_t>(sizeof(Elem));
    const Elem* ab = arow + blk * kBlock;
#pragma GCC unroll 16
    for (int g = 0; g < kGroups; ++g) {
      __m512i bv[NV];
      for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_si512(bp + v * panel_bytes + g * 64);
      for (int r = 0; r < R; ++r) {
        int32_t word;
        std::memcpy(&word, ab + r * kp + kPerWord * g, 4);
        const __m512i av = _mm512_set1_epi32(word);
        for (int v = 0; v < NV; ++v) {
          if constexpr (kWide) d[r][v] = _mm512_dpwssd_epi32(d[r][v], av, bv[v]);
          else d[r][v] = _mm512_dpbusd_epi32(d[r][v], bv[v], av);
        }
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
  store_tile<R, NV>(acc, c, ldc, i, jp, cols);
}

template <int NV, bool kWide>
void rows(const MxOperand& a, const MxOperand& b, float* c, int64_t ldc, int64_t i0, int64_t i1,
          int64_t jp, int cols) {
  int64_t i = i0;
  for (; i + 4 <= i1; i += 4) tile<4, NV, kWide>(a, b, c, ldc, i, jp, cols);
  switch (i1 - i) {
    case 3: tile<3, NV, kWide>(a, b, c, ldc, i, jp, cols); break;
    case 2: tile<2, NV, kWide>(a, b, c, ldc, i, jp, cols); break;
    case 1: tile<1, NV, kWide>(a, b, c, ldc, i, jp, cols); break;
    default: break;
  }
}

// Two panels (32 columns) at a time: their block integers (nb KiB narrow, 2 nb KiB wide) stay in
// L1 while every row of A passes.
template <bool kWide>
void product(const MxOperand& a, const MxOperand& b, float* c, int64_t n, int64_t i0, int64_t i1,
             int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < j1; j += 32) {
    const int cols = static_cast<int>(std::min<int64_t>(32, j1 - j));
    if (cols > 16) rows<2, kWide>(a, b, c, n, i0, i1, j / 16, cols);
    else rows<1, kWide>(a, b, c, n, i0, i1, j / 16, cols);
  }
}

}  // namespace

void mx_gemm_avx512(const MxOperand& a, const MxOperand& b, float* c, int64_t n, int64_t i0,
                    int64_t i1, int64_t j0, int64_t j1) {
  product<false>(a, b, c, n, i0, i1, j0, j1);
}

void mx_gemm_wide_avx512(const MxOperand& a, const MxOperand& b, float* c, int64_t n, int64_t i0,
                         int64_t i1, int64_t j0, int64_t j1) {
  product<true>(a, b, c, n, i0, i1, j0, j1);
}

// Block integers of rows [r0, r1) (held in `rows`, row r0 first), 32 floats at a time: amax from
// the bits, e = floor(log2 amax) - 5, I = RN32(x · 2^-e) converted to int32, and the grid check
// I · 2^e == x (exact for e >= -127, where I · 2^e is a multiple of 2^-127 below 2^128: a false
// pass would need x on the grid). Blocks with amax below 2^-122 (2^-e not a normal float) take the
// portable block_ints.
bool mx_operand_rows_avx512(const float* rows, int64_t r0, int64_t r1, MxOperand& out) {
  const int64_t k = out.k, nb = out.nb, kp = nb * kBlock;
  const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
  const __m512 fmax = _mm512_set1_ps(FLT_MAX);
  bool ok = true;
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t blk = 0; blk < nb; ++blk) {
      const float* src = rows + (r - r0) * k + blk * kBlock;
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

// ---- Stochastic rounding straight into block integers (docs/formats.md §4.7 and §14.3) ----
// The operands of the mx_native backward products made from the float operands in one pass, with
// no rounded float copy, no transposed copy and no separate packing. Each element is computed as
// fake_quant_stochastic computes it (the same float32 operations on the same values, the same
// counter-based random number), and the rounded value sign · q · 2^(ex − m) · 2^s is stored as the
// integer I = q · 2^(ex − emin) with the block exponent s + emin − m: the same real values, so the
// product's bits are those of mx_gemm on fake_quant_stochastic's output (tested).

namespace {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;  // stochastic.cpp's constants (§4.7)
constexpr uint64_t kMix1 = 0xBF58476D1CE4E5B9ull, kMix2 = 0x94D049BB133111EBull;

// The element format's constants, broadcast.
struct Grid {
  __m512 max_elem, rceil_r;
  __m512i lowest, m_plus_bias;  // emin, mbits + 127
  int exp_offset;               // emin - mbits: I · 2^(s + exp_offset) is the value
  explicit Grid(const ElementFormat& e)
      : max_elem(_mm512_set1_ps(e.max_normal)), rceil_r(_mm512_set1_ps(mx_rceil_constant(e))),
        lowest(_mm512_set1_epi32(emin(e))), m_plus_bias(_mm512_set1_epi32(e.mbits + 127)),
        exp_offset(emin(e) - e.mbits) {}
};

// splitmix64's finaliser of key ^ h on 8 lanes, >> 40: sr_uniform's 24 random bits. (Its last
// step, z ^= z >> 31, changes bits 0..32 only, none of the 24 kept.)
inline __m512i mix_bits(__m512i key, __m512i h) {
  __m512i z = _mm512_xor_si512(key, h);
  z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)), _mm512_set1_epi64(kMix1));
  z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)), _mm512_set1_epi64(kMix2));
  return _mm512_srli_epi64(z, 40);
}

// sr_uniform(key, index) of 16 elements whose (index + 1) · golden are h_lo (lanes 0-7), h_hi.
inline __m512 uniforms(__m512i key, __m512i h_lo, __m512i h_hi) {
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i bits = _mm512_permutex2var_epi32(mix_bits(key, h_lo), even, mix_bits(key, h_hi));
  return _mm512_mul_ps(_mm512_cvtepi32_ps(bits), _mm512_set1_ps(0x1p-24f));
}

// One element per lane: x, its block's 2^-s, its uniform u -> the signed integer I (stochastic.cpp's
// fast rounding step by step: v = min(|x| 2^-s, max); ex = max(exponent of v, emin);
// t = v 2^(m - ex); lo = floor t; q = lo + (u < t - lo); I = q 2^(ex - emin), with x's sign).
inline __m512i round16(const Grid& g, __m512 x, __m512 down, __m512 u) {
  const __m512 absx = _mm512_castsi512_ps(
      _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7FFFFFFF)));
  const __m512 v = _mm512_min_ps(_mm512_mul_ps(absx, down), g.max_elem);
  const __m512i ex = _mm512_max_epi32(
      _mm512_sub_epi32(_mm512_srli_epi32(_mm512_castps_si512(v), 23), _mm512_set1_epi32(127)),
      g.lowest);
  const __m512 t = _mm512_mul_ps(
      v, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_sub_epi32(g.m_plus_bias, ex), 23)));
  const __m512i lo = _mm512_cvttps_epi32(t);
  const __mmask16 up = _mm512_cmp_ps_mask(u, _mm512_sub_ps(t, _mm512_cvtepi32_ps(lo)), _CMP_LT_OQ);
  const __m512i q = _mm512_mask_add_epi32(lo, up, lo, _mm512_set1_epi32(1));
  const __m512i mag = _mm512_sllv_epi32(q, _mm512_sub_epi32(ex, g.lowest));
  const __mmask16 neg = _mm512_movepi32_mask(_mm512_castps_si512(x));
  return _mm512_mask_sub_epi32(mag, neg, _mm512_setzero_si512(), mag);
}

// The rceil shared exponent s of each lane's block amax (block_formats.h mx_shared_exp).
inline __m512i rceil_exp(const Grid& g, __m512 amax) {
  const __m512i d = _mm512_castps_si512(_mm512_mul_ps(amax, g.rceil_r));
  const __m512i f = _mm512_srli_epi32(d, 23), t = _mm512_and_si512(d, _mm512_set1_epi32(0x7FFFFF));
  const __m512i one = _mm512_set1_epi32(1), zero = _mm512_setzero_si512();
  const __m512i pos = _mm512_mask_add_epi32(f, _mm512_cmpneq_epi32_mask(t, zero), f, one);
  const __m512i sub = _mm512_maskz_mov_epi32(_mm512_cmpgt_epi32_mask(t, _mm512_set1_epi32(0x400000)), one);
  const __m512i code = _mm512_min_epi32(
      _mm512_mask_mov_epi32(sub, _mm512_cmpgt_epi32_mask(f, zero), pos), _mm512_set1_epi32(254));
  return _mm512_sub_epi32(code, _mm512_set1_epi32(127));
}

}  // namespace

void mx_sr_rows_avx512(const ElementFormat& e, uint64_t key, const float* x, MxOperand& out,
                       int64_t r0, int64_t r1) {
  const Grid g(e);
  const int64_t C = out.k, nb = out.nb, kp = nb * kBlock;
  const int elem_emax = emax(e);
  const float rceil_r = mx_rceil_constant(e);
  const __m512i keyv = _mm512_set1_epi64(static_cast<long long>(key));
  const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
  const __m512 fmax = _mm512_set1_ps(FLT_MAX);
  // (index + 1) · golden of lanes 0..7 and 8..15 relative to a block's first element
  const __m512i step_lo = _mm512_mullo_epi64(_mm512_set_epi64(8, 7, 6, 5, 4, 3, 2, 1),
                                             _mm512_set1_epi64(static_cast<long long>(kGolden)));
  const __m512i step_hi = _mm512_add_epi64(step_lo, _mm512_set1_epi64(static_cast<long long>(8 * kGolden)));
  const __m512i sixteen = _mm512_set1_epi64(static_cast<long long>(16 * kGolden));
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t blk = 0; blk < nb; ++blk) {
      const int64_t c0 = blk * kBlock, span = std::min<int64_t>(kBlock, C - c0);
      const float* src = x + r * C + c0;
      int8_t* dst = out.ints.data() + r * kp + c0;
      const __m512 v0 = _mm512_maskz_loadu_ps(lanes(span), src);
      const __m512 v1 = _mm512_maskz_loadu_ps(lanes(span - 16), src + 16);
      const __m512 a0 = _mm512_and_ps(v0, absmask), a1 = _mm512_and_ps(v1, absmask);
      float& exp = out.exps[r * nb + blk];
      int32_t& sum = out.sums[r * nb + blk];
      if ((_mm512_cmp_ps_mask(a0, fmax, _CMP_NLE_UQ) | _mm512_cmp_ps_mask(a1, fmax, _CMP_NLE_UQ)) != 0) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), _mm256_setzero_si256());
        exp = canonical_nan();
        sum = 0;
        continue;
      }
      const float amax = _mm512_reduce_max_ps(_mm512_max_ps(a0, a1));
      const int s = mx_shared_exp(f2u(amax), elem_emax, rceil_r, ScaleRule::kRceil);
      const __m512 down = _mm512_set1_ps(pow2f(-s));
      // (index + 1) · golden for index = r · C + c0 + lane
      const __m512i base = _mm512_set1_epi64(
          static_cast<long long>(static_cast<uint64_t>(r * C + c0) * kGolden));
      const __m512i h_lo = _mm512_add_epi64(base, step_lo), h_hi = _mm512_add_epi64(base, step_hi);
      const __m512i i0 = round16(g, v0, down, uniforms(keyv, h_lo, h_hi));
      const __m512i i1 = round16(g, v1, down,
                                 uniforms(keyv, _mm512_add_epi64(h_lo, sixteen), _mm512_add_epi64(h_hi, sixteen)));
      const __m512i i1m = _mm512_maskz_mov_epi32(lanes(span - 16), i1);  // (padding: x = 0 -> 0)
      const __m256i bytes = _mm256_inserti128_si256(
          _mm256_castsi128_si256(_mm512_cvtepi32_epi8(i0)), _mm512_cvtepi32_epi8(i1m), 1);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), bytes);
      exp = static_cast<float>(s + g.exp_offset);
      sum = _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1m));
    }
}

void mx_sr_cols_avx512(const ElementFormat& e, uint64_t key, const float* x, MxOperand& out,
                       bool panels, int64_t blk0, int64_t blk1, int64_t group0, int64_t group1) {
  const Grid g(e);
  const int64_t R = out.rows, C = out.k, nb = out.nb, kp = nb * kBlock;
  const __m512i keyv = _mm512_set1_epi64(static_cast<long long>(key));
  const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
  const __m512 fmax = _mm512_set1_ps(FLT_MAX);
  const __m512i golden = _mm512_set1_epi64(static_cast<long long>(kGolden));
  const __m512i lane_lo = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
  alignas(64) uint32_t words[8][16];
  alignas(64) float exps[16];
  alignas(64) int32_t sums[16];
  // Block rows outside, 16-row groups inside: the 32 source rows of a block are read front to
  // back (prefetch-friendly), each group's 32 x 16 tile twice from L1 (amax, then rounding).
  for (int64_t blk = blk0; blk < blk1; ++blk)
    for (int64_t grp = group0; grp < group1; ++grp) {
      const int64_t r0 = grp * 16;
      const __mmask16 live = lanes(R - r0);
      const int64_t c0 = blk * kBlock, span = std::min<int64_t>(kBlock, C - c0);
      // (index + 1) · golden for index = (r0 + lane) · C + c0
      const __m512i first = _mm512_add_epi64(_mm512_set1_epi64(r0 * C + c0 + 1),
                                             _mm512_mullo_epi64(_mm512_set1_epi64(C), lane_lo));
      const __m512i start_lo = _mm512_mullo_epi64(first, golden);
      const __m512i start_hi = _mm512_mullo_epi64(
          _mm512_add_epi64(first, _mm512_set1_epi64(8 * C)), golden);
      const float* src = x + c0 * R + r0;  // element (r0 + lane, c0 + p) at src[p * R + lane]
      __m512 amax = _mm512_setzero_ps();
      __mmask16 bad = 0;
      for (int64_t p = 0; p < span; ++p) {
        if (grp + 1 < group1) _mm_prefetch(reinterpret_cast<const char*>(src + p * R + 32), _MM_HINT_T0);
        const __m512 a = _mm512_and_ps(_mm512_maskz_loadu_ps(live, src + p * R), absmask);
        bad |= _mm512_cmp_ps_mask(a, fmax, _CMP_NLE_UQ);
        amax = _mm512_max_ps(amax, a);
      }
      const __m512i s = rceil_exp(g, amax);
      const __m512 down = _mm512_scalef_ps(_mm512_set1_ps(1.0f), _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_setzero_si512(), s)));
      __m512i h_lo = start_lo, h_hi = start_hi;
      __m512i total = _mm512_setzero_si512();
      for (int grp4 = 0; grp4 < 8; ++grp4) {
        __m512i word = _mm512_setzero_si512();
        for (int t = 0; t < 4; ++t) {
          const int64_t p = 4 * grp4 + t;
          if (p < span) {
            const __m512 xv = _mm512_maskz_loadu_ps(live, src + p * R);
            __m512i iv = round16(g, xv, down, uniforms(keyv, h_lo, h_hi));
            iv = _mm512_maskz_mov_epi32(static_cast<__mmask16>(~bad), iv);
            total = _mm512_add_epi32(total, iv);
            word = _mm512_or_si512(word, _mm512_slli_epi32(_mm512_and_si512(iv, _mm512_set1_epi32(0xFF)), 8 * t));
            h_lo = _mm512_add_epi64(h_lo, golden);
            h_hi = _mm512_add_epi64(h_hi, golden);
          }
        }
        if (panels)  // B: the block integers + 128 as unsigned bytes (dead lanes: 128)
          _mm512_storeu_si512(out.panel_ints.data() + ((grp * nb + blk) * 8 + grp4) * 64,
                              _mm512_xor_si512(word, _mm512_set1_epi32(static_cast<int>(0x80808080u))));
        else
          _mm512_store_si512(words[grp4], word);
      }
      __m512 ev = _mm512_cvtepi32_ps(_mm512_add_epi32(s, _mm512_set1_epi32(g.exp_offset)));
      ev = _mm512_mask_mov_ps(ev, bad, _mm512_set1_ps(canonical_nan()));
      if (panels) {
        _mm512_storeu_ps(out.panel_exps.data() + (grp * nb + blk) * 16, _mm512_maskz_mov_ps(live, ev));
        continue;
      }
      _mm512_store_ps(exps, ev);
      _mm512_store_si512(sums, total);
      for (int lane = 0; lane < 16 && r0 + lane < R; ++lane) {
        const int64_t r = r0 + lane;
        int8_t* dst = out.ints.data() + r * kp + c0;
        for (int w = 0; w < 8; ++w) std::memcpy(dst + 4 * w, &words[w][lane], 4);
        out.exps[r * nb + blk] = exps[lane];
        out.sums[r * nb + blk] = sums[lane];
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
void mx_gemm_wide_avx512(const MxOperand&, const MxOperand&, float*, int64_t, int64_t, int64_t,
                         int64_t, int64_t) {}
bool mx_operand_rows_avx512(const float*, int64_t, int64_t, MxOperand&) { return false; }
void mx_sr_rows_avx512(const ElementFormat&, uint64_t, const float*, MxOperand&, int64_t, int64_t) {}
void mx_sr_cols_avx512(const ElementFormat&, uint64_t, const float*, MxOperand&, bool, int64_t,
                       int64_t, int64_t, int64_t) {}
}  // namespace mxqat::quant::kernels
#endif
