// Helpers of the codec tests: bitwise comparisons and run_all, which runs every path of a codec
// (fast and reference encode/decode/fake_quant, the portable build) on one input and checks
// that they agree bit for bit before returning the result.
#pragma once
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "quant/codec/codec.h"
#include "quant/codec/pack.h"

namespace mxqat::quant::testing {

inline std::vector<uint32_t> bits_of(const std::vector<float>& v) {
  std::vector<uint32_t> b(v.size());
  if (!v.empty()) std::memcpy(b.data(), v.data(), v.size() * 4);
  return b;
}

// First index where a and b differ bitwise, or -1.
inline int64_t first_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (f2u(a[i]) != f2u(b[i])) return static_cast<int64_t>(i);
  return -1;
}

#define EXPECT_BITWISE(a, b, what)                                                             \
  do {                                                                                         \
    const int64_t d_ = ::mxqat::quant::testing::first_diff((a), (b));                          \
    EXPECT_EQ(d_, -1) << (what) << ": first difference at " << d_ << " (" << (a)[d_ < 0 ? 0 : d_] \
                      << " vs " << (b)[d_ < 0 ? 0 : d_] << ")";                                \
  } while (0)

inline void expect_same_encoded(const EncodedTensor& a, const EncodedTensor& b, const std::string& what) {
  EXPECT_EQ(a.codec, b.codec) << what;
  EXPECT_EQ(a.rows, b.rows) << what;
  EXPECT_EQ(a.cols, b.cols) << what;
  EXPECT_EQ(a.block_size, b.block_size) << what;
  EXPECT_EQ(a.codes, b.codes) << what << ": codes";
  EXPECT_EQ(a.scale_codes, b.scale_codes) << what << ": scale codes";
  EXPECT_EQ(bits_of(a.scales), bits_of(b.scales)) << what << ": scales";
  EXPECT_EQ(a.zero_points, b.zero_points) << what << ": zero points";
  EXPECT_EQ(f2u(a.global_amax), f2u(b.global_amax)) << what;
  EXPECT_EQ(f2u(a.global_encode_scale), f2u(b.global_encode_scale)) << what;
  EXPECT_EQ(f2u(a.global_decode_scale), f2u(b.global_decode_scale)) << what;
}

struct RunResult {
  EncodedTensor e;
  std::vector<uint8_t> codes;  // unpacked element codes [R, nb * G]
  std::vector<float> y;        // fake_quant output [R, K]
  std::vector<uint8_t> mask;   // [R, K]
};

// Runs all paths on x [R, K] and checks: encode == encode_reference; decode(e) ==
// decode_reference(e) == fake_quant == fake_quant_reference == fake_quant_portable (bitwise);
// the three masks agree; padding codes are 0.
inline RunResult run_all(const Codec& c, const std::vector<float>& x, int64_t R, int64_t K) {
  const std::string what = c.name() + " [" + std::to_string(R) + "x" + std::to_string(K) + "]";
  const size_t n = static_cast<size_t>(R * K);
  RunResult res;
  std::vector<uint8_t> mask_ref(n, 7), mask_port(n, 7);
  res.mask.assign(n, 7);
  res.e = c.encode(x.data(), R, K);
  const EncodedTensor e_ref = c.encode_reference(x.data(), R, K, mask_ref.data());
  expect_same_encoded(res.e, e_ref, what + " encode vs reference");
  std::vector<float> y_dec(n), y_dec_ref(n), y_ref(n), y_port(n);
  c.decode(res.e, y_dec.data());
  c.decode_reference(res.e, y_dec_ref.data());
  res.y.assign(n, 0.0f);
  c.fake_quant(x.data(), R, K, res.y.data(), res.mask.data());
  c.fake_quant_reference(x.data(), R, K, y_ref.data());
  c.fake_quant_portable(x.data(), R, K, y_port.data(), mask_port.data());
  EXPECT_BITWISE(y_dec, y_dec_ref, what + " decode vs decode_reference");
  EXPECT_BITWISE(res.y, y_dec, what + " fake_quant vs decode(encode)");
  EXPECT_BITWISE(y_ref, y_dec, what + " fake_quant_reference vs decode(encode)");
  EXPECT_BITWISE(y_port, y_dec, what + " fake_quant_portable vs decode(encode)");
  EXPECT_EQ(res.mask, mask_ref) << what << ": fake_quant mask vs reference";
  EXPECT_EQ(mask_port, mask_ref) << what << ": portable mask vs reference";
  // fake_quant without a mask gives the same values.
  std::vector<float> y_nomask(n);
  c.fake_quant(x.data(), R, K, y_nomask.data(), nullptr);
  EXPECT_BITWISE(y_nomask, res.y, what + " fake_quant without mask");
  const int64_t G = c.block_size(K), nb = c.num_blocks(K), bpr = c.bytes_per_row(K);
  res.codes.assign(static_cast<size_t>(R * nb * G), 0);
  for (int64_t r = 0; r < R; ++r) {
    unpack_codes_reference(res.e.codes.data() + r * bpr, nb * G, c.element_bits(), res.codes.data() + r * nb * G);
    for (int64_t j = K; j < nb * G; ++j)
      EXPECT_EQ(res.codes[static_cast<size_t>(r * nb * G + j)], 0) << what << ": padding code";
  }
  return res;
}

}  // namespace mxqat::quant::testing
