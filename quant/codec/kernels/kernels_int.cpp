// Fast paths of the INT codecs (spec §6): per-channel or per-group, symmetric or asymmetric.
// Per group: min/max (and a NaN/Inf check) in one pass, scale and zero point in scalar code
// (block_formats.h, same as the reference), then q = clamp(rint(x * inv) + z) on 16 lanes.
#include "quant/codec/simd_avx512.h"  // first: wraps <immintrin.h>

#include <cmath>
#include <vector>

#include "quant/codec/kernels/kernels.h"
#include "quant/codec/pack.h"


namespace mxqat::quant::kernels {
namespace {

constexpr uint32_t kAbs = 0x7FFFFFFFu;

IntGroup group_params_portable(const IntParams& ip, const float* x, int64_t n) {
  float lo = x[0], hi = x[0];
  uint32_t amax = 0;
  for (int64_t i = 0; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
    amax = std::max(amax, f2u(x[i]) & kAbs);
  }
  return int_group(ip, lo, hi, amax >= 0x7F800000u);
}

#if MXQAT_CODEC_AVX512
using simd::lanes;

IntGroup group_params_avx512(const IntParams& ip, const float* x, int64_t n) {
  // Lanes past n load as +0, which changes neither amax nor the asymmetric min(lo, 0) /
  // max(hi, 0); the symmetric scale only reads amax. So the result equals the portable one.
  __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps();
  __m512i amax = _mm512_setzero_si512();
  for (int64_t j = 0; j < n; j += 16) {
    const __m512 v = _mm512_maskz_loadu_ps(lanes(n - j), x + j);
    lo = _mm512_min_ps(lo, v);
    hi = _mm512_max_ps(hi, v);
    amax = _mm512_max_epu32(amax, _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(int(kAbs))));
  }
  const uint32_t a = simd::hmax_epu32(amax);
  if (!ip.asym) return int_group(ip, u2f(a), u2f(a), a >= 0x7F800000u);
  return int_group(ip, simd::hmin_ps(lo), simd::hmax_ps(hi), a >= 0x7F800000u);
}
#endif

IntGroup group_params(const IntParams& ip, const float* x, int64_t n, bool simd) {
#if MXQAT_CODEC_AVX512
  if (simd) return group_params_avx512(ip, x, n);
#endif
  (void)simd;
  return group_params_portable(ip, x, n);
}

// t = rint(x * inv) + z (unclamped); y and the code follow from it.
inline float int_t(float x, const IntGroup& g) { return std::nearbyint(x * g.inv) + g.zero; }

void fq_group(const IntParams& ip, const float* x, float* y, uint8_t* m, int64_t n, bool simd) {
  const IntGroup g = group_params(ip, x, n, simd);
  if (g.nonfinite) {
    for (int64_t i = 0; i < n; ++i) y[i] = canonical_nan();
    if (m) std::fill(m, m + n, 0);
    return;
  }
  const float qmin = static_cast<float>(ip.qmin), qmax = static_cast<float>(ip.qmax);
  int64_t i = 0;
#if MXQAT_CODEC_AVX512
  if (simd) {
    const __m512 inv = _mm512_set1_ps(g.inv), z = _mm512_set1_ps(g.zero), s = _mm512_set1_ps(g.scale);
    const __m512 vmin = _mm512_set1_ps(qmin), vmax = _mm512_set1_ps(qmax);
    for (; i < n; i += 16) {
      const __mmask16 live = lanes(n - i);
      const __m512 v = _mm512_maskz_loadu_ps(live, x + i);
      const __m512 t = _mm512_add_ps(
          _mm512_roundscale_ps(_mm512_mul_ps(v, inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), z);
      const __m512 q = _mm512_min_ps(_mm512_max_ps(t, vmin), vmax);
      _mm512_mask_storeu_ps(y + i, live, _mm512_mul_ps(_mm512_sub_ps(q, z), s));
      if (m) {
        const __mmask16 inr = _mm512_cmp_ps_mask(t, vmin, _CMP_GE_OQ) & _mm512_cmp_ps_mask(t, vmax, _CMP_LE_OQ);
        _mm_mask_storeu_epi8(m + i, live, _mm_maskz_set1_epi8(inr, 1));
      }
    }
  }
#endif
  for (; i < n; ++i) {
    const float t = int_t(x[i], g);
    const float q = std::min(std::max(t, qmin), qmax);
    y[i] = (q - g.zero) * g.scale;
    if (m) m[i] = (t >= qmin && t <= qmax) ? 1 : 0;
  }
}

}  // namespace

void int_fake_quant(const KernelSpec& k, const float* x, int64_t R, float* y, uint8_t* mask, bool simd) {
  const IntParams ip = int_params(k.scheme, k.bits);
  const int64_t K = k.K, G = k.G, nb = k.nb;
#pragma omp parallel for collapse(2) schedule(static) if (split_across_threads(R * K))
  for (int64_t r = 0; r < R; ++r)
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t off = r * K + b * G;
      fq_group(ip, x + off, y + off, mask ? mask + off : nullptr, std::min(G, K - b * G), simd);
    }
}

