#!/usr/bin/python3
"""PyTorch eager counterpart of bench/bench_qat_step.cpp: one QAT training step (forward +
backward + AdamW) of the MLP 784-1024-1024-10 (ReLU), batch 256, float32 on CPU, with every
Linear's weight and input activation through an MXFP4 fake-quant written in plain PyTorch ops
(docs/formats.md §4: FLOOR scale from the exponent bits, RNE to the E2M1 grid, saturation at
±6, blocks of 32 along the reduction axis; backward: clipped STE).

Before anything is timed, the fake-quant is checked bit for bit against mxqat's on the file
written by `bench_qat_step --dump FILE`; any mismatch exits non-zero.
Prints one JSON line per thread count with the median of the timed steps in ms.
The JSON names the BLAS that PyTorch loaded: Debian's python3-torch without libopenblas0 falls
back to the netlib reference BLAS (about 15x slower GEMMs), which makes any comparison moot.
Run with Debian's PyTorch:
  OPENBLAS_CORETYPE=SKYLAKEX /usr/bin/python3 bench/torch_qat_step.py DUMP [STEPS]
"""
import json
import os
import statistics
import struct
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_train_step import blas_library, step_times  # noqa: E402  (the same model and loop)
import torch.nn.functional as F

BLOCK = 32


def _pow2(e):
    """float32 2^e from bits for int32 tensor e in [-128, 127] (2^-127, 2^-128 are subnormal)."""
    bits = torch.where(e >= -126, (e + 127) << 23, 1 << (e + 149))
    return bits.view(torch.float32)


def mxfp4_fake_quant(x, want_mask):
    """y = Q(x) for x [..., K] (blocks of 32 along K, last block ragged); mask = in range."""
    shape = x.shape
    K = shape[-1]
    x2 = x.reshape(-1, K)
    nb = (K + BLOCK - 1) // BLOCK
    pad = nb * BLOCK - K
    xb = (F.pad(x2, (0, pad)) if pad else x2).reshape(x2.shape[0], nb, BLOCK)
    amax = xb.abs().amax(dim=2, keepdim=True)           # NaN/Inf propagate
    f = torch.bitwise_and(torch.bitwise_right_shift(amax.view(torch.int32), 23), 0xFF)
    s = torch.clamp(f - (127 + 2), min=-127)           # floor(log2 amax) - emax(E2M1); f=0 -> -127
    v = xb * _pow2(-s)                                   # x * 2^-s (exact where it matters)
    a = v.abs()
    # E2M1 grid step at |v| is p/2 with p = 2^floor(log2(clamp(|v|, 1, 4))) in {1, 2, 4}: 0.5 below
    # 2, 1 in [2, 4), 2 from 4 on. RNE via torch.round on v / (p/2), then saturate at ±6 (= ±12 p/2).
    p = a.clamp(1.0, 4.0).view(torch.int32).bitwise_and_(0x7F800000).view(torch.float32)
    r = torch.round(v.div_(p).mul_(2.0)).mul_(p).clamp_(-12.0, 12.0)   # 2 * q, sign of x kept
    y = r.mul_(_pow2(s - 1))                             # q * 2^s, exact (2^(s-1) >= 2^-128)
    mask = (a <= 6.0) if want_mask else None
    bad = ~torch.isfinite(amax)                          # NaN/Inf block: all NaN, mask 0
    if bool(bad.any()):
        y.masked_fill_(bad, float("nan"))
        if want_mask:
            mask.masked_fill_(bad, False)
    if pad:
        y = y.reshape(x2.shape[0], nb * BLOCK)[:, :K]
        mask = mask.reshape(x2.shape[0], nb * BLOCK)[:, :K] if want_mask else None
    y = y.reshape(shape)
    return y, (mask.reshape(shape) if want_mask else None)


class MxFp4FakeQuant(torch.autograd.Function):
    """Forward: MXFP4 fake-quant. Backward: clipped STE (zero where saturated / block NaN)."""

    @staticmethod
    def forward(ctx, x):
        y, mask = mxfp4_fake_quant(x, ctx.needs_input_grad[0])
        if mask is not None:
            ctx.save_for_backward(mask)
        return y

    @staticmethod
    def backward(ctx, dy):
        (mask,) = ctx.saved_tensors
        return dy * mask


class QLinear(torch.nn.Linear):
    def forward(self, x):
        return F.linear(MxFp4FakeQuant.apply(x), MxFp4FakeQuant.apply(self.weight), self.bias)


def check_against_mxqat(path):
    """Bit-for-bit check of mxfp4_fake_quant (values and STE mask) against mxqat's dump."""
    data = open(path, "rb").read()
    magic, version, count = struct.unpack_from("<III", data, 0)
    assert magic == 0x4451584D and version == 1, "not a bench_qat_step --dump file"
    off, n_vals, bad_y, bad_m = 12, 0, 0, 0
    for _ in range(count):
        R, K = struct.unpack_from("<qq", data, off)
        off += 16
        n = R * K
        x = torch.frombuffer(bytearray(data[off:off + 4 * n]), dtype=torch.float32).reshape(R, K)
        off += 4 * n
        y_mx = torch.frombuffer(bytearray(data[off:off + 4 * n]), dtype=torch.int32).reshape(R, K)
        off += 4 * n
        m_mx = torch.frombuffer(bytearray(data[off:off + n]), dtype=torch.uint8).reshape(R, K)
        off += n
        y, m = mxfp4_fake_quant(x, True)
        diff = y.view(torch.int32) != y_mx
        bad = int(diff.sum())
        if bad:
            i = diff.nonzero()[0].tolist()
            print(f"  [{R}, {K}] first mismatch at {i}: x={x[i[0], i[1]].item()!r} "
                  f"torch={y[i[0], i[1]].item()!r} mxqat={y_mx.view(torch.float32)[i[0], i[1]].item()!r}",
                  file=sys.stderr)
        n_vals += n
        bad_y += bad
        bad_m += int((m.to(torch.uint8) != m_mx).sum())
    print(json.dumps({"check": "mxfp4_fake_quant vs mxqat", "tensors": count, "values": n_vals,
                      "value_mismatches": bad_y, "mask_mismatches": bad_m}))
    return bad_y == 0 and bad_m == 0


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: torch_qat_step.py DUMP_FILE [STEPS]   (DUMP from bench_qat_step --dump)")
    if not check_against_mxqat(sys.argv[1]):
        sys.exit("MXFP4 fake-quant disagrees with mxqat: not timing")
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    blas = blas_library()
    for threads in (1, 2):
        t = step_times(threads, steps, linear=QLinear)
        print(json.dumps({"impl": "pytorch-qat-mxfp4", "torch": torch.__version__,
                          "blas": blas, "threads": threads, "steps": steps, "median_ms": statistics.median(t),
                          "min_ms": min(t)}))


if __name__ == "__main__":
    main()
