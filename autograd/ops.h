// The differentiable ops of mxqat. Each op's forward and backward live together in one function
// of its family file (autograd/ops/*.cpp, STYLE.md §2); this header is the list.
// Shapes use the legend B batch, T tokens, C channels, K reduction, N output features.
// Broadcasting follows NumPy: trailing dimensions aligned, size-1 dimensions stretched.
#pragma once
#include <cstdint>
#include <vector>

#include "autograd/var.h"

namespace mxqat::autograd {

// ---- matmul.cpp -------------------------------------------------------------------------
// a [M, K] (or [K, M] if trans_a) x b [K, N] (or [N, K] if trans_b) -> [M, N].
// Batched: a [Bt, M, K] with b [Bt, K, N] or b 2-D (shared). Deterministic for any thread count.
Var matmul(const Var& a, const Var& b, bool trans_a = false, bool trans_b = false);
// y = x w^T + b: x [..., K], w [N, K], bias [N] or undefined -> [..., N]
Var linear(const Var& x, const Var& w, const Var& bias = Var());

// ---- elementwise.cpp -----------------------------------------------------------------------
Var add(const Var& a, const Var& b);  // broadcasting
Var sub(const Var& a, const Var& b);
Var mul(const Var& a, const Var& b);
Var div(const Var& a, const Var& b);
Var add_scalar(const Var& a, float s);
Var mul_scalar(const Var& a, float s);
Var neg(const Var& a);
Var relu(const Var& x);
Var gelu(const Var& x);  // exact (erf) form, as torch.nn.GELU()
Var silu(const Var& x);
Var tanh(const Var& x);
Var sigmoid(const Var& x);
Var exp(const Var& x);
Var log(const Var& x);
Var sqrt(const Var& x);
// Inverted dropout: zeroes with probability p and scales by 1/(1-p); identity when !training.
// The mask is a pure function of (seed, element index): same bits for any thread count.
// `offset` is added to the element index: a slice of a larger batch (a micro-batch starting at
// sample s, offset = s * elements per sample) draws exactly the mask the whole batch would.
Var dropout(const Var& x, float p, uint64_t seed, bool training, uint64_t offset = 0);

// ---- reduce.cpp ----------------------------------------------------------------------------
Var sum(const Var& x, std::vector<int> axes = {}, bool keepdim = false);  // {} = all axes
Var mean(const Var& x, std::vector<int> axes = {}, bool keepdim = false);

// ---- softmax.cpp ---------------------------------------------------------------------------
Var softmax(const Var& x, int axis = -1);
Var log_softmax(const Var& x, int axis = -1);

// ---- loss.cpp ------------------------------------------------------------------------------
// logits [B, C], labels B ints in [0, C): mean cross-entropy, optional label smoothing.
Var cross_entropy(const Var& logits, const std::vector<int32_t>& labels,
                  float label_smoothing = 0.f);
// Distillation: (T^2 / B) sum_b KL(softmax(teacher_b / T) || softmax(logits_b / T)), logits and
// teacher [B, C]; the teacher is a constant (no gradient flows to it).
Var distill_kl(const Var& logits, const Tensor& teacher, float temperature = 1.f);
Var mse(const Var& a, const Var& b);  // mean squared error

// ---- norm.cpp ------------------------------------------------------------------------------
// Over the last axis: x [..., C], gamma/beta [C] (beta may be undefined).
Var layernorm(const Var& x, const Var& gamma, const Var& beta, float eps = 1e-5f);
Var rmsnorm(const Var& x, const Var& gamma, float eps = 1e-6f);

// ---- embedding.cpp -------------------------------------------------------------------------
// weight [V, D], ids (any count) -> [ids.size(), D] reshaped to out_shape + [D] if given.
Var embedding(const Var& weight, const std::vector<int32_t>& ids, Shape out_shape = {});

// ---- conv.cpp ------------------------------------------------------------------------------
// im2col: x [B, C, H, W] -> patches [B*Ho*Wo, C*kh*kw] (zero padding); backward is col2im.
// Conv2d layers use it so the GEMM operands can pass through the quant hook (quant/hook.h).
Var im2col(const Var& x, int kh, int kw, int stride, int padding);
// x [B, C, H, W], w [O, C, kh, kw], bias [O] or undefined -> [B, O, Ho, Wo]
// Composed as im2col -> linear -> permute, so it needs no backward of its own.
Var conv2d(const Var& x, const Var& w, const Var& bias, int stride = 1, int padding = 0);
Var max_pool2d(const Var& x, int kernel, int stride);  // x [B, C, H, W]
Var avg_pool2d(const Var& x, int kernel, int stride);

// ---- shape.cpp -----------------------------------------------------------------------------
Var reshape(const Var& x, Shape shape);  // one -1 allowed
Var permute(const Var& x, std::vector<int> dims);
Var transpose(const Var& x, int a, int b);
Var slice(const Var& x, int axis, int64_t start, int64_t end);  // [start, end)
Var concat(const std::vector<Var>& xs, int axis);

// ---- attention.cpp -------------------------------------------------------------------------
// Causal multi-head attention, fused: q, k, v [B, T, C] with C = heads * D, heads read in place
// -> [B, T, C]; out[b, t, head h] = sum_{u <= t} softmax_u(q_t . k_u / sqrt(D)) v_u.
Var causal_attention(const Var& q, const Var& k, const Var& v, int64_t heads);
// Rotary position embedding on x [..., T, C] (C = heads * D, D even): adjacent pairs of each
// head rotated by (pos0 + t) * theta^(-2i/D), as llama.cpp's LLAMA rope.
Var rope(const Var& x, int64_t heads, int64_t pos0 = 0, float theta = 10000.f);

// ---- gated.cpp -----------------------------------------------------------------------------
Var swiglu(const Var& gate, const Var& up);  // silu(gate) * up, same shapes

}  // namespace mxqat::autograd
