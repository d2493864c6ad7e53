// The GEMM every op, layer and quantizer uses (declared in autograd/kernels.h): a packed,
// cache-blocked kernel in the BLIS manner, its portable twin and the scalar reference that
// defines both. Not an op (no autograd here); matmul.cpp and friends call it.
//
// Definition: C[i, j] is ONE sequential fma chain over p = 0..K-1, starting from 0 (or from the
// old C[i, j] when accumulating):  acc = fma(A[i, p], B[p, j], acc).  Blocking, tiling and thread
// count only decide who runs which chain and when a chain pauses in C between K blocks (floats
// are stored exactly), never the order of its operations, so every path has the same bits.
// With a mask, the finished chain is multiplied by float(mask[i, j]) as the last K block stores it.
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <utility>

#include "autograd/error.h"
#include "autograd/kernels.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace mxqat::autograd {

namespace {

// C[M, N] = op(A) op(B): A stored [M, K] (or [K, M] if trans_a), B [K, N] (or [N, K]), each
// row-major with its rows lda, ldb, ldc floats apart (the row length when contiguous).
struct Problem {
  const float* a;
  bool trans_a;
  const float* b;
  bool trans_b;
  float* c;
  int64_t m, n, k;
  bool accumulate;
  const uint8_t* mask;  // [M, N] 0/1 multipliers of the finished chains, laid out like C, or null
  int64_t lda, ldb, ldc;
  Causal causal = Causal::kNone;
  float at_a(int64_t i, int64_t p) const { return trans_a ? a[p * lda + i] : a[i * lda + p]; }
  float at_b(int64_t p, int64_t j) const { return trans_b ? b[j * ldb + p] : b[p * ldb + j]; }
};

// A contiguous problem: the leading dimensions are the row lengths.
Problem dense(const float* a, bool trans_a, const float* b, bool trans_b, float* c, int64_t m,
              int64_t n, int64_t k, bool accumulate, const uint8_t* mask) {
  return {a, trans_a, b, trans_b, c, m, n, k, accumulate, mask,
          trans_a ? m : k, trans_b ? k : n, n};
}

// ---- packing: the transposes are handled here, the micro-kernels see one layout ----------------
// A block of `count` source vectors (A rows, B columns) x kc steps becomes panels of `width`
// vectors, panel q at dst + q * kc * width holding dst[p * width + r] (r >= count is zero
// padding). Two layouts of the source: "copy" when a step's vectors are contiguous
// (src[p * ld + r]), "transpose" when each vector is contiguous in p (src[r * ld + p]). They only
// move floats, so they cannot change a bit; the portable kernels use the plain loops below, the
// AVX-512 kernels the vector versions.

void pack_copy(const float* src, int64_t ld, int64_t count, int64_t kc, float* dst, int width) {
  for (int64_t q = 0; q * width < count; ++q) {
    const int live = static_cast<int>(std::min<int64_t>(width, count - q * width));
    float* panel = dst + q * kc * width;
    for (int64_t p = 0; p < kc; ++p)
      for (int r = 0; r < width; ++r)
        panel[p * width + r] = r < live ? src[p * ld + q * width + r] : 0.f;
  }
}

void pack_transposed(const float* src, int64_t ld, int64_t count, int64_t kc, float* dst,
                     int width) {
  for (int64_t q = 0; q * width < count; ++q) {
    const int live = static_cast<int>(std::min<int64_t>(width, count - q * width));
    float* panel = dst + q * kc * width;
    for (int r = 0; r < width; ++r)
      for (int64_t p = 0; p < kc; ++p)
        panel[p * width + r] = r < live ? src[(q * width + r) * ld + p] : 0.f;
  }
}

#if defined(__AVX512F__)
__mmask16 lanes(int n) { return static_cast<__mmask16>((1u << std::clamp(n, 0, 16)) - 1); }

// Step by step along whole source rows (sequential reads the prefetcher follows), at most 16
// lanes at a time into the panels.
void pack_copy_avx512(const float* src, int64_t ld, int64_t count, int64_t kc, float* dst,
                      int width) {
  const int64_t panels = (count + width - 1) / width;
  for (int64_t p = 0; p < kc; ++p)
    for (int64_t q = 0; q < panels; ++q)
      for (int h = 0; h * 16 < width; ++h) {
        const int64_t r0 = q * width + 16 * h;
        const int span = std::min(16, width - 16 * h);
        const int live = static_cast<int>(std::clamp<int64_t>(count - r0, 0, span));
        _mm_prefetch(reinterpret_cast<const char*>(src + (p + 8) * ld + r0), _MM_HINT_T0);
        _mm512_mask_storeu_ps(dst + q * kc * width + p * width + 16 * h, lanes(span),
                              _mm512_maskz_loadu_ps(lanes(live), src + p * ld + r0));
      }
}

// Lane indices for transpose16's stages (vpermt2ps: 0..15 pick from a, 16..31 from b).
struct TransposeIndex {
  alignas(64) int32_t lo[4][16], hi[4][16];
  constexpr TransposeIndex() : lo(), hi() {
    for (int s = 0; s < 4; ++s)
      for (int l = 0; l < 16; ++l) {
        const int bit = 1 << s;
        lo[s][l] = (l & bit) ? 16 + l - bit : l;
        hi[s][l] = (l & bit) ? 16 + l : l + bit;
      }
  }
};

// r[q][l] <- r[l][q] in four stages; stage s swaps bit s of the row and lane numbers between
// rows q and q + 2^s (two-source permutes only, no shuffles of undefined registers).
[[gnu::always_inline]] inline void transpose16(__m512 r[16]) {
  static constexpr TransposeIndex kIdx;
#pragma GCC unroll 4
  for (int s = 0; s < 4; ++s) {
    const int bit = 1 << s;
    const __m512i lo = _mm512_load_si512(kIdx.lo[s]), hi = _mm512_load_si512(kIdx.hi[s]);
#pragma GCC unroll 16
    for (int q = 0; q < 16; ++q) {
      if (q & bit) continue;
      const __m512 a = r[q], b = r[q + bit];
      r[q] = _mm512_permutex2var_ps(a, lo, b);
      r[q + bit] = _mm512_permutex2var_ps(a, hi, b);
    }
  }
}

// The common case of pack_transposed_avx512: kRows whole vectors (the other lanes zero) x 16
// steps, with constant bounds so that the 16 rows stay in registers.
template <int kRows>
inline void transpose_full_tile(const float* src, int64_t ld, float* dst, int width, __mmask16 out) {
  __m512 r[16];
#pragma GCC unroll 16
  for (int i = 0; i < kRows; ++i) _mm_prefetch(reinterpret_cast<const char*>(src + i * ld + 64), _MM_HINT_T0);
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) r[i] = i < kRows ? _mm512_loadu_ps(src + i * ld) : _mm512_setzero_ps();
  transpose16(r);
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) _mm512_mask_storeu_ps(dst + i * width, out, r[i]);
}

