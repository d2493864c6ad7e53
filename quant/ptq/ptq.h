// Post-training quantization of one weight matrix: round-to-nearest (the codec's cast), MSE scale
// search, and GPTQ (Hessian-based sequential rounding under the codec's blocks). A weight matrix
// [N, K] (out, in; a conv weight reshaped to [Cout, Cin·kh·kw]), statistics and a codec in; the
// dequantized matrix and its encoded form out. Never sees a layer (STYLE.md §1); never logs.
// Every result lies on the codec grid: codec.decode(result.encoded) == result.weight bit for bit.
#pragma once
#include <cstdint>
#include <string>

#include "autograd/tensor.h"
#include "quant/calib/hessian.h"
#include "quant/codec/codec.h"

namespace mxqat::quant::ptq {

struct PtqResult {
  autograd::Tensor weight;     // [N, K] dequantized, = decode(encoded)
  EncodedTensor encoded;       // codes + scales, exportable as is (spec §9)
  double weight_sq_error = 0;  // Σ (w - ŵ)² in double, row-major order
};

// The codec's direct cast: weight = codec.fake_quant(w), encoded = codec.encode(w).
// w [N, K] 2-D and finite; `name` names it in errors (e.g. "blocks.0.mlp.fc1.weight").
PtqResult rtn(const autograd::Tensor& w, const Codec& codec, const std::string& name = "weight");

struct MseOptions {
  int mx_radius = 1;         // MX: E8M0 exponents s0 - r .. s0 + r around the codec's own s0
  int nvfp4_radius = 8;      // NVFP4: E4M3 block-scale codes c0 - r .. c0 + r (8 codes = 1 octave)
  double int_min_ratio = 0.5;  // INT: clipping ratios 1, 1 - step, ..., int_min_ratio
  int int_steps = 50;          //      in int_steps equal steps (0.01 with the defaults)
};

// Per block (MX, NVFP4) or group (INT), the scale minimising the block's squared error among the
// codec's own scale (first) and its neighbours (a candidate replaces it only if strictly better),
// so every block's error is <= rtn's. INT candidates are the scale/zero point of the clipped
// range [lo·ratio, hi·ratio] of the group (Codec::int_scale).
PtqResult mse(const autograd::Tensor& w, const Codec& codec, const MseOptions& opt = {},
              const std::string& name = "weight");

struct GptqOptions {
  double percdamp = 0.01;  // damping added to H's diagonal: percdamp · mean(diag H)
  int64_t batch = 128;     // lazy-batch width in columns (1 = every update applied at once)
  bool mse_scales = false; // fix each block's scale by the MSE search of `mse` (on the current
  MseOptions mse;          // weights) instead of the codec's own rule
  // Inputs never active in calibration (H_ii = 0, e.g. ReLU units dead on those samples): the
  // reference GPTQ zeroes their weight columns; by default we keep them, rounded to nearest
  // under their block's scale (their H row is the identity, so no error flows from them), as an
  // input dead on 512 calibration samples may still fire on real data.
  bool zero_dead_inputs = false;
};

struct GptqResult : PtqResult {
  int64_t dead_inputs = 0;  // inputs with H_ii = 0 (see GptqOptions::zero_dead_inputs)
  double damp = 0;          // the value added to the diagonal
  double loss = 0;          // Σ (w - q)² / (2 [H⁻¹ Cholesky]_ii²), the GPTQ proxy of the output error
};

// GPTQ (Frantar et al. 2022) with the codec's blocks: columns in order; at a block's first
// column its scales (per row) are fixed from the current, error-updated weights by the codec's
// own rule (or the MSE search, mse_scales; NVFP4: the global scale from the original w, or the
// codec's global_amax), then its
// columns are quantized one at a time under that scale, each column's error fed back to the
// remaining columns through the upper Cholesky factor of H⁻¹. h: the input Hessian [K, K]
// (calib::HessianAccumulator). Lazy batches never split a block, so the result does not depend
// on `batch` except through floating-point reassociation of the updates.
// Throws on a shape mismatch, non-finite w or H, or H not positive definite after damping.
GptqResult gptq(const autograd::Tensor& w, const calib::Hessian& h, const Codec& codec,
                const GptqOptions& opt = {}, const std::string& name = "weight");

// Σ_n (w_n - ŵ_n) H (w_n - ŵ_n)ᵀ = (2/n) ||X Wᵀ - X Ŵᵀ||², the layer-output error that GPTQ
// minimises, from the Hessian alone (for reports and tests). w, w_hat [N, K], h [K, K].
double hessian_error(const autograd::Tensor& w, const autograd::Tensor& w_hat, const calib::Hessian& h);

}  // namespace mxqat::quant::ptq
