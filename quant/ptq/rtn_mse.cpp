// Round-to-nearest and the MSE scale search (ptq.h), plus the Hessian-weighted error. The MSE
// search reuses Codec::encode_with_scales / block_quantizer, so its candidates are quantized by
// exactly the arithmetic of the exported codes.
#include <algorithm>
#include <cmath>

#include "autograd/error.h"
#include "quant/ptq/internal.h"

namespace mxqat::quant::ptq {

namespace detail {

void check_weight(const autograd::Tensor& w, const std::string& method, const std::string& name) {
  MXQAT_CHECK(w.ndim() == 2 && w.dim(0) >= 1 && w.dim(1) >= 1, method, " \"", name, "\": weight has shape ",
              autograd::shape_str(w.shape()), "; expected [N, K] (reshape a conv weight [O, C, kh, kw] "
              "to [O, C*kh*kw])");
  for (int64_t i = 0; i < w.size(); ++i)
    MXQAT_CHECK(std::isfinite(w[i]), method, " \"", name, "\": weight element (", i / w.dim(1), ", ",
                i % w.dim(1), ") is ", w[i], "; quantize a finite checkpoint");
}

PtqResult finish(const autograd::Tensor& w, const Codec& codec, EncodedTensor e) {
  PtqResult r;
  r.weight = autograd::Tensor(w.shape());
  codec.decode(e, r.weight.data());
  r.encoded = std::move(e);
  for (int64_t i = 0; i < w.size(); ++i) {
    const double d = static_cast<double>(w[i]) - static_cast<double>(r.weight[i]);
    r.weight_sq_error += d * d;
  }
  return r;
}

}  // namespace detail

namespace {

// Squared error of the n elements x under block quantizer q.
double block_sse(const BlockQuantizer& q, const float* x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(x[i]) - static_cast<double>(q.dequant(x[i]));
    s += d * d;
  }
  return s;
}

// MX / NVFP4: try the scale codes c0 - r .. c0 + r (nearest first, lower before higher) in
// [0, max_code]; keep the best strictly better one.
void search_scale_codes(const Codec& c, const float* x, int64_t N, int64_t K, int radius,
                        uint32_t max_code, EncodedTensor& s) {
  const int64_t G = c.block_size(K), nb = c.num_blocks(K);
  for (int64_t r = 0; r < N; ++r)
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t lo = b * G, n = std::min(G, K - lo);
      const float* xb = x + r * K + lo;
      uint8_t& code = s.scale_codes[static_cast<size_t>(r * nb + b)];
      const int c0 = code;
      double best = block_sse(c.block_quantizer(s, r, b), xb, n);
      int best_code = c0;
      for (int d = 1; d <= radius; ++d)
        for (int cand : {c0 - d, c0 + d}) {
          if (cand < 0 || cand > static_cast<int>(max_code)) continue;
          code = static_cast<uint8_t>(cand);
          const double e = block_sse(c.block_quantizer(s, r, b), xb, n);
          if (e < best) best = e, best_code = cand;
        }
      code = static_cast<uint8_t>(best_code);
    }
}

// INT: per group, the clipped ranges [lo·ratio, hi·ratio]; keep the best strictly better one.
void search_int_ranges(const Codec& c, const float* x, int64_t N, int64_t K, const MseOptions& opt,
                       EncodedTensor& s) {
  const int64_t G = c.block_size(K), nb = c.num_blocks(K);
  const bool asym = c.block_format().scheme == BlockScheme::kIntAsym;
  for (int64_t r = 0; r < N; ++r)
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t lo = b * G, n = std::min(G, K - lo);
      const float* xb = x + r * K + lo;
      const size_t si = static_cast<size_t>(r * nb + b);
      const auto [mn, mx] = std::minmax_element(xb, xb + n);
      IntScale best_s{s.scales[si], asym ? s.zero_points[si] : uint8_t{0}};
      double best = block_sse(c.int_quantizer(best_s), xb, n);
      for (int i = 1; i <= opt.int_steps; ++i) {
        const double ratio = 1.0 - i * (1.0 - opt.int_min_ratio) / opt.int_steps;
        const IntScale cand = c.int_scale(static_cast<float>(*mn * ratio), static_cast<float>(*mx * ratio));
        const double e = block_sse(c.int_quantizer(cand), xb, n);
        if (e < best) best = e, best_s = cand;
      }
      s.scales[si] = best_s.scale;
      if (asym) s.zero_points[si] = best_s.zero_point;
    }
}

}  // namespace

PtqResult rtn(const autograd::Tensor& w, const Codec& codec, const std::string& name) {
  detail::check_weight(w, "rtn", name);
  return detail::finish(w, codec, codec.encode(w.data(), w.dim(0), w.dim(1)));
}

PtqResult mse(const autograd::Tensor& w, const Codec& codec, const MseOptions& opt, const std::string& name) {
  detail::check_weight(w, "mse", name);
  MXQAT_CHECK(opt.mx_radius >= 0 && opt.nvfp4_radius >= 0 && opt.int_steps >= 0 &&
                  opt.int_min_ratio > 0.0 && opt.int_min_ratio <= 1.0,
              "mse \"", name, "\": options mx_radius ", opt.mx_radius, ", nvfp4_radius ", opt.nvfp4_radius,
              ", int_steps ", opt.int_steps, ", int_min_ratio ", opt.int_min_ratio,
              " are invalid; radii and steps must be >= 0 and the ratio in (0, 1]");
  const int64_t N = w.dim(0), K = w.dim(1);
  EncodedTensor s = codec.encode(w.data(), N, K);  // the codec's own scales: the first candidates
  switch (codec.block_format().scheme) {
    case BlockScheme::kMx: search_scale_codes(codec, w.data(), N, K, opt.mx_radius, 254, s); break;
    case BlockScheme::kNvfp4: search_scale_codes(codec, w.data(), N, K, opt.nvfp4_radius, 0x7E, s); break;
    case BlockScheme::kIntSym:
    case BlockScheme::kIntAsym: search_int_ranges(codec, w.data(), N, K, opt, s); break;
  }
  return detail::finish(w, codec, codec.encode_with_scales(w.data(), N, K, s));
}

double hessian_error(const autograd::Tensor& w, const autograd::Tensor& w_hat, const calib::Hessian& h) {
  MXQAT_CHECK(w.ndim() == 2 && w.shape() == w_hat.shape() && w.dim(1) == h.dim, "hessian_error: weights ",
              autograd::shape_str(w.shape()), " and ", autograd::shape_str(w_hat.shape()),
              " must both be [N, K] with K = the Hessian's ", h.dim);
  const int64_t N = w.dim(0), K = w.dim(1);
  std::vector<double> d(static_cast<size_t>(K));
  double total = 0;
  for (int64_t r = 0; r < N; ++r) {
    for (int64_t j = 0; j < K; ++j)
      d[static_cast<size_t>(j)] = static_cast<double>(w[r * K + j]) - static_cast<double>(w_hat[r * K + j]);
    for (int64_t i = 0; i < K; ++i) {
      double hi = 0;
      for (int64_t j = 0; j < K; ++j) hi += h.at(i, j) * d[static_cast<size_t>(j)];
      total += d[static_cast<size_t>(i)] * hi;
    }
  }
  return total;
}

}  // namespace mxqat::quant::ptq
