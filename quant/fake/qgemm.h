// qgemm: the quantized GEMM op y = Q(x) Q(w)^T + b with its forward and backward quantization in
// one place (STYLE.md §2, §6), and QuantGemm, the GemmQuantizer (quant/hook.h) that layers call.
// Arithmetic is autograd::linear's (same gemm / sum_rows calls), so full precision is bit-identical
// to it. Not the policy (which codec where: quant/policy) nor the schedule (when: quant/schedule).
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "quant/codec/codec.h"
#include "quant/codec/mx_gemm.h"
#include "quant/fake/fake_quant.h"
#include "quant/hook.h"

namespace mxqat::quant {

// Which codec each GEMM operand passes through; nullopt = full precision. Every operand is blocked
// along the reduction axis of the GEMM it feeds (spec §7): weight and input along K in the
// forward; grad_output along N for dX = dY W and along the tokens M for dW = dY^T X.
struct GemmQuantSpec {
  std::optional<Codec> weight, input;
  std::optional<Codec> grad_output;  // off by default; e.g. mxfp8_e5m2
  Ste ste = Ste::kClipped;
  // The forward product (docs/formats.md §14). kMxNative needs both forward operands to hold
  // MXFP4 / MXFP6-E2M3 values: Q(x) and Q(w) under those codecs, or (inference) a weight decoded
  // from them; the policy sets it only then. The backward is fp32_chain either way.
  Product product = Product::kFp32Chain;

  bool full_precision() const { return !weight && !input && !grad_output; }
  std::string describe() const;  // "w=mxfp4 a=mxfp4 g=none ste=clipped" (+ " product=mx_native")
};

// y [..., N] = Q_in(x) Q_w(w)^T + b,  x [..., K] (conv: im2col patches [B*Ho*Wo, C*kh*kw]),
// w [N, K], bias [N] or undefined. Each operand is quantized once per call; the backward reuses the
// same Q(w) and Q(x). Deterministic for any thread count.
autograd::Var qgemm(const autograd::Var& x, const autograd::Var& w, const autograd::Var& bias,
                    const GemmQuantSpec& spec);

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
  std::string describe() const override { return spec_.describe(); }

  const GemmQuantSpec& spec() const { return spec_; }
  void set_spec(GemmQuantSpec spec) { spec_ = std::move(spec); }

  // Telemetry: while on, each call copies its input (and its backward its dY) into captured().
  void set_capture(bool on);
  bool capturing() const { return static_cast<bool>(capture_); }
  const GemmCapture& captured() const;

 private:
  GemmQuantSpec spec_;
  std::shared_ptr<GemmCapture> capture_;  // shared with the backward closures that fill it
  std::shared_ptr<GemmBuffers> buffers_;  // shared with the graph of the last call
};

}  // namespace mxqat::quant
