// The mx_native product (docs/formats.md §14.2): the portable and AVX-512 VNNI kernels (int8 on
// narrow operands, int16 on wide ones) against the scalar reference, bit for bit, on MXFP4 / MXFP6-E2M3 /
// MXFP6-E3M2 operands of random shapes (ragged K, M and N off the tile sizes), block scales across
// the whole E8M0 range (subnormal, overflowing terms), zero, -0 and NaN blocks, at 1 and 3
// threads; narrow and wide operands of the same values; hand-computed vectors; and the errors.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "autograd/error.h"
#include "quant/codec/codec.h"
#include "quant/codec/gemm/mx_gemm.h"

namespace mxqat::quant {
namespace {

// [R, K] values of `codec` (fake-quantized), each 32-block at its own magnitude 2^E with E drawn
// from [emin, emax]; some blocks all zero, all -0, or (nan_blocks) NaN.
std::vector<float> mx_values(const std::string& codec, int64_t R, int64_t K, std::mt19937& rng,
                             int emin, int emax, bool nan_blocks) {
  std::vector<float> x(static_cast<size_t>(R * K));
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::uniform_int_distribution<int> e(emin, emax), kind(0, 19);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t b0 = 0; b0 < K; b0 += 32) {
      const int k = kind(rng), scale = e(rng);
      for (int64_t p = b0; p < std::min(K, b0 + 32); ++p) {
        float v = std::ldexp(u(rng), scale);
        if (k == 0) v = 0.0f;
        if (k == 1) v = -0.0f;
        if (k == 2 && nan_blocks && p == b0) v = NAN;
        x[r * K + p] = v;
      }
    }
  std::vector<float> q(x.size());
  Codec::make(codec).fake_quant(x.data(), R, K, q.data());
  return q;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::vector<MxPath> paths() {
  std::vector<MxPath> v{MxPath::kPortable};
  if (mx_gemm_has_avx512()) v.push_back(MxPath::kAvx512);
  return v;
}

// Every path and thread count against the reference, bit for bit.
void expect_all_paths_equal(const std::vector<float>& a, const std::vector<float>& b, int64_t M,
                            int64_t N, int64_t K, const std::string& what) {
  std::vector<float> ref(static_cast<size_t>(M * N), 7.0f);
  mx_gemm_reference(a.data(), b.data(), ref.data(), M, N, K);
  const int saved = omp_get_max_threads();
  for (MxPath path : paths())
    for (int threads : {1, 3}) {
      omp_set_num_threads(threads);
      std::vector<float> c(ref.size(), 7.0f);
      mx_gemm(a.data(), b.data(), c.data(), M, N, K, what, path);
      EXPECT_TRUE(same_bits(c, ref)) << what << " path " << int(path) << " threads " << threads;
    }
  omp_set_num_threads(saved);
}

TEST(MxGemm, PathsEqualReferenceOnRandomShapes) {
  std::mt19937 rng(19);
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"mxfp4", "mxfp4"},           {"mxfp6_e2m3", "mxfp6_e2m3"}, {"mxfp4", "mxfp6_e2m3"},
      {"mxfp6_e3m2", "mxfp6_e3m2"}, {"mxfp4", "mxfp6_e3m2"},      {"mxfp6_e3m2", "mxfp6_e2m3"}};
  int cases = 0;
  for (const auto& [fa, fb] : pairs)
    for (int64_t M : {1, 3, 6, 17})
      for (int64_t N : {1, 15, 17, 40})
        for (int64_t K : {1, 31, 32, 33, 96, 130}) {
          const auto a = mx_values(fa, M, K, rng, -8, 8, true);
          const auto b = mx_values(fb, N, K, rng, -8, 8, true);
          expect_all_paths_equal(a, b, M, N, K, fa + " x " + fb);
          ++cases;
        }
  EXPECT_EQ(cases, 6 * 4 * 4 * 6);
  // Large enough to be split among threads (along N, then along M).
  for (const auto& [M, N] : {std::pair<int64_t, int64_t>{37, 250}, {250, 37}})
    for (const char* fb : {"mxfp6_e2m3", "mxfp6_e3m2"}) {
      const auto a = mx_values("mxfp4", M, 300, rng, -8, 8, true);
      const auto b = mx_values(fb, N, 300, rng, -8, 8, false);
      expect_all_paths_equal(a, b, M, N, 300, std::string("threaded x ") + fb);
    }
}

