// Tests of quant/fake: the fake-quant node and the quantized GEMM op (qgemm / QuantGemm).
// Full precision must equal autograd::linear bit for bit and pass a gradcheck; real codecs must
// equal an explicit reference that quantizes the operands with Codec::fake_quant along the same
// axes, forward and backward (STE formulas, grad-output quantization), for 1 and 2 threads.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "quant/fake/fake_quant.h"
#include "quant/fake/qgemm.h"
#include "tests/quant/qgemm_test_util.h"

namespace mxqat::quant {
namespace {

using autograd::NoGradGuard;
using autograd::Shape;
using autograd::Tensor;
using autograd::Var;

const std::vector<std::string> kGemmCodecs = {"mxfp4", "mxfp8_e4m3", "nvfp4", "int8_sym",
                                              "mxfp6_e2m3"};

// Codec::fake_quant of a tensor viewed [rows, last dim]; mask out-param optional.
Tensor quantize(const Codec& c, const Tensor& x, std::vector<uint8_t>* mask = nullptr) {
  Tensor y(x.shape());
  if (mask) mask->assign(static_cast<size_t>(x.size()), 0);
  c.fake_quant(x.data(), x.rows(), x.cols(), y.data(), mask ? mask->data() : nullptr);
  return y;
}

Tensor masked(Tensor g, const std::vector<uint8_t>& mask) {
  for (int64_t i = 0; i < g.size(); ++i) g[i] *= static_cast<float>(mask[static_cast<size_t>(i)]);
  return g;
}

Tensor transposed(const Tensor& a) {  // [r, c] -> [c, r]
  Tensor t(Shape{a.cols(), a.rows()});
  for (int64_t i = 0; i < a.rows(); ++i)
    for (int64_t j = 0; j < a.cols(); ++j) t[j * a.rows() + i] = a[i * a.cols() + j];
  return t;
}

struct Grads {
  Tensor y, dx, dw, db;
};

// Runs f(x, w, b) forward and backward with seed dy; x [.., K], w [N, K], b [N].
template <class F>
Grads run(F f, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& dy) {
  Var xv(x, true), wv(w, true), bv(b, true);
  Var y = f(xv, wv, bv);
  y.backward(dy);
  return {y.value(), xv.grad(), wv.grad(), bv.grad()};
}

void expect_same_bits(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  int64_t diff = 0;
  for (int64_t i = 0; i < a.size(); ++i)
    diff += std::memcmp(a.data() + i, b.data() + i, sizeof(float)) != 0;
  EXPECT_EQ(diff, 0) << what << ": " << diff << " of " << a.size() << " elements differ";
}

void expect_same(const Grads& a, const Grads& b, const std::string& what) {
  expect_same_bits(a.y, b.y, what + " y");
  expect_same_bits(a.dx, b.dx, what + " dx");
  expect_same_bits(a.dw, b.dw, what + " dw");
  expect_same_bits(a.db, b.db, what + " db");
}

// ---- fake_quant node ------------------------------------------------------------------------

TEST(FakeQuantNode, ForwardEqualsDecodeEncodeForEveryCodec) {
  const Tensor x = random_tensor({3, 5, 70}, 1);
  for (const std::string& name : Codec::names()) {
    const Codec c = Codec::make(name);
    Tensor ref(x.shape());
    c.decode(c.encode(x.data(), x.rows(), x.cols()), ref.data());
    for (Ste ste : {Ste::kIdentity, Ste::kClipped}) {
      Var xv(x, true);
      expect_same_bits(fake_quant(xv, c, ste).value(), ref, name);
    }
  }
}

TEST(FakeQuantNode, BackwardIsTheSteFormula) {
  const Tensor x = random_tensor({6, 64}, 2), dy = random_tensor({6, 64}, 3);
  for (const std::string& name : kGemmCodecs) {
    const Codec c = Codec::make(name);
    std::vector<uint8_t> mask;
    quantize(c, x, &mask);
    Var a(x, true), b(x, true);
    fake_quant(a, c, Ste::kIdentity).backward(dy);
    fake_quant(b, c, Ste::kClipped).backward(dy);
    expect_same_bits(a.grad(), dy, name + " identity");
    expect_same_bits(b.grad(), masked(dy, mask), name + " clipped");
  }
}

TEST(FakeQuantNode, ClippedZeroesTheGradientOfSaturatedElements) {
  // MXFP4 FLOOR: amax 7.5 gives s = floor(log2 7.5) - 2 = 0, so 7.5 > 6 saturates to 6.
  Tensor x(Shape{1, 32}, 0.5f);
  x[3] = 7.5f;
  Var v(x, true);
  Var y = fake_quant(v, Codec::make("mxfp4"), Ste::kClipped);
  EXPECT_EQ(y.value()[3], 6.f);
  y.backward(Tensor(Shape{1, 32}, 2.f));
  EXPECT_EQ(v.grad()[3], 0.f);
  EXPECT_EQ(v.grad()[0], 2.f);
}

TEST(FakeQuantNode, FullPrecisionIsTheInputItself) {
  Var x(random_tensor({4, 8}, 4), true);
  Var y = fake_quant(x, std::optional<Codec>(), Ste::kClipped);
  EXPECT_EQ(y.node(), x.node());
  EXPECT_FALSE(make_codec_or_none("none").has_value());
  EXPECT_FALSE(make_codec_or_none("fp32").has_value());
  EXPECT_EQ(make_codec_or_none("mxfp4")->name(), "mxfp4");
  EXPECT_THROW(make_codec_or_none("mxfp5"), Error);
  EXPECT_EQ(parse_ste("identity"), Ste::kIdentity);
  EXPECT_THROW(parse_ste("clip"), Error);
}

// ---- qgemm: full precision -------------------------------------------------------------------

TEST(QGemm, FullPrecisionEqualsLinearBitwise) {
  // [2, 150, 70] x [260, 70]: several GEMM tiles in every direction.
  const Tensor x = random_tensor({2, 150, 70}, 5), w = random_tensor({260, 70}, 6, 0.1f);
  const Tensor b = random_tensor({260}, 7), dy = random_tensor({2, 150, 260}, 8);
  QuantGemm q;
  for (Ste ste : {Ste::kIdentity, Ste::kClipped}) {
    q.set_spec(GemmQuantSpec{std::nullopt, std::nullopt, std::nullopt, ste});
    auto ours = run([&](auto& a, auto& w2, auto& b2) { return q.linear(a, w2, b2); }, x, w, b, dy);
    auto ref = run([](auto& a, auto& w2, auto& b2) { return autograd::linear(a, w2, b2); }, x, w,
                   b, dy);
    expect_same(ours, ref, ste_name(ste));
  }
}

double loss_of(const Var& y, const Tensor& r) {
  double s = 0;
  for (int64_t i = 0; i < r.size(); ++i) s += static_cast<double>(y.value()[i]) * r[i];
  return s;
}

TEST(QGemm, FullPrecisionPassesGradcheck) {
  const Tensor x0 = random_tensor({3, 5}, 9), w0 = random_tensor({4, 5}, 10);
  const Tensor b0 = random_tensor({4}, 11), r = random_tensor({3, 4}, 12);
  QuantGemm q;
  std::vector<Var> in{Var(x0, true), Var(w0, true), Var(b0, true)};
  q.linear(in[0], in[1], in[2]).backward(r);
  for (size_t t = 0; t < in.size(); ++t) {
    for (int64_t i = 0; i < in[t].value().size(); ++i) {
      const float orig = in[t].value()[i];
      const float h = 1e-2f;
      NoGradGuard ng;
      in[t].value()[i] = orig + h;
      const double up = loss_of(q.linear(in[0], in[1], in[2]), r);
      in[t].value()[i] = orig - h;
      const double down = loss_of(q.linear(in[0], in[1], in[2]), r);
      in[t].value()[i] = orig;
      const double numeric = (up - down) / (2.0 * h);
      EXPECT_NEAR(in[t].grad()[i], numeric, 1e-3 * std::max(1.0, std::fabs(numeric)))
          << "input " << t << " element " << i;
    }
  }
}

// ---- qgemm: real codecs against explicit references ---------------------------------------------

// The reference for weight codec cw, input codec ci (grad_output off): quantize the operands
// explicitly, then autograd::linear on the quantized leaves; its leaf gradients are the identity
// STE; the clipped STE multiplies them by the codec masks.
Grads reference(const Codec& cw, const Codec& ci, Ste ste, const Tensor& x, const Tensor& w,
                const Tensor& b, const Tensor& dy) {
  std::vector<uint8_t> mx, mw;
  const Tensor xq = quantize(ci, x, &mx), wq = quantize(cw, w, &mw);
  Grads g = run([](auto& a, auto& w2, auto& b2) { return autograd::linear(a, w2, b2); }, xq, wq, b,
                dy);
  if (ste == Ste::kClipped) {
    g.dx = masked(g.dx, mx);
    g.dw = masked(g.dw, mw);
  }
  return g;
}

TEST(QGemm, RealCodecsEqualExplicitReference) {
  const Tensor x = random_tensor({2, 37, 96}, 13), w = random_tensor({45, 96}, 14, 0.05f);
  const Tensor b = random_tensor({45}, 15), dy = random_tensor({2, 37, 45}, 16);
  for (size_t i = 0; i < kGemmCodecs.size(); ++i) {
    const Codec cw = Codec::make(kGemmCodecs[i]);
    const Codec ci = Codec::make(kGemmCodecs[(i + 1) % kGemmCodecs.size()]);
    for (Ste ste : {Ste::kIdentity, Ste::kClipped}) {
      QuantGemm q(GemmQuantSpec{cw, ci, std::nullopt, ste});
      auto ours = run([&](auto& a, auto& w2, auto& b2) { return q.linear(a, w2, b2); }, x, w, b, dy);
      const std::string what = q.describe();
      expect_same(ours, reference(cw, ci, ste, x, w, b, dy), what);
      // Not vacuous: quantization changed the output and the clipped masks are not all ones.
      auto fp = run([](auto& a, auto& w2, auto& b2) { return autograd::linear(a, w2, b2); }, x, w,
                    b, dy);
      EXPECT_FALSE(ours.y.same_bits(fp.y)) << what;
    }
  }
}

// Large enough that the GEMM splits across its team, which then quantizes the operands as row
// ranges (one per thread): the bits of one whole-tensor call, NVFP4's tensor scale included (the
// outliers sit in some rows only, so a per-range amax would differ).
TEST(QGemm, OperandsQuantizedByTheGemmsTeamEqualExplicitReference) {
  const Tensor x = random_tensor({2, 75, 160}, 40), w = random_tensor({150, 160}, 41, 0.05f);
  const Tensor b = random_tensor({150}, 42), dy = random_tensor({2, 75, 150}, 43);
  const int prev = omp_get_max_threads();
  for (size_t i = 0; i < kGemmCodecs.size(); ++i) {
    const Codec cw = Codec::make(kGemmCodecs[i]);
    const Codec ci = Codec::make(kGemmCodecs[(i + 2) % kGemmCodecs.size()]);
    const Grads want = reference(cw, ci, Ste::kClipped, x, w, b, dy);
    for (int threads : {1, 2, 3}) {
      omp_set_num_threads(threads);
      QuantGemm q(GemmQuantSpec{cw, ci, std::nullopt, Ste::kClipped});
      auto ours = run([&](auto& a, auto& w2, auto& b2) { return q.linear(a, w2, b2); }, x, w, b, dy);
      expect_same(ours, want, q.describe() + ", " + std::to_string(threads) + " threads");
    }
  }
  omp_set_num_threads(prev);
}

TEST(QGemm, ClippedSteMasksSomethingForMxfp4) {
  const Tensor x = random_tensor({64, 64}, 17), w = random_tensor({16, 64}, 18);
  std::vector<uint8_t> mask;
  quantize(Codec::make("mxfp4"), w, &mask);
  int64_t zeros = 0;
  for (uint8_t m : mask) zeros += m == 0;
  ASSERT_GT(zeros, 0);
  const Tensor dy = random_tensor({64, 16}, 19);
  const Codec c = Codec::make("mxfp4");
  QuantGemm a(GemmQuantSpec{c, std::nullopt, std::nullopt, Ste::kIdentity});
  QuantGemm b(GemmQuantSpec{c, std::nullopt, std::nullopt, Ste::kClipped});
  auto f = [](QuantGemm& q) { return [&q](auto& x2, auto& w2, auto& b2) { return q.linear(x2, w2, b2); }; };
  auto ga = run(f(a), x, w, Tensor(Shape{16}), dy), gb = run(f(b), x, w, Tensor(Shape{16}), dy);
  for (size_t i = 0; i < mask.size(); ++i)
    if (mask[i] == 0) {
      EXPECT_EQ(gb.dw[static_cast<int64_t>(i)], 0.f);
    }
  EXPECT_FALSE(ga.dw.same_bits(gb.dw));
  expect_same_bits(ga.dx, gb.dx, "input is full precision: dx has no mask");
}

TEST(QGemm, GradOutputQuantizationEqualsExplicitReference) {
  const Tensor x = random_tensor({3, 40, 64}, 20), w = random_tensor({50, 64}, 21, 0.1f);
  const Tensor b = random_tensor({50}, 22), dy = random_tensor({3, 40, 50}, 23);
  const Codec cw = Codec::make("mxfp4"), ci = Codec::make("mxfp8_e4m3");
  for (const std::string& gname : std::vector<std::string>{"mxfp8_e5m2", "mxfp4"}) {
    const Codec cg = Codec::make(gname);
    for (Ste ste : {Ste::kIdentity, Ste::kClipped}) {
      QuantGemm q(GemmQuantSpec{cw, ci, cg, ste});
      auto ours = run([&](auto& a, auto& w2, auto& b2) { return q.linear(a, w2, b2); }, x, w, b, dy);
      // Reference: dX = Q(dY along N) Q(W); dW = Q(dY^T along M) Q(X); db from the raw dY.
      std::vector<uint8_t> mx, mw;
      const Tensor xq = quantize(ci, x, &mx).reshaped({120, 64}), wq = quantize(cw, w, &mw);
      const Tensor dy2 = dy.reshaped({120, 50});
      const Tensor dyq = quantize(cg, dy2), dytq = quantize(cg, transposed(dy2));
      Tensor dx = autograd::matmul(Var(dyq), Var(wq)).value();
      Tensor dw = autograd::matmul(Var(dytq), Var(xq)).value();
      if (ste == Ste::kClipped) dx = masked(dx, mx), dw = masked(dw, mw);
      expect_same_bits(ours.dx, dx, gname + " dx");
      expect_same_bits(ours.dw, dw, gname + " dw");
      auto plain = reference(cw, ci, ste, x, w, b, dy);
      expect_same_bits(ours.y, plain.y, gname + " y");
      expect_same_bits(ours.db, plain.db, gname + " db");
      EXPECT_FALSE(ours.dw.same_bits(plain.dw)) << gname << ": dY quantization had no effect";
    }
  }
}

TEST(QGemm, SameBitsForOneAndTwoThreads) {
  const Tensor x = random_tensor({300, 256}, 24), w = random_tensor({384, 256}, 25, 0.05f);
  const Tensor b = random_tensor({384}, 26), dy = random_tensor({300, 384}, 27);
  QuantGemm q(GemmQuantSpec{Codec::make("mxfp4"), Codec::make("mxfp4"), Codec::make("mxfp8_e5m2"),
                            Ste::kClipped});
  auto f = [&](auto& a, auto& w2, auto& b2) { return q.linear(a, w2, b2); };
  const int prev = omp_get_max_threads();
  omp_set_num_threads(1);
  Grads one = run(f, x, w, b, dy);
  omp_set_num_threads(2);
  Grads two = run(f, x, w, b, dy);
  omp_set_num_threads(prev);
  expect_same(one, two, "1 vs 2 threads");
}

TEST(QGemm, SpecSwapAppliesToTheNextCallOnly) {
  const Tensor x = random_tensor({8, 64}, 28), w = random_tensor({12, 64}, 29);
  const Tensor b(Shape{12}), dy = random_tensor({8, 12}, 30);
  const Codec c8 = Codec::make("mxfp8_e4m3"), c4 = Codec::make("mxfp4");
  QuantGemm q(GemmQuantSpec{c8, c8, std::nullopt, Ste::kIdentity});
  Var xv(x, true), wv(w, true), bv(b, true);
  Var y = q.linear(xv, wv, bv);
  q.set_spec(GemmQuantSpec{c4, c4, std::nullopt, Ste::kIdentity});
  y.backward(dy);  // the graph built under mxfp8 keeps its own Q(w), Q(x)
  const Grads r8 = reference(c8, c8, Ste::kIdentity, x, w, b, dy);
  expect_same_bits(xv.grad(), r8.dx, "dx after swap");
  expect_same_bits(wv.grad(), r8.dw, "dw after swap");
  const Grads r4 = reference(c4, c4, Ste::kIdentity, x, w, b, dy);
  expect_same_bits(q.linear(xv, wv, bv).value(), r4.y, "next forward uses the new spec");
  EXPECT_EQ(q.describe(), "w=mxfp4 a=mxfp4 g=none ste=identity");
}

TEST(QGemm, ReusedBuffersNeverLeakBetweenCalls) {
  // One QuantGemm, several calls: a finished graph's buffers are reused by the next call, a live
  // graph's never are. Every result must equal the reference for its own inputs.
  const Codec c = Codec::make("mxfp4");
  QuantGemm q(GemmQuantSpec{c, c, std::nullopt, Ste::kClipped});
  const Tensor b(Shape{24}), dy = random_tensor({16, 24}, 40);
  std::vector<Tensor> xs, ws;
  for (uint32_t i = 0; i < 3; ++i)
    xs.push_back(random_tensor({16, 64}, 41 + i)), ws.push_back(random_tensor({24, 64}, 51 + i));
  Var x0(xs[0], true), w0(ws[0], true), bv(b, true);
  Var y0 = q.linear(x0, w0, bv);  // kept alive across the next call
  for (size_t i = 1; i < 3; ++i) {
    auto ours = run([&](auto& a, auto& w2, auto& b2) { return q.linear(a, w2, b2); }, xs[i], ws[i],
                    b, dy);
    expect_same(ours, reference(c, c, Ste::kClipped, xs[i], ws[i], b, dy), "call " + std::to_string(i));
  }
  y0.backward(dy);
  const Grads r0 = reference(c, c, Ste::kClipped, xs[0], ws[0], b, dy);
  expect_same_bits(y0.value(), r0.y, "live graph y");
  expect_same_bits(x0.grad(), r0.dx, "live graph dx");
  expect_same_bits(w0.grad(), r0.dw, "live graph dw");
  const Tensor x3 = random_tensor({5, 64}, 60);
  const Tensor y3 = reference(c, c, Ste::kClipped, x3, ws[0], b, random_tensor({5, 24}, 61)).y;
  NoGradGuard ng;  // eval calls of another batch size regrow the buffers, then reuse them
  for (int rep = 0; rep < 2; ++rep)
    expect_same_bits(q.linear(Var(x3), Var(ws[0]), Var(b)).value(), y3, "eval batch of 5");
}

TEST(QGemm, NoGradForwardMatchesAndCaptureRecordsOperands) {
  const Tensor x = random_tensor({2, 5, 32}, 31), w = random_tensor({7, 32}, 32);
  const Tensor b = random_tensor({7}, 33), dy = random_tensor({2, 5, 7}, 34);
  QuantGemm q(GemmQuantSpec{Codec::make("mxfp4"), Codec::make("mxfp4"), std::nullopt,
                            Ste::kClipped});
  const Tensor y_grad = q.linear(Var(x, true), Var(w, true), Var(b, true)).value();
  {
    NoGradGuard ng;
    expect_same_bits(q.linear(Var(x), Var(w), Var(b)).value(), y_grad, "no_grad forward");
  }
  EXPECT_THROW(q.captured(), Error);
  q.set_capture(true);
  Var xv(x, true);
  q.linear(xv, Var(w, true), Var(b)).backward(dy);
  expect_same_bits(q.captured().input, x, "captured input");
  EXPECT_EQ(q.captured().input.shape(), (Shape{10, 32}));
  expect_same_bits(q.captured().grad_output, dy, "captured dY");
  q.set_capture(false);
  EXPECT_FALSE(q.capturing());
}

TEST(QGemm, ShapeErrorsNameTheProblem) {
  QuantGemm q;
  try {
    q.linear(Var(Tensor(Shape{2, 5})), Var(Tensor(Shape{3, 4})), Var());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("input has 5 features"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mxqat::quant
