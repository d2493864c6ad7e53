// qgemm: the quantized GEMM op y = Q(x) Q(w)^T + b with its forward and backward quantization in
// one place (STYLE.md §2, §6), and QuantGemm, the GemmQuantizer (quant/hook.h) that layers call.
// Arithmetic is autograd::linear's (same gemm / sum_rows calls), so full precision is bit-identical
// to it. Not the policy (which codec where: quant/policy) nor the schedule (when: quant/schedule).
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "quant/codec/codec.h"
#include "quant/codec/transform/hadamard.h"
#include "quant/codec/gemm/mx_gemm.h"
#include "quant/fake/fake_quant.h"
#include "quant/hook.h"

namespace mxqat::quant {

// Which codec each GEMM operand passes through; nullopt = full precision. Every operand is blocked
// along the reduction axis of the GEMM it feeds (spec §7): weight and input along K in the
// forward; grad_output along N for dX = dY W and along the tokens M for dW = dY^T X.
// rotation: both forward operands rotated blockwise along K before their codecs (hadamard.h),
// y = Q_in(x R^T) Q_w(w R^T)^T, the exact product unchanged; each row is rotated as it is
// quantized, by the same threads. weight_rotated: the weight is stored rotated already (an
// export's decoded weight, a PTQ result), so only the input is rotated.
// How the backward products' operands are rounded when grad_output has a codec.
enum class Rounding : uint8_t {
  kNearest,     // the codec's own rounding (round to nearest even)
  kStochastic,  // unbiased stochastic rounding, counter-based (quant/codec/transform/stochastic.h)
};
const char* rounding_name(Rounding r);               // "nearest" / "stochastic"
Rounding parse_rounding(const std::string& name);    // throws naming the known ones

struct GemmQuantSpec {
  // (a constructor rather than an aggregate, so that brace lists naming the first fields only
  // stay free of missing-initializer warnings)
  GemmQuantSpec(std::optional<Codec> w = std::nullopt, std::optional<Codec> in = std::nullopt,
                std::optional<Codec> g = std::nullopt, Ste s = Ste::kClipped,
                std::optional<Hadamard> rot = std::nullopt, bool w_rotated = false)
      : weight(std::move(w)), input(std::move(in)), grad_output(std::move(g)), ste(s), rotation(rot),
        weight_rotated(w_rotated) {}

  std::optional<Codec> weight, input;
  std::optional<Codec> grad_output;  // off by default; e.g. mxfp8_e5m2
  Ste ste = Ste::kClipped;
  std::optional<Hadamard> rotation;
  bool weight_rotated = false;
  // The backward products when grad_output has a codec. `requantize_backward` off: they read
  // Q_g(dY) and the forward's Q(W), Q(X) (blocked along K). On: W and X are quantized again by
  // the grad_output codec along the backward products' own reduction axes (W along N for dX,
  // X along the tokens M for dW), so every backward GEMM operand is in that format.
  Rounding grad_rounding = Rounding::kNearest;  // for dY (and W, X when requantized)
  bool requantize_backward = false;
  uint64_t sr_seed = 0, sr_stream = 0;  // stochastic rounding: the run's seed, this layer's stream

  // The forward product (docs/formats.md §14). kMxNative needs both forward operands to hold
  // MXFP4 / MXFP6-E2M3 values: Q(x) and Q(w) under those codecs, or (inference) a weight decoded
  // from them; the policy sets it only then. The backward is not affected by it.
  Product product = Product::kFp32Chain;
  // The backward products dX and dW (docs/formats.md §14.3). kMxNative needs every backward
  // operand in MX blocks along the backward's reduction axes: grad_output mxfp4 or mxfp6_e2m3 and
  // requantize_backward (no rotation); qgemm refuses it otherwise.
  Product backward_product = Product::kFp32Chain;
  // Learned weight scales (lsq.h): the weight is quantized under its block scales shifted by the
  // per-row offsets the layer passes to qgemm (its `weight_scale` parameter [N]), which learn by
  // LSQ's gradient. Off: the codec's own scales, as before.
  bool learned_scale = false;

