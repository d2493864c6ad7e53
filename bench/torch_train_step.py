#!/usr/bin/python3
"""PyTorch eager counterpart of bench/bench_train_step.cpp: one training step (forward +
backward + AdamW) of the MLP 784-1024-1024-10 (ReLU), batch 256, float32 on CPU.
Prints one JSON line per thread count with the median of the timed steps in ms.
Run with Debian's PyTorch: OPENBLAS_CORETYPE=SKYLAKEX /usr/bin/python3 bench/torch_train_step.py
"""
import json
import statistics
import sys
import time

import torch


def pin_blas_threads(threads):
    """Debian's OpenBLAS keeps one thread per core whatever torch.set_num_threads says, so a
    "1 thread" PyTorch step would use both cores: pin OpenBLAS's pool to the same count."""
    import ctypes
    for name in ("libblas.so.3", "libopenblas.so.0"):
        try:
            fn = getattr(ctypes.CDLL(name), "openblas_set_num_threads", None)
        except OSError:
            continue
        if fn is not None:
            fn(threads)
            return True
    return False


def step_times(threads, steps, warmup=5, linear=torch.nn.Linear):
    """Step times in ms; `linear` builds each layer (torch_qat_step.py passes its QLinear)."""
    torch.set_num_threads(threads)
    pin_blas_threads(threads)
    torch.manual_seed(1)
    model = torch.nn.Sequential(
        linear(784, 1024), torch.nn.ReLU(),
        linear(1024, 1024), torch.nn.ReLU(),
        linear(1024, 10))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    x = torch.rand(256, 784)
    y = torch.randint(0, 10, (256,))
    return timed_steps(lambda: torch.nn.functional.cross_entropy(model(x), y), opt, steps, warmup)


def timed_steps(loss_fn, opt, steps, warmup):
    """ms per training step (forward, backward, optimizer) after `warmup` untimed ones."""
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        t1 = time.perf_counter()
        if i >= warmup:
            times.append((t1 - t0) * 1e3)
    return times


def blas_library():
    """The BLAS shared object this process loaded (Debian picks it via libblas.so.3)."""
    torch.mm(torch.ones(8, 8), torch.ones(8, 8))
    libs = [l.split()[-1] for l in open("/proc/self/maps") if "blas" in l.rsplit("/", 1)[-1]]
    return libs[0] if libs else "unknown"


def main():
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    blas = blas_library()
    for threads in (1, 2):
        t = step_times(threads, steps)
        print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "blas": blas,
                          "threads": threads, "steps": steps, "median_ms": statistics.median(t),
                          "min_ms": min(t)}))


if __name__ == "__main__":
    main()
