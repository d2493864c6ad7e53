// SHA-256 (FIPS 180-4) of a byte buffer, as lowercase hex: the hashes in export manifests, so a
// flipped byte in a packed tensor is caught and named at load time. Not a general crypto library.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mxqat::trainers {

class Sha256 {
 public:
  Sha256();
  Sha256& update(const void* data, size_t bytes);
  std::string hex();  // finishes; the object is spent afterwards

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t used_ = 0;
  uint64_t total_ = 0;
};

std::string sha256_hex(const void* data, size_t bytes);
template <class T>
std::string sha256_hex(const std::vector<T>& v) {
  return sha256_hex(v.data(), v.size() * sizeof(T));
}

}  // namespace mxqat::trainers
