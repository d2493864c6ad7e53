// Fake quantization as an autograd node (STYLE.md §4): forward = Codec::fake_quant, bit-identical
// to decode(encode(x)); backward = a straight-through estimator. Not the GEMM op (qgemm.h) and not
// the codecs themselves (quant/codec). Used by quant/fake's qgemm, by layers for non-GEMM tensors.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "autograd/var.h"
#include "quant/codec/codec.h"

namespace mxqat::quant {

// How the gradient crosses a quantizer (the STE variant of a recipe).
enum class Ste : uint8_t {
  kIdentity,  // dx = dy: the quantizer is treated as the identity
  kClipped,   // dx = dy * mask: zero where the element saturated (or its block was non-finite)
};
const char* ste_name(Ste ste);            // "identity" / "clipped"
Ste parse_ste(const std::string& name);   // throws naming the known variants

// "none" and "fp32" name full precision in recipes, policies and checkpoints.
bool is_full_precision_name(const std::string& name);
// A codec or full precision (nullopt) from its name; throws listing the known names.
std::optional<Codec> make_codec_or_none(const std::string& name, CodecOptions opt = {});
std::string codec_name_or_none(const std::optional<Codec>& codec);  // "none" for nullopt

// y = Q(x), x [..., K] viewed as [R, K] with blocks along the last axis K (spec §7).
// STE: identity  dx = dy
//      clipped   dx = dy * mask   (mask 1 where in range; subgradient 0 where saturated)
// A full-precision codec (nullopt) returns x itself: identity forward and backward.
autograd::Var fake_quant(const autograd::Var& x, const Codec& codec, Ste ste);
autograd::Var fake_quant(const autograd::Var& x, const std::optional<Codec>& codec, Ste ste);

// The plain-tensor kernel under both nodes: y [R, K] = Q(x); mask [R, K] filled when non-null
// (resized by the callee, every entry written). R = numel / K; empty tensors are fine.
void fake_quant_rows(const Codec& codec, const float* x, int64_t R, int64_t K, float* y,
                     std::vector<uint8_t>* mask);

}  // namespace mxqat::quant
