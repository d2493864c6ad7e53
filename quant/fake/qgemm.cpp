// qgemm and QuantGemm (qgemm.h): the quantized GEMM op, forward and backward together.
#include "quant/fake/qgemm.h"

#include <algorithm>
#include <cmath>
#include <omp.h>

#include <utility>
#include <vector>

#include "autograd/error.h"
#include "autograd/kernels.h"
#include "autograd/profile.h"
#include "quant/codec/formats.h"
#include "quant/codec/transform/stochastic.h"
#include "quant/fake/lsq.h"

namespace mxqat::quant {

using autograd::GradSink;
using autograd::Shape;
using autograd::Tensor;
using autograd::Var;
using autograd::shape_str;

const char* rounding_name(Rounding r) { return r == Rounding::kStochastic ? "stochastic" : "nearest"; }

Rounding parse_rounding(const std::string& name) {
  if (name == "nearest") return Rounding::kNearest;
  if (name == "stochastic") return Rounding::kStochastic;
  MXQAT_FAIL("unknown grad_rounding \"", name, "\"; known: nearest, stochastic");
}

std::string GemmQuantSpec::describe() const {
  return "w=" + codec_name_or_none(weight) + " a=" + codec_name_or_none(input) +
         " g=" + codec_name_or_none(grad_output) + " ste=" + ste_name(ste) +
         (grad_rounding == Rounding::kStochastic ? " round=stochastic" : "") +
         (requantize_backward ? " bwd=requantize" : "") +
         (product == Product::kMxNative ? " product=mx_native" : "") +
         (backward_product == Product::kMxNative ? " bwd_product=mx_native" : "") +
         (learned_scale ? " scale=lsq" : "") +
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
  Rounding rounding;
  bool requantize;  // backward operands W, X quantized again along the backward's axes
  uint64_t seed, stream, step, micro;  // stochastic rounding
  std::optional<Hadamard> rotation;  // dx and dW (unless the weight is stored rotated) rotate back
  bool w_rotated;
  std::shared_ptr<GemmCapture> capture;
  int64_t m, n, k;
  bool lsq = false;        // learned scales: the weight's residual buf->w_resid is kept
  float lsq_grad = 0;      // LSQ's gradient scale (lsq_grad_scale)
  bool mx_backward = false;  // dX and dW as mx_native products (docs/formats.md §14.3)
  const float* x_data() const { return x_quantized ? buf->xq.data() : x.value().data(); }
  const float* w_data() const { return w_quantized ? buf->wq.data() : w.value().data(); }

  // The stochastic rounding key of a backward operand: `role` (0: dY for dX, 1: dY^T for dW,
  // 2: W^T, 3: X^T) gives each its own random stream.
  uint64_t key(uint64_t role) const { return sr_key(seed, stream * 4 + role, step, micro); }
  // The mx_native backward with stochastic rounding straight into block integers (AVX-512).
  bool fused_sr() const { return mx_backward && rounding == Rounding::kStochastic && mx_sr_fused(); }
  // One backward operand src [R, C] through the grad_output codec, blocked along C.
  Tensor quantized(const float* src, int64_t R, int64_t C, uint64_t role) const {
    Tensor q(Shape{R, C});
    if (rounding == Rounding::kStochastic)
      fake_quant_stochastic(*grad_output, src, R, C, q.data(), key(role));
    else
      fake_quant_rows(*grad_output, src, R, C, q.data(), nullptr);
    return q;
  }
};

// A [R, C] row-major -> its transpose [C, R], contiguous.
Tensor transposed(const Tensor& a, int64_t R, int64_t C) {
  Tensor t(Shape{C, R});
  t.mat(C, R) = a.mat(R, C).transpose();
  return t;
}

// c [R, C] = the mx_native product (docs/formats.md §14.2) of a [R, L] and b [C, L], both MX
// blocks along L (the backward operands under requantize), then * mask like autograd::gemm's.
void mx_backward_product(const float* a, const float* b, float* c, int64_t R, int64_t C, int64_t L,
                         const uint8_t* mask, const char* what) {
  const MxOperand ao = mx_operand(a, R, L, std::string("qgemm backward ") + what + " (grad_output)");
  const MxOperand bo = mx_operand(b, C, L, std::string("qgemm backward ") + what, /*as_b=*/true);
  mx_gemm(ao, bo, c);
  float* __restrict out = c;
  const uint8_t* __restrict keep = mask;
  if (mask)
    for (int64_t i = 0; i < R * C; ++i) out[i] *= static_cast<float>(keep[i]);
}

// The same with stochastic rounding fused into making the block integers (mx_sr_*, AVX-512): A
// [R, L] is SR(a) for a row-major [R, L] `a` (a_rows) or SR(a^T) for a row-major [L, R] `a`, B
// [C, L] is SR(bt^T) for a row-major [L, C] `bt`. The bits of rounding into floats first.
void mx_sr_backward_product(const Saved& s, const float* a, bool a_rows, uint64_t role_a,
                            const float* bt, uint64_t role_b, float* c, int64_t R, int64_t C,
                            int64_t L, const uint8_t* mask) {
  const ElementFormat& e = *s.grad_output->element_format();
  const uint64_t key_a = s.key(role_a), key_b = s.key(role_b);
  MxOperand ao, bo;
  mx_operand_shape(ao, R, L);
  mx_panels_shape(bo, C, L);
  const int threads = mx_gemm_threads(R, C, ao.nb);
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    mx_dynamic_parts([&](int t, int T) {
      if (a_rows) mx_sr_rows_part(e, key_a, a, ao, t, T);
      else mx_sr_cols_part(e, key_a, a, ao, /*panels=*/false, t, T);
      mx_sr_cols_part(e, key_b, bt, bo, /*panels=*/true, t, T);
    });
    mx_dynamic_parts([&](int t, int T) { mx_gemm_part(ao, bo, c, t, T); });
    if (mask) {
      const int t = omp_get_thread_num(), T = omp_get_num_threads();
      float* __restrict out = c;
      const uint8_t* __restrict keep = mask;
      for (int64_t i = R * C * t / T; i < R * C * (t + 1) / T; ++i) out[i] *= static_cast<float>(keep[i]);
    }
  }
}

