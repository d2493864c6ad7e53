// Packing of element codes into bytes (spec §8): each row is an LSB-first bit stream; 8-bit codes
// one per byte, 4-bit pairs low nibble first, 6-bit codes four per little-endian 3-byte word.
// Internal to quant/codec and its tests.
#pragma once
#include <cstdint>

namespace mxqat::quant {

inline int64_t packed_bytes(int64_t n, int bits) { return (n * bits + 7) / 8; }

// codes: n codes in the low `bits` bits of each byte (higher bits ignored); out: packed_bytes(n).
void pack_codes(const uint8_t* codes, int64_t n, int bits, uint8_t* out);
// in: packed_bytes(n) bytes; codes: n codes.
void unpack_codes(const uint8_t* in, int64_t n, int bits, uint8_t* codes);

// Bit-by-bit statement of spec §8, the reference the fast packers are tested against.
void pack_codes_reference(const uint8_t* codes, int64_t n, int bits, uint8_t* out);
void unpack_codes_reference(const uint8_t* in, int64_t n, int bits, uint8_t* codes);

}  // namespace mxqat::quant
