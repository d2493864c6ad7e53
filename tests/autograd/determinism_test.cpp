// Heavy ops give the same bits, forward and backward, for 1, 2 and 3 OpenMP threads. Sizes are
// chosen above the ops' parallel thresholds so the parallel branches really run.
#include <gtest/gtest.h>

#include <tuple>
#include <omp.h>

#include <functional>
#include <random>

#include "autograd/kernels.h"
#include "autograd/ops.h"

namespace mxqat::autograd {
namespace {

using Fn = std::function<Var(const std::vector<Var>&)>;

Tensor random(const Shape& s, uint32_t seed) {
  Tensor t(s);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (int64_t i = 0; i < t.size(); ++i) t[i] = u(rng);
  return t;
}

// Output value followed by every input's gradient (backward seeded with a fixed random tensor).
std::vector<Tensor> run(const std::vector<Shape>& shapes, const Fn& f, int threads) {
  omp_set_num_threads(threads);
  std::vector<Var> xs;
  uint32_t seed = 11;
  for (const Shape& s : shapes) xs.emplace_back(random(s, seed++), true);
  Var y = f(xs);
  y.backward(random(y.shape(), 99));
  std::vector<Tensor> out{y.value()};
  for (const Var& x : xs) out.push_back(x.grad());
  return out;
}

void expect_same_bits_for_any_thread_count(const char* name, const std::vector<Shape>& shapes,
                                           const Fn& f) {
  SCOPED_TRACE(name);
  const int saved = omp_get_max_threads();
  const std::vector<Tensor> one = run(shapes, f, 1);
  for (int threads : {2, 3}) {
    const std::vector<Tensor> many = run(shapes, f, threads);
    ASSERT_EQ(one.size(), many.size());
    for (size_t i = 0; i < one.size(); ++i) {
      EXPECT_FALSE(one[i].empty()) << "tensor " << i << " is empty";
      EXPECT_TRUE(one[i].same_bits(many[i]))
          << (i == 0 ? "output" : "gradient of input " + std::to_string(i - 1)) << " differs with "
          << threads << " threads";
    }
  }
  omp_set_num_threads(saved);
}

TEST(Determinism, Gemm) {
  // The raw kernel with every transpose combination and accumulation, on shapes that split the
  // output along its rows (600 -> 2 parts) and along its columns (1100 -> 4 parts).
  for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{600, 270, 130}, {200, 1100, 96}}) {
  const Tensor a = random({m, k}, 1), b = random({k, n}, 2);
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      Tensor ref;
      for (int threads : {1, 2, 3}) {
        omp_set_num_threads(threads);
        Tensor c = random({m, n}, 3);
        gemm(a.data(), ta, b.data(), tb, c.data(), m, n, k, /*accumulate=*/true);
        if (threads == 1) ref = c;
        else EXPECT_TRUE(c.same_bits(ref)) << "ta " << ta << " tb " << tb << " threads " << threads;
      }
    }
  }
}

TEST(Determinism, MatmulAndLinear) {
  expect_same_bits_for_any_thread_count("matmul", {{300, 130}, {130, 270}},
      [](const std::vector<Var>& v) { return matmul(v[0], v[1]); });
  expect_same_bits_for_any_thread_count("bmm_shared_b_tb", {{3, 200, 64}, {300, 64}},
      [](const std::vector<Var>& v) { return matmul(v[0], v[1], false, true); });
  expect_same_bits_for_any_thread_count("linear", {{512, 256}, {300, 256}, {300}},
      [](const std::vector<Var>& v) { return linear(v[0], v[1], v[2]); });
}

TEST(Determinism, Conv2dAndPools) {
  expect_same_bits_for_any_thread_count("conv2d", {{8, 8, 16, 16}, {16, 8, 3, 3}, {16}},
      [](const std::vector<Var>& v) { return conv2d(v[0], v[1], v[2], 1, 1); });
  expect_same_bits_for_any_thread_count("max_pool2d", {{8, 16, 32, 32}},
      [](const std::vector<Var>& v) { return max_pool2d(v[0], 2, 2); });
  expect_same_bits_for_any_thread_count("avg_pool2d", {{8, 16, 32, 32}},
      [](const std::vector<Var>& v) { return avg_pool2d(v[0], 3, 2); });
}

TEST(Determinism, SoftmaxNormsAndLoss) {
  expect_same_bits_for_any_thread_count("softmax", {{256, 257}},
      [](const std::vector<Var>& v) { return softmax(v[0]); });
  expect_same_bits_for_any_thread_count("log_softmax_axis1", {{64, 33, 40}},
      [](const std::vector<Var>& v) { return log_softmax(v[0], 1); });
  expect_same_bits_for_any_thread_count("layernorm", {{256, 300}, {300}, {300}},
      [](const std::vector<Var>& v) { return layernorm(v[0], v[1], v[2]); });
  expect_same_bits_for_any_thread_count("rmsnorm", {{256, 300}, {300}},
      [](const std::vector<Var>& v) { return rmsnorm(v[0], v[1]); });
  std::vector<int32_t> labels(512);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int32_t>((i * 37) % 130);
  expect_same_bits_for_any_thread_count("cross_entropy", {{512, 130}},
      [&](const std::vector<Var>& v) { return cross_entropy(v[0], labels, 0.1f); });
  Tensor teacher({512, 130});
  for (int64_t i = 0; i < teacher.size(); ++i) teacher[i] = static_cast<float>((i * 7919) % 1000) / 250.f;
  expect_same_bits_for_any_thread_count("distill_kl", {{512, 130}},
      [&](const std::vector<Var>& v) { return distill_kl(v[0], teacher, 2.f); });
  expect_same_bits_for_any_thread_count("mse", {{300, 301}, {300, 301}},
      [](const std::vector<Var>& v) { return mse(v[0], v[1]); });
}

TEST(Determinism, ReductionsBroadcastAndDropout) {
  expect_same_bits_for_any_thread_count("sum_all", {{256, 513}},
      [](const std::vector<Var>& v) { return sum(v[0]); });
  expect_same_bits_for_any_thread_count("sum_rows", {{512, 300}},
      [](const std::vector<Var>& v) { return sum(v[0], {0}); });
  expect_same_bits_for_any_thread_count("mean_last", {{300, 400}},
      [](const std::vector<Var>& v) { return mean(v[0], {-1}, true); });
  expect_same_bits_for_any_thread_count("add_bcast", {{64, 40, 33}, {40, 1}},
      [](const std::vector<Var>& v) { return add(v[0], v[1]); });
  expect_same_bits_for_any_thread_count("mul_bcast", {{64, 40, 33}, {33}},
      [](const std::vector<Var>& v) { return mul(v[0], v[1]); });
  expect_same_bits_for_any_thread_count("gelu", {{300, 301}},
      [](const std::vector<Var>& v) { return gelu(v[0]); });
  expect_same_bits_for_any_thread_count("dropout", {{300, 301}},
      [](const std::vector<Var>& v) { return dropout(v[0], 0.2f, 1234, true); });
  std::vector<int32_t> ids(1024);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 13) % 97);
  expect_same_bits_for_any_thread_count("embedding", {{97, 256}},
      [&](const std::vector<Var>& v) { return embedding(v[0], ids); });
  expect_same_bits_for_any_thread_count("permute", {{16, 33, 20, 7}},
      [](const std::vector<Var>& v) { return permute(v[0], {0, 3, 1, 2}); });
}

}  // namespace
}  // namespace mxqat::autograd
