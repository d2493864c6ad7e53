// Scalar references of the block codecs: spec §4-§7 written out element by element, with the
// generic element encoder/decoder of formats.cpp. Slow and plain on purpose: the fast paths
// (kernels_*.cpp) and fake_quant must equal these bit for bit (tests/quant, bench/bench_codec).
#include <algorithm>
#include <cmath>
#include <vector>

#include "autograd/error.h"
#include "quant/codec/codec.h"
#include "quant/codec/pack.h"

namespace mxqat::quant {
namespace {

float canon(float y) { return y != y ? canonical_nan() : y; }

struct BlockStats {
  bool nonfinite = false;
  uint32_t amax_bits = 0;  // max |x| as bits (finite elements)
  float lo = 0, hi = 0;    // min / max (finite blocks only)
};

BlockStats block_stats(const float* x, int64_t n) {
  BlockStats st;
  st.lo = st.hi = x[0];
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t u = f2u(x[i]);
    if (is_nonfinite_bits(u)) st.nonfinite = true;
    st.amax_bits = std::max(st.amax_bits, u & 0x7FFFFFFFu);
    st.lo = std::min(st.lo, x[i]);
    st.hi = std::max(st.hi, x[i]);
  }
  return st;
}

}  // namespace

EncodedTensor Codec::encode_reference(const float* x, int64_t R, int64_t K, uint8_t* mask) const {
  check_shape(x, R, K);
  const int64_t G = block_size(K), nb = num_blocks(K), bpr = bytes_per_row(K);
  EncodedTensor e;
  e.codec = name();
  e.rows = R;
  e.cols = K;
  e.block_size = G;
  e.scale_rule = opt_.scale_rule;
  e.codes.assign(static_cast<size_t>(R * bpr), 0);
  const BlockScheme scheme = fmt_->scheme;
  if (is_int(scheme)) {
    e.scales.assign(static_cast<size_t>(R * nb), 0.0f);
    if (scheme == BlockScheme::kIntAsym) e.zero_points.assign(static_cast<size_t>(R * nb), 0);
  } else {
    e.scale_codes.assign(static_cast<size_t>(R * nb), 0);
  }
  Nvfp4Global g{};
  if (scheme == BlockScheme::kNvfp4) {
    g = nvfp4_global(x, R, K);
    e.global_amax = g.amax;
    e.global_encode_scale = g.encode_scale;
    e.global_decode_scale = g.decode_scale;
  }
  const IntParams ip = int_params(scheme, fmt_->element_bits);
  std::vector<uint8_t> row_codes(static_cast<size_t>(nb * G));
  for (int64_t r = 0; r < R; ++r) {
    std::fill(row_codes.begin(), row_codes.end(), 0);  // padding codes are 0 (spec §7)
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t lo = b * G, n = std::min(G, K - lo);
      const float* xb = x + r * K + lo;
      uint8_t* cb = row_codes.data() + lo;
      uint8_t* mb = mask ? mask + r * K + lo : nullptr;
      const BlockStats st = block_stats(xb, n);
      const int64_t si = r * nb + b;
      if (scheme == BlockScheme::kMx || scheme == BlockScheme::kNvfp4) {
        if (st.nonfinite) {  // spec §4.1 / §5 step 4: NaN scale, codes 0
          e.scale_codes[si] = scheme == BlockScheme::kMx ? 0xFF : 0x7F;
          if (mb) std::fill(mb, mb + n, 0);
          continue;
        }
        float enc;  // encode multiplier: 2^-s (MX) or r (NVFP4)
        if (scheme == BlockScheme::kMx) {
          const int s = mx_shared_exp(st.amax_bits, emax(*elem_), mx_rceil_constant(*elem_),
                                      opt_.scale_rule);
          e.scale_codes[si] = static_cast<uint8_t>(s + 127);
          enc = pow2f(-s);
        } else {
          const Nvfp4Block nb4 = nvfp4_block(u2f(st.amax_bits), nvfp4_block_scale_mult(g),
                                             g.decode_scale, *scale_, decode_lut(*scale_));
          e.scale_codes[si] = static_cast<uint8_t>(nb4.scale_code);
          enc = nb4.encode_factor;
        }
        for (int64_t i = 0; i < n; ++i) {
          const float v = xb[i] * enc;
          cb[i] = static_cast<uint8_t>(encode_element(*elem_, v));
          if (mb) mb[i] = std::fabs(v) <= elem_->max_normal ? 1 : 0;
        }
        continue;
      }
      // INT (spec §6)
      const IntGroup ig = int_group(ip, st.lo, st.hi, st.nonfinite);
      e.scales[si] = ig.scale;
      if (ip.asym) e.zero_points[si] = static_cast<uint8_t>(ig.zero);
      for (int64_t i = 0; i < n; ++i) {
        if (ig.nonfinite) {
          if (mb) mb[i] = 0;
          continue;  // code 0
        }
        const float t = std::nearbyint(xb[i] * ig.inv) + ig.zero;
        const float q = std::min(std::max(t, static_cast<float>(ip.qmin)), static_cast<float>(ip.qmax));
        cb[i] = static_cast<uint8_t>(static_cast<int>(q) & ((1 << fmt_->element_bits) - 1));
        if (mb) mb[i] = (t >= ip.qmin && t <= ip.qmax) ? 1 : 0;
      }
    }
    pack_codes_reference(row_codes.data(), nb * G, fmt_->element_bits, e.codes.data() + r * bpr);
  }
  return e;
}

void Codec::decode_reference(const EncodedTensor& e, float* y) const {
  check_encoded(e);
  const int64_t R = e.rows, K = e.cols, G = e.block_size;
  const int64_t nb = (K + G - 1) / G, bpr = packed_bytes(nb * G, fmt_->element_bits);
  const BlockScheme scheme = fmt_->scheme;
  const IntParams ip = int_params(scheme, fmt_->element_bits);
  std::vector<uint8_t> row_codes(static_cast<size_t>(nb * G));
  for (int64_t r = 0; r < R; ++r) {
    unpack_codes_reference(e.codes.data() + r * bpr, nb * G, fmt_->element_bits, row_codes.data());
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t lo = b * G, n = std::min(G, K - lo), si = r * nb + b;
      float* yb = y + r * K + lo;
      const uint8_t* cb = row_codes.data() + lo;
      if (scheme == BlockScheme::kMx || scheme == BlockScheme::kNvfp4) {
        float d = decode_element(*scale_, e.scale_codes[si]);  // 2^s (MX) or S_b (NVFP4)
        if (scheme == BlockScheme::kNvfp4) d = d * e.global_decode_scale;  // D_b
        for (int64_t i = 0; i < n; ++i) yb[i] = canon(decode_element(*elem_, cb[i]) * d);
        continue;
      }
      const float s = e.scales[si];
      const int z = ip.asym ? e.zero_points[si] : 0;
      for (int64_t i = 0; i < n; ++i) {
        int q = cb[i];
        if (!ip.asym && (q & (1 << (fmt_->element_bits - 1)))) q -= 1 << fmt_->element_bits;
        yb[i] = canon(static_cast<float>(q - z) * s);
      }
    }
  }
}

void Codec::fake_quant_reference(const float* x, int64_t R, int64_t K, float* y,
                                 uint8_t* mask) const {
  decode_reference(encode_reference(x, R, K, mask), y);
}

}  // namespace mxqat::quant
