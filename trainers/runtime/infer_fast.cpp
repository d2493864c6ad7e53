// The inference fast path: a GemmQuantizer that keeps a layer's weight packed and runs the fused
// decode-and-multiply kernel (quant/codec/gemm/packed_gemm.h) on the input, after the input passes
// through its codec exactly as in training; or, for an mx_native layer, training's own product
// on weights made block integers at load (bitwise the reference path). Forward only.
#include <omp.h>

#include <memory>

#include "quant/codec/transform/hadamard.h"
#include "quant/codec/gemm/mx_gemm.h"
#include "quant/codec/gemm/packed_gemm.h"
#include "trainers/runtime/infer.h"

namespace mxqat::trainers {

namespace {
class PackedGemm : public quant::GemmQuantizer {
 public:
  PackedGemm(quant::EncodedTensor w, std::optional<quant::Codec> input, std::optional<quant::Hadamard> rotation)
      : w_(std::move(w)), input_(std::move(input)), rotation_(rotation) {}

  // y [..., N] = Q_in(x) decode(W)ᵀ + b; the layer's float weight `w` is not read.
  autograd::Var linear(const autograd::Var& x, const autograd::Var&, const autograd::Var& bias) override {
    const autograd::Tensor& xv = x.value();
    const int64_t K = xv.cols(), M = xv.size() / K;
    MXQAT_CHECK(K == w_.cols, "packed layer (", w_.codec, "): input has ", K, " features but the "
                "weight expects ", w_.cols);
    const float* in = xv.data();
    if (rotation_) {  // the weight is stored rotated (make_export); the input rotates here
      xr_.resize(size_t(xv.size()));
      quant::hadamard_rows(*rotation_, in, M, K, xr_.data());
      in = xr_.data();
    }
    if (input_) {
      xq_.resize(size_t(xv.size()));
      input_->fake_quant(in, M, K, xq_.data());
      in = xq_.data();
    }
    autograd::Shape shape = xv.shape();
    shape.back() = w_.rows;
    autograd::Tensor y(shape);
    quant::packed_linear(w_, in, M, bias.defined() ? bias.value().data() : nullptr, y.data());
    return autograd::Var(std::move(y));
  }
  std::string describe() const override {
    return "packed w=" + w_.codec + " a=" + (input_ ? input_->name() : std::string("none")) +
           (rotation_ ? " rot=" + rotation_->describe() : "");
  }

 private:
  quant::EncodedTensor w_;
  std::optional<quant::Codec> input_;
  std::optional<quant::Hadamard> rotation_;
  std::vector<float> xq_, xr_;
};

// The mx_native product (docs/formats.md §14.2) of a layer: the decoded weight becomes block
// integers once, at load; each call quantizes its input with the layer's codec (as training),
// turns it into block integers and runs the same kernel as training's forward.
class MxNativeGemm : public quant::GemmQuantizer {
 public:
  MxNativeGemm(const ExportTensor& w, quant::Codec input)
      : codec_(w.packed.codec), input_(std::move(input)), wide_(quant::mx_native_wide(codec_, input_.name())) {
    const autograd::Tensor wd = w.decoded();
    w_ = quant::mx_operand(wd.data(), w.packed.rows, w.packed.cols, "layer weight " + w.name, true,
                           quant::MxPath::kAuto, wide_);
  }

  autograd::Var linear(const autograd::Var& x, const autograd::Var&, const autograd::Var& bias) override {
    const autograd::Tensor& xv = x.value();
    const int64_t K = xv.cols(), M = xv.size() / K;
    MXQAT_CHECK(K == w_.k, "mx_native layer (", codec_, "): input has ", K, " features but the "
                "weight expects ", w_.k);
    // Q(x) part by part into the threads' own buffers and made block integers there, as
    // training's forward does (quant/fake/qgemm.cpp mx_forward)
    const quant::Codec codec = input_.fixed_for(xv.data(), M, K);  // (MX: no tensor-level state)
    quant::MxOperand a;
    quant::mx_operand_shape(a, M, K, wide_);
    const int threads = M * K < (int64_t{1} << 16) ? 1 : omp_get_max_threads();
    int bad = 0;
#pragma omp parallel num_threads(threads) if (threads > 1) reduction(| : bad)
    quant::mx_dynamic_parts(
        [&](int t, int T) {
          const auto quantize = [&](int64_t r0, int64_t r1, float* dst) {
            codec.fake_quant(xv.data() + r0 * K, r1 - r0, K, dst);
          };
          bad |= !quant::mx_quantized_rows(quantize, M * t / T, M * (t + 1) / T, a);
        },
        quant::mx_chunk_parts(M * K));
    MXQAT_CHECK(!bad, "mx_native layer (", codec_, "): the input quantized with ", input_.name(),
                " is off the ", wide_ ? "wide" : "narrow", " block grid; the export's codecs do not "
                "fit the mx_native product (re-export with mxfp4, mxfp6_e2m3 or mxfp6_e3m2)");
    autograd::Shape shape = xv.shape();
    shape.back() = w_.rows;
    autograd::Tensor y(shape);
    quant::mx_gemm(a, w_, y.data());
    if (bias.defined()) y.mat(M, w_.rows).rowwise() += bias.value().vec().transpose();
    return autograd::Var(std::move(y));
  }
  std::string describe() const override {
    return "mx_native w=" + codec_ + " a=" + input_.name();
  }

 private:
  std::string codec_;
  quant::Codec input_;
  bool wide_;  // a pair with mxfp6_e3m2: wide operands (int16 block integers)
  quant::MxOperand w_;
};
}  // namespace

// A fast quantizer for a packed weight, or nullptr when its codec has no fused kernel.
std::shared_ptr<quant::GemmQuantizer> make_fast_quantizer(const ExportTensor& w,
                                                          const quant::LayerPolicy& layer,
                                                          const quant::ResolvedPolicy& policy) {
  const bool rotated = policy.rotation && layer.rotated;  // (MxNativeGemm does not rotate inputs)
  if (w.quantized && !rotated && policy.product_for(w.packed.codec, layer.input) == quant::Product::kMxNative)
    return std::make_shared<MxNativeGemm>(w, quant::Codec::make(layer.input, policy.codec_options()));
  if (!w.quantized || !quant::packed_linear_is_fused(w.packed.codec)) return nullptr;
  std::optional<quant::Codec> in;
  if (layer.input != "none") in = quant::Codec::make(layer.input, policy.codec_options());
  std::optional<quant::Hadamard> rot;
  if (rotated) rot = policy.rotation;
  return std::make_shared<PackedGemm>(w.packed, std::move(in), rot);
}

}  // namespace mxqat::trainers