// 16 source vectors x 16 steps at a time through transpose16; vectors past `count` (and past
// a panel narrower than 16, like the 14-row A panels) are read as zeros.
void pack_transposed_avx512(const float* src, int64_t ld, int64_t count, int64_t kc, float* dst,
                            int width) {
  for (int64_t q = 0; q * width < count; ++q) {
    float* panel = dst + q * kc * width;
    for (int h = 0; h * 16 < width; ++h) {
      const int64_t r0 = q * width + h * 16;
      const int live = static_cast<int>(std::clamp<int64_t>(count - r0, 0, 16));
      const int span = std::min(16, width - 16 * h);
      const __mmask16 out = lanes(span);
      for (int64_t p = 0; p < kc; p += 16) {
        const int steps = static_cast<int>(std::min<int64_t>(16, kc - p));
        if (steps == 16 && std::min(live, span) == 16) {
          transpose_full_tile<16>(src + r0 * ld + p, ld, panel + p * width + 16 * h, width, out);
          continue;
        }
        if (steps == 16 && std::min(live, span) == 14) {  // the A panels (kMr = 14)
          transpose_full_tile<14>(src + r0 * ld + p, ld, panel + p * width + 16 * h, width, out);
          continue;
        }
        __m512 r[16];
        for (int i = 0; i < std::min(live, span); ++i)
          _mm_prefetch(reinterpret_cast<const char*>(src + (r0 + i) * ld + p + 64), _MM_HINT_T0);
        for (int i = 0; i < 16; ++i)
          r[i] = i < std::min(live, span)
                     ? _mm512_maskz_loadu_ps(lanes(steps), src + (r0 + i) * ld + p)
                     : _mm512_setzero_ps();
        transpose16(r);
        for (int i = 0; i < steps; ++i)
          _mm512_mask_storeu_ps(panel + (p + i) * width + 16 * h, out, r[i]);
      }
    }
  }
}
#endif

