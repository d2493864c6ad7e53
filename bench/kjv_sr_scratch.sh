#!/usr/bin/env bash
# Issue 17's quantized-backward bar: the KJV gpt trained from scratch in MXFP4 forward AND backward
# (recipes/kjv_gpt_mxfp4_sr.yaml: every GEMM's W, X and dY in MXFP4, the backward operands
# requantized, dY stochastically rounded) against FP32 at equal steps, and the same without
# stochastic rounding (quant.grad_rounding: nearest). One FP32 run, then the two quantized runs at
# the same time (THREADS each); every run is resumable (rerun the script to continue a killed one).
# Prints one markdown table of test bits/byte (the full test split of DATA) and the gaps to FP32.
#   bench/kjv_sr_scratch.sh OUT_DIR [STEPS] [THREADS]
# e.g. bench/kjv_sr_scratch.sh runs/sr_scratch 2000 8
# env: MXQAT (default build/mxqat), DATA (corpus folder; default the recipe's data/kjv), PRODUCT
# (quant.product of the quantized runs: mx_native (default) or fp32_chain; docs/formats.md §14.3).
set -euo pipefail
out=${1:?usage: bench/kjv_sr_scratch.sh OUT_DIR [STEPS] [THREADS]}
steps=${2:-5500}
threads=${3:-2}
bin=${MXQAT:-build/mxqat}
r=recipes/kjv_gpt_mxfp4_sr.yaml
data=()
[ -z "${DATA:-}" ] || data=(--set "data.dir=$DATA")
mkdir -p "$out"
resume() { [ ! -f "$1/checkpoint.h5" ] || echo --resume; }
if [ ! -f "$out/fp32/summary.json" ]; then
  # shellcheck disable=SC2046
  $bin train $r --out "$out/fp32" --threads $((threads * 2)) "${data[@]}" --set train.steps="$steps" \
    --set train.eval_every=1000 $(resume "$out/fp32") > "$out/fp32.log" 2>&1
fi
for g in stochastic nearest; do
  [ -f "$out/$g/summary.json" ] && continue
  # shellcheck disable=SC2046
  $bin qat $r --from "$out/fp32/checkpoint.h5" --out "$out/$g" --threads "$threads" "${data[@]}" \
    --set qat.steps="$steps" --set qat.eval_every=1000 --set quant.grad_rounding=$g \
    --set quant.product="${PRODUCT:-mx_native}" $(resume "$out/$g") > "$out/$g.log" 2>&1 &
done
wait
/usr/bin/env python3 - "$out" "$steps" <<'PY'
import json, os, sys
out, steps = sys.argv[1], sys.argv[2]
fp32 = json.load(open(os.path.join(out, "fp32", "summary.json")))["test_bits_per_byte"]
print(f"KJV gpt from scratch, {steps} steps each, test bits/byte\n")
print("| run | test bits/byte | gap to FP32 | wall s |")
print("|---|---:|---:|---:|")
print(f"| FP32 | {fp32:.4f} | | {json.load(open(os.path.join(out, 'fp32', 'summary.json')))['wall_s']:.0f} |")
for g, name in (("stochastic", "MXFP4 forward + backward, stochastic rounding"),
                ("nearest", "MXFP4 forward + backward, round to nearest")):
    p = os.path.join(out, g, "summary.json")
    if not os.path.exists(p):
        print(f"| {name} | (not finished: see {g}.log) | | |")
        continue
    s = json.load(open(p))
    print(f"| {name} | {s['qat']:.4f} | {s['qat'] - fp32:+.4f} | {s['wall_s']:.0f} |")
PY
