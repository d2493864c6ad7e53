// Fast paths of the scaled-float block codecs: MX (spec §4: E8M0 scale, 32-blocks) and NVFP4
// (spec §5: E4M3 scale, 16-blocks, global decode scale). Per block: amax from the float bits,
// the scale computation (scalar, or for 16 blocks at once on 16 lanes in the AVX-512 group
// kernels), then the grid rounding of kernels.h on 16 lanes (AVX-512) or one element at a time
// (portable). Must equal Codec::*_reference bit for bit.
#include "quant/codec/simd_avx512.h"  // first: wraps <immintrin.h>

#include <vector>

#include "quant/codec/kernels/kernels.h"
#include "quant/codec/pack.h"


namespace mxqat::quant::kernels {
namespace {

constexpr uint32_t kAbs = 0x7FFFFFFFu;
constexpr uint32_t kInfBits = 0x7F800000u;

// Per-block scale of MX (E8M0 shared exponent) or NVFP4 (E4M3 block scale x global scale).
struct Scaler {
  bool mx;
  int emax;          // MX: element emax
  float rceil_r;     // MX: RN32(1 / max_elem)
  ScaleRule rule;    // MX
  float sb_mult;     // NVFP4: RN32(S_enc * C6)
  float s_dec;       // NVFP4: S_dec
  ElemParams e4m3;   // NVFP4: the block-scale format
  uint32_t nan_code; // scale code of a non-finite block

  // Scale code of a finite block with max |x| = amax_bits; enc/dec: element multipliers.
  uint32_t operator()(uint32_t amax_bits, float& enc, float& dec) const {
    if (mx) {
      const int s = mx_shared_exp(amax_bits, emax, rceil_r, rule);
      enc = pow2f(-s);
      dec = pow2f(s);
      return static_cast<uint32_t>(s + 127);
    }
    const float sb = std::min(u2f(amax_bits) * sb_mult, e4m3.maxn);  // +Inf saturates to 448
    const float s_b = round_to_grid(sb, e4m3);                        // value of the E4M3 code
    const float d_b = s_b * s_dec;
    enc = s_b == 0.0f ? 0.0f : std::min(1.0f / d_b, FLT_MAX);
    dec = d_b;
    return code_from_grid(s_b, false, e4m3);
  }
};

Scaler make_scaler(const KernelSpec& k, const Nvfp4Global& g) {
  Scaler s{};
  s.mx = k.scheme == BlockScheme::kMx;
  s.emax = emax(*k.elem);
  s.rceil_r = mx_rceil_constant(*k.elem);
  s.rule = k.rule;
  s.nan_code = s.mx ? 0xFFu : 0x7Fu;
  if (!s.mx) {
    s.sb_mult = nvfp4_block_scale_mult(g);
    s.s_dec = g.decode_scale;
    s.e4m3 = elem_params(*k.scale);
  }
  return s;
}

// ---------------- portable build ----------------

uint32_t block_amax_bits(const float* x, int64_t n) {
  uint32_t amax = 0;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, f2u(x[i]) & kAbs);
  return amax;
}

void fq_block_portable(const float* x, float* y, uint8_t* m, int64_t n, const ElemParams& p,
                       const Scaler& sc) {
  const uint32_t amax = block_amax_bits(x, n);
  if (amax >= kInfBits) {  // NaN/Inf in the block: all NaN, nothing in range
    for (int64_t i = 0; i < n; ++i) y[i] = canonical_nan();
    if (m) std::fill(m, m + n, 0);
    return;
  }
  float enc, dec;
  sc(amax, enc, dec);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t u = f2u(x[i]);
    const float v = u2f(u & kAbs) * enc;  // |x * enc|
    if (m) m[i] = v <= p.maxn ? 1 : 0;
    const float r = round_to_grid(std::min(v, p.maxn), p);
    float out = u2f(f2u(r * dec) | (u & ~kAbs));
    if (p.is_int) out = out + 0.0f;  // integer codes have no -0
    y[i] = out;
  }
}

