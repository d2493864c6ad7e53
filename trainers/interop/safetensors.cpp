// safetensors reader and writer (format in safetensors.h).
#include "trainers/interop/safetensors.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "autograd/error.h"
#include "autograd/tensor.h"
#include "trainers/util/json_read.h"
#include "trainers/util/json_write.h"

namespace mxqat::trainers {

namespace {
// safetensors' own limit on the header, so a hostile length cannot make us allocate gigabytes.
constexpr uint64_t kMaxHeader = 100ull << 20;
constexpr const char* kAdvice =
    "the safetensors file is damaged or truncated; re-download or re-save it";

// A JSON number that must be a non-negative integer below 2^53 (exact in a double).
uint64_t json_index(const Json& v, const std::string& what, const std::string& path) {
  MXQAT_CHECK(v.kind() == Json::Kind::kNumber, path, ": ", what, " is not a number; ", kAdvice);
  const double d = v.number();
  MXQAT_CHECK(d >= 0 && d < 9007199254740992.0 && d == std::floor(d), path, ": ", what, " = ", d,
              " is not a non-negative integer; ", kAdvice);
  return static_cast<uint64_t>(d);
}
}  // namespace

int64_t safetensors_dtype_size(const std::string& d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  if (d == "I8" || d == "U8" || d == "BOOL" || d == "F8_E4M3" || d == "F8_E5M2") return 1;
  return 0;
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu;
  float mag;
  if (exp == 0) mag = std::ldexp(static_cast<float>(man), -24);  // zero or subnormal: exact
  else if (exp == 31) mag = man ? std::numeric_limits<float>::quiet_NaN() : INFINITY;
  else mag = std::ldexp(static_cast<float>(man | 0x400u), int(exp) - 25);
  uint32_t bits;
  std::memcpy(&bits, &mag, 4);
  bits |= sign;
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

float bf16_to_f32(uint16_t b) {
  const uint32_t bits = uint32_t(b) << 16;
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if (std::isnan(f)) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7FFFu + ((bits >> 16) & 1u);  // round to nearest, ties to even
  return static_cast<uint16_t>(bits >> 16);
}

uint16_t f32_to_f16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const float a = std::fabs(f);
  if (std::isnan(f)) return sign | 0x7E00u;
  if (a >= 65520.f) return sign | 0x7C00u;  // rounds past the largest half (65504)
  if (a < std::ldexp(1.f, -14)) {           // subnormal half: multiples of 2^-24
    const float q = std::nearbyint(a * std::ldexp(1.f, 24));  // default rounding: ties to even
    return sign | static_cast<uint16_t>(q);
  }
  int e;
  std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
  const float step = std::ldexp(1.f, e - 11);  // spacing of halves in [2^(e-1), 2^e)
  const float q = std::nearbyint(a / step) * step;  // exact: a / step < 2^12
  int qe;
  const float qm = std::frexp(q, &qe);
  const uint32_t man = static_cast<uint32_t>(std::ldexp(qm, 11)) & 0x3FFu;
  return sign | static_cast<uint16_t>(uint32_t(qe - 1 + 15) << 10) | static_cast<uint16_t>(man);
}

int64_t SafetensorsEntry::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsReader::SafetensorsReader(const std::string& path) : path_(path) {
  in_.open(path, std::ios::binary);
  MXQAT_CHECK(in_.good(), "cannot open the safetensors file ", path, "; check the path");
  in_.seekg(0, std::ios::end);
  const uint64_t file_size = static_cast<uint64_t>(in_.tellg());
  in_.seekg(0);
  MXQAT_CHECK(file_size >= 8, path, ": ", file_size, " bytes is too short for a safetensors file "
              "(8-byte header length missing); ", kAdvice);
  unsigned char len_bytes[8];
  in_.read(reinterpret_cast<char*>(len_bytes), 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
  MXQAT_CHECK(n >= 2 && n <= kMaxHeader && n <= file_size - 8, path, ": header length ", n,
              " does not fit the file of ", file_size, " bytes (at most ", kMaxHeader,
              " bytes of header); ", kAdvice);
  std::string header(size_t(n), '\0');
  in_.read(header.data(), static_cast<std::streamsize>(n));
  MXQAT_CHECK(in_.good(), path, ": could not read the ", n, "-byte header; ", kAdvice);
  data_start_ = 8 + n;
  const uint64_t data_size = file_size - data_start_;

  const Json root = Json::parse(header, path + " (safetensors header)", kAdvice);
  MXQAT_CHECK(root.is_object(), path, ": the safetensors header is not a JSON object; ", kAdvice);
  for (const auto& [name, v] : root.object()) {
    if (name == "__metadata__") {
      MXQAT_CHECK(v.is_object(), path, ": __metadata__ is not an object; ", kAdvice);
      for (const auto& [k, s] : v.object()) {
        MXQAT_CHECK(s.kind() == Json::Kind::kString, path, ": __metadata__ value \"", k,
                    "\" is not a string; ", kAdvice);
        metadata_[k] = s.string();
      }
      continue;
    }
    const std::string what = "tensor \"" + name + "\"";
    MXQAT_CHECK(v.is_object(), path, ": ", what, " is not a JSON object; ", kAdvice);
    MXQAT_CHECK(index_.count(name) == 0, path, ": ", what, " appears twice; ", kAdvice);
    const Json* dtype = v.find("dtype");
    const Json* shape = v.find("shape");
    const Json* offsets = v.find("data_offsets");
    MXQAT_CHECK(dtype && dtype->kind() == Json::Kind::kString && shape &&
                    shape->kind() == Json::Kind::kArray && offsets &&
                    offsets->kind() == Json::Kind::kArray && offsets->array().size() == 2,
                path, ": ", what, " needs \"dtype\" (string), \"shape\" (array) and "
                "\"data_offsets\" ([begin, end]); ", kAdvice);
    SafetensorsEntry e;
    e.name = name;
    e.dtype = dtype->string();
    const int64_t esize = safetensors_dtype_size(e.dtype);
    MXQAT_CHECK(esize > 0, path, ": ", what, " has dtype \"", e.dtype, "\", which safetensors does "
                "not define (F64 F32 F16 BF16 I64 I32 I16 I8 U64 U32 U16 U8 BOOL F8_E4M3 F8_E5M2)");
    uint64_t numel = 1;
    for (const Json& d : shape->array()) {
      const uint64_t dim = json_index(d, what + " shape", path);
      // The element count may not pass the data section (which also bounds the product).
      MXQAT_CHECK(dim == 0 || numel <= data_size / dim, path, ": ", what, " shape is larger than "
                  "the file's ", data_size, " data bytes; ", kAdvice);
      numel *= dim;
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    e.begin = json_index(offsets->array()[0], what + " data_offsets[0]", path);
    e.end = json_index(offsets->array()[1], what + " data_offsets[1]", path);
    MXQAT_CHECK(e.begin <= e.end && e.end <= data_size, path, ": ", what, " data_offsets [",
                e.begin, ", ", e.end, "] lie outside the data section of ", data_size, " bytes; ",
                kAdvice);
    MXQAT_CHECK(e.end - e.begin == numel * uint64_t(esize), path, ": ", what, " holds ",
                e.end - e.begin, " bytes but ", e.dtype, " ", autograd::shape_str(e.shape), " needs ",
                numel * uint64_t(esize), "; ", kAdvice);
    index_[name] = entries_.size();
    entries_.push_back(std::move(e));
  }
}

const SafetensorsEntry* SafetensorsReader::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

const SafetensorsEntry& SafetensorsReader::at(const std::string& name) const {
  const SafetensorsEntry* e = find(name);
  MXQAT_CHECK(e != nullptr, path_, ": no tensor named \"", name, "\" (the file has ",
              entries_.size(), " tensors)");
  return *e;
}

std::vector<uint8_t> SafetensorsReader::read_bytes(const std::string& name) {
  const SafetensorsEntry& e = at(name);
  std::vector<uint8_t> out(size_t(e.end - e.begin));
  in_.clear();
  in_.seekg(static_cast<std::streamoff>(data_start_ + e.begin));
  in_.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(out.size()));
  MXQAT_CHECK(in_.good() || out.empty(), path_, ": could not read the ", out.size(),
              " bytes of tensor \"", name, "\"; ", kAdvice);
  return out;
}

std::vector<float> SafetensorsReader::read_f32(const std::string& name) {
  const SafetensorsEntry& e = at(name);
  MXQAT_CHECK(e.dtype == "F32" || e.dtype == "F16" || e.dtype == "BF16", path_, ": tensor \"",
              name, "\" has dtype ", e.dtype, "; only F32, F16 and BF16 weights can be imported "
              "(convert the checkpoint, e.g. save it with torch_dtype=float32)");
  const std::vector<uint8_t> b = read_bytes(name);
  const size_t n = size_t(e.numel());
  std::vector<float> out(n);
  if (e.dtype == "F32") {
    for (size_t i = 0; i < n; ++i) {  // little-endian on disk, whatever the host
      const uint32_t u = uint32_t(b[4 * i]) | uint32_t(b[4 * i + 1]) << 8 |
                         uint32_t(b[4 * i + 2]) << 16 | uint32_t(b[4 * i + 3]) << 24;
      std::memcpy(&out[i], &u, 4);
    }
  } else {
    const bool half = e.dtype == "F16";
    for (size_t i = 0; i < n; ++i) {
      const uint16_t u = static_cast<uint16_t>(b[2 * i] | b[2 * i + 1] << 8);
      out[i] = half ? f16_to_f32(u) : bf16_to_f32(u);
    }
  }
  return out;
}

void SafetensorsWriter::add_raw(const std::string& name, const std::string& dtype,
                                const std::vector<int64_t>& shape, std::vector<uint8_t> bytes) {
  const int64_t esize = safetensors_dtype_size(dtype);
  MXQAT_CHECK(esize > 0, "safetensors writer: unknown dtype \"", dtype, "\" for tensor \"", name, "\"");
  MXQAT_CHECK(!name.empty() && name != "__metadata__", "safetensors writer: bad tensor name \"",
              name, "\"");
  for (const Item& it : items_)
    MXQAT_CHECK(it.name != name, "safetensors writer: tensor \"", name, "\" added twice");
  int64_t numel = 1;
  for (int64_t d : shape) {
    MXQAT_CHECK(d >= 0, "safetensors writer: tensor \"", name, "\" has a negative dimension in ",
                autograd::shape_str(shape));
    numel *= d;
  }
  MXQAT_CHECK(int64_t(bytes.size()) == numel * esize, "safetensors writer: tensor \"", name, "\" ",
              dtype, " ", autograd::shape_str(shape), " needs ", numel * esize, " bytes, got ", bytes.size());
  items_.push_back({name, dtype, shape, std::move(bytes)});
}

namespace {
int64_t count(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d > 0 ? d : 0;
  return n;
}
}  // namespace

void SafetensorsWriter::add_f32(const std::string& name, const std::vector<int64_t>& shape,
                                const float* data) {
  const int64_t n = count(shape);
  std::vector<uint8_t> b(size_t(n) * 4);
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, &data[i], 4);
    for (int k = 0; k < 4; ++k) b[size_t(4 * i + k)] = static_cast<uint8_t>(u >> (8 * k));
  }
  add_raw(name, "F32", shape, std::move(b));
}

