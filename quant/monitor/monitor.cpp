// Monitor::observe and check_finite (monitor.h): per-row statistics computed in parallel, then
// summed in row order so the result never depends on the thread count.
#include "quant/monitor/monitor.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "autograd/error.h"
#include "quant/codec/codec.h"

namespace mxqat::quant {

namespace {

struct RowStats {
  double sig = 0, err = 0;  // sum x^2, sum (x - q)^2 over elements with finite x and q
  int64_t nan = 0, inf = 0, saturated = 0, flushed = 0, zero_blocks = 0, flushed_blocks = 0;
  int64_t flips = 0;
};

// Element code j of a packed row (spec §8: LSB-first bit stream; 6-bit codes may straddle bytes).
inline uint32_t code_at(const uint8_t* row, int64_t j, int bits) {
  const int64_t bit = j * bits;
  const int shift = static_cast<int>(bit & 7);
  uint32_t w = row[bit >> 3];
  if (shift + bits > 8) w |= static_cast<uint32_t>(row[(bit >> 3) + 1]) << 8;
  return (w >> shift) & ((1u << bits) - 1u);
}

RowStats row_stats(const float* x, const float* q, const uint8_t* mask, int64_t K, int64_t G) {
  RowStats r;
  for (int64_t b0 = 0; b0 < K; b0 += G) {
    bool all_zero = true, input_zero = true;
    for (int64_t j = b0; j < std::min(K, b0 + G); ++j) {
      const float xv = x[j], qv = q[j];
      all_zero = all_zero && qv == 0.0f;
      input_zero = input_zero && xv == 0.0f;
      if (std::isnan(xv)) { ++r.nan; continue; }
      if (std::isinf(xv)) { ++r.inf; continue; }
      if (!std::isfinite(qv)) continue;  // a finite element of a non-finite block
      const double d = static_cast<double>(xv) - static_cast<double>(qv);
      r.sig += static_cast<double>(xv) * static_cast<double>(xv);
      r.err += d * d;
      r.saturated += mask[j] == 0;
      r.flushed += xv != 0.0f && qv == 0.0f;
    }
    r.zero_blocks += all_zero;
    r.flushed_blocks += all_zero && !input_zero;
  }
  return r;
}

std::vector<std::pair<int, int64_t>> scale_histogram(const EncodedTensor& e, int64_t* nan_scales) {
  std::array<int64_t, 256> count{};
  for (uint8_t c : e.scale_codes) ++count[c];
  *nan_scales = count[0xFF];
  std::vector<std::pair<int, int64_t>> out;
  for (int c = 0; c < 255; ++c)
    if (count[static_cast<size_t>(c)]) out.emplace_back(c - 127, count[static_cast<size_t>(c)]);
  return out;
}

}  // namespace

TensorStats Monitor::observe(const std::string& name, const float* x, int64_t R, int64_t K,
                             const Codec& codec) {
  MXQAT_CHECK(R >= 0 && K > 0 && (R == 0 || x), "monitor: tensor \"", name, "\" has shape [", R,
              ", ", K, "]; expected rows >= 0 and K > 0");
  const int64_t G = codec.block_size(K), nb = codec.num_blocks(K), bpr = codec.bytes_per_row(K);
  const int bits = codec.element_bits();
  const std::string key = codec.name() + "/" + scale_rule_name(codec.options().scale_rule);
  EncodedTensor enc = codec.encode(x, R, K);
  std::vector<float> q(static_cast<size_t>(R * K));
  std::vector<uint8_t> mask(static_cast<size_t>(R * K));
  codec.fake_quant(x, R, K, q.data(), mask.data());
  auto it = prev_.find(name);
  const bool comparable = it != prev_.end() && it->second.codec == key &&
                          it->second.rows == R && it->second.cols == K;
  const uint8_t* prev_codes = comparable ? it->second.codes.data() : nullptr;
  std::vector<RowStats> rows(static_cast<size_t>(R));
#pragma omp parallel for schedule(static) if (R * K > (1 << 15))
  for (int64_t i = 0; i < R; ++i) {
    RowStats r = row_stats(x + i * K, q.data() + i * K, mask.data() + i * K, K, G);
    if (prev_codes)
      for (int64_t j = 0; j < K; ++j)
        r.flips += code_at(prev_codes + i * bpr, j, bits) != code_at(enc.codes.data() + i * bpr, j, bits);
    rows[static_cast<size_t>(i)] = r;
  }
  RowStats t;
  for (const RowStats& r : rows) {  // in row order: same sums for any thread count
    t.sig += r.sig, t.err += r.err, t.nan += r.nan, t.inf += r.inf;
    t.saturated += r.saturated, t.flushed += r.flushed, t.flips += r.flips;
    t.zero_blocks += r.zero_blocks, t.flushed_blocks += r.flushed_blocks;
  }
  TensorStats s;
  s.name = name;
  s.codec = codec.name();
  s.numel = R * K;
  s.blocks = R * nb;
  s.nan = t.nan, s.inf = t.inf;
  s.sqnr_db = sqnr_db(t.sig, t.err);
  const double n = s.numel ? static_cast<double>(s.numel) : 1.0;
  s.saturated = static_cast<double>(t.saturated) / n;
  s.flushed = static_cast<double>(t.flushed) / n;
  s.zero_blocks = t.zero_blocks, s.flushed_blocks = t.flushed_blocks;
  if (prev_codes) s.flips = static_cast<double>(t.flips) / n;
  if (codec.block_format().scheme == BlockScheme::kMx)
    s.scale_exponents = scale_histogram(enc, &s.nan_scales);
  prev_[name] = Prev{key, R, K, std::move(enc.codes)};
  return s;
}

TensorStats Monitor::observe(const std::string& name, const autograd::Tensor& x,
                             const Codec& codec) {
  MXQAT_CHECK(x.ndim() == 2, "monitor: tensor \"", name, "\" has shape ",
              autograd::shape_str(x.shape()), "; pass it as [R, K] with K the GEMM's reduction "
              "axis (e.g. a conv weight as [O, C*kh*kw])");
  return observe(name, x.data(), x.rows(), x.cols(), codec);
}

std::optional<std::string> check_finite(const std::string& name, const float* x, int64_t n) {
  int64_t nan = 0, inf = 0;
  for (int64_t i = 0; i < n; ++i) {
    nan += std::isnan(x[i]);
    inf += std::isinf(x[i]);
  }
  if (nan == 0 && inf == 0) return std::nullopt;
  return detail::concat("tensor \"", name, "\": ", nan, " NaN and ", inf, " Inf of ", n,
                        " values");
}

}  // namespace mxqat::quant