  bool full_precision() const { return !weight && !input && !grad_output && !rotation; }
  // "w=mxfp4 a=mxfp4 g=none ste=clipped" (+ " round=stochastic", " bwd=requantize",
  // " product=mx_native", " bwd_product=mx_native", " scale=lsq", " rot=hadamard" when set)
  std::string describe() const;
};

// y [..., N] = Q_in(x) Q_w(w)^T + b,  x [..., K] (conv: im2col patches [B*Ho*Wo, C*kh*kw]),
// w [N, K], bias [N] or undefined. Each operand is quantized once per call; the backward reuses the
// same Q(w) and Q(x). Deterministic for any thread count.
// Stochastic rounding (spec.grad_rounding) draws from sr_key(seed, stream, step, micro).
// scale [N]: the learned offsets when spec.learned_scale (and a weight codec) asks for them, else
// undefined.
autograd::Var qgemm(const autograd::Var& x, const autograd::Var& w, const autograd::Var& bias,
                    const GemmQuantSpec& spec, uint64_t step = 0, uint64_t micro = 0,
                    const autograd::Var& scale = autograd::Var());

// What a QuantGemm saw at its last call while capture is on (for quant/monitor): the
// full-precision operands before quantization, [M, K] input and [M, N] output gradient.
struct GemmCapture {
  autograd::Tensor input;        // [M, K]; empty until a forward ran with capture on
  autograd::Tensor grad_output;  // [M, N]; empty until a backward ran with capture on
};

// Q(x), Q(w) and their clipped-STE masks for one call. A QuantGemm lends its buffers to each
// call's graph and reuses them at the next call once that graph is gone (no allocation, no fill).
struct GemmBuffers {
  autograd::Tensor xq, wq;            // [M, K], [N, K]
  autograd::Tensor w_resid;           // learned scales: Q(w) - w * mask_w [N, K] (lsq.h)
  std::vector<uint8_t> x_mask, w_mask;  // STE masks, current only where x_masked / w_masked
  bool x_masked = false, w_masked = false;  // (kept sized between steps: no zero fill per step)
};

// The per-layer quantizer. Its spec may be swapped between steps (set_spec) when the progressive
// schedule changes phase; a graph already built keeps the spec it was built with.
class QuantGemm : public GemmQuantizer {
 public:
  explicit QuantGemm(GemmQuantSpec spec = {}) : spec_(std::move(spec)) {}

  autograd::Var linear(const autograd::Var& x, const autograd::Var& w,
                       const autograd::Var& bias) override;
  autograd::Var linear_scaled(const autograd::Var& x, const autograd::Var& w, const autograd::Var& bias,
                              const autograd::Var& scale) override;
  std::string describe() const override { return spec_.describe(); }

  const GemmQuantSpec& spec() const { return spec_; }
  void set_spec(GemmQuantSpec spec) { spec_ = std::move(spec); }
  // Stochastic rounding: the graphs built from now on draw their random numbers for training
  // step `step`, micro-batch `micro` (the key is fixed when the forward runs).
  void set_rounding_counter(uint64_t step, uint64_t micro = 0) { step_ = step, micro_ = micro; }

  // Telemetry: while on, each call copies its input (and its backward its dY) into captured().
  void set_capture(bool on);
  bool capturing() const { return static_cast<bool>(capture_); }
  const GemmCapture& captured() const;

 private:
  GemmQuantSpec spec_;
  std::shared_ptr<GemmCapture> capture_;  // shared with the backward closures that fill it
  std::shared_ptr<GemmBuffers> buffers_;  // shared with the graph of the last call
  uint64_t step_ = 0, micro_ = 0;
};

}  // namespace mxqat::quant
