// The fake-quant node and its STE (fake_quant.h), plus the full-precision names shared by the
// policy and the GEMM op.
#include "quant/fake/fake_quant.h"

#include "autograd/error.h"

namespace mxqat::quant {

using autograd::GradSink;
using autograd::Tensor;
using autograd::Var;

const char* ste_name(Ste ste) { return ste == Ste::kIdentity ? "identity" : "clipped"; }

Ste parse_ste(const std::string& name) {
  if (name == "identity") return Ste::kIdentity;
  if (name == "clipped") return Ste::kClipped;
  MXQAT_FAIL("unknown STE variant \"", name, "\"; known: identity, clipped");
}

bool is_full_precision_name(const std::string& name) { return name == "none" || name == "fp32"; }

std::optional<Codec> make_codec_or_none(const std::string& name, CodecOptions opt) {
  if (is_full_precision_name(name)) return std::nullopt;
  return Codec::make(name, opt);
}

std::string codec_name_or_none(const std::optional<Codec>& codec) {
  return codec ? codec->name() : std::string("none");
}

void fake_quant_rows(const Codec& codec, const float* x, int64_t R, int64_t K, float* y,
                     std::vector<uint8_t>* mask) {
  if (mask) mask->resize(static_cast<size_t>(R * K));  // the codec writes every entry
  if (R == 0 || K == 0) return;
  codec.fake_quant(x, R, K, y, mask ? mask->data() : nullptr);
}

namespace {
// dx[i] *= mask[i] for i < n (the clipped STE applied in place); NaN stays NaN. (qgemm applies
// its masks inside the GEMM's store instead.)
void apply_ste_mask(float* dx, const uint8_t* mask, int64_t n) {
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) dx[i] *= static_cast<float>(mask[i]);
}
}  // namespace

// y = Q(x)     identity STE: dx = dy     clipped STE: dx = dy * mask
// At a saturated element Q is flat (clamped to the element max), so the clipped variant takes the
// subgradient 0 there; inside the range it takes 1 (the rounding staircase is treated as y = x).
Var fake_quant(const Var& x, const Codec& codec, Ste ste) {
  const Tensor& xv = x.value();
  const int64_t K = xv.cols(), R = xv.rows();
  Tensor y = Tensor::uninit(xv.shape());
  const bool keep_mask = ste == Ste::kClipped && x.needs_grad() && autograd::grad_enabled();
  std::vector<uint8_t> mask;
  fake_quant_rows(codec, xv.data(), R, K, y.data(), keep_mask ? &mask : nullptr);
  return autograd::make_node("fake_quant", std::move(y), {x},
                             [mask = std::move(mask), keep_mask](const Tensor& dy, GradSink& g) {
                               if (!g.wants(0)) return;
                               if (!keep_mask) return g.add(0, dy);
                               Tensor dx = dy;
                               apply_ste_mask(dx.data(), mask.data(), dx.size());
                               g.add(0, std::move(dx));
                             });
}

Var fake_quant(const Var& x, const std::optional<Codec>& codec, Ste ste) {
  return codec ? fake_quant(x, *codec, ste) : x;
}

}  // namespace mxqat::quant
