// GPTQ (ptq.h) after the reference implementation of Frantar et al. 2022 (gptq.py fasterquant):
// dead inputs kept (or zeroed), H damped, U = upper Cholesky factor of H⁻¹, columns quantized in order
// with error feedback w_j -= e_i U_ij (e_i = (w_i - q_i) / U_ii), updates beyond the current lazy
// batch applied at its end. Every row of W is independent given U, so row tiles run in parallel
// (static schedule); each weight entry receives its updates from columns in ascending order
// through one fused multiply-add, whatever the batch width or thread count, so the result is
// bitwise the same for all of them. Eigen (double) is used here only for the Cholesky factors.
#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <exception>

#include "autograd/error.h"
#include "quant/ptq/internal.h"

namespace mxqat::quant::ptq {
namespace {

constexpr int64_t kTileRows = 8;  // rows sharing one pass over U (cache reuse)

struct InverseFactor {
  std::vector<double> u;  // [K, K] row-major, upper triangle of chol(H⁻¹) (H⁻¹ = Uᵀ U)
  std::vector<char> dead;  // [K] H_ii == 0
  int64_t n_dead = 0;
  double damp = 0;
};

InverseFactor inverse_factor(const calib::Hessian& hs, double percdamp, const std::string& name) {
  const int64_t K = hs.dim;
  InverseFactor f;
  f.dead.assign(static_cast<size_t>(K), 0);
  Eigen::MatrixXd H(K, K);
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = 0; j < K; ++j) H(i, j) = hs.at(i, j);
  for (int64_t i = 0; i < K; ++i)
    if (H(i, i) == 0.0) {  // an input that never fired: the reference sets H_ii = 1, W[:, i] = 0
      H(i, i) = 1.0;
      f.dead[static_cast<size_t>(i)] = 1;
      ++f.n_dead;
    }
  f.damp = percdamp * H.diagonal().mean();
  H.diagonal().array() += f.damp;
  Eigen::LLT<Eigen::MatrixXd> llt(H);
  MXQAT_CHECK(llt.info() == Eigen::Success, "gptq \"", name, "\": the input Hessian [", K, " x ", K,
              "] is not positive definite after damping by ", f.damp, " (percdamp ", percdamp,
              "); raise percdamp (e.g. 0.1) or calibrate on more samples");
  const Eigen::MatrixXd hinv = llt.solve(Eigen::MatrixXd::Identity(K, K));
  Eigen::LLT<Eigen::MatrixXd> llt_inv(hinv);
  MXQAT_CHECK(llt_inv.info() == Eigen::Success, "gptq \"", name, "\": the inverse of the damped Hessian [",
              K, " x ", K, "] is not positive definite (ill-conditioned, damping ", f.damp,
              "); raise percdamp (e.g. 0.1) or calibrate on more samples");
  const Eigen::MatrixXd U = llt_inv.matrixU();
  f.u.assign(static_cast<size_t>(K * K), 0.0);
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = i; j < K; ++j) f.u[static_cast<size_t>(i * K + j)] = U(i, j);
  return f;
}

// Lazy-batch starts (and K at the end): every codec block starts a batch or lies inside one, so
// a block's columns all carry every earlier column's update when its scale is fixed.
std::vector<int64_t> batch_starts(int64_t K, int64_t G, int64_t B) {
  std::vector<int64_t> st;
  if (G <= B) {
    for (int64_t j = 0; j < K; j += (B / G) * G) st.push_back(j);
  } else {
    for (int64_t c = 0; c < K; c += G)
      for (int64_t j = c; j < std::min(c + G, K); j += B) st.push_back(j);
  }
  st.push_back(K);
  return st;
}

// w[j] -= e u[j], one rounding per entry.
inline void sub_scaled(double* w, const double* u, double e, int64_t n) {
  for (int64_t j = 0; j < n; ++j) w[j] = std::fma(-e, u[j], w[j]);
}

struct Work {
  const Codec& codec;  // quantizes (block_quantizer on `scales`)
  const Codec& fixed;  // chooses block scales (NVFP4: with the global amax fixed)
  const InverseFactor& f;
  const GptqOptions& opt;
  int64_t N, K, G;
  const std::vector<int64_t>& starts;
  std::vector<double>& w;     // [N, K] working weights
  std::vector<float>& xin;    // [N, K] the values each element was quantized from
  std::vector<float>& q;      // [N, K] quantized values
  std::vector<double>& loss;  // [N]
  EncodedTensor& scales;
};

// Fixes block b's scale for each row of [r0, r1) from the current weights.
void fix_block_scales(Work& k, int64_t r0, int64_t r1, int64_t b, std::vector<BlockQuantizer>& quant) {
  const int64_t lo = b * k.G, n = std::min(k.G, k.K - lo), nb = k.codec.num_blocks(k.K);
  std::vector<float> tmp(static_cast<size_t>(n));
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t j = 0; j < n; ++j) tmp[static_cast<size_t>(j)] = static_cast<float>(k.w[static_cast<size_t>(r * k.K + lo + j)]);
    const EncodedTensor e = k.opt.mse_scales
                                ? mse(autograd::Tensor({1, n}, tmp), k.fixed, k.opt.mse).encoded
                                : k.fixed.encode(tmp.data(), 1, n);
    const size_t si = static_cast<size_t>(r * nb + b);
    if (!k.scales.scale_codes.empty()) k.scales.scale_codes[si] = e.scale_codes[0];
    if (!k.scales.scales.empty()) k.scales.scales[si] = e.scales[0];
    if (!k.scales.zero_points.empty()) k.scales.zero_points[si] = e.zero_points[0];
    quant[static_cast<size_t>(r - r0)] = k.codec.block_quantizer(k.scales, r, b);
  }
}

