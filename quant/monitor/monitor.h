// Quantization telemetry: for one tensor and its codec, how well fake-quant represents it (SQNR,
// saturation, flush to zero, all-zero blocks, E8M0 scale exponents, code flips since the last
// report) and the anomalies worth a warning (NaN/Inf, SQNR below a threshold, all-zero blocks).
// Plain tensors in, stats out; never logs (the trainer logs the table and writes the fields).
// Deterministic for any thread count.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.h"
#include "quant/codec/codec.h"

namespace mxqat::quant {

struct TensorStats {
  std::string name;   // e.g. "blocks.0.mlp.fc1.weight", "fc1.input", "fc1.grad_output"
  std::string codec;
  int64_t numel = 0, blocks = 0;
  int64_t nan = 0, inf = 0;      // non-finite input elements
  double sqnr_db = 0;            // 10 log10(sum x^2 / sum (x - q)^2) over finite x; +inf if exact
  double saturated = 0;          // fraction of elements clipped (codec mask 0, finite result)
  double flushed = 0;            // fraction of elements with x != 0 but q == 0
  int64_t zero_blocks = 0;       // blocks whose quantized values are all zero
  int64_t flushed_blocks = 0;    // ... of which the input was not all zero
  std::optional<double> flips;   // share of element codes changed since this name's last report
                                 // (none on the first report, or after a codec or shape change)
  std::vector<std::pair<int, int64_t>> scale_exponents;  // MX: (E8M0 exponent, blocks), ascending
  int64_t nan_scales = 0;        // MX blocks with the NaN scale (non-finite input)
};

// Which all-zero blocks count as an anomaly: weights should have none; ReLU activations and conv
// padding have them legitimately, so for those only fully flushed non-zero input is suspicious.
enum class ZeroBlockCheck : uint8_t { kOff, kFlushedOnly, kAny };

struct MonitorOptions {
  double min_sqnr_db = 0.0;  // anomaly below this (a NaN threshold disables the check)
  ZeroBlockCheck zero_blocks = ZeroBlockCheck::kFlushedOnly;
};

class Monitor {
 public:
  explicit Monitor(MonitorOptions opt = {}) : opt_(opt) {}

  // x [R, K], blocked along K as the GEMM blocks that operand (weights [N, K], inputs [M, K],
  // output gradients [M, N] or their transpose). Keeps this report's codes under `name` for flips.
  TensorStats observe(const std::string& name, const float* x, int64_t R, int64_t K,
                      const Codec& codec);
  // A 2-D tensor [R, K]. (A conv weight [O, C, kh, kw] is blocked along C*kh*kw: pass it through
  // the pointer overload with R = O, K = C*kh*kw, as the layer's GEMM sees it.)
  TensorStats observe(const std::string& name, const autograd::Tensor& x, const Codec& codec);
  // Messages naming the tensor, empty when all is well. `override_opt` replaces the options.
  std::vector<std::string> anomalies(const TensorStats& s) const { return anomalies(s, opt_); }
  static std::vector<std::string> anomalies(const TensorStats& s, const MonitorOptions& opt);

  void forget(const std::string& name) { prev_.erase(name); }
  const MonitorOptions& options() const { return opt_; }

 private:
  struct Prev {
    std::string codec;
    int64_t rows, cols;
    std::vector<uint8_t> codes;  // packed, [rows, bytes_per_row] as encode produced them
  };
  MonitorOptions opt_;
  std::map<std::string, Prev> prev_;
};

// For tensors without a codec (loss, gradients): "tensor \"loss\": 1 NaN, 0 Inf of 1 values".
std::optional<std::string> check_finite(const std::string& name, const float* x, int64_t n);
inline std::optional<std::string> check_finite(const std::string& name, const autograd::Tensor& t) {
  return check_finite(name, t.data(), t.size());
}

// A compact aligned table for the log, one row per tensor.
std::string stats_table(const std::vector<TensorStats>& stats);
// The record's fields for metrics.jsonl ("sqnr_db", "saturated", ..., "scale_exp[-6]"); "flips"
// only when known. sqnr_db may be +inf (exact): a JSON writer must map it (e.g. to null).
std::vector<std::pair<std::string, double>> stats_fields(const TensorStats& s);

}  // namespace mxqat::quant
