// SmoothQuant scales and AWQ's grid search (smooth.h).
#include "quant/ptq/smooth.h"

#include <algorithm>
#include <cmath>

#include "autograd/error.h"
#include "autograd/kernels.h"

namespace mxqat::quant::ptq {

using autograd::Tensor;

namespace {
constexpr double kMinScale = 1e-5, kMaxScale = 1e5;

void check_group(const Tensor& x, const std::vector<AwqGemm>& gemms, const std::string& name) {
  MXQAT_CHECK(x.ndim() == 2 && x.dim(0) >= 1 && x.dim(1) >= 1, "awq \"", name, "\": calibration input has shape ",
              autograd::shape_str(x.shape()), "; expected [tokens, K] with at least one token");
  MXQAT_CHECK(!gemms.empty(), "awq \"", name, "\": the group has no GEMM to smooth");
  for (const AwqGemm& g : gemms) {
    MXQAT_CHECK(g.weight, "awq \"", name, "\": a GEMM of the group has no weight");
    MXQAT_CHECK(g.weight->ndim() == 2 && g.weight->dim(1) == x.dim(1), "awq \"", name, "\": weight ",
                autograd::shape_str(g.weight->shape()), " does not take the group's ", x.dim(1),
                " input channels; the GEMMs of a group must share their input");
  }
  for (int64_t i = 0; i < x.size(); ++i)
    MXQAT_CHECK(std::isfinite(x[i]), "awq \"", name, "\": calibration input element (", i / x.dim(1), ", ",
                i % x.dim(1), ") is ", x[i], "; calibrate a model with finite activations");
}

// Q(a) of a [R, K] tensor (or a copy when codec is null).
Tensor quantized(const Tensor& a, const Codec* codec) {
  if (!codec) return a;
  Tensor q(a.shape());
  codec->fake_quant(a.data(), a.dim(0), a.dim(1), q.data());
  return q;
}

double sq_diff(const Tensor& a, const Tensor& b) {
  double s = 0;
  for (int64_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    s += d * d;
  }
  return s;
}

Tensor product(const Tensor& x, const Tensor& w) {  // x [M, K] w [N, K]^T -> [M, N]
  Tensor y = Tensor::uninit({x.dim(0), w.dim(0)});
  autograd::gemm(x.data(), false, w.data(), true, y.data(), x.dim(0), w.dim(0), x.dim(1));
  return y;
}

double error_with(const Tensor& x, const std::vector<float>& s, const std::vector<AwqGemm>& gemms,
                  const std::vector<Tensor>& exact) {
  const int64_t M = x.dim(0), K = x.dim(1);
  Tensor xs({M, K});
  for (int64_t r = 0; r < M; ++r)
    for (int64_t j = 0; j < K; ++j) xs[r * K + j] = x[r * K + j] / s[static_cast<size_t>(j)];
  double e = 0;
  Tensor xq;
  for (size_t i = 0; i < gemms.size(); ++i) {
    const Codec* in = gemms[i].input_codec;
    const Codec* prev = i ? gemms[i - 1].input_codec : nullptr;
    const bool same = i && (in == prev || (in && prev && in->name() == prev->name() &&
                                           in->options().scale_rule == prev->options().scale_rule &&
                                           in->options().group_size == prev->options().group_size &&
                                           in->options().global_amax == prev->options().global_amax));
    if (!same) xq = quantized(xs, in);  // q, k, v (gate, up) share their input and its codec
    Tensor ws = *gemms[i].weight;
    scale_columns(ws, s);
    e += sq_diff(product(xq, quantized(ws, gemms[i].weight_codec)), exact[i]);
  }
  return e;
}

std::vector<Tensor> exact_outputs(const Tensor& x, const std::vector<AwqGemm>& gemms) {
  std::vector<Tensor> y;
  for (const AwqGemm& g : gemms) y.push_back(product(x, *g.weight));
  return y;
}
}  // namespace

ChannelStats::ChannelStats(int64_t k) : k_(k), absmax_(static_cast<size_t>(k), 0.0), abssum_(static_cast<size_t>(k), 0.0) {
  MXQAT_CHECK(k >= 1, "channel statistics need at least one channel, got ", k);
}

void ChannelStats::add(const Tensor& x, const std::string& what) {
  MXQAT_CHECK(x.cols() == k_, what, " has ", x.cols(), " channels (shape ", autograd::shape_str(x.shape()),
              "), the statistics ", k_);
  const int64_t M = x.rows();
  for (int64_t r = 0; r < M; ++r)
    for (int64_t j = 0; j < k_; ++j) {
      const float v = x[r * k_ + j];
      MXQAT_CHECK(std::isfinite(v), what, " element (", r, ", ", j, ") is ", v,
                  "; smoothing needs finite calibration activations");
      const double a = std::fabs(static_cast<double>(v));
      absmax_[static_cast<size_t>(j)] = std::max(absmax_[static_cast<size_t>(j)], a);
      abssum_[static_cast<size_t>(j)] += a;
    }
  rows_ += M;
}

std::vector<double> ChannelStats::absmean() const {
  std::vector<double> m(abssum_);
  for (double& v : m) v = rows_ ? v / static_cast<double>(rows_) : 0.0;
  return m;
}

std::vector<double> column_absmax(const std::vector<const Tensor*>& weights) {
  MXQAT_CHECK(!weights.empty(), "smoothing: the group has no weight");
  const int64_t K = weights[0]->cols();
  std::vector<double> wmax(static_cast<size_t>(K), 0.0);
  for (const Tensor* w : weights) {
    MXQAT_CHECK(w->ndim() == 2 && w->dim(1) == K, "smoothing: weight ", autograd::shape_str(w->shape()),
                " does not take the group's ", K, " input channels");
    for (int64_t r = 0; r < w->dim(0); ++r)
      for (int64_t j = 0; j < K; ++j)
        wmax[static_cast<size_t>(j)] = std::max(wmax[static_cast<size_t>(j)], std::fabs(static_cast<double>((*w)[r * K + j])));
  }
  return wmax;
}

std::vector<float> smoothquant_scales(const std::vector<double>& x_absmax, const std::vector<double>& w_absmax,
                                      double alpha) {
  MXQAT_CHECK(std::isfinite(alpha) && alpha >= 0.0 && alpha <= 1.0, "smoothquant: alpha ", alpha,
              " must lie in [0, 1] (0: no smoothing, 1: all of the activation range moved to the weights)");
  MXQAT_CHECK(x_absmax.size() == w_absmax.size(), "smoothquant: ", x_absmax.size(), " activation and ",
              w_absmax.size(), " weight channel maxima; they must describe the same channels");
  const size_t K = x_absmax.size();
  std::vector<float> s(K, 1.0f);
  for (size_t j = 0; j < K; ++j) {
    const double a = x_absmax[j], b = w_absmax[j];
    if (!(a > 0.0) || !(b > 0.0) || !std::isfinite(a) || !std::isfinite(b)) continue;
    s[j] = static_cast<float>(std::clamp(std::pow(a, alpha) / std::pow(b, 1.0 - alpha), kMinScale, kMaxScale));
  }
  return s;
}

double smoothed_output_error(const Tensor& x, const std::vector<float>& s, const std::vector<AwqGemm>& gemms) {
  check_group(x, gemms, "group");
  MXQAT_CHECK(static_cast<int64_t>(s.size()) == x.dim(1), "awq: ", s.size(), " scales for ", x.dim(1), " channels");
  return error_with(x, s, gemms, exact_outputs(x, gemms));
}

AwqResult awq_search(const Tensor& x, const std::vector<double>& x_absmean, const std::vector<AwqGemm>& gemms,
                     const AwqOptions& opt, const std::string& name) {
  check_group(x, gemms, name);
  const int64_t K = x.dim(1);
  MXQAT_CHECK(static_cast<int64_t>(x_absmean.size()) == K, "awq \"", name, "\": ", x_absmean.size(),
              " channel means for ", K, " input channels");
  MXQAT_CHECK(opt.grid >= 1 && opt.grid <= 1000, "awq \"", name, "\": grid ", opt.grid,
              " must lie in [1, 1000] (alpha = 0, 1/grid, ..., 1)");
  const std::vector<Tensor> exact = exact_outputs(x, gemms);
  AwqResult best;
  best.scales.assign(static_cast<size_t>(K), 1.0f);
  best.error = best.error_identity = error_with(x, best.scales, gemms, exact);
  for (int g = 1; g <= opt.grid; ++g) {
    const double alpha = static_cast<double>(g) / opt.grid;
    std::vector<double> sd(static_cast<size_t>(K));
    double lo = INFINITY, hi = 0;
    for (int64_t j = 0; j < K; ++j) {
      const double m = x_absmean[static_cast<size_t>(j)];
      sd[static_cast<size_t>(j)] = std::clamp(std::pow(std::max(m, 1e-4), alpha), kMinScale, kMaxScale);
      lo = std::min(lo, sd[static_cast<size_t>(j)]);
      hi = std::max(hi, sd[static_cast<size_t>(j)]);
    }
    const double norm = std::sqrt(lo * hi);
    std::vector<float> s(static_cast<size_t>(K));
    for (int64_t j = 0; j < K; ++j)
      s[static_cast<size_t>(j)] = static_cast<float>(std::clamp(sd[static_cast<size_t>(j)] / norm, kMinScale, kMaxScale));
    const double e = error_with(x, s, gemms, exact);
    if (e < best.error) best.error = e, best.alpha = alpha, best.scales = std::move(s);
  }
  return best;
}

AwqResult smoothquant_search(const Tensor& x, const std::vector<double>& x_absmax, const std::vector<double>& w_absmax,
                             const std::vector<AwqGemm>& gemms, int grid, const std::string& name) {
  check_group(x, gemms, name);
  const int64_t K = x.dim(1);
  MXQAT_CHECK(static_cast<int64_t>(x_absmax.size()) == K && static_cast<int64_t>(w_absmax.size()) == K,
              "smoothquant \"", name, "\": ", x_absmax.size(), " activation and ", w_absmax.size(),
              " weight channel maxima for ", K, " input channels");
  MXQAT_CHECK(grid >= 1 && grid <= 1000, "smoothquant \"", name, "\": grid ", grid,
              " must lie in [1, 1000] (alpha = 0, 1/grid, ..., 1)");
  const std::vector<Tensor> exact = exact_outputs(x, gemms);
  AwqResult best;
  best.scales.assign(static_cast<size_t>(K), 1.0f);
  best.alpha = NAN;
  best.error = best.error_identity = error_with(x, best.scales, gemms, exact);
  for (int g = 0; g <= grid; ++g) {
    const double alpha = static_cast<double>(g) / grid;
    std::vector<float> s = smoothquant_scales(x_absmax, w_absmax, alpha);
    const double e = error_with(x, s, gemms, exact);
    if (e < best.error) best.error = e, best.alpha = alpha, best.scales = std::move(s);
  }
  return best;
}

void scale_columns(Tensor& w, const std::vector<float>& s) {
  MXQAT_CHECK(w.ndim() == 2 && w.dim(1) == static_cast<int64_t>(s.size()), "smoothing: weight ",
              autograd::shape_str(w.shape()), " does not take ", s.size(), " scaled channels");
  const int64_t N = w.dim(0), K = w.dim(1);
  for (int64_t r = 0; r < N; ++r)
    for (int64_t j = 0; j < K; ++j) w[r * K + j] *= s[static_cast<size_t>(j)];
}

}  // namespace mxqat::quant::ptq