// A rows [i0, i0 + mc) x K range [p0, p0 + kc) -> MR-row micro-panels, panel ir / MR at
// dst + ir * kc.
template <class Kern>
void pack_a(const Problem& pb, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float* dst) {
  if (pb.trans_a)  // A^T stored [K, M]: a step's rows are contiguous
    Kern::copy(pb.a + p0 * pb.lda + i0, pb.lda, mc, kc, dst, Kern::kMr);
  else
    Kern::transpose(pb.a + i0 * pb.lda + p0, pb.lda, mc, kc, dst, Kern::kMr);
}

// B K range [p0, p0 + kc) x columns [j0, j0 + nc) -> NR-column micro-panels, panel jr / NR at
// dst + jr * kc.
template <class Kern>
void pack_b(const Problem& pb, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
  if (pb.trans_b)  // B stored [N, K]: column j is contiguous in p
    Kern::transpose(pb.b + j0 * pb.ldb + p0, pb.ldb, nc, kc, dst, Kern::kNr);
  else
    Kern::copy(pb.b + p0 * pb.ldb + j0, pb.ldb, nc, kc, dst, Kern::kNr);
}

// Packed B blocks live in one buffer per thread, grown on demand and then reused (the OpenMP
// pool keeps its threads, so steady-state calls allocate nothing).
float* thread_pack_buffer(size_t floats) {
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  thread_local std::unique_ptr<float, Free> buf;
  thread_local size_t cap = 0;
  if (floats > cap) {
    const size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
    buf.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
    MXQAT_CHECK(buf != nullptr, "gemm: cannot allocate a ", bytes, "-byte pack buffer");
    cap = floats;
  }
  return buf.get();
}

// An A micro-panel for the micro-kernels: element (r, p) at data[r * row + p * step]. Packed
// panels have row 1 and step MR; a panel read in place has the operand's strides. The kernels
// take it by reference: by value, its 24 bytes were copied to the stack with a 16-byte load from
// two 8-byte stores just made, a store-forwarding stall on every tile call, which profiled at a
// few percent of a GPT training step.
struct APanel {
  const float* data;
  int64_t row, step;
};

// ---- micro-kernels: C[rows, cols] tile (+)= Ap[kc, MR] * Bp[kc, NR], one fma chain per element ----

// Portable: plain loops with std::fma (compilers vectorise the column loop; lanes are
// independent chains, so vectorising cannot change a bit).
struct PortableKernel {
  static constexpr int kMr = 6, kNr = 16, kKc = 256, kNc = 512, kMc = 1020;
  static constexpr bool kDirectA = false;
  static constexpr auto copy = &pack_copy;
  static constexpr auto transpose = &pack_transposed;
  static void tile(int rows, int64_t kc, const APanel& ap_, const float* bp, float* c, int64_t ldc,
                   int cols, bool load_c, const uint8_t* mk) {
    const float* ap = ap_.data;  // always packed: row 1, step kMr
    float acc[kMr][kNr];
    for (int r = 0; r < kMr; ++r)
      for (int j = 0; j < kNr; ++j)
        acc[r][j] = (load_c && r < rows && j < cols) ? c[r * ldc + j] : 0.f;
    for (int64_t p = 0; p < kc; ++p) {
      const float* a = ap + p * kMr;
      const float* b = bp + p * kNr;
      for (int r = 0; r < kMr; ++r)
        for (int j = 0; j < kNr; ++j) acc[r][j] = std::fma(a[r], b[j], acc[r][j]);
    }
    for (int r = 0; r < rows; ++r)
      for (int j = 0; j < cols; ++j)
        c[r * ldc + j] = mk ? acc[r][j] * static_cast<float>(mk[r * ldc + j]) : acc[r][j];
  }
};

