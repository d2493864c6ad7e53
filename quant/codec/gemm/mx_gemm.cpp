// mx_native products (mx_gemm.h, docs/formats.md §14.2): names, block-integer operands (narrow and
// wide), the portable kernels, the scalar reference and the dispatch. The AVX-512 VNNI kernels
// are in mx_gemm_avx512.cpp.
#include "quant/codec/gemm/mx_gemm.h"

#include <omp.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "autograd/error.h"
#include "quant/codec/formats.h"

namespace mxqat::quant {

const char* product_name(Product p) { return p == Product::kMxNative ? "mx_native" : "fp32_chain"; }

Product parse_product(const std::string& name) {
  if (name == "fp32_chain") return Product::kFp32Chain;
  if (name == "mx_native") return Product::kMxNative;
  MXQAT_FAIL("unknown quantized product \"", name, "\"; use fp32_chain (the default) or mx_native");
}

bool mx_native_codec(const std::string& codec) {
  return mx_native_grad_codec(codec) || codec == "mxfp6_e3m2";
}

bool mx_native_wide(const std::string& weight_codec, const std::string& input_codec) {
  return weight_codec == "mxfp6_e3m2" || input_codec == "mxfp6_e3m2";
}

bool mx_native_grad_codec(const std::string& codec) { return codec == "mxfp4" || codec == "mxfp6_e2m3"; }

bool mx_gemm_has_avx512() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                          __builtin_cpu_supports("avx512vnni");
  return has;
#else
  return false;
#endif
}