void SafetensorsWriter::add_f16(const std::string& name, const std::vector<int64_t>& shape,
                                const float* data) {
  add_16bit(name, "F16", shape, data, f32_to_f16);
}

void SafetensorsWriter::add_bf16(const std::string& name, const std::vector<int64_t>& shape,
                                 const float* data) {
  add_16bit(name, "BF16", shape, data, f32_to_bf16);
}

void SafetensorsWriter::add_16bit(const std::string& name, const std::string& dtype,
                                  const std::vector<int64_t>& shape, const float* data,
                                  uint16_t (*narrow)(float)) {
  const int64_t n = count(shape);
  std::vector<uint8_t> b(size_t(n) * 2);
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t u = narrow(data[i]);
    b[size_t(2 * i)] = static_cast<uint8_t>(u), b[size_t(2 * i + 1)] = static_cast<uint8_t>(u >> 8);
  }
  add_raw(name, dtype, shape, std::move(b));
}

void SafetensorsWriter::add_u8(const std::string& name, const std::vector<int64_t>& shape,
                               const uint8_t* data) {
  add_raw(name, "U8", shape, std::vector<uint8_t>(data, data + count(shape)));
}

void SafetensorsWriter::add_f8_e4m3(const std::string& name, const std::vector<int64_t>& shape,
                                    const uint8_t* codes) {
  add_raw(name, "F8_E4M3", shape, std::vector<uint8_t>(codes, codes + count(shape)));
}

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) {
  metadata_[key] = value;
}

