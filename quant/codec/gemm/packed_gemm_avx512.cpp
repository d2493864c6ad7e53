// AVX-512 kernels of packed_linear (packed_gemm.h): codes are decoded 32 at a time in registers
// (4-bit: nibble -> float through a 16-entry table scaled by the block scale, one vpermps per 16;
// 6-bit: bytes spread by vpshufb, 64-entry table by two vpermi2ps; 8-bit: binary16 or int conversion),
// each value exactly code value × block scale as in Codec::decode. Matrix-vector (M < 16): lanes
// over K, several x rows and 4 weight rows per pass. Batch: W decoded panel by panel into L1, lanes
// over x rows (an outer-product micro-kernel). Internal to quant/codec.
#include "quant/codec/simd_avx512.h"  // first: wraps <immintrin.h>

#include <algorithm>
#include <cfloat>
#include <vector>

#include "quant/codec/kernels/kernels.h"
#include "quant/codec/gemm/packed_gemm.h"

#if MXQAT_CODEC_AVX512
namespace mxqat::quant::kernels {
namespace {

using simd::lanes;

// vpshufb control: every dword of 128-bit lane q takes bytes 3q, 3q+1, 3q+2 (zero on top).
inline __m512i spread_bytes() {
  const auto lane = [](int q) { return static_cast<int>(0x80000000u | (3u * q + 2) << 16 | (3u * q + 1) << 8 | 3u * q); };
  return _mm512_set_epi32(lane(3), lane(3), lane(3), lane(3), lane(2), lane(2), lane(2), lane(2),
                          lane(1), lane(1), lane(1), lane(1), lane(0), lane(0), lane(0), lane(0));
}

// How a span's codes become floats: 4-bit codes through a 16-entry table (MX: one block scale per
// span; NVFP4: two), 6-bit through a 64-entry table, 8-bit by PackedWeight::bytes (binary16
// conversion for FP8, int conversion for MXINT8, else a gather from the 256-entry table).
enum class Decoder { kNibble32, kNibble16, kSixBit, kByteHalf, kByteInt, kByteGather };
constexpr bool is_nibble(Decoder d) { return d == Decoder::kNibble32 || d == Decoder::kNibble16; }

// lut[c] × d of 16 E4M3 / E5M2 codes (kHalf of PackedWeight): rebuilt as binary16, converted, and
// multiplied by dh = half_scale × d when that is finite (then exactly (value / half_scale) × dh =
// value × d), else by half_scale and d in turn.
inline __m512 byte_half(__m128i codes, const PackedWeight& w, float d, float dh) {
  // Code in the top byte, arithmetic shift right by 8 - half_shift: the sign lands on bit 15 (and
  // copies on the bits below it, cleared by the mask), the magnitude on bits half_shift and up.
  const __m256i c = _mm256_slli_epi16(_mm256_cvtepu8_epi16(codes), 8);
  const __m256i half = _mm256_and_si256(_mm256_sra_epi16(c, _mm_cvtsi32_si128(8 - w.half_shift)),
                                        _mm256_set1_epi16(static_cast<short>(0x8000u | 0x7Fu << w.half_shift)));
  __m512 v = _mm512_cvtph_ps(half);
  v = dh <= FLT_MAX ? _mm512_mul_ps(v, _mm512_set1_ps(dh))
                    : _mm512_mul_ps(_mm512_mul_ps(v, _mm512_set1_ps(w.half_scale)), _mm512_set1_ps(d));
  if (w.nan_magnitude == 0xFFFF) return v;
  const __mmask16 nan = _mm256_cmpeq_epi16_mask(_mm256_and_si256(c, _mm256_set1_epi16(0x7F00)),
                                                _mm256_set1_epi16(static_cast<short>(w.nan_magnitude << 8)));
  return _mm512_mask_mov_ps(v, nan, _mm512_set1_ps(canonical_nan()));
}

// Multiplier of block b of a row whose scale codes start at sc, as Codec::decode computes it.
template <Decoder D>
inline float block_scale(const PackedWeight& w, const uint8_t* sc, int64_t b) {
  const float d = w.scale_lut[sc[b]];
  return D == Decoder::kNibble16 ? d * w.s_dec : d;  // only NVFP4 has 16-blocks
}

// The 32 elements of span s of a row (codes at row, scale codes at sc) as lo/hi in the lane order
// of packed_gemm.h. Tail: the row's last span, whose lanes past K are zeroed (and whose NVFP4 half
// span has only 8 bytes); other spans take no masks.
template <Decoder D, bool Tail>
inline void decode_span(const PackedWeight& w, const uint8_t* row, const uint8_t* sc, int64_t s,
                        __m512& lo, __m512& hi) {
  const int64_t valid = Tail ? w.K - 32 * s : 32;
  if constexpr (is_nibble(D)) {
    const uint8_t* p = row + 16 * s;
    const int64_t avail = Tail ? std::min<int64_t>(16, w.bytes_per_row - 16 * s) : 16;
    const __m128i bytes = avail == 16 ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(p))
                                      : _mm_maskz_loadu_epi8(static_cast<__mmask16>((1u << avail) - 1u), p);
    const __m512i b = _mm512_cvtepu8_epi32(bytes);
    const __m512i ihi = _mm512_srli_epi32(b, 4);
    const __m512 lut = _mm512_loadu_ps(w.lut);
    if constexpr (D == Decoder::kNibble32) {  // vpermps reads only index bits 0-3: b is the low nibble
      const __m512 t = _mm512_mul_ps(lut, _mm512_set1_ps(block_scale<D>(w, sc, s)));
      lo = _mm512_permutexvar_ps(b, t);
      hi = _mm512_permutexvar_ps(ihi, t);
    } else {  // two 16-blocks: bytes 0-7 (lanes 0-7) and 8-15 (lanes 8-15), a table each
      const float d1 = !Tail || 2 * s + 1 < w.nb ? block_scale<D>(w, sc, 2 * s + 1) : 0.0f;
      const __m512 t0 = _mm512_mul_ps(lut, _mm512_set1_ps(block_scale<D>(w, sc, 2 * s)));
      const __m512 t1 = _mm512_mul_ps(lut, _mm512_set1_ps(d1));
      const __m512i second = _mm512_set_epi32(16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0);
      const __m512i ilo = _mm512_and_si512(b, _mm512_set1_epi32(0xF));
      lo = _mm512_permutex2var_ps(t0, _mm512_or_si512(ilo, second), t1);
      hi = _mm512_permutex2var_ps(t0, _mm512_or_si512(ihi, second), t1);
    }
    if (Tail) {
      lo = _mm512_maskz_mov_ps(lanes((valid + 1) / 2), lo);
      hi = _mm512_maskz_mov_ps(lanes(valid / 2), hi);
    }
    return;
  }
  const float ds = block_scale<D>(w, sc, s);
  const __m512 d = _mm512_set1_ps(ds);
  const float dh = D == Decoder::kByteHalf ? ds * w.half_scale : 0.0f;
  __m512 v[2];
  for (int h = 0; h < 2; ++h) {
    if constexpr (D == Decoder::kByteGather) {
      const __m512i c = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 32 * s + 16 * h)));
      v[h] = _mm512_i32gather_ps(c, w.lut, 4);
    } else if constexpr (D == Decoder::kByteHalf) {
      v[h] = byte_half(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 32 * s + 16 * h)), w, ds, dh);
    } else if constexpr (D == Decoder::kByteInt) {
      const __m512i q = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 32 * s + 16 * h)));
      v[h] = _mm512_mul_ps(_mm512_cvtepi32_ps(q), _mm512_set1_ps(w.int_scale));
    } else {  // 6-bit: codes 4q..4q+3 in bytes 3q..3q+2 (a 24-bit word) go to 128-bit lane q
      const __m128i raw = _mm_maskz_loadu_epi8(0x0FFF, row + 24 * s + 12 * h);
      const __m512i spread = _mm512_shuffle_epi8(_mm512_broadcast_i32x4(raw), spread_bytes());
      // Code in bits 0-5 (higher bits ignored: vpermi2ps reads bits 0-4, the blend bit 5).
      const __m512i c = _mm512_srlv_epi32(spread, _mm512_set_epi32(18, 12, 6, 0, 18, 12, 6, 0, 18, 12, 6, 0, 18, 12, 6, 0));
      const __m512 low = _mm512_permutex2var_ps(_mm512_loadu_ps(w.lut), c, _mm512_loadu_ps(w.lut + 16));
      const __m512 high = _mm512_permutex2var_ps(_mm512_loadu_ps(w.lut + 32), c, _mm512_loadu_ps(w.lut + 48));
      v[h] = _mm512_mask_blend_ps(_mm512_test_epi32_mask(c, _mm512_set1_epi32(32)), low, high);
    }
    if constexpr (D != Decoder::kByteHalf) v[h] = _mm512_mul_ps(v[h], d);
    if (Tail) v[h] = _mm512_maskz_mov_ps(lanes(valid - 16 * h), v[h]);
  }
  lo = v[0];
  hi = v[1];
}