// The same values as narrow and as wide operands (§14.2: the product does not depend on which
// integers represent a block): the same bits on every path; and the two kinds do not mix.
TEST(MxGemm, NarrowAndWideOperandsGiveTheSameBits) {
  std::mt19937 rng(23);
  const int64_t M = 21, N = 45, K = 200;
  const auto a = mx_values("mxfp4", M, K, rng, -140, 120, true);
  const auto b = mx_values("mxfp6_e2m3", N, K, rng, -140, 120, false);
  std::vector<float> ref(static_cast<size_t>(M * N));
  mx_gemm_reference(a.data(), b.data(), ref.data(), M, N, K);
  for (MxPath path : paths())
    for (bool wide : {false, true}) {
      const MxOperand ao = mx_operand(a.data(), M, K, "a", false, path, wide);
      const MxOperand bo = mx_operand(b.data(), N, K, "b", true, path, wide);
      EXPECT_EQ(ao.wide, wide);
      std::vector<float> c(ref.size(), 7.0f);
      mx_gemm(ao, bo, c.data(), path);
      EXPECT_TRUE(same_bits(c, ref)) << "path " << int(path) << " wide " << wide;
    }
  const MxOperand narrow = mx_operand(a.data(), M, K, "a");
  const MxOperand wide = mx_operand(b.data(), N, K, "b", true, MxPath::kAuto, true);
  std::vector<float> c(static_cast<size_t>(M * N));
  try {
    mx_gemm(narrow, wide, c.data());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("A is narrow and B is wide"), std::string::npos) << e.what();
  }
}

// Block scales over the whole range: products that overflow to Inf, sums Inf - Inf = NaN, terms
// that round among the subnormals or to zero.
TEST(MxGemm, PathsEqualReferenceAtExtremeScales) {
  std::mt19937 rng(7);
  int inf = 0, nan = 0, tiny = 0;
  for (int rep = 0; rep < 6; ++rep) {
    const int64_t M = 9, N = 35, K = 161;
    const auto a = mx_values("mxfp4", M, K, rng, -149, 127, rep % 2 == 0);
    const auto b = mx_values(rep < 2 ? "mxfp4" : rep < 4 ? "mxfp6_e2m3" : "mxfp6_e3m2", N, K, rng,
                             -149, 127, false);
    expect_all_paths_equal(a, b, M, N, K, "extreme");
    std::vector<float> c(static_cast<size_t>(M * N));
    mx_gemm_reference(a.data(), b.data(), c.data(), M, N, K);
    for (float v : c) {
      inf += std::isinf(v);
      nan += std::isnan(v);
      tiny += v != 0.0f && std::fabs(v) < 1e-37f;
    }
  }
  EXPECT_GT(inf, 0);  // the cases the test is for occurred
  EXPECT_GT(nan, 0);
  EXPECT_GT(tiny, 0);
}

float at(float v, int e) { return std::ldexp(v, e); }

TEST(MxGemm, HandVectors) {
  for (MxPath path : paths()) {
    // One block: 1.5·2^-100 x 1.5·2^-48 = 2.25·2^-148 = 4.5·2^-149, among the subnormals,
    // rounds once (tie to even) to 4·2^-149.
    {
      std::vector<float> a(32, 0.0f), b(32, 0.0f), c(1);
      a[0] = at(1.5f, -100), b[0] = at(1.5f, -48);
      mx_gemm(a.data(), b.data(), c.data(), 1, 1, 32, "hand", path);
      EXPECT_EQ(c[0], at(1.0f, -147));
    }
    // Three blocks with the terms 2^30, 1, -2^30: the float32 sum 2^30 + 1 rounds to 2^30, so the
    // result is +0 (block order); a row of -0 gives +0.
    {
      const int64_t K = 96;
      std::vector<float> a(K, 0.0f), b(K, 0.0f), c(2);
      a[0] = at(1.0f, 15), b[0] = at(1.0f, 15);
      a[32] = 1.0f, b[32] = 1.0f;
      a[64] = -at(1.0f, 15), b[64] = at(1.0f, 15);
      std::vector<float> a2(2 * K, -0.0f);
      std::copy(a.begin(), a.end(), a2.begin());
      mx_gemm(a2.data(), b.data(), c.data(), 2, 1, K, "hand", path);
      EXPECT_EQ(c[0], 0.0f);
      EXPECT_FALSE(std::signbit(c[0]));
      EXPECT_EQ(c[1], 0.0f);
      EXPECT_FALSE(std::signbit(c[1]));
    }
    // A block's 32 products are summed exactly: 6·6 x 32 = 1152 in one term.
    {
      std::vector<float> a(32, 6.0f), b(32, -6.0f), c(1);
      mx_gemm(a.data(), b.data(), c.data(), 1, 1, 32, "hand", path);
      EXPECT_EQ(c[0], -1152.0f);
    }
    // Overflow: 6·2^127 squared is +Inf; a NaN block gives the canonical NaN.
    {
      std::vector<float> a(64, 0.0f), b(64, 0.0f), c(2);
      a[0] = at(1.5f, 127), b[0] = at(1.5f, 127);
      std::fill(b.begin() + 32, b.end(), NAN);
      mx_gemm(a.data(), b.data(), c.data(), 1, 1, 32, "hand", path);
      EXPECT_EQ(c[0], INFINITY);
      Codec::make("mxfp4").fake_quant(b.data() + 32, 1, 32, b.data() + 32);
      mx_gemm(a.data(), b.data(), c.data(), 1, 1, 64, "hand", path);
      uint32_t bits;
      std::memcpy(&bits, &c[0], 4);
      EXPECT_EQ(bits, 0x7FC00000u);
    }
  }
}

