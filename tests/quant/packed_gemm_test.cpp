// packed_linear (fused decode + product) against the exact product of decode(w) computed in
// double, against its scalar reference and its portable build, over every element code and scale
// code, ragged K, M = 1 .. 64, with and without bias, at 1 vs 2 threads; and its errors.
#include <gtest/gtest.h>
#include <omp.h>

#include <cfloat>
#include <cmath>
#include <random>

#include "autograd/error.h"
#include "codec_test_util.h"
#include "quant/codec/gemm/packed_gemm.h"

namespace mxqat::quant {
namespace {

std::vector<std::string> fused_codecs() {
  std::vector<std::string> v;
  for (const std::string& name : Codec::names())
    if (packed_linear_is_fused(name)) v.push_back(name);
  return v;
}

struct Problem {
  EncodedTensor w;
  std::vector<float> x, bias;  // x [M, K]; bias [N] or empty
  int64_t M = 0;
  const float* bias_ptr() const { return bias.empty() ? nullptr : bias.data(); }
};

// Counts of outputs checked against the exact product and of outputs skipped because their terms
// are so large that some summation order may overflow.
struct Checked {
  int64_t finite = 0, special = 0, skipped = 0;
};

// y [M, N] against x · decode(w)ᵀ + bias evaluated in double (each product exact): NaN where a
// term is NaN or both infinities occur, the infinity where one does, otherwise within
// 1e-5 · (Σ|x·w| + |bias|) plus the subnormal rounding of K + 20 float32 operations. Outputs whose
// finite terms reach FLT_MAX / 2 are skipped (float32 partial sums may overflow, order-dependent).
void expect_near_exact(const Problem& p, const std::vector<float>& y, const std::string& what, Checked& c) {
  const int64_t N = p.w.rows, K = p.w.cols;
  std::vector<float> wf(static_cast<size_t>(N * K));
  Codec::make(p.w.codec).decode(p.w, wf.data());
  for (int64_t m = 0; m < p.M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double sum = p.bias.empty() ? 0.0 : p.bias[n], mag = std::fabs(sum);
      bool nan = false, pos_inf = false, neg_inf = false;
      for (int64_t k = 0; k < K; ++k) {
        const double t = static_cast<double>(p.x[m * K + k]) * wf[n * K + k];
        nan |= std::isnan(t);
        pos_inf |= t == INFINITY;
        neg_inf |= t == -INFINITY;
        if (std::isfinite(t)) {
          sum += t;
          mag += std::fabs(t);
        }
      }
      const float got = y[m * N + n];
      const std::string at = what + " y[" + std::to_string(m) + "][" + std::to_string(n) + "]";
      if (nan) {
        EXPECT_EQ(f2u(got), kCanonicalNan) << at << " should be the canonical NaN";
        ++c.special;
      } else if (mag > FLT_MAX / 2) {  // partial sums may overflow, to either sign
        ++c.skipped;
      } else if (pos_inf || neg_inf) {
        if (pos_inf && neg_inf) EXPECT_EQ(f2u(got), kCanonicalNan) << at << " should be the canonical NaN";
        else EXPECT_EQ(got, pos_inf ? INFINITY : -INFINITY) << at;
        ++c.special;
      } else {
        EXPECT_LE(std::fabs(got - sum), 1e-5 * mag + (K + 20) * 0x1p-149) << at << " exact " << sum;
        ++c.finite;
      }
    }
}

// Runs fast, portable and reference; checks fast == portable bitwise, each against the exact
// product, and (batch kernel) fast == reference bitwise.
void check_problem(const Problem& p, const std::string& what, Checked& c) {
  const size_t ny = static_cast<size_t>(p.M * p.w.rows);
  std::vector<float> y(ny, -1.0f), y_port(ny, -2.0f), y_ref(ny, -3.0f);
  packed_linear(p.w, p.x.data(), p.M, p.bias_ptr(), y.data());
  packed_linear_portable(p.w, p.x.data(), p.M, p.bias_ptr(), y_port.data());
  packed_linear_reference(p.w, p.x.data(), p.M, p.bias_ptr(), y_ref.data());
  EXPECT_BITWISE(y, y_port, what + " fast vs portable");
  if (p.M >= kPackedBatchRows || !packed_linear_is_fused(p.w.codec))
    EXPECT_BITWISE(y, y_ref, what + " batch kernel vs reference");
  Checked unused;
  expect_near_exact(p, y, what + " fast", c);
  expect_near_exact(p, y_ref, what + " reference", unused);
}

std::vector<float> random_x(std::mt19937& rng, int64_t n) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = u(rng);
  return x;
}

// Every scale code and every element code, padding codes included (they must be ignored): rows
// cycle through the 256 scale codes block by block; element j of row n gets code (5j + 3n) mod
// 2^bits, in odd rows with NaN/Inf codes replaced by 0.
TEST(PackedGemm, EveryCodeAndScaleAgainstExactProduct) {
  std::mt19937 rng(5);
  for (const std::string& name : fused_codecs())
    for (const int64_t K : {int64_t(64), int64_t(80)}) {  // NVFP4 K = 80: 5 blocks, a half span
      const Codec codec = Codec::make(name);
      const int64_t nb = codec.num_blocks(K), N = (256 + nb - 1) / nb;
      const std::vector<float> ones(static_cast<size_t>(N * K), 1.0f);
      Problem p;
      p.w = codec.encode(ones.data(), N, K);
      p.w.global_decode_scale = 0.37f;  // NVFP4: any stored S_dec
      std::vector<uint8_t> codes(static_cast<size_t>(nb * codec.block_size(K)));
      const float* lut = decode_lut(*codec.element_format());
      for (int64_t n = 0; n < N; ++n) {
        for (size_t j = 0; j < codes.size(); ++j) {
          codes[j] = static_cast<uint8_t>((5 * j + 3 * n) & ((1u << codec.element_bits()) - 1));
          if (n % 2 && !std::isfinite(lut[codes[j]])) codes[j] = 0;  // odd rows: finite codes only
        }
        pack_codes(codes.data(), static_cast<int64_t>(codes.size()), codec.element_bits(),
                   p.w.codes.data() + n * codec.bytes_per_row(K));
        for (int64_t b = 0; b < nb; ++b) p.w.scale_codes[n * nb + b] = static_cast<uint8_t>((n * nb + b) % 256);
      }
      Checked c;
      for (const int64_t M : {int64_t(1), int64_t(3), int64_t(64)}) {
        p.M = M;
        p.x = random_x(rng, M * K);
        p.x[0] = 0.0f;  // 0 x Inf terms give NaN
        p.bias = M == 3 ? random_x(rng, N) : std::vector<float>{};
        check_problem(p, name + " K=" + std::to_string(K) + " M=" + std::to_string(M), c);
      }
      EXPECT_GT(c.finite, 2 * c.skipped) << name << ": too few outputs checked";
      EXPECT_GT(c.special, 0) << name << ": no NaN/Inf output exercised";
    }
}

// Encoded random weights (the real use), ragged K, every M from 1 to 17 and 64, bias or none.
TEST(PackedGemm, EncodedWeightsRaggedShapes) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_int_distribution<int> ex(-6, 6);
  const std::pair<int64_t, int64_t> shapes[] = {{1, 1}, {5, 31}, {7, 33}, {13, 100}, {6, 256}, {9, 1000}};
  for (const std::string& name : fused_codecs())
    for (auto [N, K] : shapes) {
      std::vector<float> wf(static_cast<size_t>(N * K));
      for (float& v : wf) v = std::ldexp(nd(rng), ex(rng));
      Problem p;
      p.w = Codec::make(name).encode(wf.data(), N, K);
      for (const int64_t M : {1, 2, 3, 4, 5, 15, 16, 17, 64}) {
        p.M = M;
        p.x = random_x(rng, M * K);
        p.bias = M % 2 ? random_x(rng, N) : std::vector<float>{};
        Checked c;
        check_problem(p, name + " [" + std::to_string(N) + "x" + std::to_string(K) + "] M=" + std::to_string(M), c);
        EXPECT_EQ(c.finite, M * N);
      }
    }
}