uint32_t encode_block_portable(const float* x, uint8_t* c, int64_t n, const ElemParams& p,
                               const Scaler& sc) {
  const uint32_t amax = block_amax_bits(x, n);
  if (amax >= kInfBits) {
    std::fill(c, c + n, 0);
    return sc.nan_code;
  }
  float enc, dec;
  const uint32_t code = sc(amax, enc, dec);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t u = f2u(x[i]);
    const float r = round_to_grid(std::min(u2f(u & kAbs) * enc, p.maxn), p);
    c[i] = static_cast<uint8_t>(code_from_grid(r, (u >> 31) != 0, p));
  }
  return code;
}

// ---------------- AVX-512 build ----------------
#if MXQAT_CODEC_AVX512

struct Vec {
  __m512 maxn;
  __m512i emin_bits, magic_off, abs, sign, exp;
  explicit Vec(const ElemParams& p)
      : maxn(_mm512_set1_ps(p.maxn)),
        emin_bits(_mm512_set1_epi32(static_cast<int>(p.emin_bits))),
        magic_off(_mm512_set1_epi32(static_cast<int>(p.magic_off))),
        abs(_mm512_set1_epi32(static_cast<int>(kAbs))),
        sign(_mm512_set1_epi32(static_cast<int>(~kAbs))),
        exp(_mm512_set1_epi32(static_cast<int>(kInfBits))) {}
};

using simd::lanes;

// c = min(|x| * enc, max) rounded to the grid; inr: |x| * enc <= max.
inline __m512 grid16(__m512i xa, __m512 enc, const Vec& c, __mmask16* inr) {
  const __m512 v = _mm512_mul_ps(_mm512_castsi512_ps(xa), enc);
  if (inr) *inr = _mm512_cmp_ps_mask(v, c.maxn, _CMP_LE_OQ);
  const __m512 cl = _mm512_min_ps(v, c.maxn);
  const __m512i e = _mm512_max_epu32(_mm512_and_si512(_mm512_castps_si512(cl), c.exp), c.emin_bits);
  const __m512 m = _mm512_castsi512_ps(_mm512_add_epi32(e, c.magic_off));
  return _mm512_sub_ps(_mm512_add_ps(cl, m), m);
}

// Loads a block of n <= kV*16 elements: bits xi, magnitudes xa, live lanes; returns the bits of
// amax (an unsigned max of |x| bits, exact, NaN/Inf above kInfBits - 1).
template <int kV>
inline uint32_t load_block(const float* x, int64_t n, const Vec& c, __m512i* xi, __m512i* xa,
                           __mmask16* live) {
  __m512i mx = _mm512_setzero_si512();
  for (int j = 0; j < kV; ++j) {
    live[j] = lanes(n - 16 * j);
    xi[j] = _mm512_maskz_loadu_epi32(live[j], x + 16 * j);
    xa[j] = _mm512_and_si512(xi[j], c.abs);
    mx = _mm512_max_epu32(mx, xa[j]);
  }
  return simd::hmax_epu32(mx);
}

// A block with NaN/Inf: all NaN, nothing in range.
template <int kV>
inline void nan_block(float* y, uint8_t* m, const __mmask16* live) {
  for (int j = 0; j < kV; ++j) {
    _mm512_mask_storeu_ps(y + 16 * j, live[j], _mm512_castsi512_ps(_mm512_set1_epi32(int(kCanonicalNan))));
    if (m) _mm_mask_storeu_epi8(m + 16 * j, live[j], _mm_setzero_si128());
  }
}

// The loaded elements of a finite block rounded with its multipliers, stored with their signs
// (and the in-range mask when m is given).
template <int kV, bool kInt, bool kStream>
inline void round_block(const __m512i* xi, const __m512i* xa, const __mmask16* live, __m512 enc,
                        __m512 dec, float* y, uint8_t* m, const Vec& c) {
  for (int j = 0; j < kV; ++j) {
    __mmask16 inr;
    const __m512 r = grid16(xa[j], enc, c, m ? &inr : nullptr);
    __m512i out = _mm512_castps_si512(_mm512_mul_ps(r, dec));
    out = _mm512_ternarylogic_epi32(out, xi[j], c.sign, 0xF8);  // out | (x & sign)
    __m512 o = _mm512_castsi512_ps(out);
    if (kInt) o = _mm512_add_ps(o, _mm512_setzero_ps());  // -0 -> +0
    if (kStream) {
      _mm512_stream_ps(y + 16 * j, o);
    } else {
      _mm512_mask_storeu_ps(y + 16 * j, live[j], o);
    }
    if (m) _mm_mask_storeu_epi8(m + 16 * j, live[j], _mm_maskz_set1_epi8(inr, 1));
  }
}