namespace {

constexpr int kBlock = 32;

// 2^k as a double, k in [-1022, 1023].
inline double pow2d(int k) {
  const uint64_t bits = static_cast<uint64_t>(k + 1023) << 52;
  double d;
  std::memcpy(&d, &bits, 8);
  return d;
}

// floor(log2(v)) of a finite v > 0 (float subnormals included), read from the bits of (double)v.
inline int ilog2(float v) {
  const double d = v;
  uint64_t bits;
  std::memcpy(&bits, &d, 8);
  return static_cast<int>((bits >> 52) & 0x7FF) - 1023;
}

MxPath g_auto_path = MxPath::kAuto;

bool use_avx512(MxPath path) {
  if (path == MxPath::kAuto) path = g_auto_path;
  if (path == MxPath::kPortable) return false;
  if (path == MxPath::kAvx512) {
    MXQAT_CHECK(mx_gemm_has_avx512(), "mx_gemm: the AVX-512 VNNI path was asked for but this CPU "
                "lacks AVX-512 F/BW/VL/DQ or VNNI; use MxPath::kAuto or kPortable");
    return true;
  }
  static const bool forced_portable = [] {
    const char* env = std::getenv("MXQAT_MX_GEMM");
    return env && std::string(env) == "portable";
  }();
  return !forced_portable && mx_gemm_has_avx512();
}

// T_b of the portable kernel: RN32(d · 2^e) for the integer d, NaN for a NaN exponent sum.
inline float block_term(int32_t d, float e) {
  if (e != e) return canonical_nan();
  return static_cast<float>(static_cast<double>(d) * pow2d(static_cast<int>(e)));
}

// Portable kernel on c rows [i0, i1) x columns [j0, j1): 16 columns at a time, every output's
// block terms added in block order.
void mx_gemm_portable(const MxOperand& a, const MxOperand& b, float* c, int64_t n, int64_t i0,
                      int64_t i1, int64_t j0, int64_t j1) {
  const int64_t nb = a.nb, kp = nb * kBlock;
  for (int64_t jc = j0; jc < j1; jc += 16) {
    const int cols = static_cast<int>(std::min<int64_t>(16, j1 - jc));
    for (int64_t i = i0; i < i1; ++i) {
      float acc[16];
      for (int j = 0; j < 16; ++j) acc[j] = 0.0f;
      const int8_t* ar = a.ints.data() + i * kp;
      for (int64_t blk = 0; blk < nb; ++blk) {
        const int8_t* ab = ar + blk * kBlock;
        const float ex = a.exps[i * nb + blk];
        for (int j = 0; j < cols; ++j) {
          const int8_t* bb = b.ints.data() + (jc + j) * kp + blk * kBlock;
          int32_t d = 0;
          for (int p = 0; p < kBlock; ++p) d += int32_t(ab[p]) * int32_t(bb[p]);
          acc[j] = acc[j] + block_term(d, ex + b.exps[(jc + j) * nb + blk]);
        }
      }
      for (int j = 0; j < cols; ++j) c[i * n + jc + j] = acc[j] != acc[j] ? canonical_nan() : acc[j];
    }
  }
}

// The same on wide operands (int16 block integers), one output at a time.
void mx_gemm_portable_wide(const MxOperand& a, const MxOperand& b, float* c, int64_t n, int64_t i0,
                           int64_t i1, int64_t j0, int64_t j1) {
  const int64_t nb = a.nb, kp = nb * kBlock;
  for (int64_t i = i0; i < i1; ++i)
    for (int64_t j = j0; j < j1; ++j) {
      float acc = 0.0f;
      for (int64_t blk = 0; blk < nb; ++blk) {
        const int16_t* ab = a.wints.data() + i * kp + blk * kBlock;
        const int16_t* bb = b.wints.data() + j * kp + blk * kBlock;
        int32_t d = 0;
        for (int p = 0; p < kBlock; ++p) d += int32_t(ab[p]) * int32_t(bb[p]);
        acc = acc + block_term(d, a.exps[i * nb + blk] + b.exps[j * nb + blk]);
      }
      c[i * n + j] = acc != acc ? canonical_nan() : acc;
    }
}

// One block of span (<= 32) floats -> 32 block integers (zero padded), e = floor(log2 amax) −
// kShift (5: narrow, |I| < 64; 8: wide, |I| < 512, §14.2), and the integers' sum. False when a
// value is not an integer multiple of 2^e.
template <class Int, int kShift>
bool block_to_ints(const float* src, int span, Int* dst, float& exp, int32_t& sum) {
  float amax = 0.0f;
  int nonfinite = 0;
  for (int p = 0; p < span; ++p) {
    const float v = std::fabs(src[p]);
    nonfinite |= !(v <= FLT_MAX);
    amax = std::max(amax, v);
  }
  if (nonfinite || amax == 0.0f) {  // NaN block (term NaN) or all zero (term +0)
    std::fill(dst, dst + kBlock, Int{0});
    exp = nonfinite ? canonical_nan() : 0.0f;
    sum = 0;
    return true;
  }
  const int e = ilog2(amax) - kShift;
  const double inv = pow2d(-e);
  int32_t total = 0, inexact = 0;
  for (int p = 0; p < span; ++p) {
    const double t = static_cast<double>(src[p]) * inv;  // exact: a power of two in binary64
    const int32_t q = static_cast<int32_t>(t);
    inexact |= static_cast<double>(q) != t;
    dst[p] = static_cast<Int>(q);
    total += q;
  }
  std::fill(dst + span, dst + kBlock, Int{0});
  exp = static_cast<float>(e);
  sum = total;
  return !inexact;
}

// Panels [p0, p1) of B for the AVX-512 kernels (mx_gemm.h's layouts): per panel and block, the 16
// rows' exps, then 32 / kPer groups of 16 rows x kPer block integers, each stored as to(I) (dead
// rows: to(0)). Narrow: kPer 4, I + 128 as bytes; wide: kPer 2, int16 as they are.
template <int kPer, class In, class Out, class To>
void pack_panels(MxOperand& b, const In* ints, Out* panels, int64_t p0, int64_t p1, To to) {
  const int64_t nb = b.nb, kp = nb * kBlock;
  for (int64_t p = p0; p < p1; ++p)
    for (int64_t blk = 0; blk < nb; ++blk) {
      Out* dst = panels + (p * nb + blk) * 16 * kBlock;
      float* ex = b.panel_exps.data() + (p * nb + blk) * 16;
      for (int r = 0; r < 16; ++r) {
        const int64_t row = p * 16 + r;
        const bool live = row < b.rows;
        ex[r] = live ? b.exps[row * nb + blk] : 0.0f;
        for (int g = 0; g < kBlock / kPer; ++g)
          for (int h = 0; h < kPer; ++h)
            dst[(g * 16 + r) * kPer + h] = to(live ? ints[row * kp + blk * kBlock + kPer * g + h] : In{0});
      }
    }
}

}  // namespace

