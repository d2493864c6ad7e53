// Elementwise ops: broadcasting arithmetic, scalar ops, activations and dropout.
// Not here: reductions (reduce.cpp), softmax (softmax.cpp). Loops run over fixed chunks, so the
// bits never depend on the thread count (row_kernels.h); Eigen arrays give the SIMD math.
#include <unsupported/Eigen/SpecialFunctions>

#include <algorithm>

#include "autograd/ops.h"
#include "autograd/ops/broadcast.h"
#include "autograd/ops/saved.h"

namespace mxqat::autograd {

using detail::for_chunks;
using detail::make_node_y;
using detail::sum_to;

namespace {

// y = f(a, b) with NumPy broadcasting; `op` names the caller in shape errors.
template <class F>
Tensor broadcast_op(const char* op, const Tensor& a, const Tensor& b, F f) {
  Tensor y = Tensor::uninit(detail::broadcast_shape(op, a.shape(), b.shape()));
  detail::broadcast_binary(detail::plan_broadcast(y.shape(), a.shape(), b.shape()), a.data(),
                           b.data(), y.data(), f);
  return y;
}

// y = f(x) chunk by chunk; f(xs, ys) gets Eigen array maps of one chunk.
template <class F>
Tensor map_chunks(const Tensor& x, F f) {
  Tensor y = Tensor::uninit(x.shape());
  for_chunks(x.size(), [&](int64_t i0, int64_t i1) {
    ConstArrMap xs(x.data() + i0, i1 - i0);
    ArrMap ys(y.data() + i0, i1 - i0);
    f(xs, ys);
  });
  return y;
}

// dx = dy * f(s), where s is what the forward saved (x or y, same shape as dy).
template <class F>
Tensor grad_chunks(const Tensor& dy, const Tensor& s, F f) {
  Tensor dx = Tensor::uninit(dy.shape());
  for_chunks(dy.size(), [&](int64_t i0, int64_t i1) {
    ConstArrMap dys(dy.data() + i0, i1 - i0), ss(s.data() + i0, i1 - i0);
    ArrMap dxs(dx.data() + i0, i1 - i0);
    f(dys, ss, dxs);
  });
  return dx;
}

Tensor negated(Tensor t) {
  t.arr() = -t.arr();
  return t;
}

}  // namespace

// y = a + b       da = sum_broadcast(dy)      db = sum_broadcast(dy)
Var add(const Var& a, const Var& b) {
  Tensor y = broadcast_op("add", a.value(), b.value(), [](float u, float v) { return u + v; });
  return make_node("add", std::move(y), {a, b},
                   [sa = a.shape(), sb = b.shape()](const Tensor& dy, GradSink& g) {
                     // (same shape: dy itself, copied only where an input's first gradient)
                     if (g.wants(0)) dy.shape() == sa ? g.add(0, dy) : g.add(0, sum_to(dy, sa));
                     if (g.wants(1)) dy.shape() == sb ? g.add(1, dy) : g.add(1, sum_to(dy, sb));
                   });
}

// y = a - b       da = sum_broadcast(dy)      db = -sum_broadcast(dy)
Var sub(const Var& a, const Var& b) {
  Tensor y = broadcast_op("sub", a.value(), b.value(), [](float u, float v) { return u - v; });
  return make_node("sub", std::move(y), {a, b},
                   [sa = a.shape(), sb = b.shape()](const Tensor& dy, GradSink& g) {
                     if (g.wants(0)) dy.shape() == sa ? g.add(0, dy) : g.add(0, sum_to(dy, sa));
                     if (g.wants(1)) g.add(1, negated(sum_to(dy, sb)));
                   });
}

// y = a * b       da = sum_broadcast(dy * b)  db = sum_broadcast(dy * a)
Var mul(const Var& a, const Var& b) {
  auto times = [](float u, float v) { return u * v; };
  Tensor y = broadcast_op("mul", a.value(), b.value(), times);
  return make_node("mul", std::move(y), {a, b},
                   [a, b, times](const Tensor& dy, GradSink& g) {
                     if (g.wants(0))
                       g.add(0, sum_to(broadcast_op("mul", dy, b.value(), times), a.shape()));
                     if (g.wants(1))
                       g.add(1, sum_to(broadcast_op("mul", dy, a.value(), times), b.shape()));
                   });
}

// y = a / b       da = sum_broadcast(dy / b)  db = sum_broadcast(-dy a / b^2) = sum(-(dy / b) y)
Var div(const Var& a, const Var& b) {
  Tensor y = broadcast_op("div", a.value(), b.value(), [](float u, float v) { return u / v; });
  return make_node_y("div", std::move(y), {a, b},
                     [a, b](const Tensor& y, const Tensor& dy, GradSink& g) {
                       Tensor dy_b = broadcast_op("div", dy, b.value(),
                                                  [](float u, float v) { return u / v; });
                       if (g.wants(1)) {
                         Tensor db(dy_b.shape());
                         db.arr() = -(dy_b.arr() * y.arr());
                         g.add(1, sum_to(std::move(db), b.shape()));
                       }
                       if (g.wants(0)) g.add(0, sum_to(std::move(dy_b), a.shape()));
                   });
}

// y = a + s       da = dy
Var add_scalar(const Var& a, float s) {
  Tensor y = map_chunks(a.value(), [s](auto& xs, auto& ys) { ys = xs + s; });
  return make_node("add_scalar", std::move(y), {a},
                   [](const Tensor& dy, GradSink& g) { g.add(0, dy); });
}

// y = a * s       da = s dy
Var mul_scalar(const Var& a, float s) {
  Tensor y = map_chunks(a.value(), [s](auto& xs, auto& ys) { ys = xs * s; });
  return make_node("mul_scalar", std::move(y), {a}, [s](const Tensor& dy, GradSink& g) {
    g.add(0, map_chunks(dy, [s](auto& ds, auto& dxs) { dxs = ds * s; }));
  });
}

// y = -a (exact: multiplying by -1 only flips the sign bit)
Var neg(const Var& a) { return mul_scalar(a, -1.f); }

// y = max(x, 0)   dx = dy [y > 0]   (subgradient 0 at x = 0, as PyTorch)
Var relu(const Var& x) {
  Tensor y = map_chunks(x.value(), [](auto& xs, auto& ys) { ys = xs.max(0.f); });
  return make_node_y("relu", std::move(y), {x}, [](const Tensor& y, const Tensor& dy, GradSink& g) {
    g.add(0, grad_chunks(dy, y, [](auto& d, auto& ys, auto& dx) {
            const float *dyv = d.data(), *yv = ys.data();
            float* out = dx.data();
#pragma omp simd
            for (Eigen::Index i = 0; i < d.size(); ++i) out[i] = yv[i] > 0.f ? dyv[i] : 0.f;
          }));
  });
}

constexpr float kRsqrt2 = 0.70710678118654752f, kRsqrt2Pi = 0.39894228040143268f;

// y = x Phi(x) = x/2 (1 + erf(x / sqrt2))     dx = dy (Phi(x) + x phi(x)),
// phi(x) = exp(-x^2/2) / sqrt(2 pi)
Var gelu(const Var& x) {
  Tensor y = map_chunks(x.value(), [](auto& xs, auto& ys) {
    ys = 0.5f * xs * (1.f + (xs * kRsqrt2).erf());
  });
  return make_node("gelu", std::move(y), {x}, [x](const Tensor& dy, GradSink& g) {
    g.add(0, grad_chunks(dy, x.value(), [](auto& d, auto& xs, auto& dx) {
            dx = d * (0.5f * (1.f + (xs * kRsqrt2).erf()) +
                      xs * kRsqrt2Pi * (-0.5f * xs.square()).exp());
          }));
  });
}

// y = x s(x), s = sigmoid       dx = dy s(x) (1 + x (1 - s(x)))
Var silu(const Var& x) {
  Tensor y = map_chunks(x.value(), [](auto& xs, auto& ys) { ys = xs * xs.logistic(); });
  return make_node("silu", std::move(y), {x}, [x](const Tensor& dy, GradSink& g) {
    g.add(0, grad_chunks(dy, x.value(), [](auto& d, auto& xs, auto& dx) {
            const Eigen::ArrayXf s = xs.logistic();
            dx = d * s * (1.f + xs * (1.f - s));
          }));
  });
}

// y = tanh(x)     dx = dy (1 - y^2)
Var tanh(const Var& x) {
  Tensor y = map_chunks(x.value(), [](auto& xs, auto& ys) { ys = xs.tanh(); });
  return make_node_y("tanh", std::move(y), {x}, [](const Tensor& y, const Tensor& dy, GradSink& g) {
    g.add(0, grad_chunks(dy, y, [](auto& d, auto& ys, auto& dx) { dx = d * (1.f - ys.square()); }));
  });
}

// y = 1 / (1 + exp(-x))     dx = dy y (1 - y)
Var sigmoid(const Var& x) {
  Tensor y = map_chunks(x.value(), [](auto& xs, auto& ys) { ys = xs.logistic(); });
  return make_node_y("sigmoid", std::move(y), {x}, [](const Tensor& y, const Tensor& dy, GradSink& g) {
    g.add(0, grad_chunks(dy, y, [](auto& d, auto& ys, auto& dx) { dx = d * ys * (1.f - ys); }));
  });
}

// y = exp(x)      dx = dy y
Var exp(const Var& x) {
  Tensor y = map_chunks(x.value(), [](auto& xs, auto& ys) { ys = xs.exp(); });
  return make_node_y("exp", std::move(y), {x}, [](const Tensor& y, const Tensor& dy, GradSink& g) {
    g.add(0, grad_chunks(dy, y, [](auto& d, auto& ys, auto& dx) { dx = d * ys; }));
  });
}

// y = log(x)      dx = dy / x
Var log(const Var& x) {
  Tensor y = map_chunks(x.value(), [](auto& xs, auto& ys) { ys = xs.log(); });
  return make_node("log", std::move(y), {x}, [x](const Tensor& dy, GradSink& g) {
    g.add(0, grad_chunks(dy, x.value(), [](auto& d, auto& xs, auto& dx) { dx = d / xs; }));
  });
}

// y = sqrt(x)     dx = dy / (2 y)
Var sqrt(const Var& x) {
  Tensor y = map_chunks(x.value(), [](auto& xs, auto& ys) { ys = xs.sqrt(); });
  return make_node_y("sqrt", std::move(y), {x}, [](const Tensor& y, const Tensor& dy, GradSink& g) {
    g.add(0, grad_chunks(dy, y, [](auto& d, auto& ys, auto& dx) { dx = d * 0.5f / ys; }));
  });
}

namespace {
inline uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// 32-bit integer finaliser (lowbias32, C. Wellons): cheap and vectorisable.
inline uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

// out[i] = keep(g) ? in[i] * scale : 0 with g = offset + i, keep(g) = mix32(mix32(g ^ k0) + k1)
// >= p * 2^32, (k0, k1) = splitmix64(seed-hash ^ (g >> 32)): a keyed hash of (seed, g), 32-bit
// lanes in the loop. The key is constant between multiples of 2^32 of g; a chunk is split there
// (with offset 0 chunk boundaries divide 2^32, so no chunk is).
void dropout_apply(const Tensor& in, Tensor& out, float p, uint64_t seed, uint64_t offset) {
  const uint64_t base = splitmix64(seed);
  const auto threshold = static_cast<uint32_t>(static_cast<double>(p) * 4294967296.0);
  const float scale = 1.f / (1.f - p);
  const float* src = in.data();
  float* dst = out.data();
  for_chunks(in.size(), [=](int64_t c0, int64_t c1) {
    for (int64_t i0 = c0, i1; i0 < c1; i0 = i1) {
      const uint64_t g = offset + static_cast<uint64_t>(i0);
      const uint64_t to_boundary = (uint64_t(1) << 32) - (g & 0xffffffffull);
      i1 = static_cast<int64_t>(std::min<uint64_t>(static_cast<uint64_t>(c1), static_cast<uint64_t>(i0) + to_boundary));
      const uint64_t key = splitmix64(base ^ (g >> 32));
      const auto k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
      const uint32_t thr = threshold;  // locals: no reloads through the closure in the loop
      const float sc = scale;
      const float* s = src + i0;
      float* d = dst + i0;
      const auto first = static_cast<uint32_t>(g);
      const auto len = static_cast<uint32_t>(i1 - i0);
#pragma omp simd
      for (uint32_t j = 0; j < len; ++j) {
        const uint32_t h = mix32(mix32((first + j) ^ k0) + k1);
        d[j] = s[j] * (h >= thr ? sc : 0.f);
      }
    }
  });
}
}  // namespace

// y = x m / (1 - p), m[i] ~ Bernoulli(1 - p) from a hash of (seed, i)     dx = dy m / (1 - p)
// The mask is recomputed in backward from (seed, i), so nothing but the seed is saved.
Var dropout(const Var& x, float p, uint64_t seed, bool training, uint64_t offset) {
  MXQAT_CHECK(p >= 0.f && p < 1.f, "dropout: p must be in [0, 1), got ", p);
  if (!training || p == 0.f) return x;
  Tensor y(x.shape());
  dropout_apply(x.value(), y, p, seed, offset);
  return make_node("dropout", std::move(y), {x}, [p, seed, offset](const Tensor& dy, GradSink& g) {
    Tensor dx(dy.shape());
    dropout_apply(dy, dx, p, seed, offset);
    g.add(0, std::move(dx));
  });
}

}  // namespace mxqat::autograd
