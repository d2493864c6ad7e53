// Dispatch of the fast paths by codec family, the NVFP4 tensor amax, and the row constants of
// the grid-rounding trick (kernels.h).
#include "quant/codec/kernels.h"

#include <algorithm>

namespace mxqat::quant::kernels {

ElemParams elem_params(const ElementFormat& f) {
  ElemParams p{};
  p.maxn = f.max_normal;
  p.emin_bits = static_cast<uint32_t>(emin(f) + 127) << 23;
  p.magic_off = static_cast<uint32_t>(23 - f.mbits) << 23;
  p.rebias = static_cast<uint32_t>(127 - f.bias) << f.mbits;
  p.shift = 23 - f.mbits;
  p.sub_scale = pow2f(f.mbits - emin(f));
  p.int_scale = pow2f(f.mbits);
  p.sign_bit = sign_bit(f);
  p.mask = code_mask(f);
  p.is_int = f.kind == FormatKind::kInt;
  return p;
}

float finite_amax(const float* x, int64_t n) {
  uint32_t amax = 0;  // max over bits of |x|; non-finite values are skipped (spec §5 step 1)
#pragma omp parallel for reduction(max : amax) schedule(static) if (n >= kParallelMinElements)
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t a = f2u(x[i]) & 0x7FFFFFFFu;
    amax = std::max(amax, a < 0x7F800000u ? a : 0u);
  }
  return u2f(amax);
}

static bool is_int(BlockScheme s) { return s == BlockScheme::kIntSym || s == BlockScheme::kIntAsym; }

void fake_quant(const KernelSpec& k, const Nvfp4Global& g, const float* x, int64_t R, float* y,
                uint8_t* mask, bool simd) {
  if (is_int(k.scheme)) return int_fake_quant(k, x, R, y, mask, simd);
  fp_fake_quant(k, g, x, R, y, mask, simd);
}

void encode(const KernelSpec& k, const Nvfp4Global& g, const float* x, int64_t R, EncodedTensor& e) {
  if (is_int(k.scheme)) return int_encode(k, x, R, e);
  fp_encode(k, g, x, R, e);
}

void decode(const KernelSpec& k, const EncodedTensor& e, float* y) {
  if (is_int(k.scheme)) return int_decode(k, e, y);
  fp_decode(k, e, y);
}

}  // namespace mxqat::quant::kernels
