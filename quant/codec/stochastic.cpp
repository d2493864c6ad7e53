// Stochastic rounding for the MX float codecs (stochastic.h).
#include "quant/codec/stochastic.h"

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

void fake_quant_stochastic(const Codec& codec, const float* x, int64_t R, int64_t K, float* y,
                           uint64_t key) {
  MXQAT_CHECK(supports_stochastic(codec), "stochastic rounding: codec ", codec.name(),
              " is not an MX float codec; use mxfp8_e4m3, mxfp8_e5m2, mxfp6_e2m3, mxfp6_e3m2 or mxfp4");
  MXQAT_CHECK(R >= 0 && K >= 0 && (R * K == 0 || (x && y)), "stochastic rounding: bad shape [", R,
              ", ", K, "] or null data");
  const ElementFormat& e = *codec.element_format();
  const float* lut = decode_lut(e);  // codes 0..max_code(e): the non-negative grid, increasing
  const uint32_t top = max_code(e);
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
        const float a = std::min(std::fabs(xb[k]) * down, max_elem);  // rceil: a <= max up to RN
        // The largest grid value <= a.
        uint32_t lo = static_cast<uint32_t>(std::upper_bound(lut, lut + top + 1, a) - lut) - 1;
        float m = lut[lo];
        if (m != a && lo < top) {
          const float hi = lut[lo + 1];
          const float p = (a - m) / (hi - m);
          if (sr_uniform(key, static_cast<uint64_t>(r * K + k)) < p) m = hi;
        }
        yb[k] = std::copysign(m * up, xb[k]);
      }
    }
  }
}

}  // namespace mxqat::quant
