// Convolution family: im2col (with col2im as its backward), conv2d composed from im2col, linear
// and permute (no backward of its own), and 2-D max / average pooling. Not here: the Conv2d
// module (layers/), which routes the GEMM operands through the quant hook.
// Loops run over independent output rows or (image, channel) planes: bits never depend on the
// thread count.
#include <algorithm>

#include "autograd/ops.h"
#include "autograd/ops/row_kernels.h"

namespace mxqat::autograd {

namespace {
struct Geom {  // x [B, C, H, W] -> [B, C, Ho, Wo] with a kh x kw window
  int64_t B, C, H, W, kh, kw, stride, pad, Ho, Wo;
};

Geom geometry(const char* op, const Shape& xs, int64_t kh, int64_t kw, int64_t stride,
              int64_t pad) {
  MXQAT_CHECK(xs.size() == 4, op, ": input must be [B, C, H, W], got ", shape_str(xs));
  MXQAT_CHECK(kh > 0 && kw > 0 && stride > 0 && pad >= 0, op, ": kernel ", kh, "x", kw,
              ", stride ", stride, ", padding ", pad, " are invalid (need kernel, stride > 0)");
  MXQAT_CHECK(xs[2] + 2 * pad >= kh && xs[3] + 2 * pad >= kw, op, ": kernel ", kh, "x", kw,
              " does not fit input ", shape_str(xs), " with padding ", pad);
  return {xs[0], xs[1], xs[2], xs[3], kh, kw, stride, pad, (xs[2] + 2 * pad - kh) / stride + 1,
          (xs[3] + 2 * pad - kw) / stride + 1};
}

// Output columns ow in [ow0, ow1) read inside the image at window column j; the rest is padding.
inline void valid_outputs(const Geom& g, int64_t j, int64_t& ow0, int64_t& ow1) {
  const int64_t lo = g.pad - j, hi = g.W - 1 + g.pad - j;  // need lo <= ow s <= hi
  ow0 = std::min(g.Wo, lo <= 0 ? 0 : (lo + g.stride - 1) / g.stride);
  ow1 = std::max(ow0, hi < 0 ? 0 : std::min(g.Wo, hi / g.stride + 1));
}

// cols[(b, oh, ow), (c, i, j)] = x[b, c, oh s - p + i, ow s - p + j] (0 outside the image).
// Per output row (b, oh), a [Wo, K] block that stays in cache; the inner loop runs along ow.
void im2col_kernel(const float* x, float* cols, const Geom& g) {
  const int64_t K = g.C * g.kh * g.kw;
  detail::for_rows(g.B * g.Ho, g.Wo * K, [&](int64_t bo) {
    const int64_t b = bo / g.Ho, oh = bo % g.Ho;
    float* block = cols + bo * g.Wo * K;
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t i = 0; i < g.kh; ++i) {
        const int64_t ih = oh * g.stride - g.pad + i;
        const bool inside = ih >= 0 && ih < g.H;
        const float* src = x + ((b * g.C + c) * g.H + (inside ? ih : 0)) * g.W;
        for (int64_t j = 0; j < g.kw; ++j) {
          float* dst = block + (c * g.kh + i) * g.kw + j;
          int64_t ow0 = 0, ow1 = 0;
          if (inside) valid_outputs(g, j, ow0, ow1);
          const int64_t shift = j - g.pad;
          for (int64_t ow = 0; ow < ow0; ++ow) dst[ow * K] = 0.f;
          for (int64_t ow = ow0; ow < ow1; ++ow) dst[ow * K] = src[ow * g.stride + shift];
          for (int64_t ow = ow1; ow < g.Wo; ++ow) dst[ow * K] = 0.f;
        }
      }
  });
}

// dx[b, c, ih, iw] += dcols[(b, oh, ow), (c, i, j)] for every patch that read (ih, iw).
// One image per iteration, its gradient kept in cache; each dx element receives its patches in
// a fixed order (oh, then i, j, then ow), whatever the thread count.
void col2im_kernel(const float* dcols, float* dx, const Geom& g) {
  const int64_t K = g.C * g.kh * g.kw;
  detail::for_rows(g.B, g.Ho * g.Wo * K, [&](int64_t b) {
    for (int64_t oh = 0; oh < g.Ho; ++oh) {
      const float* block = dcols + (b * g.Ho + oh) * g.Wo * K;
      for (int64_t c = 0; c < g.C; ++c)
        for (int64_t i = 0; i < g.kh; ++i) {
          const int64_t ih = oh * g.stride - g.pad + i;
          if (ih < 0 || ih >= g.H) continue;
          float* dst = dx + ((b * g.C + c) * g.H + ih) * g.W;
          for (int64_t j = 0; j < g.kw; ++j) {
            const float* src = block + (c * g.kh + i) * g.kw + j;
            int64_t ow0, ow1;
            valid_outputs(g, j, ow0, ow1);
            const int64_t shift = j - g.pad;
            for (int64_t ow = ow0; ow < ow1; ++ow) dst[ow * g.stride + shift] += src[ow * K];
          }
        }
    }
  });
}
}  // namespace

// cols = im2col(x) [B*Ho*Wo, C*kh*kw]       dx = col2im(dcols) (overlapping patches add up)
Var im2col(const Var& x, int kh, int kw, int stride, int padding) {
  const Geom g = geometry("im2col", x.shape(), kh, kw, stride, padding);
  Tensor cols(Shape{g.B * g.Ho * g.Wo, g.C * g.kh * g.kw});
  im2col_kernel(x.value().data(), cols.data(), g);
  return make_node("im2col", std::move(cols), {x}, [g](const Tensor& dy, GradSink& gs) {
    Tensor dx(Shape{g.B, g.C, g.H, g.W});
    col2im_kernel(dy.data(), dx.data(), g);
    gs.add(0, std::move(dx));
  });
}

