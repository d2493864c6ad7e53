// GGUF (version 3), the single-file model format of llama.cpp / ggml, and the export of a gpt
// model into it (llama architecture). Layout of a file (all integers little-endian):
//   "GGUF"  u32 version = 3  u64 tensor count  u64 metadata count
//   metadata: key (u64 length + bytes), u32 value type, value (arrays: u32 element type, u64 count,
//             elements; strings: u64 length + bytes)
//   tensor infos: name, u32 n_dims, u64 ne[n_dims] (ne[0] = the innermost, contiguous axis: a
//             row-major [rows, cols] matrix is ne = {cols, rows}), u32 ggml type, u64 offset
//             relative to the data section (a multiple of the alignment)
//   zero padding to the alignment (general.alignment, default 32), then the data section, each
//   tensor padded to the alignment.
// ggml's MXFP4 block (type 39) holds 32 elements in 17 bytes: the E8M0 scale byte, then 16 bytes
// where byte j holds element j in its low nibble and element j + 16 in its high nibble (E2M1
// codes; ggml decodes them with the doubled E2M1 table and half the scale: the same values).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "quant/codec/codec.h"

namespace mxqat::trainers {

struct ExportModel;

// The ggml tensor types the writer emits.
enum class GgmlType : uint32_t { kF32 = 0, kMxfp4 = 39 };
inline constexpr int64_t kGgmlMxfp4Block = 32;       // elements per block
inline constexpr int64_t kGgmlMxfp4BlockBytes = 17;  // 1 scale byte + 16 code bytes

// GGUF metadata value types (gguf.h's enum gguf_type).
enum class GgufValueType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8,
  kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12
};

// Collects metadata and tensors in order, then writes one GGUF v3 file.
class GgufWriter {
 public:
  explicit GgufWriter(uint32_t alignment = 32);  // a power of two; written as general.alignment

  void add_string(const std::string& key, const std::string& value);
  void add_u32(const std::string& key, uint32_t value);
  void add_i32(const std::string& key, int32_t value);
  void add_f32(const std::string& key, float value);
  void add_bool(const std::string& key, bool value);
  void add_string_array(const std::string& key, const std::vector<std::string>& values);
  void add_f32_array(const std::string& key, const std::vector<float>& values);
  void add_i32_array(const std::string& key, const std::vector<int32_t>& values);

  // `shape` is our row-major shape ([out, in] for a weight); the file stores it reversed.
  void add_f32_tensor(const std::string& name, const std::vector<int64_t>& shape, const float* data);
  // An [R, K] MXFP4 tensor already in ggml blocks (mxfp4_to_ggml); K a multiple of 32.
  void add_mxfp4_tensor(const std::string& name, int64_t rows, int64_t cols,
                        std::vector<uint8_t> blocks);

  size_t tensor_count() const { return tensors_.size(); }
  std::string serialize() const;  // the whole file
  void write(const std::string& path) const;  // atomically (temporary file + rename)

 private:
  struct Tensor {
    std::string name;
    std::vector<int64_t> ne;  // ggml order
    GgmlType type;
    std::vector<uint8_t> bytes;
  };
  void check_new_key(const std::string& key);
  template <typename T>
  void add_value(const std::string& key, GgufValueType type, T value);
  template <typename T>
  void add_array(const std::string& key, GgufValueType type, const std::vector<T>& values);
  void check_new_tensor(const std::string& name, const std::vector<int64_t>& shape);
  uint32_t alignment_;
  uint64_t kv_count_ = 0;
  std::string kv_;  // the serialized metadata
  std::vector<std::string> keys_;
  std::vector<Tensor> tensors_;
};

// An MXFP4 encoding (our layout: codes [R, K/2] with element 2i in the low nibble of byte i,
// E8M0 scales [R, K/32]) rearranged into ggml's block_mxfp4 rows: per block the scale byte, then
// byte j = code[j] | code[j + 16] << 4. The element codes are copied, not re-quantized. Refuses
// another codec, K not a multiple of 32 (ggml's rows hold whole blocks) and NaN blocks (scale
// 0xFF: ggml has no NaN scale), naming `what`.
std::vector<uint8_t> mxfp4_to_ggml(const quant::EncodedTensor& e, const std::string& what);

// What ggml's dequantize_row_mxfp4 computes for n elements of blocks (doubled E2M1 table times
// the halved E8M0 scale), for tests: equals our MXFP4 decode except that ggml has no negative
// zero (code 0x8 gives +0).
std::vector<float> ggml_mxfp4_dequantize(const uint8_t* blocks, int64_t n);

// gpt parameter name -> llama.cpp tensor name (tok_emb.weight -> token_embd.weight,
// blocks.3.attn.q.weight -> blk.3.attn_q.weight, ...); throws for a name the llama
// architecture has no place for.
std::string gguf_tensor_name(const std::string& gpt_name);

enum class GgufWeights {
  kPacked,  // MXFP4 weights keep their trained codes as ggml MXFP4; every other tensor F32
  kF32,     // every tensor as float32 (quantized weights decoded: the exact values)
};

struct GgufSummary {
  int64_t tensors = 0, mxfp4_tensors = 0, bytes = 0;
  std::vector<std::string> decoded;  // quantized weights written as F32 (codec ggml lacks)
};

// Writes a gpt export as a llama-architecture GGUF: hyperparameters (llama.*), the byte
// vocabulary (256 tokens "<0x00>".."<0xFF>" of type BYTE, sentencepiece "llama" tokenizer with
// byte fallback, no BOS added), and the tensors under llama.cpp's names. Our rotary embedding
// rotates adjacent pairs, which is llama.cpp's LLAMA (normal) rope, so q and k rows are stored
// as they are. A non-gpt export, or a vocabulary other than the 256 bytes, is refused.
GgufSummary write_gguf(const ExportModel& m, const std::string& path, GgufWeights weights);

}  // namespace mxqat::trainers
