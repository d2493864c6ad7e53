// Test data shared by the qgemm suites (fake_test.cpp, lsq_test.cpp): normal values with a few
// large outliers, so that blocks saturate and small elements flush.
#pragma once
#include <random>
#include <utility>

#include "autograd/tensor.h"

namespace mxqat::quant {

// N(0, scale) with about one element in 41 twenty times larger.
inline autograd::Tensor random_tensor(autograd::Shape shape, uint32_t seed, float scale = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, scale);
  std::uniform_int_distribution<int> pick(0, 40);
  autograd::Tensor t(std::move(shape));
  for (int64_t i = 0; i < t.size(); ++i) t[i] = nd(rng) * (pick(rng) == 0 ? 20.f : 1.f);
  return t;
}

}  // namespace mxqat::quant
