// AVX-512 helpers shared by the codec fast paths, and MXQAT_CODEC_AVX512 (1 when the compiler
// targets AVX-512 F/BW/DQ/VL; otherwise the portable builds are used). Internal to quant/codec.
#pragma once
// GCC 12 warns inside its own AVX-512 headers when they are inlined (PR105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)  // a GCC-only warning (clang would warn that it does not know it)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cstdint>

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__)
#define MXQAT_CODEC_AVX512 1
#else
#define MXQAT_CODEC_AVX512 0
#endif

#if MXQAT_CODEC_AVX512
namespace mxqat::quant::kernels::simd {

// Lanes [0, n) of a 16-lane vector (n may be <= 0 or exceed 16).
inline __mmask16 lanes(int64_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1u);
}

// Horizontal reductions by in-register shuffles (GCC 12's _mm512_reduce_* trips
// -Wuninitialized inside its own headers).
#define MXQAT_HREDUCE(op, v, cast_in, cast_out)                                              \
  v = op(v, cast_out(_mm512_shuffle_i32x4(cast_in(v), cast_in(v), _MM_SHUFFLE(1, 0, 3, 2)))); \
  v = op(v, cast_out(_mm512_shuffle_i32x4(cast_in(v), cast_in(v), _MM_SHUFFLE(2, 3, 0, 1)))); \
  v = op(v, cast_out(_mm512_shuffle_epi32(cast_in(v), _MM_PERM_BADC)));                       \
  v = op(v, cast_out(_mm512_shuffle_epi32(cast_in(v), _MM_PERM_CDAB)))

inline __m512i id_si(__m512i v) { return v; }
inline uint32_t hmax_epu32(__m512i v) {
  MXQAT_HREDUCE(_mm512_max_epu32, v, id_si, id_si);
  return static_cast<uint32_t>(_mm_cvtsi128_si32(_mm512_castsi512_si128(v)));
}
inline float hmin_ps(__m512 v) {
  MXQAT_HREDUCE(_mm512_min_ps, v, _mm512_castps_si512, _mm512_castsi512_ps);
  return _mm_cvtss_f32(_mm512_castps512_ps128(v));
}
inline float hmax_ps(__m512 v) {
  MXQAT_HREDUCE(_mm512_max_ps, v, _mm512_castps_si512, _mm512_castsi512_ps);
  return _mm_cvtss_f32(_mm512_castps512_ps128(v));
}
#undef MXQAT_HREDUCE

}  // namespace mxqat::quant::kernels::simd
#endif