// Lane sum in the tree order of packed_gemm.h (j + j^8, j + j^4, j + j^2, j + j^1).
inline float tree_sum(__m512 v) {
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
  v = _mm512_add_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(1, 0, 3, 2)));
  v = _mm512_add_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm512_cvtss_f32(v);
}

// Weight rows [n0, n0 + NW) against x rows [0, R) of xp [R, Kp]: NW x R independent fma chains.
// One span of weight rows [n0, n0 + NW) against x rows [0, R) of xp [R, Kp].
template <Decoder D, bool Tail, int R, int NW>
inline void gemv_span(const PackedWeight& w, int64_t n0, const float* xp, int64_t Kp, int64_t s,
                      __m512 (&acc)[NW][R]) {
  __m512 lo[NW], hi[NW];
  for (int i = 0; i < NW; ++i)
    decode_span<D, Tail>(w, w.codes + (n0 + i) * w.bytes_per_row, w.scale_codes + (n0 + i) * w.nb, s, lo[i], hi[i]);
  for (int r = 0; r < R; ++r) {
    const __m512 x0 = _mm512_loadu_ps(xp + r * Kp + 32 * s), x1 = _mm512_loadu_ps(xp + r * Kp + 32 * s + 16);
    for (int i = 0; i < NW; ++i) {
      acc[i][r] = _mm512_fmadd_ps(x0, lo[i], acc[i][r]);
      acc[i][r] = _mm512_fmadd_ps(x1, hi[i], acc[i][r]);
    }
  }
}