#if defined(__AVX512F__)
// AVX-512: R rows x NV vectors of 16 columns held in R * NV zmm accumulators; B loaded from its
// packed panel, A broadcast from its packed panel (a[p * MR + r]) or, when kDirect, straight from
// the operand (a[r * a.row + p * a.step]); the C tile is read and written through lane masks.
template <int R, int NV, bool kDirect>
void tile_avx512(int64_t kc, const APanel& a, const float* bp, float* c, int64_t ldc, int cols,
                 bool load_c, const uint8_t* mk) {
  constexpr int kMr = 14, kNr = 16 * NV;
  const int64_t row = kDirect ? a.row : 1, step = kDirect ? a.step : kMr;
  __mmask16 mask[NV];
  for (int v = 0; v < NV; ++v) {
    const int live = std::clamp(cols - 16 * v, 0, 16);
    mask[v] = static_cast<__mmask16>((1u << live) - 1);
  }
  __m512 acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v)
      acc[r][v] = load_c ? _mm512_maskz_loadu_ps(mask[v], c + r * ldc + 16 * v)
                         : _mm512_setzero_ps();
  for (int64_t p = 0; p < kc; ++p) {
    __m512 bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_ps(bp + p * kNr + 16 * v);
    const float* ap = a.data + p * step;
    for (int r = 0; r < R; ++r) {
      const __m512 av = _mm512_set1_ps(ap[r * row]);
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
  if (mk)  // acc * float(mask byte), lane by lane
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < NV; ++v)
        acc[r][v] = _mm512_mul_ps(acc[r][v], _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
                                                 _mm_maskz_loadu_epi8(mask[v], mk + r * ldc + 16 * v))));
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) _mm512_mask_storeu_ps(c + r * ldc + 16 * v, mask[v], acc[r][v]);
}

// kDirectA: A panels may be read in place (see gemm_region) rather than packed.
template <int NV>
struct Avx512Kernel {
  static constexpr int kMr = 14, kNr = 16 * NV, kKc = 384, kNc = 512, kMc = 1008;
  static constexpr bool kDirectA = true;
  static constexpr auto copy = &pack_copy_avx512;
  static constexpr auto transpose = &pack_transposed_avx512;
  using Fn = void (*)(int64_t, const APanel&, const float*, float*, int64_t, int, bool, const uint8_t*);
  template <bool kDirect, int... R>
  static constexpr std::array<Fn, sizeof...(R)> table(std::integer_sequence<int, R...>) {
    return {&tile_avx512<R + 1, NV, kDirect>...};
  }
  static void tile(int rows, int64_t kc, const APanel& a, const float* bp, float* c, int64_t ldc,
                   int cols, bool load_c, const uint8_t* mk) {
    static constexpr auto kPacked = table<false>(std::make_integer_sequence<int, kMr>{});
    static constexpr auto kDirect = table<true>(std::make_integer_sequence<int, kMr>{});
    (a.step == kMr && a.row == 1 ? kPacked : kDirect)[rows - 1](kc, a, bp, c, ldc, cols, load_c, mk);
  }
};
#endif

// ---- the blocked driver ---------------------------------------------------------------------

// n cut into `parts` ranges, each a multiple of `unit` (but the last), as equal as possible.
int64_t split_at(int64_t n, int64_t parts, int64_t t, int64_t unit) {
  const int64_t units = (n + unit - 1) / unit;
  return std::min(n, units * t / parts * unit);
}