// dX [M, K] = Q_g(dY along N) Q(W), then * mask_x under the clipped STE. Q(W) is the forward's
// (blocked along K) or, requantized, W^T [K, N] blocked along N by the grad_output codec.
Tensor grad_input(const Saved& s, const Tensor& dy) {
  if (s.fused_sr()) {
    Tensor dx = Tensor::uninit(Shape{s.m, s.k});
    mx_sr_backward_product(s, dy.data(), true, 0, s.w.value().data(), 2, dx.data(), s.m, s.k, s.n,
                           s.buf->x_masked ? s.buf->x_mask.data() : nullptr);
    return dx;
  }
  const float* g = dy.data();
  Tensor dyq;
  if (s.grad_output) {
    dyq = s.quantized(dy.data(), s.m, s.n, 0);
    g = dyq.data();
  }
  Tensor dx = Tensor::uninit(Shape{s.m, s.k});
  const uint8_t* mask = s.buf->x_masked ? s.buf->x_mask.data() : nullptr;  // applied as dx is stored
  if (s.grad_output && s.requantize) {
    const Tensor wtq = s.quantized(transposed(s.w.value(), s.n, s.k).data(), s.k, s.n, 2);
    if (s.mx_backward) mx_backward_product(g, wtq.data(), dx.data(), s.m, s.k, s.n, mask, "dX");
    else autograd::gemm(g, false, wtq.data(), true, dx.data(), s.m, s.k, s.n, false, mask);
  } else {
    autograd::gemm(g, false, s.w_data(), false, dx.data(), s.m, s.k, s.n, false, mask);
  }
  if (s.rotation) hadamard_rows(*s.rotation, dx.data(), s.m, s.k, dx.data(), /*inverse=*/true);
  return dx;
}

