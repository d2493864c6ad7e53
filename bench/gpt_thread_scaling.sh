#!/usr/bin/env bash
# Thread scaling of the GPT training step (bench_gpt_step's model: 4 layers, d 256, T 128, batch
# 16) in mxqat alone: FP32, MXFP4 W+A QAT with the mx_native forward product, and the W4A4 step
# of recipes/kjv_gpt_mxfp4_sr.yaml (stochastically rounded MXFP4 backward, every product
# mx_native), at each thread count of THREADS, REPS repetitions in random interleaved order per
# run, RUNS runs; medians per run, then the median over runs. Prints ms per step, the speed-up
# from the first thread count to each, and the W4A4 step / FP32 step ratio (the bars of issue 19:
# <= 0.8x at 1 and 2 threads, >= 10x from 1 to 16 threads).
# Usage: bench/gpt_thread_scaling.sh [REPS] [RUNS]   (defaults 3, 1)
# Environment: BUILD (default build), BIN (dir of bench_gpt_step, default $BUILD/bench), RUNNER (a
# prefix, e.g. a carried dynamic loader), THREADS (default 1,2,4,8,16), PYTHON (default python3),
# OMP_WAIT_POLICY (left as it is: unset = libgomp's spin-then-sleep; set passive on a shared
# machine). Each repetition runs at least 2 s (bench_gpt_step's MinTime).
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-3}
runs=${2:-1}
build=${BUILD:-build}
bin=${BIN:-$build/bench}
runner=${RUNNER:-}
python=${PYTHON:-python3}
[[ -x $bin/bench_gpt_step ]] || { echo "gpt_thread_scaling.sh: no $bin/bench_gpt_step; build the bench target first (scripts/build.sh)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') ($(nproc) visible); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$runs"); do
  MXQAT_BENCH_THREADS=${THREADS:-1,2,4,8,16} $runner "$bin/bench_gpt_step" \
    --benchmark_filter='BM_GptFp32Step|BM_GptQatMxfp4MxNativeStep|BM_GptQatMxfp4SrMxNativeStep' \
    --benchmark_repetitions="$reps" --benchmark_enable_random_interleaving=true \
    --benchmark_format=json >"$tmp/run$r.json" 2>"$tmp/run$r.err" ||
    { cat "$tmp/run$r.err" >&2; exit 1; }
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
"$python" - "$tmp"/run*.json <<'PY'
import collections, json, statistics, sys
names = {"BM_GptFp32Step": "FP32", "BM_GptQatMxfp4MxNativeStep": "QAT mx_native fwd",
         "BM_GptQatMxfp4SrMxNativeStep": "W4A4 + SR bwd, mx_native"}
per_run = []  # one {(config, threads): median ms} per run
for path in sys.argv[1:]:
    reps = collections.defaultdict(list)
    for b in json.load(open(path))["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        parts = b["name"].split("/")
        scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b["time_unit"]]
        reps[(parts[0], int(parts[1]))].append(b["real_time"] * scale)
    per_run.append({k: statistics.median(v) for k, v in reps.items()})
keys = set().union(*per_run)
ms = {k: statistics.median([r[k] for r in per_run if k in r]) for k in keys}
threads = sorted({t for _, t in keys})
configs = [c for c in names if any((c, t) in ms for t in threads)]
head = "| threads |" + "".join(f" {names[c]} ms | speed-up |" for c in configs)
if "BM_GptFp32Step" in configs and "BM_GptQatMxfp4SrMxNativeStep" in configs:
    head += " W4A4 / FP32 |"
print(f"{len(per_run)} run(s), medians of the repetitions, then over runs")
print(head)
print("|" + "---:|" * (head.count("|") - 1))
for t in threads:
    row = f"| {t} |"
    for c in configs:
        v, v0 = ms.get((c, t)), ms.get((c, threads[0]))
        row += f" {v:.1f} | {v0 / v:.2f}x |" if v and v0 else " | |"
    if head.endswith("W4A4 / FP32 |"):
        f, q = ms.get(("BM_GptFp32Step", t)), ms.get(("BM_GptQatMxfp4SrMxNativeStep", t))
        row += f" {q / f:.3f}x |" if f and q else " |"
    print(row)
PY
