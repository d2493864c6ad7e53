#!/usr/bin/env bash
# ctest Interop.CompressedTensorsNumpy: a tiny gpt (2 layers, d_model 64) trained for a few steps,
# QAT'd with MXFP4 attention, NVFP4 MLP and an MXFP8 head, exported to HDF5 and to the
# compressed-tensors layout (mixed-precision: both pack formats), then decoded by
# scripts/check_compressed_tensors.py (numpy only) and compared bit for bit with mxqat's decode.
# Skipped (exit 77) when python3 has no numpy.
#   tests/interop/compressed_tensors_check.sh MXQAT_BINARY SOURCE_DIR
set -euo pipefail
mxqat="$1"
src="$2"
py=python3
[[ -x /usr/bin/python3 ]] && py=/usr/bin/python3
if ! "$py" -c "import numpy" 2>/dev/null; then
  echo "SKIPPED: $py has no numpy (apt-get install python3-numpy)"
  exit 77
fi
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/data"
verse="And God called the light Day, and the darkness he called Night."
for split in train:200 val:8 test:8; do
  : > "$dir/data/${split%%:*}.txt"
  for ((i = 0; i < ${split##*:}; ++i)); do printf '%s %d\n' "$verse" "$i" >> "$dir/data/${split%%:*}.txt"; done
done
cat > "$dir/tiny.yaml" <<YAML
name: tiny_ct
seed: 9
data: {dataset: text, dir: $dir/data, batch_size: 8}
model: {type: gpt, layers: 2, d_model: 64, heads: 4, context: 32, mlp_hidden: 96}
train: {steps: 30, optimizer: {type: adamw, lr: 3.0e-3}, eval_every: 30, log_every: 30}
quant:
  weight: mxfp4
  input: mxfp4
  rules:
    - {match: "blocks.*.mlp.*", weight: nvfp4, input: nvfp4}
    - {match: head, weight: mxfp8_e4m3, input: mxfp8_e4m3}
qat: {steps: 10, optimizer: {type: adamw, lr: 1.0e-3}, eval_every: 10, log_every: 10}
YAML
cd "$dir"
"$mxqat" train tiny.yaml --out base --threads 2 > log.txt 2>&1
"$mxqat" qat tiny.yaml --from base/checkpoint.h5 --out qat --threads 2 >> log.txt 2>&1
"$mxqat" export qat --out model.h5 >> log.txt 2>&1
"$mxqat" export model.h5 --format compressed-tensors --out ct
"$py" "$src/scripts/check_compressed_tensors.py" ct --export model.h5 --mxqat "$mxqat"
