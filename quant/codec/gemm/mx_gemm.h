// The mx_native product of docs/formats.md §14.2: y = A Bᵀ for two operands whose 32-blocks along
// K hold MXFP4 / MXFP6-E2M3 / MXFP6-E3M2 values (as the codecs' fake_quant and decode produce
// them), each block product an exact dot product scaled by a power of two and rounded once, the
// blocks summed in float32 in order. Narrow operands (MXFP4, MXFP6-E2M3: |I| < 64) are int8 block
// integers, multiplied by a portable C++ kernel or an AVX-512 VNNI kernel (vpdpbusd); wide ones
// (any pair with MXFP6-E3M2: |I| < 512) are int16 block integers, multiplied by a portable kernel
// or an AVX-512 VNNI kernel (vpdpwssd). Kernels are chosen at run time; the scalar reference (the
// definition on floats) and every kernel give the same bits. Used by quant/fake's qgemm (training
// forward) and the inference runtime. Never logs.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/uninit_allocator.h"

namespace mxqat::quant {

struct ElementFormat;  // quant/codec/formats.h

// Which product a quantized GEMM computes (docs/formats.md §14).
enum class Product : uint8_t { kFp32Chain, kMxNative };
const char* product_name(Product p);            // "fp32_chain" / "mx_native"
Product parse_product(const std::string& name);  // throws naming the two choices
// The codecs whose blocks mx_native can multiply in a forward product: mxfp4, mxfp6_e2m3 and
// mxfp6_e3m2 (a pair with mxfp6_e3m2 takes wide operands: mx_native_wide).
bool mx_native_codec(const std::string& codec);
bool mx_native_wide(const std::string& weight_codec, const std::string& input_codec);
// The grad_output codecs of the mx_native backward products (§14.3): mxfp4 and mxfp6_e2m3 (their
// stochastic rounding goes straight into narrow block integers).
bool mx_native_grad_codec(const std::string& codec);

// Which kernel runs: kAuto takes AVX-512 VNNI when the CPU has it (and the environment variable
// MXQAT_MX_GEMM is not "portable"), else the portable kernel. Every choice gives the same bits.
enum class MxPath : uint8_t { kAuto, kPortable, kAvx512 };
bool mx_gemm_has_avx512();  // the CPU has AVX-512 F/BW/VL and VNNI
// What kAuto means from now on, process-wide (tests force the portable kernel under a whole model;
// kAuto restores the default). Not for use while products run on other threads.
void set_mx_gemm_auto_path(MxPath path);

// The buffers of an operand: resize() leaves new elements uninitialised (every kernel that sizes
// one writes all of it, padding included), so a product does not begin with a serial zero fill
// of megabytes that the parallel kernels then overwrite.
template <class T>
using MxBuffer = std::vector<T, UninitAllocator<T>>;

// One operand as block integers: row r, block b holds ints[r][32b .. 32b+31] * 2^exps[r][b]
// (zero padding past K), exps NaN for a block with a NaN or Inf; sums[r][b] = Σ ints of the block.
// A wide operand holds its block integers (e = floor(log2 amax) − 8, |I| < 512) as int16 in
// `wints` instead, and has no ints or sums.
struct MxOperand {
  int64_t rows = 0, k = 0, nb = 0;
  bool wide = false;
  MxBuffer<int16_t> wints;  // wide: [rows, nb * 32]
  // wide B for the AVX-512 kernel: 16-row panels, per panel and block 16 pairs of columns of K,
  // each 16 rows x 2 int16 (dead rows 0); the exps in panel_exps as for narrow panels.
  MxBuffer<int16_t> panel_wints;  // [ceil(rows / 16), nb, 16, 16, 2]
  MxBuffer<int8_t> ints;    // [rows, nb * 32]
  MxBuffer<float> exps;     // [rows, nb]
  MxBuffer<int32_t> sums;   // [rows, nb]
  // AVX-512 layout of a B operand (made by mx_pack_b when that path is used): 16-row panels,
  // per panel and block 8 groups of 16 rows x 4 bytes (ints + 128 as u8), and 16 exps.
  MxBuffer<uint8_t> panel_ints;  // [ceil(rows / 16), nb, 8, 16, 4]
  MxBuffer<float> panel_exps;    // [ceil(rows / 16), nb, 16]
};

// x [rows, k] -> block integers, on the calling thread for rows [r0, r1) of `out` (sized by
// mx_operand_shape first, narrow or wide). Returns false if some finite block is not of the §14.2
// form (narrow: a value that is not an integer multiple of 2^e, i.e. not an MXFP4 / MXFP6-E2M3
// value; wide: not I · 2^e with |I| < 512, i.e. not an MX FP4/FP6 value);
// never throws.
void mx_operand_shape(MxOperand& out, int64_t rows, int64_t k, bool wide = false);
bool mx_operand_rows(const float* x, int64_t r0, int64_t r1, MxOperand& out,
                     MxPath path = MxPath::kAuto);
// The same from `rows`, which holds rows [r0, r1) only ([r1 - r0, k], row r0 first): for a caller
// that quantizes a row range into a small buffer of its own and makes it block integers while it
// is still in cache (qgemm's forward).
bool mx_operand_rows_at(const float* rows, int64_t r0, int64_t r1, MxOperand& out,
                        MxPath path = MxPath::kAuto);
// All rows, then (path permitting) the AVX-512 panels for use as B. Throws mxqat::Error naming
// `what` when the values are not MX blocks of the supported formats.
MxOperand mx_operand(const float* x, int64_t rows, int64_t k, const std::string& what,
                     bool as_b = false, MxPath path = MxPath::kAuto, bool wide = false);
// The AVX-512 panels of a B operand (a no-op when already made or when the path is portable).
void mx_pack_b(MxOperand& b, MxPath path = MxPath::kAuto);

// For callers that run the product inside their own parallel region (qgemm: quantization, block
// integers, panels and product in one region, one fork): the threads the product can use, the
// panels sized (true when B needs them, i.e. the AVX-512 path), then part t of T of the packing
// (only when sized) and of the product. Any T gives the bits of mx_gemm.
int mx_gemm_threads(int64_t m, int64_t n, int64_t nb);
bool mx_pack_b_shape(MxOperand& b, MxPath path = MxPath::kAuto);
// Inside a parallel region: fn(part, parts) for parts = 4 per thread (1 on one thread), the parts
// handed out dynamically (a thread that falls behind takes fewer), then the loop's barrier. Each
// part computes whole outputs, so the bits do not depend on which thread ran it.
// With min_parts, at least that many parts (a pass that writes a buffer and reads it back in the
// same part keeps it in cache when parts are small, on one thread too).
template <class Fn>
void mx_dynamic_parts(Fn&& fn, int min_parts = 1) {
  const int parts = std::max(min_parts, omp_get_num_threads() == 1 ? 1 : 4 * omp_get_num_threads());
#pragma omp for schedule(dynamic, 1)
  for (int p = 0; p < parts; ++p) fn(p, parts);
}
// Passes that quantize rows and make them block integers in the same part: parts of at most
// 256 KB of floats for an operand (or pair) of `floats` floats (at least 1; use as min_parts), so
// that a part's quantized rows are still in cache when read back, on one thread too.
int mx_chunk_parts(int64_t floats);
// This thread's own buffer of at least `floats` floats (kept between calls, so no allocation per part).
float* mx_thread_scratch(size_t floats);
// Inside a part: rows [r0, r1) of an operand quantized by quantize(r0, r1, dst) into the thread's
// buffer (row r0 first; never into an operand-sized copy), then made block integers into `out`.
// False when off the grid (as mx_operand_rows).
template <class Quantize>
bool mx_quantized_rows(Quantize&& quantize, int64_t r0, int64_t r1, MxOperand& out,
                       MxPath path = MxPath::kAuto) {
  if (r1 <= r0) return true;
  float* q = mx_thread_scratch(static_cast<size_t>((r1 - r0) * out.k));
  quantize(r0, r1, q);
  return mx_operand_rows_at(q, r0, r1, out, path);
}
void mx_pack_b_part(MxOperand& b, int t, int T);
void mx_gemm_part(const MxOperand& a, const MxOperand& b, float* c, int t, int T,
                  MxPath path = MxPath::kAuto);

// Stochastic rounding (docs/formats.md §4.7) of a backward operand straight into block integers,
// for the mx_native backward products (§14.3): no rounded float copy, no transposed copy, no
// separate packing. AVX-512 only (mx_sr_fused(path) says whether that path runs; elsewhere the
// caller rounds into floats with fake_quant_stochastic and makes them block integers, which gives
// the same bits). `e` is the grad_output codec's element format (mxfp4's or mxfp6_e2m3's), `key`
// the operand's sr_key; element (r, c) of the [R, C] operand draws sr_uniform(key, r · C + c).
bool mx_sr_fused(MxPath path = MxPath::kAuto);
// The B operand's shape with panels only (no row-major block integers): for mx_sr_cols_part.
void mx_panels_shape(MxOperand& b, int64_t rows, int64_t k);
// x [R, C] row-major is the operand: rows part t of T into `out` (an A operand, mx_operand_shape).
void mx_sr_rows_part(const ElementFormat& e, uint64_t key, const float* x, MxOperand& out, int t,
                     int T);
// x [C, R] row-major, the operand is its transpose [R, C]: part t of T into out's A layout
// (mx_operand_shape; parts of 16-row groups) or, with `panels`, its B panels (mx_panels_shape;
// parts of blocks, i.e. of whole source rows).
void mx_sr_cols_part(const ElementFormat& e, uint64_t key, const float* x, MxOperand& out,
                     bool panels, int t, int T);

// c [M, N] = the §14.2 product of a [M, K] and b [N, K] (no bias), threads over output rows or
// columns (any count gives the same bits). Both narrow or both wide.
void mx_gemm(const MxOperand& a, const MxOperand& b, float* c, MxPath path = MxPath::kAuto);
// The same from floats: both operands made into block integers first, narrow when both are of
// that form, else wide (`what` names the GEMM in errors).
void mx_gemm(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k,
             const std::string& what = "mx_gemm", MxPath path = MxPath::kAuto);

// The definition on floats, one thread: T_b = RN32(exact Σ a·b over the block) (computed in
// binary64, exact for §14.2 operands), acc = RN32(acc + T_b) from +0, NaN stored canonically.
// A block with a non-finite element of either operand gives NaN.
void mx_gemm_reference(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k);

namespace kernels {
// The AVX-512 VNNI kernel (mx_gemm_avx512.cpp) on c rows [i0, i1) x panel columns [j0, j1)
// (multiples of 16 but the last).
void mx_gemm_avx512(const MxOperand& a, const MxOperand& b, float* c, int64_t n, int64_t i0,
                    int64_t i1, int64_t j0, int64_t j1);
// The AVX-512 VNNI kernel on wide operands (vpdpwssd), same cut as mx_gemm_avx512.
void mx_gemm_wide_avx512(const MxOperand& a, const MxOperand& b, float* c, int64_t n, int64_t i0,
                         int64_t i1, int64_t j0, int64_t j1);
bool mx_operand_rows_avx512(const float* rows, int64_t r0, int64_t r1, MxOperand& out);
// One block of span (<= 32) floats -> 32 block integers (zero padded), its exponent and sum
// (portable; the AVX-512 rows call it for blocks of tiny magnitude). False when off the grid.
bool block_ints(const float* src, int span, int8_t* dst, float& exp, int32_t& sum);
// mx_gemm_avx512.cpp: stochastic rounding into rows [r0, r1) of an A operand, and into the
// blocks [blk0, blk1) x 16-row groups [group0, group1) of an A operand or of B's panels.
void mx_sr_rows_avx512(const ElementFormat& e, uint64_t key, const float* x, MxOperand& out,
                       int64_t r0, int64_t r1);
void mx_sr_cols_avx512(const ElementFormat& e, uint64_t key, const float* x, MxOperand& out,
                       bool panels, int64_t blk0, int64_t blk1, int64_t group0, int64_t group1);
}  // namespace kernels

}  // namespace mxqat::quant
