// Codec: construction from the block-codec table, sizes (spec §7-§8), argument checks, and the
// dispatch of encode / decode / fake_quant to the fast kernels (kernels.h).
#include "quant/codec/codec.h"

#include <cmath>
#include <limits>

#include "autograd/error.h"
#include "quant/codec/kernels/kernels.h"
#include "quant/codec/pack.h"

namespace mxqat::quant {

Codec::Codec(const BlockFormat* fmt, CodecOptions opt)
    : fmt_(fmt),
      elem_(fmt->element ? &quant::element_format(fmt->element) : nullptr),
      scale_(fmt->scale ? &quant::element_format(fmt->scale) : nullptr),
      opt_(opt) {}

Codec Codec::make(const std::string& name, CodecOptions opt) {
  const BlockFormat* fmt = find_block_format(name);
  if (!fmt) {
    std::string known;
    for (const std::string& n : names()) known += (known.empty() ? "" : ", ") + n;
    MXQAT_FAIL("unknown codec \"", name, "\"; known: ", known,
               " (add rows in quant/codec/block_formats.cpp)");
  }
  MXQAT_CHECK(opt.group_size >= 0, "codec \"", name, "\": group_size ", opt.group_size,
              " is negative; use 0 for per-channel or a positive group size such as 32");
  // A ragged last group is padded to G codes: a huge G would allocate G bytes per row.
  MXQAT_CHECK(opt.group_size <= (int64_t{1} << 24), "codec \"", name, "\": group_size ",
              opt.group_size, " is over 2^24; use 0 for per-channel (one group per row) or a "
              "group size such as 32, 64 or 128");
  if (opt.global_amax) {
    const float a = *opt.global_amax;
    MXQAT_CHECK(std::isfinite(a) && a >= 0.0f, "codec \"", name, "\": global_amax ", a,
                " must be finite and >= 0 (spec §5 step 1)");
  }
  return Codec(fmt, opt);
}

const std::vector<std::string>& Codec::names() {
  static const std::vector<std::string> all = [] {
    std::vector<std::string> v;
    for (const BlockFormat& b : block_formats()) v.push_back(b.name);
    return v;
  }();
  return all;
}

int64_t Codec::block_size(int64_t K) const {
  if (!is_int(fmt_->scheme)) return fmt_->block;
  return opt_.group_size > 0 ? opt_.group_size : K;
}

int64_t Codec::num_blocks(int64_t K) const {
  const int64_t G = block_size(K);
  return G > 0 ? (K + G - 1) / G : 0;
}

int64_t Codec::bytes_per_row(int64_t K) const {
  return packed_bytes(num_blocks(K) * block_size(K), fmt_->element_bits);
}

void Codec::check_shape(const float* x, int64_t R, int64_t K) const {
  MXQAT_CHECK(R >= 0 && K >= 1, "codec \"", name(), "\": shape [", R, ", ", K,
              "] is invalid; need R >= 0 rows and K >= 1 elements per row");
  MXQAT_CHECK(R == 0 || x, "codec \"", name(), "\": input pointer is null for shape [", R, ", ", K, "]");
}

void Codec::check_encoded(const EncodedTensor& e) const {
  MXQAT_CHECK(e.codec == name(), "decode: tensor was encoded with \"", e.codec,
              "\" but this codec is \"", name(), "\"; make the codec from the tensor's codec name");
  MXQAT_CHECK(e.rows >= 0 && e.cols >= 1, "decode: shape [", e.rows, ", ", e.cols, "] is invalid");
  const bool int_scheme = is_int(fmt_->scheme);
  MXQAT_CHECK(int_scheme ? e.block_size >= 1 : e.block_size == fmt_->block, "decode \"", name(),
              "\": block_size ", e.block_size, " is invalid (MX 32, NVFP4 16, INT >= 1)");
  const int64_t nb = (e.cols + e.block_size - 1) / e.block_size;
  const int64_t bpr = packed_bytes(nb * e.block_size, fmt_->element_bits);
  const auto n_scales = static_cast<size_t>(e.rows * nb);
  MXQAT_CHECK(e.codes.size() == static_cast<size_t>(e.rows * bpr), "decode \"", name(), "\": ",
              e.codes.size(), " code bytes, expected ", e.rows, " x ", bpr, " (truncated data?)");
  if (int_scheme) {
    MXQAT_CHECK(e.scales.size() == n_scales, "decode \"", name(), "\": ", e.scales.size(),
                " scales, expected ", e.rows, " x ", nb);
    if (fmt_->scheme == BlockScheme::kIntAsym)
      MXQAT_CHECK(e.zero_points.size() == n_scales, "decode \"", name(), "\": ",
                  e.zero_points.size(), " zero points, expected ", e.rows, " x ", nb);
  } else {
    MXQAT_CHECK(e.scale_codes.size() == n_scales, "decode \"", name(), "\": ",
                e.scale_codes.size(), " scale codes, expected ", e.rows, " x ", nb);
  }
}

Nvfp4Global Codec::nvfp4_global(const float* x, int64_t R, int64_t K) const {
  if (opt_.global_amax) return nvfp4_global_from_amax(*opt_.global_amax);
  return nvfp4_global_from_amax(kernels::finite_amax(x, R * K));
}

Codec Codec::fixed_for(const float* x, int64_t R, int64_t K) const {
  if (fmt_->scheme != BlockScheme::kNvfp4 || opt_.global_amax) return *this;
  check_shape(x, R, K);
  Codec c = *this;
  c.opt_.global_amax = nvfp4_global(x, R, K).amax;
  return c;
}

KernelSpec Codec::kernel_spec(int64_t K) const {
  KernelSpec k;
  k.scheme = fmt_->scheme;
  k.elem = elem_;
  k.scale = scale_;
  k.rule = opt_.scale_rule;
  k.bits = fmt_->element_bits;
  k.K = K;
  k.G = block_size(K);
  k.nb = num_blocks(K);
  k.bytes_per_row = bytes_per_row(K);
  return k;
}

EncodedTensor Codec::encode(const float* x, int64_t R, int64_t K) const {
  check_shape(x, R, K);
  EncodedTensor e;
  e.codec = name();
  e.rows = R;
  e.cols = K;
  e.block_size = block_size(K);
  e.scale_rule = opt_.scale_rule;
  const KernelSpec k = kernel_spec(K);
  e.codes.assign(static_cast<size_t>(R * k.bytes_per_row), 0);
  const auto n_scales = static_cast<size_t>(R * k.nb);
  if (is_int(fmt_->scheme)) {
    e.scales.assign(n_scales, 0.0f);
    if (fmt_->scheme == BlockScheme::kIntAsym) e.zero_points.assign(n_scales, 0);
  } else {
    e.scale_codes.assign(n_scales, 0);
  }
  Nvfp4Global g{0, 0, 0};
  if (fmt_->scheme == BlockScheme::kNvfp4) {
    g = nvfp4_global(x, R, K);
    e.global_amax = g.amax;
    e.global_encode_scale = g.encode_scale;
    e.global_decode_scale = g.decode_scale;
  }
  kernels::encode(k, g, x, R, e);
  return e;
}

void Codec::decode(const EncodedTensor& e, float* y) const {
  check_encoded(e);
  MXQAT_CHECK(e.rows == 0 || y, "decode \"", name(), "\": output pointer is null");
  KernelSpec k = kernel_spec(e.cols);
  k.G = e.block_size;  // INT: the stored group size rules
  k.nb = (e.cols + k.G - 1) / k.G;
  k.bytes_per_row = packed_bytes(k.nb * k.G, k.bits);
  kernels::decode(k, e, y);
}

void Codec::fake_quant(const float* x, int64_t R, int64_t K, float* y, uint8_t* mask) const {
  check_shape(x, R, K);
  MXQAT_CHECK(R == 0 || y, "fake_quant \"", name(), "\": output pointer is null");
  const Nvfp4Global g = fmt_->scheme == BlockScheme::kNvfp4 ? nvfp4_global(x, R, K) : Nvfp4Global{0, 0, 0};
  kernels::fake_quant(kernel_spec(K), g, x, R, y, mask, /*simd=*/true);
}

void Codec::fake_quant_portable(const float* x, int64_t R, int64_t K, float* y, uint8_t* mask) const {
  check_shape(x, R, K);
  const Nvfp4Global g = fmt_->scheme == BlockScheme::kNvfp4 ? nvfp4_global(x, R, K) : Nvfp4Global{0, 0, 0};
  kernels::fake_quant(kernel_spec(K), g, x, R, y, mask, /*simd=*/false);
}

int64_t encoded_bytes(const EncodedTensor& e) {
  return static_cast<int64_t>(e.codes.size() + e.scale_codes.size() + 4 * e.scales.size() +
                              e.zero_points.size());
}

double sqnr_db(double signal, double noise) {
  if (noise == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(signal / noise);
}

double sqnr_db(const float* x, const float* q, int64_t n) {
  double signal = 0, noise = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i]) || !std::isfinite(q[i])) continue;
    const double d = static_cast<double>(x[i]) - static_cast<double>(q[i]);
    signal += static_cast<double>(x[i]) * static_cast<double>(x[i]);
    noise += d * d;
  }
  return sqnr_db(signal, noise);
}

double sqnr_for_json(double db) { return std::isinf(db) && db > 0 ? kSqnrExactDb : db; }

}  // namespace mxqat::quant