// One block of n <= kBlock elements (kBlock = 16 or 32). kStream: y is 64-byte aligned and
// the block full, so full vectors go out as non-temporal stores (no read-for-ownership).
template <int kBlock, bool kInt, bool kStream>
inline void fq_block_avx512(const float* x, float* y, uint8_t* m, int64_t n, const Vec& c,
                            const Scaler& sc) {
  constexpr int kV = kBlock / 16;
  __m512i xi[kV], xa[kV];
  __mmask16 live[kV];
  const uint32_t amax = load_block<kV>(x, n, c, xi, xa, live);
  if (amax >= kInfBits) return nan_block<kV>(y, m, live);
  float encf, decf;
  sc(amax, encf, decf);
  round_block<kV, kInt, kStream>(xi, xa, live, _mm512_set1_ps(encf), _mm512_set1_ps(decf), y, m, c);
}

template <int kBlock>
inline uint32_t encode_block_avx512(const float* x, uint8_t* codes, int64_t n, const ElemParams& p,
                                    const Vec& c, const Scaler& sc) {
  constexpr int kV = kBlock / 16;
  __m512i xi[kV], xa[kV];
  __mmask16 live[kV];
  const uint32_t amax = load_block<kV>(x, n, c, xi, xa, live);
  if (amax >= kInfBits) {
    for (int j = 0; j < kV; ++j) _mm_mask_storeu_epi8(codes + 16 * j, live[j], _mm_setzero_si128());
    return sc.nan_code;
  }
  float encf, decf;
  const uint32_t scale_code = sc(amax, encf, decf);
  const __m512 enc = _mm512_set1_ps(encf);
  const __m128i shift = _mm_cvtsi32_si128(p.shift);
  for (int j = 0; j < kV; ++j) {
    const __m512 r = grid16(xa[j], enc, c, nullptr);
    const __mmask16 neg = _mm512_movepi32_mask(xi[j]);
    __m512i code;
    if (p.is_int) {
      const __m512i q = _mm512_cvttps_epi32(_mm512_mul_ps(r, _mm512_set1_ps(p.int_scale)));
      code = _mm512_mask_sub_epi32(q, neg, _mm512_setzero_si512(), q);
      code = _mm512_and_si512(code, _mm512_set1_epi32(static_cast<int>(p.mask)));
    } else {
      const __m512i rb = _mm512_castps_si512(r);
      const __m512i normal = _mm512_sub_epi32(_mm512_srl_epi32(rb, shift), _mm512_set1_epi32(int(p.rebias)));
      const __m512i sub = _mm512_cvttps_epi32(_mm512_mul_ps(r, _mm512_set1_ps(p.sub_scale)));
      code = _mm512_mask_blend_epi32(_mm512_cmpge_epu32_mask(rb, c.emin_bits), sub, normal);
      code = _mm512_mask_or_epi32(code, neg, code, _mm512_set1_epi32(static_cast<int>(p.sign_bit)));
    }
    _mm512_mask_cvtepi32_storeu_epi8(codes + 16 * j, live[j], code);
  }
  return scale_code;
}

// NVFP4 on 16 full blocks (256 elements) at a time: the 16 block maxima are reduced into the
// lanes of one vector (a transposing tree instead of 16 horizontal reductions), the per-block
// scale arithmetic of Scaler (spec §5 steps 5-8) runs once on 16 lanes with the same binary32
// operations, and each block then reloads its 16 elements (hot in L1) and rounds them.
struct NvGroup {
  Vec e4m3;                           // the block-scale format's rounding constants
  __m512 sb_mult, s_dec, one, fmax;
  explicit NvGroup(const Scaler& sc)
      : e4m3(sc.e4m3), sb_mult(_mm512_set1_ps(sc.sb_mult)), s_dec(_mm512_set1_ps(sc.s_dec)),
        one(_mm512_set1_ps(1.0f)), fmax(_mm512_set1_ps(FLT_MAX)) {}
};