// A row's result does not depend on the other rows of its kernel's batch.
TEST(PackedGemm, RowsIndependentOfBatchSplit) {
  std::mt19937 rng(3);
  const int64_t N = 11, K = 200;
  const std::vector<float> wf = random_x(rng, N * K);
  for (const std::string& name : fused_codecs()) {
    const EncodedTensor w = Codec::make(name).encode(wf.data(), N, K);
    const std::vector<float> x = random_x(rng, 7 * K);
    std::vector<float> all(static_cast<size_t>(7 * N)), one(static_cast<size_t>(N));
    packed_linear(w, x.data(), 7, nullptr, all.data());
    for (int64_t m = 0; m < 7; ++m) {
      packed_linear(w, x.data() + m * K, 1, nullptr, one.data());
      EXPECT_BITWISE(std::vector<float>(all.begin() + m * N, all.begin() + (m + 1) * N), one, name + " row " + std::to_string(m));
    }
  }
}

TEST(PackedGemm, SameBitsForOneAndTwoThreads) {
  std::mt19937 rng(9);
  const int64_t N = 258, K = 264;  // N*K above kParallelMinElements; N not a multiple of 4 or 6
  const std::vector<float> wf = random_x(rng, N * K);
  const int saved = omp_get_max_threads();
  for (const std::string& name : fused_codecs()) {
    const EncodedTensor w = Codec::make(name).encode(wf.data(), N, K);
    for (const int64_t M : {int64_t(1), int64_t(3), int64_t(64)}) {
      const std::vector<float> x = random_x(rng, M * K), bias = random_x(rng, N);
      std::vector<float> y1(static_cast<size_t>(M * N)), y2(y1.size()), p1(y1.size()), p2(y1.size());
      omp_set_num_threads(1);
      packed_linear(w, x.data(), M, bias.data(), y1.data());
      packed_linear_portable(w, x.data(), M, bias.data(), p1.data());
      omp_set_num_threads(2);
      packed_linear(w, x.data(), M, bias.data(), y2.data());
      packed_linear_portable(w, x.data(), M, bias.data(), p2.data());
      EXPECT_BITWISE(y1, y2, name + " 1 vs 2 threads, M=" + std::to_string(M));
      EXPECT_BITWISE(p1, p2, name + " portable 1 vs 2 threads, M=" + std::to_string(M));
      EXPECT_BITWISE(y1, p1, name + " fast vs portable, M=" + std::to_string(M));
    }
  }
  omp_set_num_threads(saved);
}

