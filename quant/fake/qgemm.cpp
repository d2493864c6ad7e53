// qgemm and QuantGemm (qgemm.h): the quantized GEMM op, forward and backward together.
#include "quant/fake/qgemm.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "autograd/error.h"
#include "autograd/kernels.h"

namespace mxqat::quant {

using autograd::GradSink;
using autograd::Shape;
using autograd::Tensor;
using autograd::Var;
using autograd::shape_str;

std::string GemmQuantSpec::describe() const {
  return "w=" + codec_name_or_none(weight) + " a=" + codec_name_or_none(input) +
         " g=" + codec_name_or_none(grad_output) + " ste=" + ste_name(ste) +
         (rotation ? " rot=" + rotation->describe() + (weight_rotated ? "(w stored rotated)" : "") : "");
}

namespace {

// Reuses t's storage when it already holds rows * K floats (no allocation, no zero fill).
float* shaped(Tensor& t, int64_t rows, int64_t K) {
  if (t.size() != rows * K) t = Tensor(Shape{rows, K});
  else if (t.shape() != Shape{rows, K}) t.reshape_inplace(Shape{rows, K});
  return t.data();
}

// What the backward reads; one shared block so the closure stays cheap to copy. An operand is
// read from its buffer when quantized, else from its Var (each kept only if backward reads it).
struct Saved {
  Var x, w;                         // x [M, K], w [N, K]
  std::shared_ptr<GemmBuffers> buf;  // Q(x), Q(w) and the STE masks (see GemmBuffers)
  bool x_quantized, w_quantized;  // read from buf: quantized and/or rotated
  std::optional<Codec> grad_output;
  std::optional<Hadamard> rotation;  // dx and dW (unless the weight is stored rotated) rotate back
  bool w_rotated;
  std::shared_ptr<GemmCapture> capture;
  int64_t m, n, k;
  const float* x_data() const { return x_quantized ? buf->xq.data() : x.value().data(); }
  const float* w_data() const { return w_quantized ? buf->wq.data() : w.value().data(); }
};

// dX [M, K] = Q_g(dY along N) Q(W), then * mask_x under the clipped STE.
Tensor grad_input(const Saved& s, const Tensor& dy) {
  const float* g = dy.data();
  Tensor dyq;
  if (s.grad_output) {
    dyq = Tensor(Shape{s.m, s.n});
    fake_quant_rows(*s.grad_output, dy.data(), s.m, s.n, dyq.data(), nullptr);
    g = dyq.data();
  }
  Tensor dx = Tensor::uninit(Shape{s.m, s.k});
  autograd::gemm(g, false, s.w_data(), false, dx.data(), s.m, s.k, s.n, false,
                 s.buf->x_masked ? s.buf->x_mask.data() : nullptr);  // the mask, as dx is stored
  if (s.rotation) hadamard_rows(*s.rotation, dx.data(), s.m, s.k, dx.data(), /*inverse=*/true);
  return dx;
}

// dW [N, K] = Q_g(dY^T along M) Q(X), then * mask_w under the clipped STE. The output gradient
// is blocked along the tokens here, so it is quantized as a transposed contiguous copy (spec §7).
Tensor grad_weight(const Saved& s, const Tensor& dy) {
  Tensor dw = Tensor::uninit(Shape{s.n, s.k});
  const uint8_t* mask = s.buf->w_masked ? s.buf->w_mask.data() : nullptr;  // applied as dw is stored
  if (s.grad_output) {
    Tensor dyt(Shape{s.n, s.m});
    dyt.mat(s.n, s.m) = dy.mat(s.m, s.n).transpose();
    Tensor dytq(Shape{s.n, s.m});
    fake_quant_rows(*s.grad_output, dyt.data(), s.n, s.m, dytq.data(), nullptr);
    autograd::gemm(dytq.data(), false, s.x_data(), false, dw.data(), s.n, s.k, s.m, false, mask);
  } else {
    autograd::gemm(dy.data(), true, s.x_data(), false, dw.data(), s.n, s.k, s.m, false, mask);
  }
  if (s.rotation && !s.w_rotated) hadamard_rows(*s.rotation, dw.data(), s.n, s.k, dw.data(), /*inverse=*/true);
  return dw;
}

// One operand's fake-quant, y [R, K] = Q(x) with its mask, run as row ranges by the threads of
// the GEMM that reads it (autograd::GemmPrepare). Any cut gives the bits of one whole call:
// blocks never cross rows, and the codec's tensor-level quantities are fixed from the whole
// operand first (Codec::fixed_for).
// With a rotation, each row range is rotated into y and quantized there in place (the codecs'
// blocks read a block before writing it), so the rotation costs no pass of its own.
struct RowJob {
  std::optional<Codec> codec;  // null: rotation only
  std::optional<Hadamard> rotation;
  const float* x;
  int64_t rows, k;
  float* y;
  uint8_t* mask;  // [R, K] or null
  void run(int t, int T) const {
    const int64_t r0 = rows * t / T, r1 = rows * (t + 1) / T;
    if (r1 <= r0 || k <= 0) return;  // (runs inside an OpenMP region: nothing here may throw)
    const float* src = x + r0 * k;
    if (rotation) hadamard_rows(*rotation, src, r1 - r0, k, y + r0 * k), src = y + r0 * k;
    if (codec) codec->fake_quant(src, r1 - r0, k, y + r0 * k, mask ? mask + r0 * k : nullptr);
  }
};

// The codec with its tensor-level quantities fixed from the rotated operand (NVFP4's amax: one
// reading pass that rotates block by block; MX and INT have none).
Codec fixed_for_rotated(const Codec& codec, const Hadamard& h, const float* x, int64_t rows, int64_t k) {
  if (codec.block_format().scheme != BlockScheme::kNvfp4 || codec.options().global_amax) return codec;
  std::vector<float> row(static_cast<size_t>(k));
  float amax = 0;
  for (int64_t r = 0; r < rows; ++r) {
    hadamard_rows(h, x + r * k, 1, k, row.data());
    for (float v : row)
      if (std::isfinite(v)) amax = std::max(amax, std::fabs(v));
  }
  CodecOptions o = codec.options();
  o.global_amax = amax;
  return Codec::make(codec.name(), o);
}

RowJob row_job(const std::optional<Codec>& codec, const std::optional<Hadamard>& rotation, const float* x,
               int64_t rows, int64_t k, float* y, std::vector<uint8_t>* mask) {
  if (mask) mask->resize(static_cast<size_t>(rows * k));  // every entry is written
  std::optional<Codec> c = codec;
  if (c && rows > 0 && k > 0) c = rotation ? fixed_for_rotated(*c, *rotation, x, rows, k) : c->fixed_for(x, rows, k);
  return RowJob{c, rotation, x, rows, k, y, mask ? mask->data() : nullptr};
}

void check_shapes(const Tensor& xv, const Tensor& wv, const Var& bias) {
  MXQAT_CHECK(wv.ndim() == 2, "qgemm: weight must be [N, K], got ", shape_str(wv.shape()));
  MXQAT_CHECK(xv.ndim() >= 1 && xv.dim(-1) == wv.dim(1), "qgemm: input has ",
              xv.ndim() ? xv.dim(-1) : 0, " features (shape ", shape_str(xv.shape()),
              ") but weight expects ", wv.dim(1), "; check the layer sizes");
  if (bias.defined())
    MXQAT_CHECK(bias.value().size() == wv.dim(0), "qgemm: bias has ", bias.value().size(),
                " values, weight has ", wv.dim(0), " outputs");
}


// y = Q(x) Q(w)^T + b
// dx = Q_g(dy) Q(w)           [* mask_x]      STE through Q(x): the quantizer is the identity,
// dw = Q_g(dy^T) Q(x)         [* mask_w]      or (clipped) has subgradient 0 where it saturated
// db = sum over rows of dy    (unquantized: a reduction, not a GEMM operand)
Var qgemm_op(const Var& x, const Var& w, const Var& bias, const GemmQuantSpec& spec,
             std::shared_ptr<GemmCapture> capture, std::shared_ptr<GemmBuffers> buf) {
  const Tensor& xv = x.value();
  const Tensor& wv = w.value();
  check_shapes(xv, wv, bias);
  const int64_t n = wv.dim(0), k = wv.dim(1);
  int64_t m = 1;
  for (int d = 0; d + 1 < xv.ndim(); ++d) m *= xv.dim(d);
  const bool graph = autograd::grad_enabled();
  const bool dx_wanted = graph && x.needs_grad(), dw_wanted = graph && w.needs_grad();
  const bool clipped = spec.ste == Ste::kClipped;
  const bool rot_w = spec.rotation && !spec.weight_rotated;
  auto s = std::make_shared<Saved>(Saved{x, w, std::move(buf), spec.input || spec.rotation,
                                         spec.weight || rot_w, spec.grad_output, spec.rotation,
                                         spec.weight_rotated, std::move(capture), m, n, k});
  GemmBuffers& b = *s->buf;
  b.x_masked = spec.input && clipped && dx_wanted;
  b.w_masked = spec.weight && clipped && dw_wanted;
  // Q(x) and Q(w) are made by the GEMM's own threads, before its product (no region of their own).
  std::vector<RowJob> jobs;
  if (s->x_quantized)
    jobs.push_back(row_job(spec.input, spec.rotation, xv.data(), m, k, shaped(b.xq, m, k),
                           b.x_masked ? &b.x_mask : nullptr));
  if (s->w_quantized)
    jobs.push_back(row_job(spec.weight, rot_w ? spec.rotation : std::nullopt, wv.data(), n, k, shaped(b.wq, n, k),
                           b.w_masked ? &b.w_mask : nullptr));
  Shape ys = xv.shape();
  ys.back() = n;
  Tensor y = Tensor::uninit(ys);
  autograd::GemmPrepare quantize;
  if (!jobs.empty())
    quantize = [&jobs](int t, int T) {
      for (const RowJob& job : jobs) job.run(t, T);
    };
  autograd::gemm(quantize, s->x_data(), false, s->w_data(), true, y.data(), m, n, k);
  if (bias.defined()) y.mat(m, n).rowwise() += bias.value().vec().transpose();
  if (!dw_wanted || s->x_quantized) s->x = Var();  // backward reads x only for dw, unquantized
  if (!dx_wanted || s->w_quantized) s->w = Var();
  std::vector<Var> inputs{x, w};
  if (bias.defined()) inputs.push_back(bias);
  return autograd::make_node("qgemm", std::move(y), std::move(inputs),
                             [s](const Tensor& dy, GradSink& g) {
                               if (s->capture) s->capture->grad_output = dy.reshaped({s->m, s->n});
                               if (g.wants(0)) g.add(0, grad_input(*s, dy));
                               if (g.wants(1)) g.add(1, grad_weight(*s, dy));
                               if (g.wants(2)) {
                                 Tensor db(Shape{s->n});
                                 autograd::sum_rows(dy.data(), s->m, s->n, db.data());
                                 g.add(2, std::move(db));
                               }
                             });
}

}  // namespace

Var qgemm(const Var& x, const Var& w, const Var& bias, const GemmQuantSpec& spec) {
  return qgemm_op(x, w, bias, spec, nullptr, std::make_shared<GemmBuffers>());
}

Var QuantGemm::linear(const Var& x, const Var& w, const Var& bias) {
  if (capture_) {
    capture_->input = x.value().reshaped({-1, x.value().cols()});
    capture_->grad_output = Tensor();
  }
  // Reuse the buffers of the previous call unless its graph still holds them.
  if (!buffers_ || buffers_.use_count() > 1) buffers_ = std::make_shared<GemmBuffers>();
  return qgemm_op(x, w, bias, spec_, capture_, buffers_);
}

void QuantGemm::set_capture(bool on) {
  if (!on) capture_.reset();
  else if (!capture_) capture_ = std::make_shared<GemmCapture>();
}

const GemmCapture& QuantGemm::captured() const {
  MXQAT_CHECK(capture_, "QuantGemm \"", spec_.describe(),
              "\": nothing captured; call set_capture(true) before the forward pass");
  return *capture_;
}

}  // namespace mxqat::quant
