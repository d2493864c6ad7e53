#!/usr/bin/env bash
# The harder comparison of issue 17: PTQ methods on the KJV gpt with every GEMM (the head
# included) at W4A4, at MXFP4, NVFP4 and INT4 (groups of 32), without and with the block Hadamard
# rotation, from an FP32 baseline checkpoint; prints one markdown table (test bits per byte, the
# gap to FP32 and the share of the rtn gap closed). Rows already on disk are reused (the ptq stage
# resumes), so a killed run continues.
#   bench/kjv_w4a4.sh BASELINE.h5 OUT_DIR [THREADS] [METHODS] [FORMATS]
# e.g. bench/kjv_w4a4.sh runs/kjv_gpt_w4a4/baseline/checkpoint.h5 runs/w4a4_bench 16
set -euo pipefail
base=${1:?usage: bench/kjv_w4a4.sh BASELINE.h5 OUT_DIR [THREADS] [METHODS] [FORMATS]}
out=${2:?usage: bench/kjv_w4a4.sh BASELINE.h5 OUT_DIR [THREADS] [METHODS] [FORMATS]}
threads=${3:-2}
methods=${4:-"[rtn, mse, gptq, smoothquant+rtn, awq+rtn, awq+gptq]"}
formats=${5:-"[mxfp4, nvfp4, int4_sym]"}
bin=${MXQAT:-build/mxqat}
"$bin" ptq recipes/kjv_gpt_w4a4.yaml --from "$base" --out "$out/plain" --threads "$threads" \
  --set "ptq.methods=$methods" --set "compare.formats=$formats"
"$bin" ptq recipes/kjv_gpt_w4a4.yaml --from "$base" --out "$out/hadamard" --threads "$threads" \
  --set "ptq.methods=[rtn, gptq, awq+rtn]" --set "compare.formats=$formats" --set quant.rotation=hadamard
/usr/bin/python3 - "$out" <<'PY'
import json, sys, os
out = sys.argv[1]
rows, base = [], None
for tag in ("plain", "hadamard"):
    s = json.load(open(os.path.join(out, tag, "summary.json")))
    base = s["baseline"]
    for r in s["rows"]:
        rows.append((r["format"], ("hadamard+" if tag == "hadamard" else "") + r["method"], r["value"]))
rtn = {f: v for f, m, v in rows if m == "rtn"}
print(f"FP32 baseline: {base:.4f} test bits/byte\n")
print("| format | method | bits/byte | gap to FP32 | share of the rtn gap closed |")
print("|---|---|---:|---:|---:|")
for f, m, v in rows:
    gap = rtn[f] - base
    print(f"| {f} | {m} | {v:.4f} | {v - base:+.4f} | {(rtn[f] - v) / gap * 100:.0f}% |")
PY