// Weight rows [n0, n0 + NW) against x rows [0, R) of xp [R, Kp]: NW x R independent fma chains.
template <Decoder D, int R, int NW>
void gemv_tile(const PackedWeight& w, int64_t n0, const float* xp, int64_t Kp, const float* bias,
               float* y) {
  __m512 acc[NW][R];
  for (int i = 0; i < NW; ++i)
    for (int r = 0; r < R; ++r) acc[i][r] = _mm512_setzero_ps();
  for (int64_t s = 0; s + 1 < w.spans; ++s) gemv_span<D, false>(w, n0, xp, Kp, s, acc);
  gemv_span<D, true>(w, n0, xp, Kp, w.spans - 1, acc);
  for (int i = 0; i < NW; ++i)
    for (int r = 0; r < R; ++r) y[r * w.N + n0 + i] = finish_output(tree_sum(acc[i][r]), bias, n0 + i);
}

template <Decoder D, int R>
void gemv_rows(const PackedWeight& w, const float* xp, const float* bias, float* y) {
  constexpr int kNW = 4;
  const int64_t Kp = w.spans * 32, groups = (w.N + kNW - 1) / kNW;
#pragma omp parallel for schedule(static) if (w.N * w.K * R >= kParallelMinElements)
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t n0 = g * kNW;
    if (n0 + kNW <= w.N) {
      gemv_tile<D, R, kNW>(w, n0, xp, Kp, bias, y);
    } else {
      for (int64_t n = n0; n < w.N; ++n) gemv_tile<D, R, 1>(w, n, xp, Kp, bias, y);
    }
  }
}

template <Decoder D>
void gemv(const PackedWeight& w, const float* xp, int64_t M, const float* bias, float* y) {
  const int64_t Kp = w.spans * 32;
  for (int64_t m0 = 0; m0 < M; m0 += 4) {  // up to 4 x rows share each decoded span
    const float* xr = xp + m0 * Kp;
    float* yr = y + m0 * w.N;
    switch (std::min<int64_t>(4, M - m0)) {
      case 1: gemv_rows<D, 1>(w, xr, bias, yr); break;
      case 2: gemv_rows<D, 2>(w, xr, bias, yr); break;
      case 3: gemv_rows<D, 3>(w, xr, bias, yr); break;
      default: gemv_rows<D, 4>(w, xr, bias, yr);
    }
  }
}

// ---- batch: W panels decoded into L1, x rows along the lanes ----
constexpr int kNR = 6;         // weight rows per micro-tile
constexpr int64_t kKC = 256;   // K per decoded panel (kNR x kKC floats = 6 KiB)

// acc [kNR, Mp] (MV*16 columns used) += xt [kc, Mp] (MV*16 columns) · wb [kNR, kKC]ᵀ, k in order.
template <int MV>
void batch_micro(const float* xt, int64_t Mp, const float* wb, int64_t kc, float* acc) {
  __m512 a[kNR][MV];
  for (int j = 0; j < kNR; ++j)
    for (int v = 0; v < MV; ++v) a[j][v] = _mm512_loadu_ps(acc + j * Mp + 16 * v);
  for (int64_t k = 0; k < kc; ++k) {
    __m512 xv[MV];
    for (int v = 0; v < MV; ++v) xv[v] = _mm512_loadu_ps(xt + k * Mp + 16 * v);
    for (int j = 0; j < kNR; ++j) {
      const __m512 wj = _mm512_set1_ps(wb[j * kKC + k]);
      for (int v = 0; v < MV; ++v) a[j][v] = _mm512_fmadd_ps(xv[v], wj, a[j][v]);
    }
  }
  for (int j = 0; j < kNR; ++j)
    for (int v = 0; v < MV; ++v) _mm512_storeu_ps(acc + j * Mp + 16 * v, a[j][v]);
}

