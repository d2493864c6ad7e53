#!/usr/bin/env bash
# Side-by-side: mxqat FP32 step, mxqat MXFP4 QAT step, PyTorch eager MXFP4 QAT step (Debian
# python3-torch) for the MLP 784-1024-1024-10, batch 256; same machine, same run. First the PyTorch
# fake-quant is checked bit for bit against mxqat's (bench_qat_step --dump; the script refuses to
# time on a mismatch). Then ROUNDS alternating rounds, medians over rounds of each round's median
# (the FP32 and QAT repetitions interleaved at random, so that load spikes hit both alike).
# Ratios: QAT / FP32 (ours; requirement <= 1.1) and PyTorch QAT / mxqat QAT (requirement >= 1.5).
# PyTorch runs twice per round: as is, and with glibc malloc tuned the way mxqat tunes itself
# (trainers::tune_allocator: mmap and trim thresholds 1 GiB, here via MALLOC_*_ env), since fresh
# page faults on every large temporary are most of an eager fake-quant's cost otherwise.
# PyTorch must load OpenBLAS (Debian's python3-torch falls back to the netlib reference BLAS when
# libopenblas0 is absent; the script stops then unless ALLOW_REFERENCE_BLAS=1).
# Usage: bench/compare_qat_step.sh [ROUNDS]   (BUILD=build dir, default build)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
build=${BUILD:-build}
export OPENBLAS_CORETYPE=SKYLAKEX OMP_WAIT_POLICY=passive
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
blas=$(/usr/bin/python3 -c 'import sys; sys.path.insert(0, "bench"); import torch_qat_step as t; print(t.blas_library())')
echo "PyTorch BLAS: $blas"
if [[ "$blas" == */blas/libblas.so* && -z "${ALLOW_REFERENCE_BLAS:-}" ]]; then
  echo "PyTorch runs on the netlib reference BLAS: install libopenblas0 (or put its directory on" \
       "LD_LIBRARY_PATH), or set ALLOW_REFERENCE_BLAS=1 to time it anyway" >&2
  exit 1
fi
"$build/bench/bench_qat_step" --dump "$tmp/mxfp4.bin"
for r in $(seq "$rounds"); do
  echo "round $r: load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  cut -d' ' -f1 /proc/loadavg >>"$tmp/load"
  "$build/bench/bench_qat_step" --benchmark_format=json --benchmark_repetitions=3 --benchmark_enable_random_interleaving=true \
    --benchmark_report_aggregates_only=true >"$tmp/mx$r.json" 2>/dev/null
  /usr/bin/python3 bench/torch_qat_step.py "$tmp/mxfp4.bin" 30 >"$tmp/pt$r.jsonl"
  MALLOC_MMAP_THRESHOLD_=$((1 << 30)) MALLOC_TRIM_THRESHOLD_=$((1 << 30)) \
    /usr/bin/python3 bench/torch_qat_step.py "$tmp/mxfp4.bin" 30 >"$tmp/pm$r.jsonl"
done
cut -d' ' -f1 /proc/loadavg >>"$tmp/load"
grep -h '"check"' "$tmp/pt1.jsonl"
/usr/bin/python3 - "$tmp" "$rounds" <<'PY'
import json, statistics, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
fp, qat, pt, pm = ({1: [], 2: []} for _ in range(4))
for r in range(1, rounds + 1):
    for b in json.load(open(f"{tmp}/mx{r}.json"))["benchmarks"]:
        if b.get("aggregate_name") == "median":
            (qat if b["name"].startswith("BM_MlpQat") else fp)[int(b["threads"])].append(b["real_time"])
    for name, dst in (("pt", pt), ("pm", pm)):
        for line in open(f"{tmp}/{name}{r}.jsonl"):
            d = json.loads(line)
            if "threads" in d:
                dst[d["threads"]].append(d["median_ms"])
load = [float(v) for v in open(f"{tmp}/load")]
med = statistics.median
print(f"rounds: {rounds}; 1-min load average at round starts and end: {load}")
print("| threads | mxqat FP32 ms | mxqat QAT ms | QAT / FP32 | PyTorch QAT ms | PyTorch / mxqat QAT "
      "| PyTorch QAT ms, tuned malloc | PyTorch tuned / mxqat QAT |")
print("|---|---|---|---|---|---|---|---|")
for t in (1, 2):
    f, q, p, m = med(fp[t]), med(qat[t]), med(pt[t]), med(pm[t])
    print(f"| {t} | {f:.2f} | {q:.2f} | {q / f:.3f}x | {p:.2f} | {p / q:.2f}x | {m:.2f} | {m / q:.2f}x |")
print("per round (mxqat FP32 / mxqat QAT / PyTorch QAT / PyTorch QAT tuned malloc, ms):")
for t in (1, 2):
    print(f"  {t} thread(s): " + "; ".join(
        " / ".join(f"{v:.2f}" for v in vals) for vals in zip(fp[t], qat[t], pt[t], pm[t])))
PY
