// Learned weight scales (lsq.h): the shifted block scales and the weight quantized under them.
#include "quant/fake/lsq.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <string>

#include "autograd/error.h"

namespace mxqat::quant {

namespace {
float clamped(float s) {
  MXQAT_CHECK(std::isfinite(s), "learned scale offset is ", s, "; the QAT run diverged (lower the "
              "learning rate or set qat.on_nonfinite: skip)");
  return std::clamp(s, -kLsqMaxOffset, kLsqMaxOffset);
}
}  // namespace

bool supports_learned_scale(const Codec& codec) {
  return codec.block_format().scheme != BlockScheme::kIntAsym;
}

bool parse_learned_scale(const std::string& name) {
  if (name == "none") return false;
  if (name == "lsq") return true;
  MXQAT_FAIL("unknown learned_scale \"", name, "\"; known: none, lsq");
}

EncodedTensor lsq_scales(const Codec& codec, const float* w, int64_t N, int64_t K, const float* offset) {
  MXQAT_CHECK(supports_learned_scale(codec), "learned scales (quant.learned_scale: lsq) need an MX, "
              "NVFP4 or symmetric INT weight codec, got ", codec.name(), "; use int4_sym / int8_sym "
              "or learned_scale: none");
  EncodedTensor e = codec.encode(w, N, K);  // the rule's scales (and NVFP4's globals)
  e.codes.clear();                          // only the scales are handed on
  const int64_t nb = codec.num_blocks(K);
  const BlockScheme scheme = codec.block_format().scheme;
  for (int64_t r = 0; r < N; ++r) {
    const float t = clamped(offset[r]);
    for (int64_t b = 0; b < nb; ++b) {
      const size_t si = static_cast<size_t>(r * nb + b);
      if (scheme == BlockScheme::kMx) {
        if (e.scale_codes[si] == 0xFF) continue;  // a NaN block
        const int code = int(e.scale_codes[si]) + static_cast<int>(std::nearbyint(t));
        e.scale_codes[si] = static_cast<uint8_t>(std::clamp(code, 0, 254));
      } else if (scheme == BlockScheme::kNvfp4) {
        if (e.scale_codes[si] == 0x7F) continue;
        const ElementFormat& ue4m3 = element_format(codec.block_format().scale);
        const float s_b = decode_element(ue4m3, e.scale_codes[si]) * std::exp2(t);
        e.scale_codes[si] = static_cast<uint8_t>(std::min<uint32_t>(encode_element(ue4m3, s_b), 0x7E));
      } else {
        float& s = e.scales[si];
        if (std::isnan(s)) continue;
        const float qmax = static_cast<float>((1 << (codec.element_bits() - 1)) - 1);
        s = std::min(s * std::exp2(t), FLT_MAX / qmax);
      }
    }
  }
  return e;
}

void lsq_fake_quant(const Codec& codec, const float* w, int64_t N, int64_t K, const float* offset,
                    float* y, uint8_t* mask, float* resid) {
  const EncodedTensor scales = lsq_scales(codec, w, N, K, offset);
  const int64_t nb = codec.num_blocks(K), G = codec.block_size(K);
  int bad = 0;  // nothing may throw inside the parallel region
#pragma omp parallel for schedule(static) reduction(| : bad) if (N * K > 32768)
  for (int64_t r = 0; r < N; ++r) {
    for (int64_t b = 0; b < nb; ++b) {
      BlockQuantizer q;
      try {
        q = codec.block_quantizer(scales, r, b);
      } catch (...) {
        bad = 1;
        continue;
      }
      for (int64_t i = r * K + b * G, end = r * K + std::min(K, (b + 1) * G); i < end; ++i) {
        const float x = w[i];
        const bool in = q.in_range(x);
        y[i] = q.dequant(x);
        if (mask) mask[i] = in ? 1 : 0;
        if (resid) resid[i] = in ? y[i] - x : y[i];
      }
    }
  }
  MXQAT_CHECK(!bad, "learned scales of a [", N, ", ", K, "] ", codec.name(), " weight: a block scale "
              "was rejected by the codec (internal error)");
}

float lsq_grad_scale(const Codec& codec, int64_t K) {
  const ElementFormat* elem = codec.element_format();
  const double qp = elem ? elem->max_normal : double((1 << (codec.element_bits() - 1)) - 1);
  return static_cast<float>(1.0 / std::sqrt(double(std::max<int64_t>(K, 1)) * qp));
}

}  // namespace mxqat::quant
