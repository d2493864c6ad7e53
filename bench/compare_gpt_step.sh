#!/usr/bin/env bash
# Side-by-side: one training step of a llama-style GPT (4 layers, d 256, 4 heads, SwiGLU 768,
# T 128, batch 16: the benchmark's sizes; recipes/kjv_gpt.yaml trains a narrower d 192) in mxqat
# (bench_gpt_step) and in PyTorch eager (Debian python3-torch on OpenBLAS,
# bench/torch_gpt_step.py), FP32 and MXFP4 W+A QAT (mxqat: on the fp32_chain and the mx_native
# forward product, docs/formats.md §14; and with recipes/kjv_gpt_mxfp4_sr.yaml's stochastically
# rounded MXFP4 backward operands, every product fp32_chain or mx_native, §14.3; PyTorch has the
# forward fake-quant only, its backward is FP32), 1 and 2 threads,
# same machine, ROUNDS alternating rounds; medians over rounds of each round's median.
# The PyTorch MXFP4 fake-quant is checked bit for bit against mxqat's before timing
# (bench_qat_step --dump). Ratios: QAT / FP32 (ours) and PyTorch / mxqat (> 1: mxqat faster).
# Usage: bench/compare_gpt_step.sh [ROUNDS] [TORCH_STEPS]
# Environment: BUILD (build dir, default build), THREADS (comma-separated, default 1,2), PYTHON
# (the interpreter with torch, default /usr/bin/python3), BIN (dir of bench_gpt_step and
# bench_qat_step, default $BUILD/bench), RUNNER (a prefix for them, e.g. a carried dynamic loader),
# OMP_WAIT_POLICY (default passive; `default` leaves the runtimes' own spin-then-sleep; both sides),
# TORCH (default 1; 0 times mxqat alone: no PyTorch, TORCH_STEPS unused), FILTER (bench_gpt_step's
# --benchmark_filter, default all five configurations; e.g. the thread-scaling call of issue 19:
# THREADS=1,2,4,8,16 TORCH=0 FILTER='BM_GptFp32Step|BM_GptQatMxfp4MxNativeStep|BM_GptQatMxfp4SrMxNativeStep').
# Besides the side-by-side table (all five configurations and PyTorch) it prints each series' step
# time and speed-up from the first thread count to each.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
steps=${2:-10}
build=${BUILD:-build}
bin=${BIN:-$build/bench}
threads=${THREADS:-1,2}
python=${PYTHON:-/usr/bin/python3}
runner=${RUNNER:-}
export OPENBLAS_CORETYPE=SKYLAKEX MXQAT_BENCH_THREADS=$threads
if [ "${OMP_WAIT_POLICY:-passive}" = default ]; then unset OMP_WAIT_POLICY; else export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
torch=${TORCH:-1}
[ "$torch" = 1 ] && $runner "$bin/bench_qat_step" --dump "$tmp/mxfp4.bin" >/dev/null
for r in $(seq "$rounds"); do
  echo "round $r: load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  cut -d' ' -f1 /proc/loadavg >>"$tmp/load"
  $runner "$bin/bench_gpt_step" --benchmark_format=json --benchmark_repetitions=3 --benchmark_enable_random_interleaving=true \
    --benchmark_report_aggregates_only=true --benchmark_filter="${FILTER:-.}" >"$tmp/mx$r.json" 2>/dev/null
  : >"$tmp/pt$r.jsonl"
  [ "$torch" = 1 ] && "$python" bench/torch_gpt_step.py "$tmp/mxfp4.bin" "$steps" "$threads" >"$tmp/pt$r.jsonl"
done
cut -d' ' -f1 /proc/loadavg >>"$tmp/load"
[ "$torch" = 1 ] && grep -h '"check"' "$tmp/pt1.jsonl"
"$python" - "$tmp" "$rounds" "$threads" <<'PY'
import json, statistics, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
counts = [int(t) for t in sys.argv[3].split(",")]
blas = None
mx = {(m, t): [] for m in ("fp32", "qat", "mxn", "sr", "srmxn") for t in counts}
def mode(name):
    if not name.startswith("BM_GptQat"):
        return "fp32"
    return ("sr" if "Sr" in name else "") + ("mxn" if "MxNative" in name else "") or "qat"