// C rows [i0, i1) x columns [j0, j1), in blocks of MC rows x KC depth: the A block is packed
// once (or read in place when narrow C gives it little reuse); for each NC column block, B is
// packed (it stays in L2) and every MR-row micro-panel of A (in L1) is swept across it.
template <class Kern>
void gemm_region(const Problem& pb, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  constexpr int kMr = Kern::kMr, kNr = Kern::kNr;
  const int64_t mblocks = (i1 - i0 + Kern::kMc - 1) / Kern::kMc;
  const int64_t kblocks = (pb.k + Kern::kKc - 1) / Kern::kKc;
  const int64_t nblocks = (j1 - j0 + Kern::kNc - 1) / Kern::kNc;
  float* a_block = thread_pack_buffer(size_t{Kern::kKc} * (Kern::kMc + kMr + Kern::kNc + kNr));
  float* b_block = a_block + size_t{Kern::kKc} * (Kern::kMc + kMr);
  // A panel feeds at most two column tiles: packing it would cost about what it saves.
  const bool direct_a = Kern::kDirectA && j1 - j0 <= 2 * kNr;
  for (int64_t ib = 0; ib < mblocks; ++ib) {
    const int64_t ic = i0 + split_at(i1 - i0, mblocks, ib, kMr);
    const int64_t mc = i0 + split_at(i1 - i0, mblocks, ib + 1, kMr) - ic;
    for (int64_t kb = 0; kb < kblocks; ++kb) {
      const int64_t p0 = split_at(pb.k, kblocks, kb, 1);
      const int64_t kc = split_at(pb.k, kblocks, kb + 1, 1) - p0;
      const bool load_c = pb.accumulate || kb > 0;
      const bool last = kb + 1 == kblocks;  // the chains finish in this K block
      if (!direct_a) pack_a<Kern>(pb, ic, mc, p0, kc, a_block);
      for (int64_t jb = 0; jb < nblocks; ++jb) {
        const int64_t jc = j0 + split_at(j1 - j0, nblocks, jb, kNr);
        const int64_t nc = j0 + split_at(j1 - j0, nblocks, jb + 1, kNr) - jc;
        // Column blocks wholly above this row block's diagonal are neither packed nor computed.
        if (pb.causal == Causal::kUpperUnwritten && jc > ic + mc - 1) break;
        pack_b<Kern>(pb, p0, kc, jc, nc, b_block);
        for (int64_t ir = 0; ir < mc; ir += kMr) {
          const int rows = static_cast<int>(std::min<int64_t>(kMr, mc - ir));
          float* c = pb.c + (ic + ir) * pb.ldc + jc;
          const uint8_t* mk = last && pb.mask ? pb.mask + (ic + ir) * pb.ldc + jc : nullptr;
          const APanel ap = !direct_a  ? APanel{a_block + ir * kc, 1, kMr}
                            : pb.trans_a ? APanel{pb.a + p0 * pb.lda + ic + ir, 1, pb.lda}
                                         : APanel{pb.a + (ic + ir) * pb.lda + p0, pb.lda, 1};
          // The steps [p0 + from, p0 + to) of this K block that can meet a nonzero of A.
          int64_t from = 0, to = kc;
          if (pb.causal == Causal::kStepsUpToRow)
            to = std::clamp<int64_t>(ic + ir + rows - p0, 0, kc);
          if (pb.causal == Causal::kStepsFromRow) from = std::clamp<int64_t>(ic + ir - p0, 0, kc);
          const APanel apc{ap.data + from * ap.step, ap.row, ap.step};
          for (int64_t jr = 0; jr < nc; jr += kNr) {
            if (pb.causal == Causal::kUpperUnwritten && jc + jr > ic + ir + rows - 1) break;
            Kern::tile(rows, std::max<int64_t>(to - from, 0), apc, b_block + jr * kc + from * kNr,
                       c + jr, pb.ldc, static_cast<int>(std::min<int64_t>(kNr, nc - jr)), load_c,
                       mk ? mk + jr : nullptr);
          }
        }
      }
    }
  }
}

// The output cut into a pm x pn grid of rectangles of whole micro-tiles, one per thread.
struct Grid {
  int64_t pm = 1, pn = 1;
};

// The grid (pm pn <= threads) whose largest rectangle costs least: its multiply-adds plus the
// packing of its own B columns (and A rows) per depth step, a packed float costing about as much
// as 8 multiply-adds (a cut along M alone makes every thread pack all of B; along N alone, all
// of A). A skinny output such as a weight gradient (256 x 256 over 2048 tokens) gets a square
// grid instead of 16 strips of one or two 14-row tiles.
template <class Kern>
Grid grid_for(const Problem& pb, int64_t threads) {
  const int64_t tiles_m = (pb.m + Kern::kMr - 1) / Kern::kMr;
  const int64_t tiles_n = (pb.n + Kern::kNr - 1) / Kern::kNr;
  Grid best;
  int64_t best_cost = -1;
  for (int64_t pm = 1; pm <= std::min(threads, tiles_m); ++pm)
    for (int64_t pn = 1; pn <= std::min(threads / pm, tiles_n); ++pn) {
      const int64_t rows = std::min(pb.m, (tiles_m + pm - 1) / pm * Kern::kMr);
      const int64_t cols = std::min(pb.n, (tiles_n + pn - 1) / pn * Kern::kNr);
      const int64_t cost = rows * cols + 8 * (rows + cols);
      if (best_cost < 0 || cost < best_cost) best = {pm, pn}, best_cost = cost;
    }
  return best;
}

// The output is cut into one rectangle per thread (grid_for); tiny products stay on one thread.
// Any cut gives the same bits (see the definition above).
// `prepare` (nullable) runs first on every thread of the same region (see GemmPrepare).
template <class Kern>
void gemm_blocked(const Problem& pb, const GemmPrepare* prepare = nullptr) {
  const int64_t work = pb.m * pb.n * pb.k;
  const Grid g = grid_for<Kern>(pb, work < (int64_t{1} << 21) ? 1 : omp_get_max_threads());
  const int64_t parts = g.pm * g.pn;
#pragma omp parallel num_threads(static_cast<int>(parts)) if (parts > 1)
  {
    if (prepare) {
      (*prepare)(omp_get_thread_num(), omp_get_num_threads());
#pragma omp barrier
    }
#pragma omp for schedule(static)
    for (int64_t t = 0; t < parts; ++t) {
      const int64_t bm = t / g.pn, bn = t % g.pn;
      gemm_region<Kern>(pb, split_at(pb.m, g.pm, bm, Kern::kMr), split_at(pb.m, g.pm, bm + 1, Kern::kMr),
                        split_at(pb.n, g.pn, bn, Kern::kNr), split_at(pb.n, g.pn, bn + 1, Kern::kNr));
    }
  }
}