// Lane j of the result = the unsigned max of the 16 lanes of v[j]: a transposing tree of
// shuffles (instead of 16 horizontal reductions). Max is exact, so the order does not matter.
inline __m512i lane_maxima16(const __m512i v[16]) {
  // Level 1: 128-bit chunks 0,1 of r[k] hold partial maxima of v[2k], chunks 2,3 of v[2k+1].
  __m512i r[8];
  for (int k = 0; k < 8; ++k) {
    const __m512i a = v[2 * k], b = v[2 * k + 1];
    r[k] = _mm512_max_epu32(_mm512_shuffle_i32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                            _mm512_shuffle_i32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
  }
  // Level 2: chunk q of s[m] = 4 partial maxima of v[4m + q].
  __m512i s[4];
  for (int k = 0; k < 4; ++k)
    s[k] = _mm512_max_epu32(_mm512_shuffle_i32x4(r[2 * k], r[2 * k + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                            _mm512_shuffle_i32x4(r[2 * k], r[2 * k + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  // Level 3: in chunk q of t[p], dwords 0,1 belong to v[8p + q], dwords 2,3 to v[8p + 4 + q].
  __m512i t[2];
  for (int k = 0; k < 2; ++k)
    t[k] = _mm512_max_epu32(_mm512_unpacklo_epi64(s[2 * k], s[2 * k + 1]),
                            _mm512_unpackhi_epi64(s[2 * k], s[2 * k + 1]));
  // Level 4: lane 4q + i of u = max of v[4i + q].
  const __m512 t0 = _mm512_castsi512_ps(t[0]), t1 = _mm512_castsi512_ps(t[1]);
  const __m512i u = _mm512_max_epu32(_mm512_castps_si512(_mm512_shuffle_ps(t0, t1, _MM_SHUFFLE(2, 0, 2, 0))),
                                     _mm512_castps_si512(_mm512_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 1, 3, 1))));
  // Back to order: lane j = max of v[j].
  return _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), u);
}

template <bool kStream>
inline void fq_nvfp4_group(const float* x, float* y, uint8_t* m, const Vec& c, const NvGroup& g) {
  __m512i v[16];
  for (int j = 0; j < 16; ++j) v[j] = _mm512_and_si512(_mm512_loadu_si512(x + 16 * j), c.abs);
  const __m512i u = lane_maxima16(v);
  const __mmask16 nonfinite = _mm512_cmpge_epu32_mask(u, c.exp);
  // Scaler::operator() on 16 lanes: sb = min(a_b * sb_mult, 448), S_b on the E4M3 grid,
  // D_b = S_b * S_dec, r = S_b == 0 ? 0 : min(1 / D_b, FLT_MAX).
  const __m512 s_b = grid16(u, g.sb_mult, g.e4m3, nullptr);
  const __m512 d_b = _mm512_mul_ps(s_b, g.s_dec);
  const __m512 r_b = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(s_b, _mm512_setzero_ps(), _CMP_NEQ_UQ),
                                         _mm512_min_ps(_mm512_div_ps(g.one, d_b), g.fmax));
  alignas(64) float encs[16], decs[16];
  _mm512_store_ps(encs, r_b);
  _mm512_store_ps(decs, d_b);
  const __m512 nan = _mm512_castsi512_ps(_mm512_set1_epi32(int(kCanonicalNan)));
  for (int j = 0; j < 16; ++j) {
    const __m512i xi = _mm512_loadu_si512(x + 16 * j);
    const __m512i xa = _mm512_and_si512(xi, c.abs);
    __mmask16 inr = 0;
    const __m512 rr = grid16(xa, _mm512_set1_ps(encs[j]), c, m ? &inr : nullptr);
    __m512 o = _mm512_castsi512_ps(_mm512_ternarylogic_epi32(
        _mm512_castps_si512(_mm512_mul_ps(rr, _mm512_set1_ps(decs[j]))), xi, c.sign, 0xF8));
    if ((nonfinite >> j) & 1) {  // NaN/Inf in the block: all NaN, nothing in range
      o = nan;
      inr = 0;
    }
    if (kStream) {
      _mm512_stream_ps(y + 16 * j, o);
    } else {
      _mm512_storeu_ps(y + 16 * j, o);
    }
    if (m) _mm_storeu_si128(reinterpret_cast<__m128i*>(m + 16 * j), _mm_maskz_set1_epi8(inr, 1));
  }
}

// MX 32-blocks, 16 full blocks (512 elements) at a time, as NVFP4 above: the block maxima in
// the lanes of one vector, Scaler's mx_shared_exp and pow2f (block_formats.h, formats.h) on 16
// lanes with the same integer and binary32 operations, then each block reloaded (hot in L1) and
// rounded as fq_block_avx512 rounds it.
struct MxGroup {
  bool floor;
  __m512i floor_off, min_s, one, k127, k254, mant, half, min_normal_k, pow2_min;
  __m512 rceil_r;
  explicit MxGroup(const Scaler& sc)
      : floor(sc.rule == ScaleRule::kFloor), floor_off(_mm512_set1_epi32(127 + sc.emax)),
        min_s(_mm512_set1_epi32(-127)), one(_mm512_set1_epi32(1)), k127(_mm512_set1_epi32(127)),
        k254(_mm512_set1_epi32(254)), mant(_mm512_set1_epi32(0x7FFFFF)), half(_mm512_set1_epi32(0x400000)),
        min_normal_k(_mm512_set1_epi32(-126)), pow2_min(_mm512_set1_epi32(0x00400000)),
        rceil_r(_mm512_set1_ps(sc.rceil_r)) {}
  // pow2f(k) for k in [-127, 127]: a normal power of two, or 2^-127 (subnormal)
  __m512 pow2(__m512i k) const {
    const __m512i normal = _mm512_slli_epi32(_mm512_add_epi32(k, k127), 23);
    return _mm512_castsi512_ps(_mm512_mask_blend_epi32(_mm512_cmpge_epi32_mask(k, min_normal_k), pow2_min, normal));
  }
  // mx_shared_exp of 16 finite block maxima (lanes of non-finite blocks are don't-care)
  __m512i shared_exp(__m512i amax) const {
    if (floor)  // max(f - 127 - emax, -127), which is -127 for f = 0 too
      return _mm512_max_epi32(_mm512_sub_epi32(_mm512_srli_epi32(amax, 23), floor_off), min_s);
    const __m512i d = _mm512_castps_si512(_mm512_mul_ps(_mm512_castsi512_ps(amax), rceil_r));
    const __m512i f = _mm512_srli_epi32(d, 23), t = _mm512_and_si512(d, mant);
    const __m512i up = _mm512_mask_add_epi32(f, _mm512_test_epi32_mask(t, t), f, one);  // f + (t != 0)
    const __m512i sub = _mm512_maskz_mov_epi32(_mm512_cmpgt_epu32_mask(t, half), one);
    const __m512i code = _mm512_min_epu32(_mm512_mask_blend_epi32(_mm512_test_epi32_mask(f, f), sub, up), k254);
    return _mm512_sub_epi32(code, k127);
  }
};

template <bool kInt, bool kStream>
inline void fq_mx32_group(const float* x, float* y, uint8_t* m, const Vec& c, const MxGroup& g) {
  __m512i v[16];
  for (int j = 0; j < 16; ++j)
    v[j] = _mm512_max_epu32(_mm512_and_si512(_mm512_loadu_si512(x + 32 * j), c.abs),
                            _mm512_and_si512(_mm512_loadu_si512(x + 32 * j + 16), c.abs));
  const __m512i u = lane_maxima16(v);
  const __mmask16 nonfinite = _mm512_cmpge_epu32_mask(u, c.exp);
  const __m512i se = g.shared_exp(u);
  alignas(64) float encs[16], decs[16];
  _mm512_store_ps(encs, g.pow2(_mm512_sub_epi32(_mm512_setzero_si512(), se)));
  _mm512_store_ps(decs, g.pow2(se));
  const __mmask16 live[2] = {0xFFFF, 0xFFFF};
  for (int j = 0; j < 16; ++j) {
    __m512i xi[2], xa[2];
    for (int h = 0; h < 2; ++h) {
      xi[h] = _mm512_loadu_si512(x + 32 * j + 16 * h);
      xa[h] = _mm512_and_si512(xi[h], c.abs);
    }
    if ((nonfinite >> j) & 1) {
      nan_block<2>(y + 32 * j, m ? m + 32 * j : nullptr, live);
      continue;
    }
    round_block<2, kInt, kStream>(xi, xa, live, _mm512_set1_ps(encs[j]), _mm512_set1_ps(decs[j]),
                                  y + 32 * j, m ? m + 32 * j : nullptr, c);
  }
}

// Outputs larger than this (bytes) do not stay in cache anyway: write them with streaming
// stores, which saves the read-for-ownership of every output line (memcpy does the same).
constexpr int64_t kStreamMinBytes = int64_t(32) << 20;

// MX (32-blocks): 16 full blocks at a time (fq_mx32_group), the others one by one. With
// K % 32 == 0 the tensor is R * nb consecutive full blocks, grouped across rows; otherwise row
// by row (each block's result depends on its own elements only, so any split gives the same bits).
template <bool kInt>
void fq_mx32_avx512(const KernelSpec& k, const ElemParams& p, const Scaler& sc, const float* x,
                    int64_t R, float* y, uint8_t* mask) {
  const Vec c(p);
  const MxGroup g(sc);
  const int64_t K = k.K, nb = k.nb;
  if (K % 32 != 0) {
    const int64_t groups = K / 32 / 16;
#pragma omp parallel for schedule(static) if (split_across_threads(R * K))
    for (int64_t r = 0; r < R; ++r) {
      const float* xr = x + r * K;
      float* yr = y + r * K;
      uint8_t* mr = mask ? mask + r * K : nullptr;
      for (int64_t i = 0; i < groups; ++i)
        fq_mx32_group<kInt, false>(xr + i * 512, yr + i * 512, mr ? mr + i * 512 : nullptr, c, g);
      for (int64_t b = groups * 16; b < nb; ++b)
        fq_block_avx512<32, kInt, false>(xr + b * 32, yr + b * 32, mr ? mr + b * 32 : nullptr,
                                         std::min<int64_t>(32, K - b * 32), c, sc);
    }
    return;
  }
  const bool stream = R * K * 4 >= kStreamMinBytes && reinterpret_cast<uintptr_t>(y) % 64 == 0;
  const int64_t blocks = R * nb, groups = blocks / 16;
#pragma omp parallel if (split_across_threads(R * K))
  {
#pragma omp for schedule(static) nowait
    for (int64_t i = 0; i < groups; ++i) {
      const int64_t off = i * 512;
      uint8_t* m = mask ? mask + off : nullptr;
      if (stream) {
        fq_mx32_group<kInt, true>(x + off, y + off, m, c, g);
      } else {
        fq_mx32_group<kInt, false>(x + off, y + off, m, c, g);
      }
    }
#pragma omp for schedule(static)
    for (int64_t b = groups * 16; b < blocks; ++b) {
      const int64_t off = b * 32;
      fq_block_avx512<32, kInt, false>(x + off, y + off, mask ? mask + off : nullptr, 32, c, sc);
    }
    _mm_sfence();  // order the streaming stores before the region's closing barrier
  }
}

// Other block sizes (NVFP4 rows whose length is not a multiple of 16): block by block.
template <int kBlock, bool kInt>
void fq_rows_avx512(const KernelSpec& k, const ElemParams& p, const Scaler& sc, const float* x,
                    int64_t R, float* y, uint8_t* mask) {
  const Vec c(p);
  const int64_t K = k.K, nb = k.nb;
  const bool stream = R * K * 4 >= kStreamMinBytes && K % kBlock == 0 &&
                      reinterpret_cast<uintptr_t>(y) % 64 == 0;
#pragma omp parallel if (split_across_threads(R * K))
  {
#pragma omp for collapse(2) schedule(static)
    for (int64_t r = 0; r < R; ++r)
      for (int64_t b = 0; b < nb; ++b) {
        const int64_t off = r * K + b * kBlock;
        uint8_t* m = mask ? mask + off : nullptr;
        if (stream) {
          fq_block_avx512<kBlock, kInt, true>(x + off, y + off, m, kBlock, c, sc);
        } else {
          fq_block_avx512<kBlock, kInt, false>(x + off, y + off, m, std::min<int64_t>(kBlock, K - b * kBlock), c, sc);
        }
      }
    _mm_sfence();  // order the streaming stores before the region's closing barrier
  }
}

// NVFP4 rows with K % 16 == 0: the tensor is R * nb consecutive full blocks, taken 16 at a time
// (each block's result depends on its own elements only, so any split gives the same bits).
void fq_nvfp4_avx512(const KernelSpec& k, const ElemParams& p, const Scaler& sc, const float* x,
                     int64_t R, float* y, uint8_t* mask) {
  const Vec c(p);
  const NvGroup g(sc);
  const int64_t n = R * k.K, blocks = n / 16, groups = blocks / 16;
  const bool stream = n * 4 >= kStreamMinBytes && reinterpret_cast<uintptr_t>(y) % 64 == 0;
#pragma omp parallel if (split_across_threads(n))
  {
#pragma omp for schedule(static) nowait
    for (int64_t i = 0; i < groups; ++i) {
      const int64_t off = i * 256;
      uint8_t* m = mask ? mask + off : nullptr;
      if (stream) {
        fq_nvfp4_group<true>(x + off, y + off, m, c, g);
      } else {
        fq_nvfp4_group<false>(x + off, y + off, m, c, g);
      }
    }
#pragma omp for schedule(static)
    for (int64_t b = groups * 16; b < blocks; ++b) {
      const int64_t off = b * 16;
      fq_block_avx512<16, false, false>(x + off, y + off, mask ? mask + off : nullptr, 16, c, sc);
    }
    _mm_sfence();  // order the streaming stores before the region's closing barrier
  }
}
#endif  // MXQAT_CODEC_AVX512

// max over the bits of |x| of the finite elements of x[0..n).
uint32_t finite_amax_bits(const float* x, int64_t n) {
  uint32_t amax = 0;
  int64_t i = 0;
#if MXQAT_CODEC_AVX512
  __m512i acc = _mm512_setzero_si512();
  const __m512i abs = _mm512_set1_epi32(static_cast<int>(kAbs)), inf = _mm512_set1_epi32(static_cast<int>(kInfBits));
  for (; i < n; i += 16) {
    const __m512i a = _mm512_and_si512(_mm512_maskz_loadu_epi32(lanes(n - i), x + i), abs);
    acc = _mm512_mask_max_epu32(acc, _mm512_cmplt_epu32_mask(a, inf), acc, a);
  }
  amax = simd::hmax_epu32(acc);
#endif
  for (; i < n; ++i) {
    const uint32_t a = f2u(x[i]) & kAbs;
    amax = std::max(amax, a < kInfBits ? a : 0u);
  }
  return amax;
}

}  // namespace