// INT codecs are decoded first, then multiplied in the reference order.
TEST(PackedGemm, IntCodecsDecodeThenMultiply) {
  std::mt19937 rng(2);
  const int64_t N = 9, K = 70;
  const std::vector<float> wf = random_x(rng, N * K);
  for (const std::string& name : Codec::names()) {
    if (packed_linear_is_fused(name)) continue;
    Problem p;
    p.w = Codec::make(name, {ScaleRule::kFloor, 32, std::nullopt}).encode(wf.data(), N, K);
    for (const int64_t M : {int64_t(1), int64_t(20)}) {
      p.M = M;
      p.x = random_x(rng, M * K);
      Checked c;
      check_problem(p, name + " M=" + std::to_string(M), c);
      EXPECT_EQ(c.finite, M * N);
    }
  }
}

TEST(PackedGemm, InconsistentWeightsAndPointersThrow) {
  const std::vector<float> wf(4 * 40, 0.5f), x(40, 1.0f);
  std::vector<float> y(4);
  const EncodedTensor good = Codec::make("mxfp4").encode(wf.data(), 4, 40);
  EncodedTensor truncated = good;
  truncated.codes.pop_back();
  EXPECT_THROW(packed_linear(truncated, x.data(), 1, nullptr, y.data()), Error);
  EncodedTensor few_scales = good;
  few_scales.scale_codes.pop_back();
  EXPECT_THROW(packed_linear(few_scales, x.data(), 1, nullptr, y.data()), Error);
  EncodedTensor unknown = good;
  unknown.codec = "mxfp5";
  EXPECT_THROW(packed_linear(unknown, x.data(), 1, nullptr, y.data()), Error);
  EXPECT_THROW(packed_linear(good, nullptr, 1, nullptr, y.data()), Error);
  EXPECT_THROW(packed_linear(good, x.data(), 1, nullptr, nullptr), Error);
  EXPECT_THROW(packed_linear(good, x.data(), -1, nullptr, y.data()), Error);
  packed_linear(good, nullptr, 0, nullptr, nullptr);  // empty batch: nothing to do
}

}  // namespace
}  // namespace mxqat::quant
