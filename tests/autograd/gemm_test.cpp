// The packed GEMM (autograd::gemm, AVX-512 here) and its portable twin against gemm_reference,
// bit for bit: odd sizes, tiles cut by every edge, K = 1, K and N and M across the cache blocks,
// all four transpose combinations, accumulation on and off, signed zeros; 1 vs 2 vs 3 threads, and
// the 2-D grids of parts of 6 and 16 threads.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "autograd/error.h"
#include "autograd/kernels.h"

namespace mxqat::autograd {
namespace {

// Values over a wide exponent range, so that a different order of the fma chain shows in the bits.
std::vector<float> random(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::uniform_int_distribution<int> e(-12, 12);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = std::ldexp(u(rng), e(rng));
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

using Gemm = void (*)(const float*, bool, const float*, bool, float*, int64_t, int64_t, int64_t,
                      bool, const uint8_t*);

struct Case {
  int64_t m, n, k;
};

// C from `fn` (starting from `c0` when accumulating) for one case and transpose combination.
// With `masked`, a random 0/1 mask multiplies the finished chains.
std::vector<float> run(Gemm fn, const Case& s, bool ta, bool tb, bool acc, uint32_t seed,
                       bool masked = false) {
  const std::vector<float> a = random(s.m * s.k, seed), b = random(s.k * s.n, seed + 1);
  std::vector<float> c = random(s.m * s.n, seed + 2);
  std::vector<uint8_t> mask(static_cast<size_t>(s.m * s.n));
  std::mt19937 rng(seed + 3);
  for (uint8_t& v : mask) v = rng() % 4 != 0;
  fn(a.data(), ta, b.data(), tb, c.data(), s.m, s.n, s.k, acc, masked ? mask.data() : nullptr);
  return c;
}

void expect_matches_reference(Gemm fn, const char* name, const std::vector<Case>& cases) {
  uint32_t seed = 1;
  for (const Case& s : cases)
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (bool acc : {false, true}) {
          seed += 3;
          EXPECT_TRUE(same_bits(run(fn, s, ta, tb, acc, seed),
                                run(gemm_reference, s, ta, tb, acc, seed)))
              << name << " differs from gemm_reference: m " << s.m << " n " << s.n << " k " << s.k
              << " trans_a " << ta << " trans_b " << tb << " accumulate " << acc;
        }
}

// Micro-tiles are 14 x 32 / 14 x 16 (AVX-512) and 6 x 16 (portable); K blocks of 384 / 256,
// N blocks of 512, M blocks of about 1000.
const std::vector<Case> kSmall = {{1, 1, 1},   {1, 17, 1},  {3, 5, 7},   {14, 32, 16},
                                  {13, 31, 15}, {15, 33, 17}, {6, 16, 1}, {7, 15, 2},
                                  {29, 65, 33}, {2, 100, 3},  {100, 2, 3}, {45, 10, 64}};
const std::vector<Case> kBlocks = {{20, 40, 777}, {17, 1100, 9}, {1030, 19, 5}, {37, 530, 400}};

TEST(Gemm, MatchesReferenceOnSmallAndEdgeShapes) {
  expect_matches_reference(gemm, "gemm", kSmall);
  expect_matches_reference(gemm_portable, "gemm_portable", kSmall);
}

TEST(Gemm, MatchesReferenceAcrossCacheBlocks) {
  expect_matches_reference(gemm, "gemm", kBlocks);
  expect_matches_reference(gemm_portable, "gemm_portable", kBlocks);
}

// The STE mask applied as C is stored: every path equals the reference (which multiplies the
// finished chain by the mask byte), and that equals a separate multiply after an unmasked GEMM.
TEST(Gemm, MaskMultipliesTheFinishedChains) {
  std::vector<Case> cases = kSmall;
  cases.insert(cases.end(), kBlocks.begin(), kBlocks.end());
  cases.push_back({3, 4, 0});  // empty chains: C = 0 (or C) times the mask
  uint32_t seed = 500;
  for (const Case& s : cases)
    for (bool ta : {false, true})
      for (bool acc : {false, true}) {
        seed += 5;
        const std::vector<float> ref = run(gemm_reference, s, ta, true, acc, seed, true);
        EXPECT_TRUE(same_bits(run(gemm, s, ta, true, acc, seed, true), ref))
            << "gemm, m " << s.m << " n " << s.n << " k " << s.k << " trans_a " << ta << " acc " << acc;
        EXPECT_TRUE(same_bits(run(gemm_portable, s, ta, true, acc, seed, true), ref))
            << "gemm_portable, m " << s.m << " n " << s.n << " k " << s.k;
        std::vector<float> after = run(gemm_reference, s, ta, true, acc, seed, false);
        std::mt19937 rng(seed + 3);
        for (float& v : after) v *= static_cast<float>(rng() % 4 != 0);
        EXPECT_TRUE(same_bits(after, ref)) << "m " << s.m << " n " << s.n << " k " << s.k;
      }
  // And on 1, 2, 3 threads.
  const int saved = omp_get_max_threads();
  for (int t : {1, 2, 3}) {
    omp_set_num_threads(t);
    EXPECT_TRUE(same_bits(run(gemm, {37, 530, 400}, false, false, false, 9, true),
                          run(gemm_reference, {37, 530, 400}, false, false, false, 9, true)))
        << t << " threads";
  }
  omp_set_num_threads(saved);
}

TEST(Gemm, TheComparisonSeesTheOrderOfTheChain) {
  // The same sums in reverse order give other bits on this data, so the bitwise checks above
  // would catch a kernel that reassociates.
  const Case s{8, 8, 64};
  const std::vector<float> a = random(s.m * s.k, 4), b = random(s.k * s.n, 5);
  std::vector<float> fwd(s.m * s.n), rev(s.m * s.n);
  gemm(a.data(), false, b.data(), false, fwd.data(), s.m, s.n, s.k);
  for (int64_t i = 0; i < s.m; ++i)
    for (int64_t j = 0; j < s.n; ++j) {
      float acc = 0.f;
      for (int64_t p = s.k - 1; p >= 0; --p) acc = std::fma(a[i * s.k + p], b[p * s.n + j], acc);
      rev[i * s.n + j] = acc;
    }
  EXPECT_FALSE(same_bits(fwd, rev));
}

TEST(Gemm, SignedZerosAndEmptyK) {
  // Products of -0 on a chain that starts from +0 end at +0; starting from an old -0 they stay -0.
  const std::vector<float> a(3 * 4, -0.f), b(4 * 18, 1.f);
  for (bool acc : {false, true}) {
    std::vector<float> fast(3 * 18, -0.f), port(fast), ref(fast);
    gemm(a.data(), false, b.data(), false, fast.data(), 3, 18, 4, acc);
    gemm_portable(a.data(), false, b.data(), false, port.data(), 3, 18, 4, acc);
    gemm_reference(a.data(), false, b.data(), false, ref.data(), 3, 18, 4, acc);
    EXPECT_EQ(std::signbit(ref[0]), acc);
    EXPECT_TRUE(same_bits(fast, ref)) << "accumulate " << acc;
    EXPECT_TRUE(same_bits(port, ref)) << "accumulate " << acc;
  }
  // K = 0: C = 0, or C unchanged when accumulating.
  std::vector<float> c(6, 2.f);
  gemm(a.data(), false, b.data(), false, c.data(), 2, 3, 0, true);
  EXPECT_EQ(c, std::vector<float>(6, 2.f));
  gemm(a.data(), false, b.data(), false, c.data(), 2, 3, 0, false);
  EXPECT_EQ(c, std::vector<float>(6, 0.f));
}

TEST(Gemm, SameBitsForOneTwoAndThreeThreads) {
  // Above the single-thread threshold, cut along N (wide), along M (tall) and both skinny.
  const int saved = omp_get_max_threads();
  for (const Case& s : std::vector<Case>{{60, 1100, 40}, {700, 45, 70}, {300, 270, 130}})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        std::vector<float> one;
        for (int threads : {1, 2, 3}) {
          omp_set_num_threads(threads);
          const std::vector<float> c = run(gemm, s, ta, tb, /*acc=*/true, 9);
          if (threads == 1) {
            one = c;
            EXPECT_TRUE(same_bits(c, run(gemm_reference, s, ta, tb, true, 9)))
                << "m " << s.m << " n " << s.n << " k " << s.k;
          } else {
            EXPECT_TRUE(same_bits(c, one)) << "m " << s.m << " n " << s.n << " k " << s.k
                                           << " trans_a " << ta << " trans_b " << tb << ", "
                                           << threads << " threads";
          }
        }
      }
  omp_set_num_threads(saved);
}

// At 6 and 16 threads a square output (a weight gradient's 256 x 256 over many tokens) is cut
// into a grid of rectangles along both M and N (3 x 2, 4 x 4), and a tall one mostly along M: each
// rectangle's chains keep their bits, packed and portable kernels alike, masks and accumulation too.
TEST(Gemm, SameBitsOnATwoDimensionalGridOfParts) {
  const int saved = omp_get_max_threads();
  for (const Case& s : std::vector<Case>{{256, 256, 70}, {250, 230, 41}, {600, 96, 37}})
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (bool masked : {false, true}) {
          omp_set_num_threads(1);
          const std::vector<float> want = run(gemm_reference, s, ta, tb, true, 5, masked);
          for (int threads : {4, 6, 16}) {
            omp_set_num_threads(threads);
            for (auto [fn, name] : {std::pair<Gemm, const char*>{gemm, "gemm"}, {gemm_portable, "gemm_portable"}})
              EXPECT_TRUE(same_bits(run(fn, s, ta, tb, true, 5, masked), want))
                  << name << " m " << s.m << " n " << s.n << " k " << s.k << " trans_a " << ta
                  << " trans_b " << tb << " masked " << masked << ", " << threads << " threads";
          }
        }
  omp_set_num_threads(saved);
}

// prepare runs once on each thread of the GEMM's team (T = 1 for a product too small to split),
// and the product reads what it wrote: here A's rows, one range per thread.
TEST(Gemm, PrepareRunsOnEveryThreadOfTheTeamBeforeTheProduct) {
  const int saved = omp_get_max_threads();
  for (const Case& s : {Case{200, 300, 96}, Case{5, 7, 9}})
    for (int threads : {1, 2, 3}) {
      omp_set_num_threads(threads);
      const std::vector<float> src = random(s.m * s.k, 31), b = random(s.k * s.n, 32);
      std::vector<float> a(src.size(), std::nanf("")), c(s.m * s.n), want(s.m * s.n);
      std::vector<int> calls(threads, 0), teams(threads, 0);
      const GemmPrepare copy_rows = [&](int t, int T) {
        calls[t] += 1;
        teams[t] = T;
        const int64_t r0 = s.m * t / T, r1 = s.m * (t + 1) / T;
        std::copy(src.begin() + r0 * s.k, src.begin() + r1 * s.k, a.begin() + r0 * s.k);
      };
      gemm(copy_rows, a.data(), false, b.data(), false, c.data(), s.m, s.n, s.k);
      gemm_reference(src.data(), false, b.data(), false, want.data(), s.m, s.n, s.k);
      const std::string what = std::to_string(s.m) + "x" + std::to_string(s.n) + ", " +
                               std::to_string(threads) + " threads";
      EXPECT_TRUE(same_bits(c, want)) << what;
      const int expected_team = s.m == 5 ? 1 : threads;
      for (int t = 0; t < threads; ++t) {
        EXPECT_EQ(calls[t], t < expected_team ? 1 : 0) << what << ", thread " << t;
        if (t < expected_team) {
          EXPECT_EQ(teams[t], expected_team) << what;
        }
      }
    }
  omp_set_num_threads(saved);
}

// gemm_serial on sub-matrices of larger arrays (rows lda, ldb, ldc apart) has the bits of
// gemm_reference on the same sub-matrices copied out, and leaves the rest of C alone.
TEST(Gemm, SerialOnStridedSubMatricesMatchesReference) {
  uint32_t seed = 40;
  for (const Case& s : {Case{13, 37, 70}, Case{32, 64, 128}, Case{3, 5, 1}, Case{29, 16, 400}})
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (bool acc : {false, true}) {
          seed += 4;
          const int64_t ar = ta ? s.k : s.m, ac = ta ? s.m : s.k;  // A as stored
          const int64_t br = tb ? s.n : s.k, bc = tb ? s.k : s.n;
          const int64_t lda = ac + 7, ldb = bc + 3, ldc = s.n + 5;
          const std::vector<float> a = random(ar * lda, seed), b = random(br * ldb, seed + 1);
          const std::vector<float> c0 = random(s.m * ldc, seed + 2);
          std::vector<float> a1(ar * ac), b1(br * bc), want(s.m * s.n);
          for (int64_t r = 0; r < ar; ++r) std::copy_n(&a[r * lda], ac, &a1[r * ac]);
          for (int64_t r = 0; r < br; ++r) std::copy_n(&b[r * ldb], bc, &b1[r * bc]);
          for (int64_t r = 0; r < s.m; ++r) std::copy_n(&c0[r * ldc], s.n, &want[r * s.n]);
          gemm_reference(a1.data(), ta, b1.data(), tb, want.data(), s.m, s.n, s.k, acc);
          std::vector<float> c = c0;
          gemm_serial(a.data(), lda, ta, b.data(), ldb, tb, c.data(), ldc, s.m, s.n, s.k, acc);
          std::vector<float> got(s.m * s.n), pad, pad0;
          for (int64_t r = 0; r < s.m; ++r) {
            std::copy_n(&c[r * ldc], s.n, &got[r * s.n]);
            pad.insert(pad.end(), c.begin() + r * ldc + s.n, c.begin() + (r + 1) * ldc);
            pad0.insert(pad0.end(), c0.begin() + r * ldc + s.n, c0.begin() + (r + 1) * ldc);
          }
          const std::string what = "m " + std::to_string(s.m) + " n " + std::to_string(s.n) +
                                   " k " + std::to_string(s.k) + " trans_a " + std::to_string(ta) +
                                   " trans_b " + std::to_string(tb) + " acc " + std::to_string(acc);
          EXPECT_TRUE(same_bits(got, want)) << what;
          EXPECT_TRUE(same_bits(pad, pad0)) << what << ": wrote outside C";
        }
  std::vector<float> x(64);
  EXPECT_THROW(gemm_serial(x.data(), 3, false, x.data(), 4, false, x.data(), 4, 2, 4, 4), Error);
}

// The causal modes skip only what holds zeros: with op(A) zero past the diagonal (or before
// it), or with C needed on and below the diagonal only, every element the product owes has the
// bits of the whole chain. T = 600 spans two K blocks and two column blocks; both layouts of A;
// strided operands.
TEST(Gemm, CausalModesGiveTheWholeChainsBits) {
  for (int64_t T : {70, 600})
    for (Causal mode : {Causal::kUpperUnwritten, Causal::kStepsUpToRow, Causal::kStepsFromRow})
      for (bool ta : {false, true}) {
        const bool steps = mode != Causal::kUpperUnwritten;
        const int64_t m = T, k = steps ? T : 24, n = steps ? 40 : T, lda = (ta ? m : k) + 3;
        std::vector<float> a = random((ta ? k : m) * lda, 60 + T), b = random(k * n, 61);
        for (int64_t i = 0; i < m; ++i)  // op(A)[i, p] zero where the mode says so
          for (int64_t p = 0; p < k; ++p)
            if ((mode == Causal::kStepsUpToRow && p > i) ||
                (mode == Causal::kStepsFromRow && p < i))
              a[ta ? p * lda + i : i * lda + p] = 0.f;
        std::vector<float> dense_a(m * k), want(m * n), c(m * n, 7.f);
        for (int64_t i = 0; i < (ta ? k : m); ++i)
          std::copy_n(&a[i * lda], ta ? m : k, &dense_a[i * (ta ? m : k)]);
        gemm_reference(dense_a.data(), ta, b.data(), false, want.data(), m, n, k);
        gemm_serial(a.data(), lda, ta, b.data(), n, false, c.data(), n, m, n, k, false, mode);
        int64_t differ = 0;
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < (steps ? n : i + 1); ++j)
            differ += std::memcmp(&c[i * n + j], &want[i * n + j], sizeof(float)) != 0;
        EXPECT_EQ(differ, 0) << "T " << T << " mode " << static_cast<int>(mode)
                             << " trans_a " << ta;
        if (!steps) {
          EXPECT_EQ(c[n - 1], 7.f) << "a tile wholly above the diagonal was written";
        }
      }
}

}  // namespace
}  // namespace mxqat::autograd