void gptq_rows(Work& k, int64_t r0, int64_t r1) {
  const int64_t K = k.K, T = r1 - r0;
  const double* U = k.f.u.data();
  std::vector<BlockQuantizer> quant(static_cast<size_t>(T));
  int64_t bmax = 0;
  for (size_t s = 0; s + 1 < k.starts.size(); ++s) bmax = std::max(bmax, k.starts[s + 1] - k.starts[s]);
  std::vector<double> err(static_cast<size_t>(T * bmax));
  for (size_t s = 0; s + 1 < k.starts.size(); ++s) {
    const int64_t i1 = k.starts[s], i2 = k.starts[s + 1], bw = i2 - i1;
    for (int64_t i = i1; i < i2; ++i) {
      if (i % k.G == 0) fix_block_scales(k, r0, r1, i / k.G, quant);
      const double d = U[i * K + i];
      for (int64_t t = 0; t < T; ++t) {
        const size_t at = static_cast<size_t>((r0 + t) * K + i);
        double* wr = k.w.data() + (r0 + t) * K;
        const float wv = static_cast<float>(wr[i]);
        const float qv = quant[static_cast<size_t>(t)].dequant(wv);
        const double e = (static_cast<double>(wv) - static_cast<double>(qv)) / d;
        k.xin[at] = wv;
        k.q[at] = qv;
        k.loss[static_cast<size_t>(r0 + t)] += 0.5 * e * e;
        err[static_cast<size_t>(t * bmax + (i - i1))] = e;
        sub_scaled(wr + i + 1, U + i * K + i + 1, e, i2 - i - 1);
      }
    }
    for (int64_t t = 0; t < T; ++t)  // the lazy update of the columns after the batch
      for (int64_t c = 0; c < bw; ++c)
        sub_scaled(k.w.data() + (r0 + t) * K + i2, U + (i1 + c) * K + i2,
                   err[static_cast<size_t>(t * bmax + c)], K - i2);
  }
}

}  // namespace

GptqResult gptq(const autograd::Tensor& w, const calib::Hessian& h, const Codec& codec,
                const GptqOptions& opt, const std::string& name) {
  detail::check_weight(w, "gptq", name);
  const int64_t N = w.dim(0), K = w.dim(1);
  MXQAT_CHECK(h.dim == K && h.h.size() == static_cast<size_t>(K * K), "gptq \"", name, "\": weight ",
              autograd::shape_str(w.shape()), " has K = ", K, " inputs but the Hessian is ", h.dim, " x ",
              h.dim, "; accumulate the Hessian from this layer's inputs");
  for (size_t i = 0; i < h.h.size(); ++i)
    MXQAT_CHECK(std::isfinite(h.h[i]), "gptq \"", name, "\": Hessian entry (", i / K, ", ", i % K,
                ") is ", h.h[i], "; calibration inputs must be finite");
  MXQAT_CHECK(std::isfinite(opt.percdamp) && opt.percdamp >= 0.0 && opt.batch >= 1, "gptq \"", name,
              "\": percdamp ", opt.percdamp, " and batch ", opt.batch, " must be >= 0 and >= 1");
  const InverseFactor f = inverse_factor(h, opt.percdamp, name);

  Codec fixed = codec;
  if (codec.block_format().scheme == BlockScheme::kNvfp4) {  // one global scale for all blocks
    CodecOptions o = codec.options();
    o.global_amax = codec.nvfp4_global(w.data(), N, K).amax;
    fixed = Codec::make(codec.name(), o);
  }
  EncodedTensor scales = fixed.encode(w.data(), N, K);  // layout and globals; block scales redone
  std::vector<double> wd(w.data(), w.data() + w.size());
  for (int64_t r = 0; r < N; ++r)
    for (int64_t j = 0; j < K; ++j)
      if (opt.zero_dead_inputs && f.dead[static_cast<size_t>(j)]) wd[static_cast<size_t>(r * K + j)] = 0.0;
  std::vector<float> xin(static_cast<size_t>(N * K)), q(static_cast<size_t>(N * K));
  std::vector<double> loss(static_cast<size_t>(N), 0.0);
  const std::vector<int64_t> starts = batch_starts(K, codec.block_size(K), opt.batch);
  Work work{codec, fixed, f, opt, N, K, codec.block_size(K), starts, wd, xin, q, loss, scales};

  std::exception_ptr failure;
  const int64_t tiles = (N + kTileRows - 1) / kTileRows;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < tiles; ++t) {
    try {
      gptq_rows(work, t * kTileRows, std::min(N, (t + 1) * kTileRows));
    } catch (...) {
#pragma omp critical(mxqat_gptq_failure)
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);
  for (int64_t i = 0; i < N * K; ++i)
    MXQAT_CHECK(std::isfinite(q[static_cast<size_t>(i)]), "gptq \"", name, "\": weight element (", i / K,
                ", ", i % K, ") diverged to ", xin[static_cast<size_t>(i)],
                "; raise percdamp (e.g. 0.1) or calibrate on more samples");

  GptqResult r;
  r.encoded = codec.encode_with_scales(xin.data(), N, K, scales);
  r.weight = autograd::Tensor(w.shape(), std::vector<float>(q.begin(), q.end()));
  for (int64_t i = 0; i < w.size(); ++i) {
    const double d = static_cast<double>(w[i]) - static_cast<double>(r.weight[i]);
    r.weight_sq_error += d * d;
  }
  for (double l : loss) r.loss += l;
  r.dead_inputs = f.n_dead;
  r.damp = f.damp;
  return r;
}

}  // namespace mxqat::quant::ptq
