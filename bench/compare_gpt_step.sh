#!/usr/bin/env bash
# Side-by-side: one training step of a llama-style GPT (4 layers, d 256, 4 heads, SwiGLU 768,
# T 128, batch 16: the benchmark's sizes; recipes/kjv_gpt.yaml trains a narrower d 192) in mxqat
# (bench_gpt_step) and in PyTorch eager (Debian python3-torch on OpenBLAS,
# bench/torch_gpt_step.py), FP32 and MXFP4 W+A QAT, 1 and 2 threads,
# same machine, ROUNDS alternating rounds; medians over rounds of each round's median.
# The PyTorch MXFP4 fake-quant is checked bit for bit against mxqat's before timing
# (bench_qat_step --dump). Ratios: QAT / FP32 (ours) and PyTorch / mxqat (> 1: mxqat faster).
# Usage: bench/compare_gpt_step.sh [ROUNDS] [TORCH_STEPS]   (BUILD=build dir, default build)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
steps=${2:-10}
build=${BUILD:-build}
export OPENBLAS_CORETYPE=SKYLAKEX OMP_WAIT_POLICY=passive
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$build/bench/bench_qat_step" --dump "$tmp/mxfp4.bin" >/dev/null
for r in $(seq "$rounds"); do
  echo "round $r: load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  cut -d' ' -f1 /proc/loadavg >>"$tmp/load"
  "$build/bench/bench_gpt_step" --benchmark_format=json --benchmark_repetitions=3 --benchmark_enable_random_interleaving=true \
    --benchmark_report_aggregates_only=true >"$tmp/mx$r.json" 2>/dev/null
  /usr/bin/python3 bench/torch_gpt_step.py "$tmp/mxfp4.bin" "$steps" >"$tmp/pt$r.jsonl"
done
cut -d' ' -f1 /proc/loadavg >>"$tmp/load"
grep -h '"check"' "$tmp/pt1.jsonl"
/usr/bin/python3 - "$tmp" "$rounds" <<'PY'
import json, statistics, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
mx = {(m, t): [] for m in ("fp32", "qat") for t in (1, 2)}
pt = {(m, t): [] for m in ("fp32", "qat") for t in (1, 2)}
for r in range(1, rounds + 1):
    for b in json.load(open(f"{tmp}/mx{r}.json"))["benchmarks"]:
        if b.get("aggregate_name") == "median":
            mode = "qat" if b["name"].startswith("BM_GptQat") else "fp32"
            mx[(mode, int(b["threads"]))].append(b["real_time"])
    for line in open(f"{tmp}/pt{r}.jsonl"):
        d = json.loads(line)
        if "threads" in d:
            pt[("qat" if "qat" in d["impl"] else "fp32", d["threads"])].append(d["median_ms"])
            blas = d["blas"]
load = [float(v) for v in open(f"{tmp}/load")]
med = statistics.median
print(f"PyTorch BLAS: {blas}")
print(f"rounds: {rounds}; 1-min load average at round starts and end: {load}")
print("| threads | mxqat FP32 ms | mxqat QAT ms | QAT / FP32 | PyTorch FP32 ms | PyTorch QAT ms "
      "| PyTorch / mxqat FP32 | PyTorch / mxqat QAT |")
print("|---|---|---|---|---|---|---|---|")
for t in (1, 2):
    f, q, pf, pq = med(mx[("fp32", t)]), med(mx[("qat", t)]), med(pt[("fp32", t)]), med(pt[("qat", t)])
    print(f"| {t} | {f:.1f} | {q:.1f} | {q / f:.3f}x | {pf:.1f} | {pq:.1f} | {pf / f:.2f}x | {pq / q:.2f}x |")
print("per round (mxqat FP32 / mxqat QAT / PyTorch FP32 / PyTorch QAT, ms):")
for t in (1, 2):
    print(f"  {t} thread(s): " + "; ".join(" / ".join(f"{v:.0f}" for v in vals) for vals in
          zip(mx[("fp32", t)], mx[("qat", t)], pt[("fp32", t)], pt[("qat", t)])))
PY
