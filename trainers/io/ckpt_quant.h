// Quantized tensors in HDF5, laid out as docs/formats.md §9: one group per tensor with the packed
// element codes, the block scales (INT: float32 scales and asymmetric zero points) and the
// attributes a decoder needs. Used by `mxqat quantize/dequantize` and by model exports; training
// checkpoints (float32 parameters) are ckpt.h. Built on h5file.h, so it never includes HDF5.
#pragma once
#include <cstdint>
#include <string>

#include "quant/codec/codec.h"
#include "trainers/io/h5file.h"

namespace mxqat::trainers {

inline constexpr int64_t kQuantSpecVersion = 1;  // attr `spec_version` this build writes and reads

// Writes `e` as the group `group` of w: datasets `codes` uint8 [R, bytes_per_row], `scales`
// (uint8 [R, nb] scale codes for MX / NVFP4, float32 [R, ng] for INT), `zero_points` uint8
// [R, ng] (INT asymmetric), and the attributes of §9 (ints as int64, NVFP4's three scalars as
// float32). `group` is a parameter name: '/' separates groups, '.' is part of a name; it must not
// exist yet. logical_shape: the tensor's shape, blocks along its last axis (spec §7), so its last
// dimension is e.cols and its element count e.rows * e.cols. e is checked against its codec
// (sizes, block size, NVFP4 globals) before anything is written.
void write_quantized(H5Writer& w, const std::string& group, const quant::EncodedTensor& e,
                     const Shape& logical_shape);

// Reads the group `group` written as above (by us or by another tool following §9). Everything is
// validated before any data is read: spec_version (1), codec (known), packing, shape, block axis
// and size, element bits, scale rule (MX), NVFP4 globals, and each dataset's dtype and shape.
// Throws mxqat::Error naming the file, the group, the object, and expected vs found.
// *logical_shape (if non-null) receives the stored shape. Attributes §9 does not list are ignored.
quant::EncodedTensor read_quantized(const H5File& f, const std::string& group,
                                    Shape* logical_shape = nullptr);

// The codec that decodes e: its name, and for INT its stored group size (decode checks the rest).
quant::Codec decoder_for(const quant::EncodedTensor& e);

}  // namespace mxqat::trainers
