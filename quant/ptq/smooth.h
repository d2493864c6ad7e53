// Activation smoothing before quantization: SmoothQuant (Xiao et al. 2023) and AWQ (Lin et al.
// 2024). Both pick a per-input-channel scale s > 0 for a group of GEMMs that share one input X
// [M, K] (e.g. q, k, v after the attention norm) and rewrite X W^T = (X / s) (W s)^T: the caller
// folds 1/s into whatever produced X (a norm gain, the rows of a preceding projection) and s into
// the columns of every weight of the group, so the model computes the same function in exact
// arithmetic and inference costs the same. What changes is what gets quantized: X / s has its
// outlier channels flattened, W s carries them instead. Never sees a layer (STYLE.md §1).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/tensor.h"
#include "quant/codec/codec.h"

namespace mxqat::quant::ptq {

// Per-channel statistics of a GEMM input over calibration batches (each [M, K], rows = tokens),
// summed in double in row order (so they do not depend on the thread count).
class ChannelStats {
 public:
  explicit ChannelStats(int64_t k);
  void add(const autograd::Tensor& x, const std::string& what = "calibration input");
  int64_t channels() const { return k_; }
  int64_t rows() const { return rows_; }
  std::vector<double> absmax() const { return absmax_; }  // max |x_j|
  std::vector<double> absmean() const;                     // mean |x_j|

 private:
  int64_t k_, rows_ = 0;
  std::vector<double> absmax_, abssum_;
};

// max_n |W_nj| over every weight of a group (each [N_i, K]): [K].
std::vector<double> column_absmax(const std::vector<const autograd::Tensor*>& weights);

// SmoothQuant: s_j = max|X_j|^alpha / max|W_j|^(1 - alpha) (w_absmax from column_absmax), alpha in
// [0, 1] (the migration strength; 0.5 in the paper). A channel with no activation or no weight
// (either max 0) keeps s_j = 1; s is clamped to [1e-5, 1e5].
std::vector<float> smoothquant_scales(const std::vector<double>& x_absmax, const std::vector<double>& w_absmax,
                                      double alpha);

// One GEMM of an AWQ group: its weight [N, K] and the codecs its operands pass through (null:
// that operand stays full precision, e.g. input null for weight-only quantization).
struct AwqGemm {
  const autograd::Tensor* weight = nullptr;
  const Codec* weight_codec = nullptr;
  const Codec* input_codec = nullptr;
};

struct AwqOptions {
  int grid = 20;  // alpha = 0, 1/grid, ..., 1
};

struct AwqResult {
  std::vector<float> scales;  // [K]
  double alpha = 0;           // the best grid point
  double error = 0;           // its output error (below)
  double error_identity = 0;  // the error at alpha = 0 (s = 1: round-to-nearest of the group)
};

// AWQ's scale search: for each alpha on the grid, s_j = mean|X_j|^alpha normalised by
// sqrt(max s * min s) (as the reference implementation), and the group's quantized output error
//   E(s) = sum_i || Q_in(X / s) Q_w(W_i s)^T - X W_i^T ||^2
// on the calibration rows x [M, K]; returns the s of least E (alpha = 0, s = 1, first: a later
// alpha replaces it only if strictly better, so E <= the unsmoothed error). Deterministic:
// autograd::gemm and fixed-order double sums.
AwqResult awq_search(const autograd::Tensor& x, const std::vector<double>& x_absmean,
                     const std::vector<AwqGemm>& gemms, const AwqOptions& opt = {},
                     const std::string& name = "group");

// SmoothQuant with its migration strength searched per group, as Intel Neural Compressor's
// alpha "auto": s(alpha) = smoothquant_scales(x_absmax, w_absmax, alpha) for alpha = 0, 1/grid,
// ..., 1, each scored by awq_search's output error E(s) on the calibration rows x [M, K]. No
// smoothing (s = 1) is the first candidate and a grid point replaces it only if strictly better,
// so E <= the unsmoothed error; the result's alpha is NaN when no grid point beat it. x_absmax and
// w_absmax are per input channel of the group ([K]; equal for channels that must share a scale).
AwqResult smoothquant_search(const autograd::Tensor& x, const std::vector<double>& x_absmax,
                             const std::vector<double>& w_absmax, const std::vector<AwqGemm>& gemms,
                             int grid, const std::string& name = "group");

// The output error E(s) of awq_search for one scale vector (s = all ones: no smoothing).
double smoothed_output_error(const autograd::Tensor& x, const std::vector<float>& s,
                             const std::vector<AwqGemm>& gemms);

// w [N, K] -> w with column j multiplied by s_j (in place).
void scale_columns(autograd::Tensor& w, const std::vector<float>& s);

}  // namespace mxqat::quant::ptq
