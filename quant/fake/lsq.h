// Learned weight scales (LSQ: Esser et al. 2020, "Learned Step Size Quantization") for the block
// codecs: one learned log2 offset s_n per weight row n (output channel) moves every block scale of
// that row away from the one the codec's rule derives. Plain tensors in and out: the qgemm op
// (qgemm.h) owns the forward and the gradient; export packs with the same scales (lsq_scales).
// Not a codec: the rule's own scales come from Codec::encode, the elements from the codec's
// quantizer under the shifted scales (Codec::block_quantizer), so decode gives the same bits.
#pragma once
#include <cstdint>
#include <string>

#include "quant/codec/codec.h"

namespace mxqat::quant {

// How far an offset may move a scale, in powers of two (the offset is clamped to this first).
inline constexpr float kLsqMaxOffset = 16.0f;

// Whether `codec` takes learned scales: MX (any element), NVFP4 and symmetric INT. Asymmetric
// INT does not (its zero point follows its scale).
bool supports_learned_scale(const Codec& codec);
// The learned_scale name of recipes and policies: "none" | "lsq".
bool parse_learned_scale(const std::string& name);  // throws naming the known ones

// The block scales of w [N, K] under `codec` with row n's offset s_n (offset [N]) applied; what
// Codec::encode_with_scales takes. With t_n = clamp(s_n, +-kLsqMaxOffset):
//   MX     E8M0 code = clamp(rule's code + round_half_even(t_n), 0, 254)  (the scale stays a
//          power of two: 2^(rule's exponent + round(t_n)); NaN blocks stay NaN)
//   NVFP4  S_b = E4M3(a_b * S_enc / 6 * 2^t_n), clamped to 0x7E: the rule's S_b with the block
//          amax a_b scaled by 2^t_n (a learned clipping ratio 2^-t_n); the globals are the rule's
//   INT    scale = RN32(rule's scale * 2^t_n), zero point 0
// All offsets 0 give the rule's scales bit for bit.
EncodedTensor lsq_scales(const Codec& codec, const float* w, int64_t N, int64_t K, const float* offset);

// y [N, K] = decode(encode_with_scales(w, lsq_scales(w, offset))) bit for bit, mask [N, K] 1
// where the element is in range under its scale (as Codec::fake_quant's), and resid [N, K] =
// y - w * mask, what the offset's gradient reads (nullable). y may alias w. Rows in parallel;
// the bits do not depend on the thread count.
void lsq_fake_quant(const Codec& codec, const float* w, int64_t N, int64_t K, const float* offset,
                    float* y, uint8_t* mask, float* resid);

// LSQ's gradient scale for one offset shared by K elements: 1 / sqrt(K * Qp), Qp the largest
// element magnitude in scale units (6 for E2M1, 448 for E4M3, qmax for INT).
float lsq_grad_scale(const Codec& codec, int64_t K);

}  // namespace mxqat::quant
