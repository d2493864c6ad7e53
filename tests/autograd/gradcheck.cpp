// Gradient check of every op in autograd/ops.h: one table row per op (STYLE.md §11).
// Each row: input shapes, an input generator that keeps away from kinks, the function under
// test and a tolerance. The loss is sum(f(x) * r) with a fixed random r; its gradient from
// backward(r) is compared with central differences computed in double for every input element.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <numeric>
#include <random>
#include <sstream>
#include <string>

#include "autograd/ops.h"

namespace mxqat::autograd {
namespace {

enum class Gen {
  kUniform,     // U(-1, 1)
  kAwayFromZero,  // +-U(0.2, 1): relu's kink at 0 stays out of reach of the step
  kPositive,    // U(0.5, 2): log, sqrt, denominators
  kDistinct,    // a shuffled grid 0.05 apart: max_pool's argmax cannot flip
};

using Fn = std::function<Var(const std::vector<Var>&)>;

struct Row {
  const char* name;
  std::vector<Shape> shapes;
  Gen gen;
  Fn f;
  double tol = 1e-3;  // on |numeric - analytic| / max(1, |numeric|)
};

Tensor generate(const Shape& shape, Gen gen, std::mt19937& rng) {
  Tensor t(shape);
  std::uniform_real_distribution<float> u(-1.f, 1.f), mag(0.2f, 1.f), pos(0.5f, 2.f);
  if (gen == Gen::kDistinct) {
    std::vector<int64_t> perm(static_cast<size_t>(t.size()));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    for (int64_t i = 0; i < t.size(); ++i)
      t[i] = 0.05f * static_cast<float>(perm[static_cast<size_t>(i)] - t.size() / 2);
    return t;
  }
  for (int64_t i = 0; i < t.size(); ++i) {
    switch (gen) {
      case Gen::kUniform: t[i] = u(rng); break;
      case Gen::kAwayFromZero: t[i] = (u(rng) < 0 ? -1.f : 1.f) * mag(rng); break;
      default: t[i] = pos(rng); break;
    }
  }
  return t;
}

double weighted_sum(const Tensor& y, const Tensor& r) {
  double s = 0;
  for (int64_t i = 0; i < y.size(); ++i) s += static_cast<double>(y[i]) * r[i];
  return s;
}

struct CheckResult {
  double worst = 0;  // largest scaled error over all input elements
  std::string where;
};

// Compares backward with central differences for every element of every input.
CheckResult gradcheck(const std::vector<Tensor>& values, const Fn& f, uint32_t seed) {
  std::vector<Var> xs;
  for (const Tensor& v : values) xs.emplace_back(v, true);
  Var y = f(xs);
  std::mt19937 rng(seed);
  Tensor r = generate(y.shape(), Gen::kUniform, rng);
  y.backward(r);
  CheckResult res;
  NoGradGuard no_grad;
  for (size_t i = 0; i < xs.size(); ++i) {
    EXPECT_FALSE(xs[i].grad().empty()) << "input " << i << " received no gradient";
    if (xs[i].grad().empty()) continue;
    for (int64_t j = 0; j < values[i].size(); ++j) {
      std::vector<Var> probe;
      for (const Tensor& v : values) probe.emplace_back(v, false);
      const float x0 = values[i][j], h = 1e-2f * std::max(1.f, std::fabs(x0));
      probe[i].value()[j] = x0 + h;
      const double up = weighted_sum(f(probe).value(), r);
      const float x_up = probe[i].value()[j];
      probe[i].value()[j] = x0 - h;
      const double down = weighted_sum(f(probe).value(), r);
      const double numeric = (up - down) / (static_cast<double>(x_up) - probe[i].value()[j]);
      const double analytic = xs[i].grad()[j];
      const double err = std::fabs(numeric - analytic) / std::max(1.0, std::fabs(numeric));
      if (err > res.worst) {
        std::ostringstream os;
        os << "input " << i << " element " << j << ": numeric " << numeric << ", analytic "
           << analytic;
        res.worst = err;
        res.where = os.str();
      }
    }
  }
  return res;
}

Fn unary(Var (*op)(const Var&)) {
  return [op](const std::vector<Var>& v) { return op(v[0]); };
}
Fn binary(Var (*op)(const Var&, const Var&)) {
  return [op](const std::vector<Var>& v) { return op(v[0], v[1]); };
}
Fn mm(bool ta, bool tb) {
  return [ta, tb](const std::vector<Var>& v) { return matmul(v[0], v[1], ta, tb); };
}

const std::vector<int32_t> kLabels{2, 0, 4, 4};
const Tensor kTeacher({4, 5}, {0.3f, -1.2f, 2.0f, 0.1f, 0.7f, 1.5f, 0.2f, -0.4f, 0.9f, -2.f,
                               -0.6f, 0.8f, 0.0f, 1.1f, 2.5f, 0.5f, 0.5f, -0.3f, -1.f, 1.2f});

// clang-format off
const std::vector<Row> kRows = {
  // ---- matmul.cpp
  {"matmul",          {{3, 4}, {4, 5}},       Gen::kUniform, mm(false, false)},
  {"matmul_ta",       {{4, 3}, {4, 5}},       Gen::kUniform, mm(true, false)},
  {"matmul_tb",       {{3, 4}, {5, 4}},       Gen::kUniform, mm(false, true)},
  {"matmul_ta_tb",    {{4, 3}, {5, 4}},       Gen::kUniform, mm(true, true)},
  {"bmm",             {{2, 3, 4}, {2, 4, 5}}, Gen::kUniform, mm(false, false)},
  {"bmm_ta_tb",       {{2, 4, 3}, {2, 5, 4}}, Gen::kUniform, mm(true, true)},
  {"bmm_ta",          {{2, 4, 3}, {2, 4, 5}}, Gen::kUniform, mm(true, false)},
  {"bmm_shared_b",    {{2, 3, 4}, {4, 5}},    Gen::kUniform, mm(false, false)},
  {"bmm_shared_b_tb", {{2, 3, 4}, {5, 4}},    Gen::kUniform, mm(false, true)},
  {"linear",          {{3, 4}, {5, 4}, {5}},  Gen::kUniform,
   [](const std::vector<Var>& v) { return linear(v[0], v[1], v[2]); }},
  {"linear_3d_nobias", {{2, 3, 4}, {5, 4}},   Gen::kUniform,
   [](const std::vector<Var>& v) { return linear(v[0], v[1]); }},
  // ---- elementwise.cpp
  {"add",             {{3, 4}, {3, 4}},       Gen::kUniform, binary(add)},
  {"add_bcast_row",   {{2, 3, 4}, {4}},       Gen::kUniform, binary(add)},
  {"add_bcast_both",  {{2, 1, 4}, {3, 1}},    Gen::kUniform, binary(add)},
  {"add_scalar_t",    {{}, {2, 3}},           Gen::kUniform, binary(add)},
  {"sub_bcast",       {{2, 3}, {2, 1}},       Gen::kUniform, binary(sub)},
  {"sub_bcast_lhs",   {{1, 3}, {4, 2, 3}},    Gen::kUniform, binary(sub)},
  {"mul",             {{3, 4}, {3, 4}},       Gen::kUniform, binary(mul)},
  {"mul_bcast_mid",   {{2, 3, 4}, {3, 1}},    Gen::kUniform, binary(mul)},
  {"mul_bcast_4d",    {{2, 1, 3, 1}, {1, 2, 1, 4}}, Gen::kUniform, binary(mul)},
  {"div",             {{3, 4}, {3, 4}},       Gen::kPositive, binary(div)},
  {"div_bcast",       {{4}, {2, 3, 4}},       Gen::kPositive, binary(div)},
  {"fanout_mul_xx",   {{3, 4}},               Gen::kUniform,
   [](const std::vector<Var>& v) { return mul(v[0], v[0]); }},
  {"add_scalar",      {{3, 4}},               Gen::kUniform,
   [](const std::vector<Var>& v) { return add_scalar(v[0], 0.7f); }},
  {"mul_scalar",      {{3, 4}},               Gen::kUniform,
   [](const std::vector<Var>& v) { return mul_scalar(v[0], -1.5f); }},
  {"neg",             {{3, 4}},               Gen::kUniform, unary(neg)},
  {"relu",            {{4, 5}},               Gen::kAwayFromZero, unary(relu)},
  {"gelu",            {{4, 5}},               Gen::kUniform, unary(gelu)},
  {"silu",            {{4, 5}},               Gen::kUniform, unary(silu)},
  {"tanh",            {{4, 5}},               Gen::kUniform, unary(tanh)},
  {"sigmoid",         {{4, 5}},               Gen::kUniform, unary(sigmoid)},
  {"exp",             {{4, 5}},               Gen::kUniform, unary(exp)},
  {"log",             {{4, 5}},               Gen::kPositive, unary(log)},
  {"sqrt",            {{4, 5}},               Gen::kPositive, unary(sqrt)},
  {"dropout",         {{8, 16}},              Gen::kUniform,
   [](const std::vector<Var>& v) { return dropout(v[0], 0.3f, 7, true); }},
  // ---- reduce.cpp
  {"sum_all",         {{2, 3, 4}},            Gen::kUniform,
   [](const std::vector<Var>& v) { return sum(v[0]); }},
  {"sum_mid",         {{2, 3, 4}},            Gen::kUniform,
   [](const std::vector<Var>& v) { return sum(v[0], {1}); }},
  {"sum_outer_keep",  {{2, 3, 4}},            Gen::kUniform,
   [](const std::vector<Var>& v) { return sum(v[0], {0, 2}, true); }},
  {"sum_last",        {{2, 3, 4}},            Gen::kUniform,
   [](const std::vector<Var>& v) { return sum(v[0], {-1}); }},
  {"sum_4d_interleaved", {{2, 3, 2, 4}},      Gen::kUniform,
   [](const std::vector<Var>& v) { return sum(v[0], {0, 2}); }},
  {"mean_all",        {{3, 4}},               Gen::kUniform,
   [](const std::vector<Var>& v) { return mean(v[0]); }},
  {"mean_rows_keep",  {{3, 4}},               Gen::kUniform,
   [](const std::vector<Var>& v) { return mean(v[0], {0}, true); }},
  // ---- softmax.cpp
  {"softmax",         {{3, 5}},               Gen::kUniform,
   [](const std::vector<Var>& v) { return softmax(v[0]); }},
  {"softmax_axis1",   {{2, 3, 4}},            Gen::kUniform,
   [](const std::vector<Var>& v) { return softmax(v[0], 1); }},
  {"log_softmax",     {{3, 5}},               Gen::kUniform,
   [](const std::vector<Var>& v) { return log_softmax(v[0]); }},
  {"log_softmax_ax0", {{4, 3}},               Gen::kUniform,
   [](const std::vector<Var>& v) { return log_softmax(v[0], 0); }},
  // ---- loss.cpp
  {"cross_entropy",   {{4, 5}},               Gen::kUniform,
   [](const std::vector<Var>& v) { return cross_entropy(v[0], kLabels); }},
  {"cross_entropy_ls", {{4, 5}},              Gen::kUniform,
   [](const std::vector<Var>& v) { return cross_entropy(v[0], kLabels, 0.1f); }},
  {"distill_kl",      {{4, 5}},               Gen::kUniform,
   [](const std::vector<Var>& v) { return distill_kl(v[0], kTeacher, 1.f); }},
  {"distill_kl_t3",   {{4, 5}},               Gen::kUniform,
   [](const std::vector<Var>& v) { return distill_kl(v[0], kTeacher, 3.f); }},
  {"mse",             {{3, 4}, {3, 4}},       Gen::kUniform, binary(mse)},
  // ---- norm.cpp
  {"layernorm",       {{3, 6}, {6}, {6}},     Gen::kUniform,
   [](const std::vector<Var>& v) { return layernorm(v[0], v[1], v[2]); }},
  {"layernorm_nobeta", {{2, 2, 5}, {5}},      Gen::kUniform,
   [](const std::vector<Var>& v) { return layernorm(v[0], v[1], Var()); }},
  {"rmsnorm",         {{2, 3, 6}, {6}},       Gen::kUniform,
   [](const std::vector<Var>& v) { return rmsnorm(v[0], v[1]); }},
  // ---- embedding.cpp (repeated ids accumulate)
  {"embedding",       {{5, 4}},               Gen::kUniform,
   [](const std::vector<Var>& v) { return embedding(v[0], {1, 3, 1, 0, 4, 3}, {2, 3}); }},
  // ---- conv.cpp
  {"im2col_s2_p1",    {{2, 2, 5, 5}},         Gen::kUniform,
   [](const std::vector<Var>& v) { return im2col(v[0], 3, 3, 2, 1); }},
  {"im2col_rect",     {{1, 2, 4, 5}},         Gen::kUniform,
   [](const std::vector<Var>& v) { return im2col(v[0], 2, 3, 1, 0); }},
  {"conv2d_s1_p1",    {{2, 3, 5, 5}, {4, 3, 3, 3}, {4}}, Gen::kUniform,
   [](const std::vector<Var>& v) { return conv2d(v[0], v[1], v[2], 1, 1); }},
  {"conv2d_s2_nobias", {{2, 2, 6, 5}, {3, 2, 3, 3}}, Gen::kUniform,
   [](const std::vector<Var>& v) { return conv2d(v[0], v[1], Var(), 2, 0); }},
  {"conv2d_s2_p2",    {{1, 2, 5, 5}, {2, 2, 3, 3}, {2}}, Gen::kUniform,
   [](const std::vector<Var>& v) { return conv2d(v[0], v[1], v[2], 2, 2); }},
  {"max_pool2d",      {{2, 2, 4, 4}},         Gen::kDistinct,
   [](const std::vector<Var>& v) { return max_pool2d(v[0], 2, 2); }},
  {"max_pool2d_overlap", {{1, 2, 5, 5}},      Gen::kDistinct,
   [](const std::vector<Var>& v) { return max_pool2d(v[0], 3, 2); }},
  {"avg_pool2d",      {{2, 2, 4, 4}},         Gen::kUniform,
   [](const std::vector<Var>& v) { return avg_pool2d(v[0], 2, 2); }},
  {"avg_pool2d_overlap", {{1, 2, 5, 5}},      Gen::kUniform,
   [](const std::vector<Var>& v) { return avg_pool2d(v[0], 3, 1); }},
  // ---- shape.cpp
  {"reshape",         {{2, 3, 4}},            Gen::kUniform,
   [](const std::vector<Var>& v) { return reshape(v[0], {4, -1}); }},
  {"permute",         {{2, 3, 4}},            Gen::kUniform,
   [](const std::vector<Var>& v) { return permute(v[0], {2, 0, 1}); }},
  {"permute_4d",      {{2, 3, 2, 4}},         Gen::kUniform,
   [](const std::vector<Var>& v) { return permute(v[0], {0, 2, 3, 1}); }},
  {"transpose",       {{2, 3, 4}},            Gen::kUniform,
   [](const std::vector<Var>& v) { return transpose(v[0], 0, -1); }},
  {"slice",           {{2, 5, 3}},            Gen::kUniform,
   [](const std::vector<Var>& v) { return slice(v[0], 1, 1, 4); }},
  {"slice_neg",       {{4, 3}},               Gen::kUniform,
   [](const std::vector<Var>& v) { return slice(v[0], 0, -3, -1); }},
  {"concat_ax0",      {{2, 3}, {1, 3}, {3, 3}}, Gen::kUniform,
   [](const std::vector<Var>& v) { return concat(v, 0); }},
  {"concat_ax1",      {{2, 2, 3}, {2, 1, 3}, {2, 4, 3}}, Gen::kUniform,
   [](const std::vector<Var>& v) { return concat(v, 1); }},
  // ---- attention.cpp (one head of 2, two of 2, two of 4; the first row attends only to itself)
  {"causal_attention_1h", {{1, 3, 2}, {1, 3, 2}, {1, 3, 2}}, Gen::kUniform,
   [](const std::vector<Var>& v) { return causal_attention(v[0], v[1], v[2], 1); }},
  {"causal_attention_2h", {{2, 3, 4}, {2, 3, 4}, {2, 3, 4}}, Gen::kUniform,
   [](const std::vector<Var>& v) { return causal_attention(v[0], v[1], v[2], 2); }},
  {"causal_attention_fanout", {{1, 5, 8}}, Gen::kUniform,
   [](const std::vector<Var>& v) { return causal_attention(v[0], v[0], mul_scalar(v[0], 2.f), 2); }},
  {"rope",            {{2, 3, 8}},            Gen::kUniform,
   [](const std::vector<Var>& v) { return rope(v[0], 2); }},
  {"rope_offset",     {{4, 6}},               Gen::kUniform,
   [](const std::vector<Var>& v) { return rope(v[0], 1, 5, 100.f); }},
  // ---- gated.cpp
  {"swiglu",          {{3, 4}, {3, 4}},       Gen::kUniform, binary(swiglu)},
  // ---- compositions: a tiny attention-like chain and an MLP step
  {"attention_chain", {{2, 3, 4}, {4, 4}},    Gen::kUniform,
   [](const std::vector<Var>& v) {
     Var q = matmul(v[0], v[1]);
     return matmul(softmax(mul_scalar(matmul(q, v[0], false, true), 0.5f)), v[0]);
   }},
  {"mlp_step",        {{4, 3}, {5, 3}, {5}, {3, 5}}, Gen::kUniform,
   [](const std::vector<Var>& v) {
     return cross_entropy(linear(gelu(linear(v[0], v[1], v[2])), v[3]), {0, 2, 1, 2}, 0.05f);
   }},
};
// clang-format on

TEST(Gradcheck, EveryOp) {
  uint32_t seed = 1;
  for (const Row& row : kRows) {
    SCOPED_TRACE(row.name);
    std::mt19937 rng(seed++);
    std::vector<Tensor> values;
    for (const Shape& s : row.shapes) values.push_back(generate(s, row.gen, rng));
    const CheckResult res = gradcheck(values, row.f, seed);
    EXPECT_LE(res.worst, row.tol) << row.name << ": " << res.where;
    if (std::getenv("GRADCHECK_VERBOSE")) std::printf("%-20s %.2e  %s\n", row.name, res.worst, res.where.c_str());
  }
}

// The checker itself must be able to fail: a gradient off by 2% is caught.
TEST(Gradcheck, CatchesWrongGradient) {
  const Fn wrong = [](const std::vector<Var>& v) {
    return make_node("wrong", v[0].value(), {v[0]}, [](const Tensor& dy, GradSink& g) {
      Tensor dx = dy;
      dx.arr() *= 1.02f;
      g.add(0, std::move(dx));
    });
  };
  std::mt19937 rng(3);
  const CheckResult res = gradcheck({generate({3, 4}, Gen::kUniform, rng)}, wrong, 5);
  EXPECT_GT(res.worst, 1e-3);
}

}  // namespace
}  // namespace mxqat::autograd