// y[b, o] = sum_{c,i,j} w[o, c, i, j] x[b, c, s oh - p + i, s ow - p + j] + bias[o]
// Composed as im2col -> linear -> reshape -> permute: the gradient comes from those ops.
Var conv2d(const Var& x, const Var& w, const Var& bias, int stride, int padding) {
  const Shape& ws = w.shape();
  MXQAT_CHECK(ws.size() == 4, "conv2d: weight must be [O, C, kh, kw], got ", shape_str(ws));
  MXQAT_CHECK(x.shape().size() == 4 && x.shape()[1] == ws[1], "conv2d: input ",
              shape_str(x.shape()), " does not match weight ", shape_str(ws),
              " (input must be [B, C, H, W] with C = weight's dim 1)");
  const Geom g = geometry("conv2d", x.shape(), ws[2], ws[3], stride, padding);
  Var cols = im2col(x, static_cast<int>(ws[2]), static_cast<int>(ws[3]), stride, padding);
  Var y = linear(cols, reshape(w, {ws[0], g.C * g.kh * g.kw}), bias);  // [B*Ho*Wo, O]
  return permute(reshape(y, {g.B, g.Ho, g.Wo, ws[0]}), {0, 3, 1, 2});
}

// y[b, c, oh, ow] = max over the window       dx = dy at the window's (first) argmax, 0 elsewhere
Var max_pool2d(const Var& x, int kernel, int stride) {
  const Geom g = geometry("max_pool2d", x.shape(), kernel, kernel, stride, 0);
  Tensor y(Shape{g.B, g.C, g.Ho, g.Wo});
  std::vector<int32_t> arg(static_cast<size_t>(y.size()));  // index within the input plane
  const float* xv = x.value().data();
  detail::for_rows(g.B * g.C, g.H * g.W, [&](int64_t bc) {
    const float* plane = xv + bc * g.H * g.W;
    for (int64_t oh = 0; oh < g.Ho; ++oh)
      for (int64_t ow = 0; ow < g.Wo; ++ow) {
        int64_t best = oh * g.stride * g.W + ow * g.stride;
        for (int64_t i = 0; i < g.kh; ++i)
          for (int64_t j = 0; j < g.kw; ++j) {
            const int64_t at = (oh * g.stride + i) * g.W + ow * g.stride + j;
            if (plane[at] > plane[best]) best = at;
          }
        const int64_t o = (bc * g.Ho + oh) * g.Wo + ow;
        y[o] = plane[best];
        arg[static_cast<size_t>(o)] = static_cast<int32_t>(best);
      }
  });
  return make_node("max_pool2d", std::move(y), {x},
                   [g, arg = std::move(arg)](const Tensor& dy, GradSink& gs) {
                     Tensor dx(Shape{g.B, g.C, g.H, g.W});
                     const int64_t per = g.Ho * g.Wo;
                     detail::for_rows(g.B * g.C, per, [&](int64_t bc) {
                       float* plane = dx.data() + bc * g.H * g.W;
                       for (int64_t o = bc * per; o < (bc + 1) * per; ++o)
                         plane[arg[static_cast<size_t>(o)]] += dy[o];
                     });
                     gs.add(0, std::move(dx));
                   });
}

// y[b, c, oh, ow] = mean over the window       dx = dy / k^2 added to every window element
Var avg_pool2d(const Var& x, int kernel, int stride) {
  const Geom g = geometry("avg_pool2d", x.shape(), kernel, kernel, stride, 0);
  const float inv = 1.f / static_cast<float>(g.kh * g.kw);
  Tensor y(Shape{g.B, g.C, g.Ho, g.Wo});
  const float* xv = x.value().data();
  detail::for_rows(g.B * g.C, g.H * g.W, [&](int64_t bc) {
    const float* plane = xv + bc * g.H * g.W;
    for (int64_t oh = 0; oh < g.Ho; ++oh)
      for (int64_t ow = 0; ow < g.Wo; ++ow) {
        float s = 0.f;
        for (int64_t i = 0; i < g.kh; ++i)
          for (int64_t j = 0; j < g.kw; ++j) s += plane[(oh * g.stride + i) * g.W + ow * g.stride + j];
        y[(bc * g.Ho + oh) * g.Wo + ow] = s * inv;
      }
  });
  return make_node("avg_pool2d", std::move(y), {x}, [g, inv](const Tensor& dy, GradSink& gs) {
    Tensor dx(Shape{g.B, g.C, g.H, g.W});
    detail::for_rows(g.B * g.C, g.H * g.W, [&](int64_t bc) {
      float* plane = dx.data() + bc * g.H * g.W;
      for (int64_t oh = 0; oh < g.Ho; ++oh)
        for (int64_t ow = 0; ow < g.Wo; ++ow) {
          const float d = dy[(bc * g.Ho + oh) * g.Wo + ow] * inv;
          for (int64_t i = 0; i < g.kh; ++i)
            for (int64_t j = 0; j < g.kw; ++j) plane[(oh * g.stride + i) * g.W + ow * g.stride + j] += d;
        }
    });
    gs.add(0, std::move(dx));
  });
}

}  // namespace mxqat::autograd