void mx_operand_shape(MxOperand& out, int64_t rows, int64_t k, bool wide) {
  out.rows = rows;
  out.k = k;
  out.nb = (k + kBlock - 1) / kBlock;
  out.wide = wide;
  const size_t elems = static_cast<size_t>(rows * out.nb * kBlock);
  out.ints.resize(wide ? 0 : elems);
  out.sums.resize(wide ? 0 : static_cast<size_t>(rows * out.nb));
  out.wints.resize(wide ? elems : 0);
  out.exps.resize(static_cast<size_t>(rows * out.nb));
  out.panel_ints.clear();
  out.panel_wints.clear();
  out.panel_exps.clear();
}

void set_mx_gemm_auto_path(MxPath path) { g_auto_path = path; }

namespace kernels {
bool block_ints(const float* src, int span, int8_t* dst, float& exp, int32_t& sum) {
  return block_to_ints<int8_t, 5>(src, span, dst, exp, sum);
}
}  // namespace kernels

bool mx_operand_rows(const float* x, int64_t r0, int64_t r1, MxOperand& out, MxPath path) {
  return mx_operand_rows_at(x + r0 * out.k, r0, r1, out, path);
}

bool mx_operand_rows_at(const float* rows, int64_t r0, int64_t r1, MxOperand& out, MxPath path) {
  const int64_t k = out.k, nb = out.nb, kp = nb * kBlock;
  bool ok = true;
  if (out.wide) {
    int32_t sum;  // (wide operands keep no sums)
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t blk = 0; blk < nb; ++blk)
        ok &= block_to_ints<int16_t, 8>(rows + (r - r0) * k + blk * kBlock,
                                        static_cast<int>(std::min<int64_t>(kBlock, k - blk * kBlock)),
                                        out.wints.data() + r * kp + blk * kBlock, out.exps[r * nb + blk], sum);
    return ok;
  }
  if (use_avx512(path)) return kernels::mx_operand_rows_avx512(rows, r0, r1, out);
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t blk = 0; blk < nb; ++blk)
      ok &= kernels::block_ints(rows + (r - r0) * k + blk * kBlock,
                                static_cast<int>(std::min<int64_t>(kBlock, k - blk * kBlock)),
                                out.ints.data() + r * kp + blk * kBlock, out.exps[r * nb + blk],
                                out.sums[r * nb + blk]);
  return ok;
}

bool mx_pack_b_shape(MxOperand& b, MxPath path) {
  const int64_t panels = (b.rows + 15) / 16;
  if (b.wide) {
    if (!use_avx512(path) || !b.panel_wints.empty() || b.rows == 0 || b.nb == 0) return false;
    b.panel_wints.resize(static_cast<size_t>(panels * b.nb * 512));
    b.panel_exps.resize(static_cast<size_t>(panels * b.nb * 16));
    return true;
  }
  if (!use_avx512(path) || !b.panel_ints.empty() || b.rows == 0 || b.nb == 0) return false;
  b.panel_ints.resize(static_cast<size_t>(panels * b.nb * 8 * 64));
  b.panel_exps.resize(static_cast<size_t>(panels * b.nb * 16));
  return true;
}

int mx_chunk_parts(int64_t floats) {
  constexpr int64_t kChunkFloats = (256 << 10) / sizeof(float);
  return static_cast<int>(std::clamp<int64_t>(floats / kChunkFloats + 1, 1, int64_t{1} << 20));
}

float* mx_thread_scratch(size_t floats) {
  static thread_local MxBuffer<float> scratch;
  if (scratch.size() < floats) scratch.resize(floats);
  return scratch.data();
}

void mx_pack_b_part(MxOperand& b, int t, int T) {
  const int64_t panels = (b.rows + 15) / 16;
  const int64_t p0 = panels * t / T, p1 = panels * (t + 1) / T;
  if (b.wide)
    pack_panels<2>(b, b.wints.data(), b.panel_wints.data(), p0, p1, [](int16_t v) { return v; });
  else
    pack_panels<4>(b, b.ints.data(), b.panel_ints.data(), p0, p1,
                   [](int8_t v) { return static_cast<uint8_t>(v + 128); });
}

void mx_pack_b(MxOperand& b, MxPath path) {
  if (!mx_pack_b_shape(b, path)) return;
  const size_t bytes = b.wide ? 2 * b.panel_wints.size() : b.panel_ints.size();
  const int threads = bytes < (size_t{1} << 16) ? 1 : omp_get_max_threads();
#pragma omp parallel num_threads(threads) if (threads > 1)
  mx_pack_b_part(b, omp_get_thread_num(), omp_get_num_threads());
}