float finite_amax(const float* x, int64_t n) {
  constexpr int64_t kChunk = 1 << 14;  // fixed chunks: max is exact, so any split gives the same A
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  uint32_t amax = 0;
#pragma omp parallel for reduction(max : amax) schedule(static) if (split_across_threads(n))
  for (int64_t c = 0; c < chunks; ++c)
    amax = std::max(amax, finite_amax_bits(x + c * kChunk, std::min(kChunk, n - c * kChunk)));
  return u2f(amax);  // spec §5 step 1: non-finite values are skipped, 0 if none
}

void fp_fake_quant(const KernelSpec& k, const Nvfp4Global& g, const float* x, int64_t R, float* y,
                   uint8_t* mask, bool simd) {
  const ElemParams p = elem_params(*k.elem);
  const Scaler sc = make_scaler(k, g);
#if MXQAT_CODEC_AVX512
  if (simd) {
    if (sc.mx && k.G == 32 && p.is_int) return fq_mx32_avx512<true>(k, p, sc, x, R, y, mask);
    if (sc.mx && k.G == 32) return fq_mx32_avx512<false>(k, p, sc, x, R, y, mask);
    if (k.G == 16 && !p.is_int && k.scheme == BlockScheme::kNvfp4 && k.K % 16 == 0)
      return fq_nvfp4_avx512(k, p, sc, x, R, y, mask);
    if (k.G == 16 && !p.is_int) return fq_rows_avx512<16, false>(k, p, sc, x, R, y, mask);
  }
#else
  (void)simd;
#endif
  const int64_t K = k.K, G = k.G, nb = k.nb;
#pragma omp parallel for collapse(2) schedule(static) if (split_across_threads(R * K))
  for (int64_t r = 0; r < R; ++r)
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t off = r * K + b * G;
      fq_block_portable(x + off, y + off, mask ? mask + off : nullptr, std::min(G, K - b * G), p, sc);
    }
}

