// Codec: one block codec of docs/formats.md (MX §4, NVFP4 §5, INT §6) as a value: encode
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

// The fixed quantizer of one block under a given scale: what encode_with_scales applies to each
// element of that block (spec §4.4 / §5 steps 8-10 / §6 steps 2-3 with the scale taken as given).
// code(x) is the element code of a finite x, dequant(x) the decoded value of that code, bit for
// bit what decode gives. Made by Codec::block_quantizer / Codec::int_quantizer.
struct BlockQuantizer {
  const ElementFormat* elem = nullptr;  // MX / NVFP4 element row; nullptr for INT
  float enc = 0, dec = 0;  // MX: 2^-s, 2^s; NVFP4: r, D_b; INT: RN32(1/s), s
  float zero = 0;          // INT: zero point z (an integer)
  int qmin = 0, qmax = 0;  // INT code range
  int bits = 0;            // element bits
  bool nan_block = false;  // NaN scale: codes 0, values NaN (spec §4.1, §5 step 4, §6 step 4)

  uint32_t code(float x) const;
  float dequant(float x) const { return value(code(x)); }
  float value(uint32_t code) const;  // decode of one element code under this block's scale
  bool in_range(float x) const;      // not saturated / clamped (the fake_quant mask)
};

// INT scale and zero point of one group (spec §6 step 1).
struct IntScale {
  float scale = 0;         // s (NaN for a non-finite group)
  uint8_t zero_point = 0;  // z (0 when symmetric)
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

  // ---- Quantization under given scales (PTQ: MSE scale search, GPTQ, calibrated ranges) ----
  // x [R, K]; `scales` holds the block scales to use, laid out as encode stores them (its codes
  // are ignored): MX scale_codes (E8M0; 0xFF = NaN block), NVFP4 scale_codes (E4M3 0x00-0x7E;
  // 0x7F = NaN block) with global_decode_scale (the globals are copied), INT scales (finite > 0;
  // NaN = NaN block) and zero points. Element codes follow the codec's rounding and saturation
  // under those scales; with scales = encode(x) the result equals encode(x) bit for bit.
  // Throws on a codec, shape or block-size mismatch, an invalid scale, or a non-finite element
  // in a block whose scale is not NaN. mask [R, K] (nullable) as in fake_quant.
  EncodedTensor encode_with_scales(const float* x, int64_t R, int64_t K, const EncodedTensor& scales,
                                   uint8_t* mask = nullptr) const;
  // The quantizer of block `block` of row `row` under the scales of `scales` (same checks).
  BlockQuantizer block_quantizer(const EncodedTensor& scales, int64_t row, int64_t block) const;
  // INT codecs: the scale and zero point that encode derives for a group with minimum lo and
  // maximum hi (symmetric: from max(|lo|, |hi|)), and the quantizer for a given scale/zero point.
  IntScale int_scale(float lo, float hi) const;
  BlockQuantizer int_quantizer(IntScale s) const;

  // NVFP4: A, S_enc, S_dec for this input (the supplied global_amax, or max |x| over finite x).
  Nvfp4Global nvfp4_global(const float* x, int64_t R, int64_t K) const;
  // This codec with its tensor-level quantities fixed from x [R, K] (NVFP4's amax; MX and INT
  // have none), so that fake_quant of any row range of x gives those rows of the whole call.
  // For splitting one tensor's quantization across threads (quant/fake's qgemm).
  Codec fixed_for(const float* x, int64_t R, int64_t K) const;

 private:
  Codec(const BlockFormat* fmt, CodecOptions opt);
  void check_shape(const float* x, int64_t R, int64_t K) const;
  void check_encoded(const EncodedTensor& e) const;
  KernelSpec kernel_spec(int64_t K) const;
  void check_scales(const EncodedTensor& s, int64_t R, int64_t K) const;

  const BlockFormat* fmt_;
  const ElementFormat* elem_;   // element row (MX, NVFP4); nullptr for INT
  const ElementFormat* scale_;  // e8m0 (MX), ue4m3 (NVFP4); nullptr for INT
  CodecOptions opt_;
};

// Bytes an encoded tensor stores: packed codes, scale codes (MX / NVFP4), float32 scales and zero
// points (INT). NVFP4's three per-tensor scalars are attributes, not counted.
int64_t encoded_bytes(const EncodedTensor& e);

// Signal-to-quantization-noise ratio in dB, the one definition mxqat uses:
//   SQNR = 10 log10(sum x^2 / sum (x - q)^2)
// over the elements where both x and q are finite (a NaN/Inf input carries no signal, and a finite
// element of a block that decodes to NaN is counted by the telemetry, not here), summed in double;
// +inf when the noise is 0 (exact, also when no element is left). JSON files store an exact SQNR
// as kSqnrExactDb (JSON has no inf).
double sqnr_db(const float* x, const float* q, int64_t n);
// The same from sums already taken: signal = sum x^2, noise = sum (x - q)^2 (e.g. per row, then added).
double sqnr_db(double signal, double noise);
inline constexpr double kSqnrExactDb = 999.0;
// `db` for a JSON file: kSqnrExactDb for +inf, else db.
double sqnr_for_json(double db);

}  // namespace mxqat::quant
