#!/usr/bin/python3
"""PyTorch eager counterpart of bench/bench_gpt_step.cpp: one training step (forward + backward +
AdamW) of the llama-style GPT of recipes/kjv_gpt.yaml (4 layers, d_model 256, 4 heads, SwiGLU
768, context 128, vocabulary 256, RMSNorm, rotary embedding on adjacent pairs, no biases),
batch 16, float32 on CPU; in FP32 and with every projection's weight and input activation
through the MXFP4 fake-quant of torch_qat_step.py (checked bit for bit against mxqat first).
PyTorch 1.13 has no scaled_dot_product_attention: attention is matmul, causal mask, softmax,
matmul, as an eager llama implementation of that version writes it.
Prints one JSON line per (mode, thread count) with the median of the timed steps in ms.
Run with Debian's PyTorch:
  OPENBLAS_CORETYPE=SKYLAKEX /usr/bin/python3 bench/torch_gpt_step.py DUMP [STEPS] [THREADS]
(DUMP from `bench_qat_step --dump FILE`; THREADS a comma-separated list, default 1,2)
"""
import json
import math
import os
import statistics
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_qat_step import MxFp4FakeQuant, check_against_mxqat  # noqa: E402
from torch_train_step import blas_library, pin_blas_threads, timed_steps  # noqa: E402

VOCAB, LAYERS, D, HEADS, HIDDEN, T, B = 256, 4, 256, 4, 768, 128, 16


class QLinear(torch.nn.Linear):
    def forward(self, x):
        return F.linear(MxFp4FakeQuant.apply(x), MxFp4FakeQuant.apply(self.weight), self.bias)


class RMSNorm(torch.nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope(x, cos, sin):
    """x [B, H, T, Dh]: adjacent pairs (2i, 2i+1) rotated by the angle of (t, i)."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


class Block(torch.nn.Module):
    def __init__(self, linear):
        super().__init__()
        self.attn_norm, self.mlp_norm = RMSNorm(D), RMSNorm(D)
        self.q, self.k, self.v, self.o = (linear(D, D, bias=False) for _ in range(4))
        self.gate, self.up = linear(D, HIDDEN, bias=False), linear(D, HIDDEN, bias=False)
        self.down = linear(HIDDEN, D, bias=False)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        h = self.attn_norm(x)
        heads = lambda y: y.view(b, t, HEADS, D // HEADS).transpose(1, 2)  # noqa: E731
        q, k, v = heads(self.q(h)), heads(self.k(h)), heads(self.v(h))
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D // HEADS))
        a = torch.softmax(s.masked_fill(mask, float("-inf")), dim=-1) @ v
        x = x + self.o(a.transpose(1, 2).reshape(b, t, D))
        h = self.mlp_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Gpt(torch.nn.Module):
    def __init__(self, linear=torch.nn.Linear):
        super().__init__()
        self.tok_emb = torch.nn.Embedding(VOCAB, D)
        self.blocks = torch.nn.ModuleList(Block(linear) for _ in range(LAYERS))
        self.norm = RMSNorm(D)
        self.head = linear(D, VOCAB, bias=False)
        dh = D // HEADS
        ang = torch.arange(T, dtype=torch.float64)[:, None] * 10000.0 ** (
            -torch.arange(0, dh, 2, dtype=torch.float64) / dh)
        self.cos, self.sin = ang.cos().float(), ang.sin().float()
        self.mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)

    def forward(self, ids):
        x = self.tok_emb(ids)
        for blk in self.blocks:
            x = blk(x, self.cos, self.sin, self.mask)
        return self.head(self.norm(x))


def step_times(threads, steps, linear, warmup=3):
    torch.set_num_threads(threads)
    pin_blas_threads(threads)
    torch.manual_seed(1)
    model = Gpt(linear)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    ids = torch.randint(0, VOCAB, (B, T))
    targets = torch.randint(0, VOCAB, (B * T,))
    return timed_steps(lambda: F.cross_entropy(model(ids).reshape(B * T, VOCAB), targets), opt,
                       steps, warmup)


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: torch_gpt_step.py DUMP_FILE [STEPS] [THREADS]   (DUMP from bench_qat_step "
                 "--dump; THREADS e.g. 1,4,16)")
    if not check_against_mxqat(sys.argv[1]):
        sys.exit("MXFP4 fake-quant disagrees with mxqat: not timing")
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    thread_counts = [int(t) for t in (sys.argv[3] if len(sys.argv) > 3 else "1,2").split(",")]
    blas = blas_library()
    for mode, linear in (("fp32", torch.nn.Linear), ("qat-mxfp4", QLinear)):
        for threads in thread_counts:
            t = step_times(threads, steps, linear)
            print(json.dumps({"impl": "pytorch-gpt-" + mode, "torch": torch.__version__, "blas": blas,
                              "threads": threads, "steps": steps,
                              "median_ms": statistics.median(t), "min_ms": min(t)}), flush=True)


if __name__ == "__main__":
    main()
