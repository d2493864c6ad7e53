// Codec: one block codec of spec/formats.md (MX §4, NVFP4 §5, INT §6) as a value: encode
// (floats -> packed codes + scales), decode, and fake_quant (floats -> floats + in-range mask),
// with fake_quant(x) == decode(encode(x)) bit for bit. Used by quant/fake (training), export and
// inference. Tensors are row-major [R, K] float32, blocks run along K (spec §7). Never logs.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "quant/codec/block_formats.h"
#include "quant/codec/formats.h"

namespace mxqat::quant {

struct CodecOptions {
  ScaleRule scale_rule = ScaleRule::kFloor;  // MX only
  int64_t group_size = 0;                    // INT only: 0 = per-channel (G = K)
  std::optional<float> global_amax;          // NVFP4 only: caller-supplied A (finite, >= 0)
};

// The encoded form of an [R, K] tensor; field layout follows spec §9.
struct EncodedTensor {
  std::string codec;
  int64_t rows = 0, cols = 0;          // R, K
  std::vector<uint8_t> codes;          // [R, bytes_per_row], packed per spec §8
  std::vector<uint8_t> scale_codes;    // MX: E8M0, NVFP4: E4M3 codes, [R, nb]
  std::vector<float> scales;           // INT: [R, ng]
  std::vector<uint8_t> zero_points;    // INT asymmetric: [R, ng]
  float global_amax = 0, global_encode_scale = 0, global_decode_scale = 0;  // NVFP4: A, S_enc, S_dec
  ScaleRule scale_rule = ScaleRule::kFloor;
  int64_t block_size = 0;              // 32 (MX), 16 (NVFP4), G (INT)
};

class Codec {
 public:
  // Unknown name -> mxqat::Error listing the known names. Options that do not apply to the
  // codec's family are ignored; invalid ones (negative group size, non-finite amax) throw.
  static Codec make(const std::string& name, CodecOptions opt = {});
  static const std::vector<std::string>& names();  // the 11 codec names, table order

  const std::string& name() const { return fmt_->name; }
  const BlockFormat& block_format() const { return *fmt_; }
  const ElementFormat* element_format() const { return elem_; }  // nullptr for INT codecs
  const CodecOptions& options() const { return opt_; }
  int element_bits() const { return fmt_->element_bits; }
  int64_t block_size(int64_t K) const;     // 32, 16, or G (G = K when per-channel)
  int64_t num_blocks(int64_t K) const;     // ceil(K / block_size)
  int64_t bytes_per_row(int64_t K) const;  // spec §8

  // x [R, K] row-major. Throws on R < 0, K <= 0 with R > 0, or a null pointer with data.
  EncodedTensor encode(const float* x, int64_t R, int64_t K) const;
  void decode(const EncodedTensor& e, float* y) const;  // y [R, K]; checks e's sizes
  // y [R, K] = decode(encode(x)) bit for bit, without materialising codes. mask [R, K]
  // (nullable): 1 where the element was representable without clipping, 0 where it saturated
  // (|scaled value| > element max; INT code clamped) or its block is non-finite.
  void fake_quant(const float* x, int64_t R, int64_t K, float* y, uint8_t* mask = nullptr) const;

  // Scalar references beside the fast paths (tests and bench check fast == reference).
  // encode_reference also fills mask [R, K] when non-null (same meaning as in fake_quant).
  EncodedTensor encode_reference(const float* x, int64_t R, int64_t K, uint8_t* mask = nullptr) const;
  void decode_reference(const EncodedTensor& e, float* y) const;
  void fake_quant_reference(const float* x, int64_t R, int64_t K, float* y,
                            uint8_t* mask = nullptr) const;  // = decode_ref(encode_ref(x))
  // The portable (non-SIMD) build of the fast paths, also tested against the reference.
  void fake_quant_portable(const float* x, int64_t R, int64_t K, float* y,
                           uint8_t* mask = nullptr) const;

  // NVFP4: A, S_enc, S_dec for this input (the supplied global_amax, or max |x| over finite x).
  Nvfp4Global nvfp4_global(const float* x, int64_t R, int64_t K) const;

 private:
  Codec(const BlockFormat* fmt, CodecOptions opt);
  void check_shape(const float* x, int64_t R, int64_t K) const;
  void check_encoded(const EncodedTensor& e) const;
  KernelSpec kernel_spec(int64_t K) const;

  const BlockFormat* fmt_;
  const ElementFormat* elem_;   // element row (MX, NVFP4); nullptr for INT
  const ElementFormat* scale_;  // e8m0 (MX), ue4m3 (NVFP4); nullptr for INT
  CodecOptions opt_;
};

}  // namespace mxqat::quant
