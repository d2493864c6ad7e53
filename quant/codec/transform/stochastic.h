// Stochastic rounding (SR) for the MX float codecs: the rounding of backward-pass GEMM operands
// (quant/fake/qgemm) when a recipe sets `quant.grad_rounding: stochastic`. Unbiased: each element
// goes to one of its two neighbours on the element grid with probabilities that make the expected
// value the input, E[Q(x)] = x. The random numbers are counter-based: element i of a call with key
// k draws sr_uniform(k, i), a pure function of (k, i), so the bits never depend on the thread
// count or on how rows are split. Scales use the `rceil` rule whatever the policy's scale rule:
// it keeps every element of a block within the element range (the headroom SR needs; with `floor`
// the largest elements would be clipped and the rounding biased). docs/formats.md §4.5.
// Not used by inference: exports never hold stochastically rounded values.
#pragma once
#include <cstdint>

#include "quant/codec/codec.h"

namespace mxqat::quant {

// The key of one quantized operand: a hash of the run's seed, the operand's stream (layer and
// role), the training step and the micro-batch.
uint64_t sr_key(uint64_t seed, uint64_t stream, uint64_t step, uint64_t micro);

// Element `index`'s uniform number in [0, 1): 24 random bits, u = n * 2^-24.
float sr_uniform(uint64_t key, uint64_t index);

// True for the codecs SR serves: the MX codecs with float elements (mxfp8_e4m3, mxfp8_e5m2,
// mxfp6_e2m3, mxfp6_e3m2, mxfp4). mxint8, NVFP4 and the INT codecs are refused by policy checks.
bool supports_stochastic(const Codec& codec);

// y [R, K] = SR(x): per 32-element block along K the rceil shared exponent s; each finite element
// v = x * 2^-s lies between grid neighbours lo <= |v| <= hi and becomes sign(x) * hi with
// probability (|v| - lo) / (hi - lo) (u < p, u = sr_uniform(key, row * K + k)), else sign(x) * lo;
// then * 2^s. A block holding NaN or Inf decodes to NaN (as the codecs' NaN scale, spec §4.1).
// Throws for a codec that supports_stochastic refuses. Deterministic for any thread count.
void fake_quant_stochastic(const Codec& codec, const float* x, int64_t R, int64_t K, float* y,
                           uint64_t key);
// The same by searching the element grid (the codes' decoded values): the scalar reference the
// fast path above (the neighbours from the exponent of v) is tested equal to, bit for bit.
void fake_quant_stochastic_reference(const Codec& codec, const float* x, int64_t R, int64_t K,
                                     float* y, uint64_t key);

}  // namespace mxqat::quant