std::string SafetensorsWriter::serialize() const {
  std::string h = "{";
  bool first = true;
  if (!metadata_.empty()) {
    h += "\"__metadata__\":{";
    for (const auto& [k, v] : metadata_) {
      h += (first ? "" : ",") + json_escape(k) + ":" + json_escape(v);
      first = false;
    }
    h += "}";
  }
  uint64_t offset = 0;
  for (const Item& it : items_) {
    h += (h.size() > 1 ? "," : "") + json_escape(it.name) + ":{\"dtype\":\"" +
         it.dtype + "\",\"shape\":" + autograd::shape_str(it.shape) + ",\"data_offsets\":[" +
         std::to_string(offset) + "," + std::to_string(offset + it.bytes.size()) + "]}";
    offset += it.bytes.size();
  }
  h += "}";
  while (h.size() % 8 != 0) h += ' ';
  std::string out;
  out.reserve(8 + h.size() + offset);
  for (int k = 0; k < 8; ++k) out += static_cast<char>((uint64_t(h.size()) >> (8 * k)) & 0xFF);
  out += h;
  for (const Item& it : items_) out.append(reinterpret_cast<const char*>(it.bytes.data()), it.bytes.size());
  return out;
}

void SafetensorsWriter::write(const std::string& path) const { write_file_atomic(path, serialize()); }

}  // namespace mxqat::trainers