namespace {
// x [rows, k] into `out` (narrow or wide as shaped), all rows; false when off the grid.
bool fill_operand(const float* x, MxOperand& out, MxPath path) {
  const int64_t rows = out.rows, k = out.k;
  const int threads = rows * k < (int64_t{1} << 16) ? 1 : omp_get_max_threads();
  int bad = 0;
#pragma omp parallel num_threads(threads) if (threads > 1) reduction(| : bad)
  {
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
    bad |= !mx_operand_rows(x, rows * t / T, rows * (t + 1) / T, out, path);
  }
  return !bad;
}

void check_grid(bool ok, const std::string& what, const MxOperand& out) {
  MXQAT_CHECK(ok, what, ": the mx_native product needs MXFP4 or MXFP6 values in every 32-block of "
              "its [", out.rows, ", ", out.k, "] operand", out.wide ? " (wide)" : " (narrow: MXFP4 "
              "or MXFP6-E2M3)", ", but some block holds a value off that grid; quantize the operand "
              "with mxfp4, mxfp6_e2m3 or mxfp6_e3m2 first, or use quant.product: fp32_chain");
}
}  // namespace

MxOperand mx_operand(const float* x, int64_t rows, int64_t k, const std::string& what, bool as_b,
                     MxPath path, bool wide) {
  MXQAT_CHECK(rows >= 0 && k >= 0 && (rows * k == 0 || x), what, ": invalid operand [", rows, ", ",
              k, "]");
  MxOperand out;
  mx_operand_shape(out, rows, k, wide);
  check_grid(fill_operand(x, out, path), what, out);
  if (as_b) mx_pack_b(out, path);
  return out;
}

bool mx_sr_fused(MxPath path) { return use_avx512(path); }

void mx_panels_shape(MxOperand& b, int64_t rows, int64_t k) {
  b.rows = rows;
  b.k = k;
  b.nb = (k + kBlock - 1) / kBlock;
  b.wide = false;
  b.ints.clear();
  b.exps.clear();
  b.sums.clear();
  b.wints.clear();
  b.panel_wints.clear();
  const int64_t panels = (rows + 15) / 16;
  b.panel_ints.resize(static_cast<size_t>(panels * b.nb * 8 * 64));
  b.panel_exps.resize(static_cast<size_t>(panels * b.nb * 16));
}

void mx_sr_rows_part(const ElementFormat& e, uint64_t key, const float* x, MxOperand& out, int t,
                     int T) {
  kernels::mx_sr_rows_avx512(e, key, x, out, out.rows * t / T, out.rows * (t + 1) / T);
}

void mx_sr_cols_part(const ElementFormat& e, uint64_t key, const float* x, MxOperand& out,
                     bool panels, int t, int T) {
  const int64_t groups = (out.rows + 15) / 16;
  // B's panels: part t takes a range of blocks, i.e. 32 whole source rows per block, read front
  // to back (each panel tile is 512 contiguous bytes, so parts write disjoint lines). An A operand
  // keeps the cut in 16-row groups: a range of blocks would have parts write the same lines of
  // its row-major block integers, exponents and sums.
  if (panels)
    kernels::mx_sr_cols_avx512(e, key, x, out, true, out.nb * t / T, out.nb * (t + 1) / T, 0, groups);
  else
    kernels::mx_sr_cols_avx512(e, key, x, out, false, 0, out.nb, groups * t / T, groups * (t + 1) / T);
}

namespace {
// The product's output cut into `parts` rectangles along the dimension with more 16-wide
// (columns) or 4-high (rows) tiles. Each output is computed whole by one part.
bool along_n(int64_t m, int64_t n) { return (n + 15) / 16 >= (m + 3) / 4; }
}  // namespace

int mx_gemm_threads(int64_t m, int64_t n, int64_t nb) {
  if (m * n * nb < (int64_t{1} << 14)) return 1;
  const int64_t tiles = along_n(m, n) ? (n + 15) / 16 : (m + 3) / 4;
  return static_cast<int>(std::clamp<int64_t>(omp_get_max_threads(), 1, tiles));
}