void int_encode(const KernelSpec& k, const float* x, int64_t R, EncodedTensor& e) {
  const IntParams ip = int_params(k.scheme, k.bits);
  const int64_t K = k.K, G = k.G, nb = k.nb;
  const int code_mask = (1 << k.bits) - 1;
#pragma omp parallel if (split_across_threads(R * K))
  {
    std::vector<uint8_t> row(static_cast<size_t>(nb * G), 0);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < R; ++r) {
      for (int64_t b = 0; b < nb; ++b) {
        const float* xb = x + r * K + b * G;
        uint8_t* cb = row.data() + b * G;
        const int64_t n = std::min(G, K - b * G);
        const IntGroup g = group_params(ip, xb, n, true);
        const auto si = static_cast<size_t>(r * nb + b);
        e.scales[si] = g.scale;
        if (ip.asym) e.zero_points[si] = static_cast<uint8_t>(g.zero);
        if (g.nonfinite) {
          std::fill(cb, cb + n, 0);
          continue;
        }
        const float qmin = static_cast<float>(ip.qmin), qmax = static_cast<float>(ip.qmax);
        for (int64_t i = 0; i < n; ++i) {
          const float q = std::min(std::max(int_t(xb[i], g), qmin), qmax);
          cb[i] = static_cast<uint8_t>(static_cast<int>(q) & code_mask);
        }
      }
      pack_codes(row.data(), nb * G, k.bits, e.codes.data() + r * k.bytes_per_row);
    }
  }
}

void int_decode(const KernelSpec& k, const EncodedTensor& e, float* y) {
  const IntParams ip = int_params(k.scheme, k.bits);
  const int64_t K = k.K, G = k.G, nb = k.nb, R = e.rows;
  const int sign = ip.asym ? 0 : 1 << (k.bits - 1);
#pragma omp parallel if (split_across_threads(R * K))
  {
    std::vector<uint8_t> row(static_cast<size_t>(nb * G), 0);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < R; ++r) {
      unpack_codes(e.codes.data() + r * k.bytes_per_row, nb * G, k.bits, row.data());
      for (int64_t b = 0; b < nb; ++b) {
        const auto si = static_cast<size_t>(r * nb + b);
        const float s = e.scales[si];
        const int z = ip.asym ? e.zero_points[si] : 0;
        const uint8_t* cb = row.data() + b * G;
        float* yb = y + r * K + b * G;
        const int64_t n = std::min(G, K - b * G);
        for (int64_t i = 0; i < n; ++i) {
          const int q = (cb[i] ^ sign) - sign;  // sign-extend symmetric codes
          const float v = static_cast<float>(q - z) * s;
          yb[i] = v != v ? canonical_nan() : v;
        }
      }
    }
  }
}

}  // namespace mxqat::quant::kernels