// dW [N, K] = Q_g(dY^T along M) Q(X), then * mask_w under the clipped STE. The output gradient
// is blocked along the tokens here, so it is quantized as a transposed contiguous copy (spec §7);
// requantized, X^T [K, M] is blocked along M likewise.
// Learned scales (lsq.h), Q(w)_nk = S_nk q(w_nk / S_nk) with S_nk = 2^(t_nk + s_n), t_nk the
// rule's exponent (MX: round(s_n), STE through the round; NVFP4: the E4M3 rounding likewise):
//   ds_n = g ln2 sum_k dQ_nk (Q(w)_nk - w_nk mask_nk)     (LSQ: STE through q, so dQ/dS =
//   q(w/S) - (w/S) mask; times dS/ds = S ln2), g = lsq_grad_scale; dQ the unmasked dW.
Tensor grad_weight(const Saved& s, const Tensor& dy, Tensor* ds = nullptr) {
  Tensor dw = Tensor::uninit(Shape{s.n, s.k});
  // the mask is applied as dw is stored, unless ds needs the unmasked product first
  const uint8_t* mask = s.buf->w_masked && !ds ? s.buf->w_mask.data() : nullptr;
  if (s.fused_sr()) {
    mx_sr_backward_product(s, dy.data(), false, 1, s.x.value().data(), 3, dw.data(), s.n, s.k, s.m, mask);
  } else if (s.grad_output) {
    const Tensor dytq = s.quantized(transposed(dy, s.m, s.n).data(), s.n, s.m, 1);
    if (s.requantize) {
      const Tensor xtq = s.quantized(transposed(s.x.value(), s.m, s.k).data(), s.k, s.m, 3);
      if (s.mx_backward) mx_backward_product(dytq.data(), xtq.data(), dw.data(), s.n, s.k, s.m, mask, "dW");
      else autograd::gemm(dytq.data(), false, xtq.data(), true, dw.data(), s.n, s.k, s.m, false, mask);
    } else {
      autograd::gemm(dytq.data(), false, s.x_data(), false, dw.data(), s.n, s.k, s.m, false, mask);
    }
  } else {
    autograd::gemm(dy.data(), true, s.x_data(), false, dw.data(), s.n, s.k, s.m, false, mask);
  }
  if (ds) {
    *ds = Tensor(Shape{s.n});
    const float* r = s.buf->w_resid.data();
    for (int64_t i = 0; i < s.n; ++i) {
      double acc = 0;
      for (int64_t j = i * s.k; j < (i + 1) * s.k; ++j) acc += double(dw.data()[j]) * r[j];
      (*ds)[i] = static_cast<float>(acc * M_LN2 * s.lsq_grad);
    }
    if (s.buf->w_masked)
      for (int64_t j = 0; j < s.n * s.k; ++j) dw.data()[j] = s.buf->w_mask[size_t(j)] ? dw.data()[j] : 0.f;
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
    run_rows(r0, r1, y + r0 * k);
  }
  // Rows [r0, r1) into `out` (row r0 first): y's own rows, or a caller's buffer (the mask is y's).
  void run_rows(int64_t r0, int64_t r1, float* out) const {
    if (r1 <= r0 || k <= 0) return;  // (runs inside an OpenMP region: nothing here may throw)
    const float* src = x + r0 * k;
    if (rotation) hadamard_rows(*rotation, src, r1 - r0, k, out), src = out;
    if (codec) codec->fake_quant(src, r1 - r0, k, out, mask ? mask + r0 * k : nullptr);
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


void check_learned_scale(const GemmQuantSpec& spec, const Var& scale, int64_t n) {
  MXQAT_CHECK(scale.defined(), "qgemm (", spec.describe(), "): learned scales (quant.learned_scale: "
              "lsq) need the layer's weight_scale_offset parameter, and this layer has none; build "
              "the model from the recipe that asks for them");
  MXQAT_CHECK(scale.value().size() == n, "qgemm (", spec.describe(), "): ", scale.value().size(),
              " learned scale offsets for a weight of ", n, " rows; the checkpoint does not match the model");
  MXQAT_CHECK(supports_learned_scale(*spec.weight), "qgemm (", spec.describe(), "): learned scales "
              "need an MX, NVFP4 or symmetric INT weight codec, got ", spec.weight->name());
}

// Q(w) [N, K] under the learned scales into b.wq, its mask into b.w_mask and the residual the
// offsets' gradient reads into b.w_resid; rotated along K first when asked (y may alias w in lsq).
void lsq_weight(const GemmQuantSpec& spec, bool rotate, const float* w, int64_t n, int64_t k,
                const float* offset, GemmBuffers& b) {
  float* wq = shaped(b.wq, n, k);
  if (rotate) hadamard_rows(*spec.rotation, w, n, k, wq), w = wq;
  b.w_mask.resize(static_cast<size_t>(n * k));
  lsq_fake_quant(*spec.weight, w, n, k, offset, wq, b.w_mask.data(), shaped(b.w_resid, n, k));
}

// The mx_native forward (docs/formats.md §14.2) in one parallel region: Q(x) and Q(w) by their
// row jobs (null: the operand is already xq / wq) and made block integers in the same part, B's
// panels, then the product (each step cut into parts that the threads take dynamically,
// mx_dynamic_parts). Parts are small enough (mx_chunk_parts) for a part's Q rows to be made
// block integers while they are still in cache, on one thread too. Where the backward does not
// read Q(x) / Q(w) (keep_x / keep_w false: requantized backward operands, or no graph), the rows
// go to the thread's own buffer (mx_quantized_rows), never to xq / wq. The operands are wide when
// a codec is mxfp6_e3m2. A decoded mxfp6_e3m2 weight (inference: no weight codec) is found off the
// narrow grid before any product runs, and the operands are made again, wide (the same bits:
// §14.2 does not depend on which integers represent a block).
void mx_forward(const RowJob* xjob, bool keep_x, const RowJob* wjob, bool keep_w, const float* xq,
                const float* wq, float* y, int64_t m, int64_t n, int64_t k, const GemmQuantSpec& spec) {
  const int min_parts = mx_chunk_parts((m + n) * k);
  const auto product = [&](bool wide) {
    MxOperand a, b;
    mx_operand_shape(a, m, k, wide);
    mx_operand_shape(b, n, k, wide);
    const bool panels = mx_pack_b_shape(b);
    const int threads = mx_gemm_threads(m, n, a.nb);
    int bad = 0;  // some block off the grid: no panels, no product (the caller retries or fails)
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
      // rows [r0, r1) of one operand: quantized by its job (into xq / wq, or the thread's buffer),
      // then made block integers
      const auto operand = [&](const RowJob* job, bool keep, const float* q, int64_t rows,
                               MxOperand& out, int t, int T) {
        const int64_t r0 = rows * t / T, r1 = rows * (t + 1) / T;
        const auto quantize = [job](int64_t i0, int64_t i1, float* dst) { job->run_rows(i0, i1, dst); };
        if (job && !keep) return mx_quantized_rows(quantize, r0, r1, out);
        if (job) job->run_rows(r0, r1, job->y + r0 * k);
        return r1 <= r0 || mx_operand_rows(q, r0, r1, out);
      };
      mx_dynamic_parts(
          [&](int t, int T) {
            if (!operand(xjob, keep_x, xq, m, a, t, T) || !operand(wjob, keep_w, wq, n, b, t, T)) {
#pragma omp atomic write
              bad = 1;
            }
          },
          min_parts);  // (its barrier makes every thread see `bad`)
      int off_grid;
#pragma omp atomic read
      off_grid = bad;
      if (!off_grid) {
        if (panels) mx_dynamic_parts([&](int t, int T) { mx_pack_b_part(b, t, T); });
        mx_dynamic_parts([&](int t, int T) { mx_gemm_part(a, b, y, t, T); });
      }
    }
    return bad == 0;
  };
  const bool wide = mx_native_wide(spec.weight ? spec.weight->name() : "", spec.input ? spec.input->name() : "");
  const bool ok = product(wide) || (!wide && product(true));
  MXQAT_CHECK(ok, "qgemm (", spec.describe(), "): the mx_native product needs MXFP4 or MXFP6 "
              "values in both operands, but a block of the [", m, ", ", k, "] input or the [", n,
              ", ", k, "] weight is off that grid; quantize both with mxfp4, mxfp6_e2m3 or "
              "mxfp6_e3m2, or use quant.product: fp32_chain");
}

// y = Q(x) Q(w)^T + b
// dx = Q_g(dy) Q(w)           [* mask_x]      STE through Q(x): the quantizer is the identity,
// dw = Q_g(dy^T) Q(x)         [* mask_w]      or (clipped) has subgradient 0 where it saturated
// db = sum over rows of dy    (unquantized: a reduction, not a GEMM operand)
Var qgemm_op(const Var& x, const Var& w, const Var& bias, const GemmQuantSpec& spec,
             std::shared_ptr<GemmCapture> capture, std::shared_ptr<GemmBuffers> buf, uint64_t step,
             uint64_t micro, const Var& scale) {
  const Tensor& xv = x.value();
  const Tensor& wv = w.value();
  check_shapes(xv, wv, bias);
  const int64_t n = wv.dim(0), k = wv.dim(1);
  int64_t m = 1;
  for (int d = 0; d + 1 < xv.ndim(); ++d) m *= xv.dim(d);
  const bool lsq = spec.learned_scale && spec.weight.has_value();
  if (lsq) check_learned_scale(spec, scale, n);
  const bool graph = autograd::grad_enabled();
  const bool ds_wanted = graph && lsq && scale.needs_grad();
  const bool dx_wanted = graph && x.needs_grad(), dw_wanted = graph && (w.needs_grad() || ds_wanted);
  const bool clipped = spec.ste == Ste::kClipped;
  const bool requantize = spec.requantize_backward && spec.grad_output.has_value();
  MXQAT_CHECK(!(requantize && spec.rotation), "qgemm: the Hadamard rotation (quant.rotation) and "
              "requantized backward operands (quant.backward_operands: requantize) cannot be combined: "
              "the backward would quantize unrotated operands against the rotated forward; drop one");
  if (spec.backward_product == Product::kMxNative)
    MXQAT_CHECK(requantize && !spec.rotation && mx_native_grad_codec(spec.grad_output->name()), "qgemm (",
                spec.describe(), "): the mx_native backward product needs every backward operand "
                "in MXFP4 or MXFP6-E2M3 blocks along its reduction axis: grad_output mxfp4 or "
                "mxfp6_e2m3 with backward_operands requantize (and no rotation); set them, or "
                "leave the backward on fp32_chain");
  const bool rot_w = spec.rotation && !spec.weight_rotated;
  auto s = std::make_shared<Saved>(Saved{x, w, std::move(buf), spec.input || spec.rotation,
                                         spec.weight || rot_w, spec.grad_output,
                                         spec.grad_rounding, requantize, spec.sr_seed,
                                         spec.sr_stream, step, micro, spec.rotation, spec.weight_rotated,
                                         std::move(capture), m, n, k, lsq,
                                         lsq ? lsq_grad_scale(*spec.weight, k) : 0.f,
                                         spec.backward_product == Product::kMxNative});
  GemmBuffers& b = *s->buf;
  b.x_masked = spec.input && clipped && dx_wanted;
  b.w_masked = spec.weight && clipped && dw_wanted;
  // Q(x) and Q(w) are made by the GEMM's own threads, before its product (no region of their own).
  std::optional<RowJob> xjob, wjob;
  if (s->x_quantized)
    xjob = row_job(spec.input, spec.rotation, xv.data(), m, k, shaped(b.xq, m, k),
                   b.x_masked ? &b.x_mask : nullptr);
  if (lsq)  // the weight under its learned scales, before the product (rotated first if asked)
    lsq_weight(spec, rot_w, wv.data(), n, k, scale.value().data(), b);
  else if (s->w_quantized)
    wjob = row_job(spec.weight, rot_w ? spec.rotation : std::nullopt, wv.data(), n, k, shaped(b.wq, n, k),
                   b.w_masked ? &b.w_mask : nullptr);
  Shape ys = xv.shape();
  ys.back() = n;
  Tensor y = Tensor::uninit(ys);
  if (spec.product == Product::kMxNative) {
    // The backward reads Q(x) (for dW) and Q(w) (for dX) unless it quantizes x and w again.
    const bool keep_x = dw_wanted && !requantize, keep_w = dx_wanted && !requantize;
    mx_forward(xjob ? &*xjob : nullptr, keep_x, wjob ? &*wjob : nullptr, keep_w, s->x_data(),
               s->w_data(), y.data(), m, n, k, spec);
  } else {
    autograd::GemmPrepare quantize;
    if (xjob || wjob)
      quantize = [&xjob, &wjob](int t, int T) {
        if (xjob) xjob->run(t, T);
        if (wjob) wjob->run(t, T);
      };
    autograd::gemm(quantize, s->x_data(), false, s->w_data(), true, y.data(), m, n, k);
  }
  if (bias.defined()) y.mat(m, n).rowwise() += bias.value().vec().transpose();
  // The backward reads x only for dw (unquantized, or to quantize it again), w only for dx.
  if (!dw_wanted || (s->x_quantized && !requantize)) s->x = Var();
  if (!dx_wanted || (s->w_quantized && !requantize)) s->w = Var();
  std::vector<Var> inputs{x, w};
  if (bias.defined()) inputs.push_back(bias);
  const size_t bias_at = bias.defined() ? 2 : size_t(-1), scale_at = inputs.size();
  if (lsq) inputs.push_back(scale);
  return autograd::make_node("qgemm", std::move(y), std::move(inputs),
                             [s, bias_at, scale_at](const Tensor& dy, GradSink& g) {
                               if (s->capture) s->capture->grad_output = dy.reshaped({s->m, s->n});
                               if (g.wants(0)) {
                                 Tensor dx = grad_input(*s, dy);
                                 autograd::profile::lap("bwd qgemm dX");
                                 g.add(0, std::move(dx));
                               }
                               const bool ds = s->lsq && g.wants(scale_at);
                               if (g.wants(1) || ds) {
                                 Tensor dscale;
                                 Tensor dw = grad_weight(*s, dy, ds ? &dscale : nullptr);
                                 autograd::profile::lap("bwd qgemm dW");
                                 if (g.wants(1)) g.add(1, std::move(dw));
                                 if (ds) g.add(scale_at, std::move(dscale));
                               }
                               if (bias_at != size_t(-1) && g.wants(bias_at)) {
                                 Tensor db(Shape{s->n});
                                 autograd::sum_rows(dy.data(), s->m, s->n, db.data());
                                 g.add(bias_at, std::move(db));
                               }
                             });
}

}  // namespace

Var qgemm(const Var& x, const Var& w, const Var& bias, const GemmQuantSpec& spec, uint64_t step,
          uint64_t micro, const Var& scale) {
  if (spec.grad_output && spec.grad_rounding == Rounding::kStochastic)
    MXQAT_CHECK(supports_stochastic(*spec.grad_output), "qgemm: stochastic rounding needs an MX float "
                "grad_output codec, got ", spec.grad_output->name());
  return qgemm_op(x, w, bias, spec, nullptr, std::make_shared<GemmBuffers>(), step, micro, scale);
}

Var QuantGemm::linear(const Var& x, const Var& w, const Var& bias) { return linear_scaled(x, w, bias, Var()); }

Var QuantGemm::linear_scaled(const Var& x, const Var& w, const Var& bias, const Var& scale) {
  if (capture_) {
    capture_->input = x.value().reshaped({-1, x.value().cols()});
    capture_->grad_output = Tensor();
  }
  // Reuse the buffers of the previous call unless its graph still holds them.
  if (!buffers_ || buffers_.use_count() > 1) buffers_ = std::make_shared<GemmBuffers>();
  return qgemm_op(x, w, bias, spec_, capture_, buffers_, step_, micro_, scale);
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