TEST(MxGemm, ZeroSizes) {
  std::vector<float> c(4, 7.0f);
  mx_gemm(nullptr, nullptr, c.data(), 2, 2, 0, "empty");
  for (float v : c) EXPECT_EQ(v, 0.0f);
  mx_gemm(nullptr, nullptr, nullptr, 0, 3, 0, "empty");
}

TEST(MxGemm, RefusesValuesOffTheMxGrid) {
  std::vector<float> a(32, 0.1f), b(32, 1.0f), c(1);
  for (MxPath path : paths()) {
    try {
      mx_gemm(a.data(), b.data(), c.data(), 1, 1, 32, "layer fc1", path);
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("layer fc1 (A)"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("fp32_chain"), std::string::npos) << e.what();
    }
  }
  // Off the grid only below float32's normal range (x · 2^-e underflows), in a block with
  // large amax and in one of tiny amax.
  for (float big : {std::ldexp(1.0f, 20), std::ldexp(1.0f, -124)}) {
    std::vector<float> t(32, 0.0f);
    t[0] = big;
    t[5] = std::ldexp(1.0f, -149);
    for (MxPath path : paths())
      EXPECT_THROW(mx_gemm(t.data(), b.data(), c.data(), 1, 1, 32, "tiny", path), Error);
  }
  // MXFP6 E3M2 values need more than 8 bits per block integer: narrow refuses them, wide takes
  // them. MXFP8 values span more binades than a wide integer holds (|I| < 512).
  std::mt19937 rng(3);
  const auto e3m2 = mx_values("mxfp6_e3m2", 4, 64, rng, 0, 0, false);
  const auto fp4 = mx_values("mxfp4", 4, 64, rng, 0, 0, false);
  const auto e4m3 = mx_values("mxfp8_e4m3", 4, 64, rng, 0, 0, false);
  std::vector<float> c2(16);
  EXPECT_THROW(mx_operand(e3m2.data(), 4, 64, "e3m2 narrow"), Error);
  EXPECT_NO_THROW(mx_gemm(e3m2.data(), fp4.data(), c2.data(), 4, 4, 64, "e3m2"));
  try {
    mx_gemm(e4m3.data(), fp4.data(), c2.data(), 4, 4, 64, "e4m3");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("e4m3 (A)"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("mxfp6_e3m2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_product("mx"), Error);
  EXPECT_EQ(parse_product("mx_native"), Product::kMxNative);
  EXPECT_TRUE(mx_native_codec("mxfp6_e2m3"));
  EXPECT_TRUE(mx_native_codec("mxfp6_e3m2"));
  EXPECT_FALSE(mx_native_codec("mxfp8_e4m3"));
  EXPECT_TRUE(mx_native_grad_codec("mxfp4"));
  EXPECT_FALSE(mx_native_grad_codec("mxfp6_e3m2"));
  EXPECT_TRUE(mx_native_wide("mxfp4", "mxfp6_e3m2"));
  EXPECT_FALSE(mx_native_wide("mxfp4", "mxfp6_e2m3"));
}

}  // namespace
}  // namespace mxqat::quant
