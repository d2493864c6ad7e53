// Dispatch of the fast paths by codec family, the NVFP4 tensor amax, and the row constants of
// the grid-rounding trick (kernels.h).
#include "quant/codec/kernels/kernels.h"

#include <algorithm>

#include "quant/codec/codec.h"

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