// wb [kNR, kKC] = rows [n0, n0 + kNR) of W, elements [k0, k0 + kc), natural order (0 past N, K).
template <Decoder D>
void decode_panel(const PackedWeight& w, int64_t n0, int64_t k0, int64_t kc, float* wb) {
  for (int j = 0; j < kNR; ++j) {
    float* out = wb + j * kKC;
    if (n0 + j >= w.N) {
      std::fill(out, out + kc, 0.0f);
      continue;
    }
    for (int64_t s = k0 / 32; s < (k0 + kc) / 32; ++s, out += 32) {
      __m512 lo, hi;
      const uint8_t* row = w.codes + (n0 + j) * w.bytes_per_row;
      const uint8_t* sc = w.scale_codes + (n0 + j) * w.nb;
      if (s + 1 < w.spans) decode_span<D, false>(w, row, sc, s, lo, hi);
      else decode_span<D, true>(w, row, sc, s, lo, hi);
      if constexpr (is_nibble(D)) {  // lo = even elements, hi = odd: interleave
        const __m512i first = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
        const __m512i second = _mm512_add_epi32(first, _mm512_set1_epi32(8));
        _mm512_storeu_ps(out, _mm512_permutex2var_ps(lo, first, hi));
        _mm512_storeu_ps(out + 16, _mm512_permutex2var_ps(lo, second, hi));
      } else {
        _mm512_storeu_ps(out, lo);
        _mm512_storeu_ps(out + 16, hi);
      }
    }
  }
}

template <Decoder D>
void batch(const PackedWeight& w, const float* xt, int64_t M, int64_t Mp, const float* bias, float* y) {
  const int64_t Kp = w.spans * 32, tiles = (w.N + kNR - 1) / kNR;
#pragma omp parallel if (w.N * w.K * M >= kParallelMinElements)
  {
    std::vector<float> wb(static_cast<size_t>(kNR * kKC)), acc(static_cast<size_t>(kNR * Mp));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t n0 = t * kNR;
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t k0 = 0; k0 < Kp; k0 += kKC) {
        const int64_t kc = std::min(kKC, Kp - k0);
        decode_panel<D>(w, n0, k0, kc, wb.data());
        for (int64_t m0 = 0; m0 < Mp; m0 += 64) {
          const float* xs = xt + k0 * Mp + m0;
          float* as = acc.data() + m0;
          switch (std::min<int64_t>(4, (Mp - m0) / 16)) {
            case 1: batch_micro<1>(xs, Mp, wb.data(), kc, as); break;
            case 2: batch_micro<2>(xs, Mp, wb.data(), kc, as); break;
            case 3: batch_micro<3>(xs, Mp, wb.data(), kc, as); break;
            default: batch_micro<4>(xs, Mp, wb.data(), kc, as);
          }
        }
      }
      for (int64_t j = 0; j < kNR && n0 + j < w.N; ++j)
        for (int64_t m = 0; m < M; ++m)
          y[m * w.N + n0 + j] = finish_output(acc[static_cast<size_t>(j * Mp + m)], bias, n0 + j);
    }
  }
}

}  // namespace

void packed_gemv_avx512(const PackedWeight& w, const float* xp, int64_t M, const float* bias, float* y) {
  switch (w.bits) {
    case 4: return w.G == 16 ? gemv<Decoder::kNibble16>(w, xp, M, bias, y) : gemv<Decoder::kNibble32>(w, xp, M, bias, y);
    case 6: return gemv<Decoder::kSixBit>(w, xp, M, bias, y);
    default:
      switch (w.bytes) {
        case PackedWeight::Bytes::kHalf: return gemv<Decoder::kByteHalf>(w, xp, M, bias, y);
        case PackedWeight::Bytes::kInt: return gemv<Decoder::kByteInt>(w, xp, M, bias, y);
        default: return gemv<Decoder::kByteGather>(w, xp, M, bias, y);
      }
  }
}

void packed_batch_avx512(const PackedWeight& w, const float* xt, int64_t M, int64_t Mp, const float* bias,
                         float* y) {
  switch (w.bits) {
    case 4: return w.G == 16 ? batch<Decoder::kNibble16>(w, xt, M, Mp, bias, y) : batch<Decoder::kNibble32>(w, xt, M, Mp, bias, y);
    case 6: return batch<Decoder::kSixBit>(w, xt, M, Mp, bias, y);
    default:
      switch (w.bytes) {
        case PackedWeight::Bytes::kHalf: return batch<Decoder::kByteHalf>(w, xt, M, Mp, bias, y);
        case PackedWeight::Bytes::kInt: return batch<Decoder::kByteInt>(w, xt, M, Mp, bias, y);
        default: return batch<Decoder::kByteGather>(w, xt, M, Mp, bias, y);
      }
  }
}

}  // namespace mxqat::quant::kernels
#endif