void mx_gemm_part(const MxOperand& a, const MxOperand& b, float* c, int t, int T, MxPath path) {
  const int64_t m = a.rows, n = b.rows;
  if (m == 0 || n == 0) return;
  if (a.nb == 0) {  // K = 0: every chain is empty, +0
    for (int64_t i = m * t / T; i < m * (t + 1) / T; ++i) std::fill(c + i * n, c + (i + 1) * n, 0.0f);
    return;
  }
  int64_t i0 = 0, i1 = m, j0 = 0, j1 = n;
  if (along_n(m, n)) {
    const int64_t tiles = (n + 15) / 16;
    j0 = std::min(n, tiles * t / T * 16);
    j1 = std::min(n, tiles * (t + 1) / T * 16);
  } else {
    const int64_t tiles = (m + 3) / 4;
    i0 = std::min(m, tiles * t / T * 4);
    i1 = std::min(m, tiles * (t + 1) / T * 4);
  }
  if (i1 <= i0 || j1 <= j0) return;
  if (!use_avx512(path)) {
    if (a.wide) mx_gemm_portable_wide(a, b, c, n, i0, i1, j0, j1);
    else mx_gemm_portable(a, b, c, n, i0, i1, j0, j1);
  } else if (a.wide) {
    kernels::mx_gemm_wide_avx512(a, b, c, n, i0, i1, j0, j1);
  } else {
    kernels::mx_gemm_avx512(a, b, c, n, i0, i1, j0, j1);
  }
}

void mx_gemm(const MxOperand& a, const MxOperand& b, float* c, MxPath path) {
  MXQAT_CHECK(a.k == b.k, "mx_gemm: operands have K = ", a.k, " and ", b.k);
  const int64_t m = a.rows, n = b.rows;
  if (m == 0 || n == 0) return;
  MXQAT_CHECK(c != nullptr, "mx_gemm: output pointer is null for c [", m, ", ", n, "]");
  MXQAT_CHECK(a.wide == b.wide, "mx_gemm: operand A is ", a.wide ? "wide" : "narrow", " and B is ",
              b.wide ? "wide" : "narrow", "; make both with the same `wide` (mx_native_wide of the pair)");
  MXQAT_CHECK(!use_avx512(path) || a.nb == 0 || !(a.wide ? b.panel_wints.empty() : b.panel_ints.empty()),
              "mx_gemm: operand B has no AVX-512 panels; make it with mx_operand(..., as_b = true) "
              "or call mx_pack_b");
  const int parts = mx_gemm_threads(m, n, a.nb);
#pragma omp parallel num_threads(parts) if (parts > 1)
  mx_dynamic_parts([&](int t, int T) { mx_gemm_part(a, b, c, t, T, path); });
}

void mx_gemm(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k,
             const std::string& what, MxPath path) {
  MXQAT_CHECK(m >= 0 && n >= 0 && k >= 0 && (m * k == 0 || a) && (n * k == 0 || b), what,
              ": invalid operands [", m, ", ", k, "] and [", n, ", ", k, "]");
  // Narrow when both operands are of that form (MXFP4, MXFP6-E2M3), else both wide: the
  // product's bits are the same either way (§14.2), the narrow kernels are faster.
  MxOperand ao, bo;
  mx_operand_shape(ao, m, k);
  mx_operand_shape(bo, n, k);
  if (!fill_operand(a, ao, path) || !fill_operand(b, bo, path)) {
    mx_operand_shape(ao, m, k, true);
    mx_operand_shape(bo, n, k, true);
    check_grid(fill_operand(a, ao, path), what + " (A)", ao);
    check_grid(fill_operand(b, bo, path), what + " (B)", bo);
  }
  mx_pack_b(bo, path);
  mx_gemm(ao, bo, c, path);
}

void mx_gemm_reference(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      float acc = 0.0f;
      for (int64_t p0 = 0; p0 < k; p0 += kBlock) {
        double dot = 0.0;
        bool nonfinite = false;
        for (int64_t p = p0; p < std::min(k, p0 + kBlock); ++p) {
          const float x = a[i * k + p], w = b[j * k + p];
          nonfinite = nonfinite || !std::isfinite(x) || !std::isfinite(w);
          dot += static_cast<double>(x) * static_cast<double>(w);  // exact for §14.2 operands
        }
        acc = acc + (nonfinite ? canonical_nan() : static_cast<float>(dot));
      }
      c[i * n + j] = std::isnan(acc) ? canonical_nan() : acc;
    }
}

}  // namespace mxqat::quant
