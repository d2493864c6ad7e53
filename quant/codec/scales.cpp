// Quantization under given block scales (codec.h: encode_with_scales, BlockQuantizer): the element
// step of spec §4.4 / §5 steps 8-10 / §6 steps 2-3 with the scale taken from the caller instead
// of derived from the block. Scalar code, written like reference.cpp; with the scales encode would
// choose it reproduces encode bit for bit (tests/quant/codec_scales_test.cpp). Used by quant/ptq.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <vector>

#include "autograd/error.h"
#include "quant/codec/codec.h"
#include "quant/codec/pack.h"

namespace mxqat::quant {
namespace {

float canon(float y) { return y != y ? canonical_nan() : y; }

}  // namespace

uint32_t BlockQuantizer::code(float x) const {
  if (nan_block) return 0;
  if (elem) return encode_element(*elem, x * enc);
  const float t = std::nearbyint(x * enc) + zero;
  const float q = std::min(std::max(t, static_cast<float>(qmin)), static_cast<float>(qmax));
  return static_cast<uint32_t>(static_cast<int>(q)) & ((1u << bits) - 1u);
}

float BlockQuantizer::value(uint32_t c) const {
  if (nan_block) return canonical_nan();
  if (elem) return canon(decode_element(*elem, c) * dec);
  int q = static_cast<int>(c);
  if (qmin < 0 && (q & (1 << (bits - 1)))) q -= 1 << bits;  // symmetric codes are two's complement
  return canon(static_cast<float>(q - static_cast<int>(zero)) * dec);
}

bool BlockQuantizer::in_range(float x) const {
  if (nan_block) return false;
  if (elem) return std::fabs(x * enc) <= elem->max_normal;
  const float t = std::nearbyint(x * enc) + zero;
  return t >= static_cast<float>(qmin) && t <= static_cast<float>(qmax);
}

void Codec::check_scales(const EncodedTensor& s, int64_t R, int64_t K) const {
  MXQAT_CHECK(s.codec == name(), "codec \"", name(), "\": scales come from a \"", s.codec,
              "\" tensor; pass scales made by this codec (encode, or a copy with edited scales)");
  MXQAT_CHECK(s.rows == R && s.cols == K, "codec \"", name(), "\": scales are for shape [", s.rows,
              ", ", s.cols, "] but the input is [", R, ", ", K, "]; encode a tensor of the same shape");
  MXQAT_CHECK(s.block_size == block_size(K), "codec \"", name(), "\": scales have block size ",
              s.block_size, " but this codec uses ", block_size(K),
              " for K = ", K, "; make the codec with the same group_size");
  const auto n = static_cast<size_t>(R * num_blocks(K));
  if (is_int(fmt_->scheme)) {
    MXQAT_CHECK(s.scales.size() == n, "codec \"", name(), "\": ", s.scales.size(),
                " scales, expected ", R, " x ", num_blocks(K));
    MXQAT_CHECK(fmt_->scheme != BlockScheme::kIntAsym || s.zero_points.size() == n, "codec \"",
                name(), "\": ", s.zero_points.size(), " zero points, expected ", R, " x ", num_blocks(K));
  } else {
    MXQAT_CHECK(s.scale_codes.size() == n, "codec \"", name(), "\": ", s.scale_codes.size(),
                " scale codes, expected ", R, " x ", num_blocks(K));
  }
  if (fmt_->scheme == BlockScheme::kNvfp4) {
    const float d = s.global_decode_scale;
    MXQAT_CHECK(std::isfinite(d) && d > 0.0f, "codec \"", name(), "\": global decode scale ", d,
                " must be finite and > 0 (spec §5 step 3); take the globals from encode");
  }
}

BlockQuantizer Codec::int_quantizer(IntScale s) const {
  MXQAT_CHECK(is_int(fmt_->scheme), "codec \"", name(), "\": int_quantizer is for INT codecs only");
  const IntParams ip = int_params(fmt_->scheme, fmt_->element_bits);
  BlockQuantizer q;
  q.bits = fmt_->element_bits;
  q.qmin = ip.qmin;
  q.qmax = ip.qmax;
  if (std::isnan(s.scale)) {
    q.nan_block = true;
    return q;
  }
  MXQAT_CHECK(std::isfinite(s.scale) && s.scale > 0.0f, "codec \"", name(), "\": group scale ",
              s.scale, " must be finite and > 0 (or NaN for a non-finite group)");
  MXQAT_CHECK(!ip.asym ? s.zero_point == 0 : s.zero_point <= ip.qmax, "codec \"", name(),
              "\": zero point ", int(s.zero_point), " is outside [", ip.asym ? ip.qmin : 0, ", ",
              ip.asym ? ip.qmax : 0, "]");
  q.enc = 1.0f / s.scale;  // spec §6 step 2: multiply by the binary32 reciprocal
  q.dec = s.scale;
  q.zero = static_cast<float>(s.zero_point);
  return q;
}

IntScale Codec::int_scale(float lo, float hi) const {
  MXQAT_CHECK(is_int(fmt_->scheme), "codec \"", name(), "\": int_scale is for INT codecs only");
  MXQAT_CHECK(!(lo > hi), "codec \"", name(), "\": range [", lo, ", ", hi, "] has lo > hi");
  const IntGroup g = int_group(int_params(fmt_->scheme, fmt_->element_bits), lo, hi,
                               !std::isfinite(lo) || !std::isfinite(hi));
  return {g.scale, static_cast<uint8_t>(g.zero)};
}

BlockQuantizer Codec::block_quantizer(const EncodedTensor& s, int64_t row, int64_t block) const {
  check_scales(s, s.rows, s.cols);
  const int64_t nb = num_blocks(s.cols);
  MXQAT_CHECK(row >= 0 && row < s.rows && block >= 0 && block < nb, "codec \"", name(),
              "\": block (", row, ", ", block, ") is outside [", s.rows, ", ", nb, "]");
  const size_t si = static_cast<size_t>(row * nb + block);
  if (is_int(fmt_->scheme))
    return int_quantizer({s.scales[si], fmt_->scheme == BlockScheme::kIntAsym ? s.zero_points[si]
                                                                             : uint8_t{0}});
  BlockQuantizer q;
  q.elem = elem_;
  q.bits = fmt_->element_bits;
  const uint32_t code = s.scale_codes[si];
  if (fmt_->scheme == BlockScheme::kMx) {
    q.nan_block = code == 0xFF;
    q.enc = pow2f(127 - static_cast<int>(code));       // 2^-s
    q.dec = decode_element(*scale_, code);               // 2^s (E8M0, spec §3)
    return q;
  }
  MXQAT_CHECK(code <= 0x7F, "codec \"", name(), "\": block scale code 0x", std::hex, code, std::dec,
              " of block (", row, ", ", block, ") is negative; NVFP4 scales are E4M3 0x00-0x7E");
  q.nan_block = code == 0x7F;
  const float s_b = decode_element(*scale_, code);
  q.dec = s_b * s.global_decode_scale;                              // D_b (spec §5 step 7)
  q.enc = s_b == 0.0f ? 0.0f : std::min(1.0f / q.dec, FLT_MAX);     // r (step 8)
  return q;
}

EncodedTensor Codec::encode_with_scales(const float* x, int64_t R, int64_t K, const EncodedTensor& s,
                                        uint8_t* mask) const {
  check_shape(x, R, K);
  check_scales(s, R, K);
  const int64_t G = block_size(K), nb = num_blocks(K), bpr = bytes_per_row(K);
  EncodedTensor e;
  e.codec = name();
  e.rows = R;
  e.cols = K;
  e.block_size = G;
  e.scale_rule = opt_.scale_rule;
  e.codes.assign(static_cast<size_t>(R * bpr), 0);
  e.scale_codes = s.scale_codes;
  e.scales = s.scales;
  e.zero_points = s.zero_points;
  if (fmt_->scheme == BlockScheme::kNvfp4) {
    e.global_amax = s.global_amax;
    e.global_encode_scale = s.global_encode_scale;
    e.global_decode_scale = s.global_decode_scale;
  }
  std::vector<uint8_t> row_codes(static_cast<size_t>(nb * G));
  for (int64_t r = 0; r < R; ++r) {
    std::fill(row_codes.begin(), row_codes.end(), 0);  // padding codes are 0 (spec §7)
    for (int64_t b = 0; b < nb; ++b) {
      const BlockQuantizer q = block_quantizer(s, r, b);
      const int64_t lo = b * G, n = std::min(G, K - lo);
      const float* xb = x + r * K + lo;
      for (int64_t i = 0; i < n; ++i) {
        MXQAT_CHECK(q.nan_block || std::isfinite(xb[i]), "codec \"", name(), "\": element (", r,
                    ", ", lo + i, ") is ", xb[i], " but its block has a finite scale; give that "
                    "block the NaN scale (as encode does) or remove the non-finite value");
        row_codes[static_cast<size_t>(lo + i)] = static_cast<uint8_t>(q.code(xb[i]));
        if (mask) mask[r * K + lo + i] = q.in_range(xb[i]) ? 1 : 0;
      }
    }
    pack_codes(row_codes.data(), nb * G, fmt_->element_bits, e.codes.data() + r * bpr);
  }
  return e;
}

}  // namespace mxqat::quant