pt = {(m, t): [] for m in ("fp32", "qat") for t in counts}
for r in range(1, rounds + 1):
    for b in json.load(open(f"{tmp}/mx{r}.json"))["benchmarks"]:
        if b.get("aggregate_name") == "median":
            mx[(mode(b["name"]), int(b["threads"]))].append(b["real_time"])
    for line in open(f"{tmp}/pt{r}.jsonl"):
        d = json.loads(line)
        if "threads" in d:
            pt[("qat" if "qat" in d["impl"] else "fp32", d["threads"])].append(d["median_ms"])
            blas = d["blas"]
load = [float(v) for v in open(f"{tmp}/load")]
med = statistics.median
full = all(v for v in list(mx.values()) + list(pt.values()))  # every configuration, and PyTorch
if blas:
    print(f"PyTorch BLAS: {blas}")
print(f"rounds: {rounds}; 1-min load average at round starts and end: {load}")
print("QAT = MXFP4 W+A forward, FP32 backward; SR = the same with the SR MXFP4 backward operands "
      "(mxqat only); fp32_chain / mx_native = the products (SR mx_native: forward, dX and dW)")
if full:
    print("| threads | mxqat FP32 ms | QAT fp32_chain ms | QAT / FP32 | QAT mx_native ms | mx_native / FP32 "
          "| SR fp32_chain ms | SR mx_native ms | SR mx_native / FP32 "
          "| PyTorch FP32 ms | PyTorch QAT ms | PyTorch / mxqat FP32 | PyTorch / mxqat QAT "
          "| PyTorch QAT / mxqat mx_native | PyTorch QAT / mxqat SR mx_native |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for t in counts:
        f, q, n = med(mx[("fp32", t)]), med(mx[("qat", t)]), med(mx[("mxn", t)])
        sq, sn = med(mx[("sr", t)]), med(mx[("srmxn", t)])
        pf, pq = med(pt[("fp32", t)]), med(pt[("qat", t)])
        print(f"| {t} | {f:.1f} | {q:.1f} | {q / f:.3f}x | {n:.1f} | {n / f:.3f}x | {sq:.1f} | {sn:.1f} "
              f"| {sn / f:.3f}x | {pf:.1f} | {pq:.1f} | {pf / f:.2f}x | {pq / q:.2f}x | {pq / n:.2f}x "
              f"| {pq / sn:.2f}x |")
    print("per round (mxqat FP32 / QAT / QAT mx_native / SR / SR mx_native / PyTorch FP32 / PyTorch QAT, ms):")
    for t in counts:
        print(f"  {t} thread(s): " + "; ".join(" / ".join(f"{v:.0f}" for v in vals) for vals in
              zip(mx[("fp32", t)], mx[("qat", t)], mx[("mxn", t)], mx[("sr", t)], mx[("srmxn", t)],
                  pt[("fp32", t)], pt[("qat", t)])))
# Each series that ran at every count: ms per step and the speed-up from the first count; the SR
# mx_native step / FP32 step where both ran.
series = [(name, d, m) for name, d, m in (
    ("mxqat FP32", mx, "fp32"), ("mxqat QAT fp32_chain", mx, "qat"), ("mxqat QAT mx_native", mx, "mxn"),
    ("mxqat SR fp32_chain", mx, "sr"), ("mxqat SR mx_native", mx, "srmxn"), ("PyTorch FP32", pt, "fp32"),
    ("PyTorch QAT", pt, "qat")) if all(d[(m, t)] for t in counts)]
sr_ratio = all(mx[(m, t)] for m in ("fp32", "srmxn") for t in counts)
print(f"thread scaling from {counts[0]} thread(s): ms per step (speed-up)"
      + ("; SR mx_native / FP32" if sr_ratio else ""))
print("| threads |" + "".join(f" {name} |" for name, _, _ in series) + (" SR mx_native / FP32 |" if sr_ratio else ""))
print("|---|" + "---|" * (len(series) + sr_ratio))
for t in counts:
    row = "".join(f" {med(d[(m, t)]):.1f} ({med(d[(m, counts[0])]) / med(d[(m, t)]):.2f}x) |" for _, d, m in series)
    if sr_ratio:
        row += f" {med(mx[('srmxn', t)]) / med(mx[('fp32', t)]):.3f}x |"
    print(f"| {t} |{row}")
PY
