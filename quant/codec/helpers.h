// Small codec facts shared by the codecs, the exports, PTQ, telemetry and the CLI, written once:
// the INT schemes test, the stored size of an encoded tensor, and the SQNR convention.
#pragma once
#include <cstdint>

#include "quant/codec/block_formats.h"

namespace mxqat::quant {

struct EncodedTensor;

// The INT schemes (float32 scale per group, optional zero point) as opposed to MX / NVFP4.
inline bool is_int(BlockScheme s) { return s == BlockScheme::kIntSym || s == BlockScheme::kIntAsym; }

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
