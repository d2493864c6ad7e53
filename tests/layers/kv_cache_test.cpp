// Incremental decoding with the KV cache: logits equal the full forward's (a prompt at once, then
// one token per step), a quantized cache stores exactly codec.fake_quant of [heads, head_dim] rows
// (ragged blocks for head_dim 48) and moves the logits a little, attention over the cache has the
// same bits on 1 and 2 threads, and the refusals (past the context, unknown codec).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <random>

#include "layers/gpt.h"
#include "quant/codec/codec.h"
#include "tests/test_util.h"

namespace mxqat::layers {
namespace {

using autograd::Tensor;

// head_dim 48: MX blocks of 32 are ragged (32 + 16) within each head.
GptConfig small_config() {
  GptConfig c;
  c.vocab = 11, c.layers = 2, c.d_model = 96, c.heads = 2, c.context = 10, c.mlp_hidden = 40;
  return c;
}

const std::vector<int32_t> kIds{3, 1, 4, 1, 5, 9, 2, 6, 5, 3};

// Logits of every position by incremental decoding: the first `prompt` ids at once, then one by one.
Tensor incremental(Gpt& m, KvCache& cache, int64_t prompt) {
  const int64_t V = m.config().vocab, T = static_cast<int64_t>(kIds.size());
  Tensor out({T, V});
  const Tensor first = m.forward_cached({kIds.begin(), kIds.begin() + prompt}, cache).value();
  std::copy(first.data(), first.data() + first.size(), out.data());
  for (int64_t t = prompt; t < T; ++t) {
    const Tensor y = m.forward_cached({kIds[size_t(t)]}, cache).value();
    std::copy(y.data(), y.data() + V, out.data() + t * V);
  }
  return out;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  double d = 0;
  for (int64_t i = 0; i < a.size(); ++i) d = std::max(d, double(std::fabs(a[i] - b[i])));
  return d;
}

TEST(KvCache, IncrementalDecodingEqualsFullForward) {
  Gpt m(small_config(), 4);
  const Tensor full = m.forward_ids(kIds, 10).value().reshaped({10, 11});
  for (int64_t prompt : {1, 4, 10}) {
    KvCache cache(m.config());
    const Tensor inc = incremental(m, cache, prompt);
    EXPECT_EQ(cache.length(), 10);
    // Projections are bit-identical (one fma chain per GEMM output); only the attention sums
    // round differently from causal_attention's (its own loops against gemm chains).
    EXPECT_LT(max_abs_diff(inc, full), 2e-5) << "prompt " << prompt;
  }
  // The last position's logits: a one-token step after a prefix equals forward on the prefix.
  KvCache cache(m.config());
  m.forward_cached({kIds.begin(), kIds.begin() + 6}, cache);
  const Tensor step = m.forward_cached({kIds[6]}, cache).value();
  const Tensor pre = m.forward_ids({kIds.begin(), kIds.begin() + 7}, 7).value();
  for (int64_t j = 0; j < 11; ++j) EXPECT_NEAR(step[j], pre[6 * 11 + j], 2e-5) << j;
}

// Grouped-query attention: 4 query heads over 2 stored key/value heads (head_dim 24); the cache
// holds only the key/value heads, and decoding still equals the full forward.
TEST(KvCache, GroupedQueryDecodingEqualsFullForwardAndStoresKvHeadsOnly) {
  GptConfig c = small_config();
  c.heads = 4, c.kv_heads = 2;
  Gpt m(c, 4);
  const Tensor full = m.forward_ids(kIds, 10).value().reshaped({10, 11});
  for (int64_t prompt : {1, 5}) {
    KvCache cache(m.config());
    EXPECT_LT(max_abs_diff(incremental(m, cache, prompt), full), 2e-5) << "prompt " << prompt;
  }
  EXPECT_EQ(KvCache(c).bytes_per_token(), 2 * 2 * 48 * 4);  // K and V, 2 layers, 2 x 24 floats
  EXPECT_EQ(KvCache(c, "mxfp8_e4m3").bytes_per_token(), 2 * 2 * 2 * (24 + 1));
  // One stored position: query head h returns stored value head h / 2.
  Tensor k({1, 48}), v({1, 48}), q({1, 96});
  for (int64_t i = 0; i < 48; ++i) k[i] = 0.1f * float(i), v[i] = float(i);
  for (int64_t i = 0; i < 96; ++i) q[i] = 1.f;
  KvCache cache(c);
  cache.store(0, k, v);
  const Tensor got = cache.attend(0, q);
  for (int64_t h = 0; h < 4; ++h)
    for (int64_t d = 0; d < 24; ++d) EXPECT_EQ(got[h * 24 + d], v[h / 2 * 24 + d]) << h << " " << d;
  testing::expect_error([&] { cache.store(0, q, q); }, {"must be [n, 48]"});
}

TEST(KvCache, QuantizedCacheStoresCodecRowsPerHead) {
  const GptConfig c = small_config();
  std::mt19937_64 rng(9);
  std::normal_distribution<float> nd(0.f, 2.f);
  Tensor k({1, 96}), v({1, 96}), q({1, 96});
  for (int64_t i = 0; i < 96; ++i) k[i] = nd(rng), v[i] = nd(rng), q[i] = nd(rng);
  v[5] = 40.f;  // an outlier in head 0's first block only
  for (const std::string name : {"mxfp8_e4m3", "int8_sym", "mxfp4"}) {
    KvCache cache(c, name);
    for (int64_t l = 0; l < c.layers; ++l) cache.store(l, k, v);
    // One stored position: softmax weight exactly 1, so attention returns the stored v row.
    const Tensor got = cache.attend(1, q);
    Tensor want({2, 48});
    quant::Codec::make(name).fake_quant(v.data(), 2, 48, want.data());
    for (int64_t i = 0; i < 96; ++i) EXPECT_EQ(got[i], want[i]) << name << " " << i;  // -0 = +0
    EXPECT_GT(max_abs_diff(got, v), 0.0) << name << " left v unquantized";
  }
  KvCache plain(c);
  plain.store(0, k, v);
  EXPECT_TRUE(plain.attend(0, q).same_bits(v));
  // Packed bytes per position, K and V of 2 layers of 2 heads: float32 = 2*2*96*4; per head row
  // of 48: mxfp8 48 codes + 2 E8M0 scales (blocks 32 and 16), mxfp4 24 + 2, int8_sym 48 + a
  // float32 scale.
  EXPECT_EQ(plain.bytes_per_token(), 2 * 2 * 96 * 4);
  EXPECT_EQ(KvCache(c, "mxfp8_e4m3").bytes_per_token(), 2 * 2 * 2 * (48 + 2));
  EXPECT_EQ(KvCache(c, "mxfp4").bytes_per_token(), 2 * 2 * 2 * (24 + 2));
  EXPECT_EQ(KvCache(c, "int8_sym").bytes_per_token(), 2 * 2 * 2 * (48 + 4));
}

TEST(KvCache, QuantizedCacheMovesLogitsButStaysClose) {
  Gpt m(small_config(), 4);
  const Tensor full = m.forward_ids(kIds, 10).value().reshaped({10, 11});
  double spread = 0;
  for (int64_t i = 0; i < full.size(); ++i) spread = std::max(spread, double(std::fabs(full[i])));
  for (const char* name : {"mxfp8_e4m3", "int8_sym"}) {
    KvCache cache(m.config(), name);
    const Tensor inc = incremental(m, cache, 3);
    const double d = max_abs_diff(inc, full);
    EXPECT_GT(d, 1e-4) << name << ": the quantized cache changed nothing";
    EXPECT_LT(d, 0.05 * spread) << name;
  }
}

TEST(KvCache, AttentionHasTheSameBitsOnOneAndTwoThreads) {
  GptConfig c = small_config();
  c.context = 64;
  std::mt19937_64 rng(2);
  std::normal_distribution<float> nd;
  Tensor k({64, 96}), v({64, 96}), q({64, 96});
  for (Tensor* t : {&k, &v, &q})
    for (int64_t i = 0; i < t->size(); ++i) (*t)[i] = nd(rng);
  KvCache cache(c);
  cache.store(0, k, v);
  const int before = omp_get_max_threads();
  omp_set_num_threads(1);
  const Tensor one = cache.attend(0, q);
  omp_set_num_threads(2);
  const Tensor two = cache.attend(0, q);
  omp_set_num_threads(before);
  EXPECT_TRUE(one.same_bits(two));
}

TEST(KvCache, RefusesToGrowPastTheContextAndUnknownCodecs) {
  Gpt m(small_config(), 4);
  KvCache cache(m.config());
  m.forward_cached(kIds, cache);  // 10 of 10
  testing::expect_error([&] { m.forward_cached({1}, cache); },
                        {"holds 10 of 10 positions", "1 more tokens"});
  EXPECT_EQ(cache.length(), 10);
  cache.clear();
  testing::expect_error([&] { m.forward_cached(std::vector<int32_t>(11, 1), cache); },
                        {"holds 0 of 10", "11 more"});
  testing::expect_error([&] { KvCache bad(m.config(), "fp5"); }, {"unknown kv_cache codec 'fp5'"});
  testing::expect_error([&] { KvCache bad(m.config(), "none", 11); }, {"capacity 11", "context of 10"});
}

}  // namespace
}  // namespace mxqat::layers