void fp_encode(const KernelSpec& k, const Nvfp4Global& g, const float* x, int64_t R, EncodedTensor& e) {
  const ElemParams p = elem_params(*k.elem);
  const Scaler sc = make_scaler(k, g);
  const int64_t K = k.K, G = k.G, nb = k.nb;
#pragma omp parallel if (split_across_threads(R * K))
  {
    std::vector<uint8_t> row(static_cast<size_t>(nb * G), 0);  // tail padding stays 0
#if MXQAT_CODEC_AVX512
    const Vec c(p);
#endif
#pragma omp for schedule(static)
    for (int64_t r = 0; r < R; ++r) {
      for (int64_t b = 0; b < nb; ++b) {
        const float* xb = x + r * K + b * G;
        uint8_t* cb = row.data() + b * G;
        const int64_t n = std::min(G, K - b * G);
        uint32_t code;
#if MXQAT_CODEC_AVX512
        if (G == 32) code = encode_block_avx512<32>(xb, cb, n, p, c, sc);
        else if (G == 16) code = encode_block_avx512<16>(xb, cb, n, p, c, sc);
        else code = encode_block_portable(xb, cb, n, p, sc);
#else
        code = encode_block_portable(xb, cb, n, p, sc);
#endif
        e.scale_codes[static_cast<size_t>(r * nb + b)] = static_cast<uint8_t>(code);
      }
      pack_codes(row.data(), nb * G, k.bits, e.codes.data() + r * k.bytes_per_row);
    }
  }
}