// Empty products: nothing to do, or C = 0 (a chain of length zero).
bool trivial(const Problem& pb) {
  if (pb.m == 0 || pb.n == 0) return true;
  if (pb.k > 0) return false;
  for (int64_t i = 0; i < pb.m; ++i)
    for (int64_t j = 0; j < pb.n; ++j) {
      float& c = pb.c[i * pb.ldc + j];
      if (!pb.accumulate) c = 0.f;
      if (pb.mask) c *= static_cast<float>(pb.mask[i * pb.ldc + j]);
    }
  return true;
}

// The micro-kernels of this build for a product: AVX-512 ones sized by the width of C, or the
// portable ones. gemm and gemm_serial both pick them here.
template <class Run>
void with_kernel([[maybe_unused]] const Problem& pb, Run&& run) {
#if defined(__AVX512F__)
  if (pb.n <= 16) run(Avx512Kernel<1>{});
  else run(Avx512Kernel<2>{});
#else
  run(PortableKernel{});
#endif
}

}  // namespace

void gemm(const GemmPrepare& prepare, const float* a, bool trans_a, const float* b, bool trans_b,
          float* c, int64_t m, int64_t n, int64_t k, bool accumulate, const uint8_t* mask) {
  const Problem pb = dense(a, trans_a, b, trans_b, c, m, n, k, accumulate, mask);
  const GemmPrepare* prep = prepare ? &prepare : nullptr;
  if (trivial(pb)) {
    if (prep) (*prep)(0, 1);
    return;
  }
  with_kernel(pb, [&](auto kern) { gemm_blocked<decltype(kern)>(pb, prep); });
}

void gemm_serial(const float* a, int64_t lda, bool trans_a, const float* b, int64_t ldb,
                 bool trans_b, float* c, int64_t ldc, int64_t m, int64_t n, int64_t k,
                 bool accumulate, Causal causal) {
  const Problem pb{a, trans_a, b, trans_b, c, m, n, k, accumulate, nullptr, lda, ldb, ldc, causal};
  MXQAT_CHECK(m >= 0 && n >= 0 && k >= 0 && ldc >= n && lda >= (trans_a ? m : k) &&
                  ldb >= (trans_b ? k : n),
              "gemm_serial: leading dimensions lda ", lda, ", ldb ", ldb, ", ldc ", ldc,
              " are shorter than the rows of a ", m, " x ", n, " x ", k, " product");
  if (trivial(pb)) return;
  with_kernel(pb, [&](auto kern) { gemm_region<decltype(kern)>(pb, 0, m, 0, n); });
}

void gemm(const float* a, bool trans_a, const float* b, bool trans_b, float* c, int64_t m,
          int64_t n, int64_t k, bool accumulate, const uint8_t* mask) {
  gemm(GemmPrepare(), a, trans_a, b, trans_b, c, m, n, k, accumulate, mask);
}

void gemm_portable(const float* a, bool trans_a, const float* b, bool trans_b, float* c,
                   int64_t m, int64_t n, int64_t k, bool accumulate, const uint8_t* mask) {
  const Problem pb = dense(a, trans_a, b, trans_b, c, m, n, k, accumulate, mask);
  if (!trivial(pb)) gemm_blocked<PortableKernel>(pb);
}

void gemm_reference(const float* a, bool trans_a, const float* b, bool trans_b, float* c,
                    int64_t m, int64_t n, int64_t k, bool accumulate, const uint8_t* mask) {
  const Problem pb = dense(a, trans_a, b, trans_b, c, m, n, k, accumulate, mask);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      float acc = accumulate ? c[i * n + j] : 0.f;
      for (int64_t p = 0; p < k; ++p) acc = std::fma(pb.at_a(i, p), pb.at_b(p, j), acc);
      c[i * n + j] = mask ? acc * static_cast<float>(mask[i * n + j]) : acc;
    }
}

}  // namespace mxqat::autograd
