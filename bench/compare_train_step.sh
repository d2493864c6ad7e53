#!/usr/bin/env bash
# Side-by-side: mxqat vs PyTorch eager (Debian python3-torch, on OpenBLAS) for the FP32 training
# step of the MLP 784-1024-1024-10, batch 256 (bench_qat_step's BM_MlpFp32Step), same
# machine, same run; ROUNDS alternating rounds, medians, ratio = pytorch / mxqat (>1: mxqat faster).
# Usage: bench/compare_train_step.sh [ROUNDS]   (needs scripts/install_deps.sh --bench and a build)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
export OPENBLAS_CORETYPE=SKYLAKEX OMP_WAIT_POLICY=passive
tmp=$(mktemp -d)
for r in $(seq "$rounds"); do
  build/bench/bench_qat_step --benchmark_filter=BM_MlpFp32Step --benchmark_format=json \
    --benchmark_repetitions=3 --benchmark_report_aggregates_only=true >"$tmp/mx$r.json" 2>/dev/null
  /usr/bin/python3 bench/torch_train_step.py 30 >"$tmp/pt$r.jsonl"
done
/usr/bin/python3 - "$tmp" "$rounds" <<'PY'
import json, statistics, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
mx = {1: [], 2: []}; pt = {1: [], 2: []}
for r in range(1, rounds + 1):
    for b in json.load(open(f"{tmp}/mx{r}.json"))["benchmarks"]:
        if b.get("aggregate_name") == "median":
            mx[int(b["threads"])].append(b["real_time"])
    for line in open(f"{tmp}/pt{r}.jsonl"):
        d = json.loads(line); pt[d["threads"]].append(d["median_ms"])
print("| threads | mxqat ms (median) | PyTorch ms (median) | PyTorch / mxqat |")
print("|---|---|---|---|")
for t in (1, 2):
    m, p = statistics.median(mx[t]), statistics.median(pt[t])
    print(f"| {t} | {m:.2f} | {p:.2f} | {p / m:.2f}x |")
PY
rm -rf "$tmp"