void fp_decode(const KernelSpec& k, const EncodedTensor& e, float* y) {
  const float* lut = decode_lut(*k.elem);
  const float* scale_lut = decode_lut(*k.scale);
  const bool nv = k.scheme == BlockScheme::kNvfp4;
  const float s_dec = e.global_decode_scale;
  const int64_t K = k.K, G = k.G, nb = k.nb, R = e.rows;
#pragma omp parallel if (split_across_threads(R * K))
  {
    std::vector<uint8_t> row(static_cast<size_t>(nb * G + 16), 0);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < R; ++r) {
      unpack_codes(e.codes.data() + r * k.bytes_per_row, nb * G, k.bits, row.data());
      for (int64_t b = 0; b < nb; ++b) {
        float d = scale_lut[e.scale_codes[static_cast<size_t>(r * nb + b)]];
        if (nv) d = d * s_dec;
        const uint8_t* cb = row.data() + b * G;
        float* yb = y + r * K + b * G;
        const int64_t n = std::min(G, K - b * G);
#if MXQAT_CODEC_AVX512
        const __m512 dv = _mm512_set1_ps(d);
        const __m512 nan = _mm512_castsi512_ps(_mm512_set1_epi32(int(kCanonicalNan)));
        for (int64_t j = 0; j < n; j += 16) {
          const __m512i idx = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(cb + j)));
          __m512 v = _mm512_mul_ps(_mm512_i32gather_ps(idx, lut, 4), dv);
          v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), nan);
          _mm512_mask_storeu_ps(yb + j, lanes(n - j), v);
        }
#else
        for (int64_t i = 0; i < n; ++i) {
          const float v = lut[cb[i]] * d;
          yb[i] = v != v ? canonical_nan() : v;
        }
#endif
      }
    }
  }
}

}  // namespace mxqat::quant::kernels
