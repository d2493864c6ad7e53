// Stochastic rounding for the MX float codecs (stochastic.h).
#include "quant/codec/transform/stochastic.h"

#include <algorithm>
#include <cmath>

#include "autograd/error.h"
#include "quant/codec/block_formats.h"
#include "quant/codec/formats.h"

namespace mxqat::quant {

namespace {
// splitmix64's finaliser: a bijection of 64-bit words with good avalanche.
uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;
constexpr int64_t kBlock = 32;
}  // namespace

uint64_t sr_key(uint64_t seed, uint64_t stream, uint64_t step, uint64_t micro) {
  uint64_t k = mix(seed + kGolden);
  k = mix(k ^ (stream + kGolden));
  k = mix(k ^ (step + 2 * kGolden));
  return mix(k ^ (micro + 3 * kGolden));
}

float sr_uniform(uint64_t key, uint64_t index) {
  return static_cast<float>(mix(key ^ (index * kGolden + kGolden)) >> 40) * 0x1p-24f;
}

bool supports_stochastic(const Codec& codec) {
  const ElementFormat* e = codec.element_format();
  return codec.block_format().scheme == BlockScheme::kMx && e && e->kind == FormatKind::kFloat;
}

namespace {

void check_call(const Codec& codec, const float* x, int64_t R, int64_t K, const float* y) {
  MXQAT_CHECK(supports_stochastic(codec), "stochastic rounding: codec ", codec.name(),
              " is not an MX float codec; use mxfp8_e4m3, mxfp8_e5m2, mxfp6_e2m3, mxfp6_e3m2 or mxfp4");
  MXQAT_CHECK(R >= 0 && K >= 0 && (R * K == 0 || (x && y)), "stochastic rounding: bad shape [", R,
              ", ", K, "] or null data");
}

// Every block of x [R, K]: NaN for a non-finite block, else round(row, k, v, e) of each element
// with v = min(|x| 2^-s, max) and s the rceil exponent, times 2^s with x's sign.
template <class Round>
void for_each_block(const ElementFormat& e, const float* x, int64_t R, int64_t K, float* y, Round round) {
  const float max_elem = e.max_normal, rceil_r = mx_rceil_constant(e);
  const int elem_emax = emax(e);
  const int64_t nb = (K + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (R * K > (1 << 15))
  for (int64_t r = 0; r < R; ++r) {
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t k0 = b * kBlock, k1 = std::min(K, k0 + kBlock);
      const float* xb = x + r * K;
      float* yb = y + r * K;
      float amax = 0;
      bool finite = true;
      for (int64_t k = k0; k < k1; ++k) {
        finite = finite && std::isfinite(xb[k]);
        amax = std::max(amax, std::fabs(xb[k]));
      }
      if (!finite) {
        std::fill(yb + k0, yb + k1, canonical_nan());
        continue;
      }
      const int s = mx_shared_exp(f2u(amax), elem_emax, rceil_r, ScaleRule::kRceil);
      const float down = pow2f(-s), up = pow2f(s);
      for (int64_t k = k0; k < k1; ++k) {
        const float v = std::min(std::fabs(xb[k]) * down, max_elem);  // rceil: v <= max up to RN
        yb[k] = std::copysign(round(r * K + k, v) * up, xb[k]);
      }
    }
  }
}

}  // namespace

void fake_quant_stochastic(const Codec& codec, const float* x, int64_t R, int64_t K, float* y,
                           uint64_t key) {
  check_call(codec, x, R, K, y);
  const ElementFormat& e = *codec.element_format();
  // The grid around v: ulp = 2^(max(exponent of v, emin) - mbits); lo = floor(v / ulp) ulp and
  // hi = lo + ulp (the next binade's first value when lo is a binade's last). Every step is
  // exact, so p = v / ulp - floor(v / ulp) is (v - lo) / (hi - lo) to the bit. Written without
  // branches so that the compiler vectorises it (the same IEEE operations in any lane).
  const int lowest = emin(e), m = e.mbits;
  for_each_block(e, x, R, K, y, [&](int64_t index, float v) {
    const int ex = std::max(static_cast<int>(f2u(v) >> 23) - 127, lowest);  // in [emin, emax]
    const float t = v * u2f(static_cast<uint32_t>(m - ex + 127) << 23);
    const float lo = static_cast<float>(static_cast<int32_t>(t));  // t in [0, 2^(mbits+1)]: floor
    const float q = sr_uniform(key, static_cast<uint64_t>(index)) < t - lo ? lo + 1.0f : lo;
    return q * u2f(static_cast<uint32_t>(ex - m + 127) << 23);
  });
}

void fake_quant_stochastic_reference(const Codec& codec, const float* x, int64_t R, int64_t K,
                                     float* y, uint64_t key) {
  check_call(codec, x, R, K, y);
  const ElementFormat& e = *codec.element_format();
  const float* lut = decode_lut(e);  // codes 0..max_code(e): the non-negative grid, increasing
  const uint32_t top = max_code(e);
  for_each_block(e, x, R, K, y, [&](int64_t index, float v) {
    uint32_t lo = static_cast<uint32_t>(std::upper_bound(lut, lut + top + 1, v) - lut) - 1;
    float q = lut[lo];
    if (q != v && lo < top) {
      const float hi = lut[lo + 1];
      if (sr_uniform(key, static_cast<uint64_t>(index)) < (v - q) / (hi - q)) q = hi;
    }
    return q;
  });
}

}  // namespace mxqat::quant
