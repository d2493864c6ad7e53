#!/usr/bin/env bash
# Issue 17's export bar on the harder recipe: the smoothed (smoothquant, awq) and the rotated
# (Hadamard) W4A4 models of the KJV gpt, exported and verified bitwise on EVERY window of the test
# split. The ptq stage writes the model each round-to-nearest method quantizes (ptq.save_models:
# FP32 weights with the smoothing folded in, the format's recipe, the rotation under quant.rotation);
# `mxqat export` packs it with the recipe's codecs and `mxqat verify` (no --limit: all test windows)
# compares the export's reference path with the fake-quant forward, logit for logit. Prints one
# markdown row per model: bits/byte of the PTQ row, windows verified, bitwise.
#   bench/kjv_w4a4_verify.sh BASELINE.h5 OUT_DIR [THREADS] [FORMAT]
# e.g. bench/kjv_w4a4_verify.sh runs/kjv_gpt_w4a4/baseline/checkpoint.h5 runs/w4a4_verify 2 mxfp4
set -euo pipefail
base=${1:?usage: bench/kjv_w4a4_verify.sh BASELINE.h5 OUT_DIR [THREADS] [FORMAT]}
out=${2:?usage: bench/kjv_w4a4_verify.sh BASELINE.h5 OUT_DIR [THREADS] [FORMAT]}
threads=${3:-2}
format=${4:-mxfp4}
bin=${MXQAT:-build/mxqat}
common=(--from "$base" --threads "$threads" --set "compare.formats=[$format]" --set ptq.save_models=true
        --set ptq.smoothquant_grid=20)
"$bin" ptq recipes/kjv_gpt_w4a4.yaml "${common[@]}" --out "$out/plain" --set "ptq.methods=[smoothquant+rtn, awq+rtn]"
"$bin" ptq recipes/kjv_gpt_w4a4.yaml "${common[@]}" --out "$out/hadamard" --set "ptq.methods=[rtn, awq+rtn]" \
  --set quant.rotation=hadamard
echo "| model | bits/byte (PTQ row) | test windows verified | bitwise equal | export+verify wall s |"
echo "|---|---:|---:|---|---:|"
for tag in plain hadamard; do
  for model in "$out/$tag"/models/*.h5; do
    name=$(basename "$model" .h5)
    t0=$(date +%s)
    "$bin" export "$model" --out "$out/$tag/export/$name.h5" > /dev/null
    "$bin" verify "$out/$tag/export/$name.h5" --threads "$threads" --out "$out/$tag/export/$name.verify.json" > /dev/null
    t1=$(date +%s)
    /usr/bin/python3 - "$out/$tag/${name}.json" "$out/$tag/export/$name.verify.json" "$tag" "$name" $((t1 - t0)) <<'PY'
import json, sys
row, ver, tag, name, wall = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3], sys.argv[4], sys.argv[5]
label = ("hadamard+" if tag == "hadamard" else "") + name
print(f"| {label} | {row['value']:.4f} | {ver['samples']} | {ver['bitwise_equal']} | {wall} |")
PY
  done
done
