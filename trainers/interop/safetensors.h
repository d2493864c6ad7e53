// safetensors (the Hugging Face weight file): an 8-byte little-endian header length N, N bytes of
// JSON {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
// "__metadata__": {"key": "string"}}, then the raw little-endian tensor bytes (offsets relative to
// the end of the header). The reader checks every entry against the file before any tensor is
// read (a damaged or hostile file is refused, naming the tensor and the numbers) and reads one
// tensor at a time, so a large checkpoint is never loaded whole. The writer builds the same
// layout, header padded with spaces to a multiple of 8 bytes, tensors in the order added.
#pragma once
#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mxqat::trainers {

// Bytes per element of a safetensors dtype name ("F32", "BF16", "F8_E4M3", "U8", ...); 0 for a
// name safetensors does not define.
int64_t safetensors_dtype_size(const std::string& dtype);

// Exact widenings and round-to-nearest-even narrowings between float32 and the 16-bit floats.
float f16_to_f32(uint16_t h);
float bf16_to_f32(uint16_t b);
uint16_t f32_to_f16(float f);   // overflow -> inf, NaN stays NaN
uint16_t f32_to_bf16(float f);  // NaN stays NaN

struct SafetensorsEntry {
  std::string name;
  std::string dtype;           // as in the file: "F32", "F16", "BF16", "U8", ...
  std::vector<int64_t> shape;  // [] = a scalar
  uint64_t begin = 0, end = 0;  // byte range within the data section
  int64_t numel() const;
};

class SafetensorsReader {
 public:
  // Opens the file and validates its header: the length, the JSON, every entry's dtype, shape and
  // offsets (inside the data section, end - begin = elements x dtype size). Throws mxqat::Error
  // naming the path and the entry.
  explicit SafetensorsReader(const std::string& path);

  const std::string& path() const { return path_; }
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }  // file order
  const SafetensorsEntry* find(const std::string& name) const;               // nullptr if absent
  const SafetensorsEntry& at(const std::string& name) const;  // throws naming the file
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // The tensor as float32: F32 copied, F16 and BF16 widened exactly; any other dtype is refused.
  std::vector<float> read_f32(const std::string& name);
  std::vector<uint8_t> read_bytes(const std::string& name);  // raw, any dtype

 private:
  std::string path_;
  std::ifstream in_;
  uint64_t data_start_ = 0;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Collects tensors, then writes them as one safetensors file (atomically: temp + rename).
class SafetensorsWriter {
 public:
  void add_f32(const std::string& name, const std::vector<int64_t>& shape, const float* data);
  void add_f16(const std::string& name, const std::vector<int64_t>& shape, const float* data);   // RNE
  void add_bf16(const std::string& name, const std::vector<int64_t>& shape, const float* data);  // RNE
  void add_u8(const std::string& name, const std::vector<int64_t>& shape, const uint8_t* data);
  // FP8 E4M3 (OCP, "float8_e4m3fn" in PyTorch): the codes as bytes, one per element.
  void add_f8_e4m3(const std::string& name, const std::vector<int64_t>& shape, const uint8_t* codes);
  // Any dtype: bytes.size() must equal the elements x the dtype's size.
  void add_raw(const std::string& name, const std::string& dtype, const std::vector<int64_t>& shape,
               std::vector<uint8_t> bytes);
  void set_metadata(const std::string& key, const std::string& value);

  std::string serialize() const;  // the whole file as bytes
  void write(const std::string& path) const;

 private:
  struct Item {
    std::string name, dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  void add_16bit(const std::string& name, const std::string& dtype, const std::vector<int64_t>& shape,
                 const float* data, uint16_t (*narrow)(float));
  std::vector<Item> items_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace mxqat::trainers
