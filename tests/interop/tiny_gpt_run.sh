#!/usr/bin/env bash
# Shared by the interop ctests: in DIR, a small corpus (data/{train,val,test}.txt), a tiny gpt
# recipe (2 layers, d_model 64, context 32, mlp_hidden 96) whose quant section is QUANT_YAML,
# a short FP32 training, a short QAT, and the HDF5 export DIR/model.h5.
#   tests/interop/tiny_gpt_run.sh MXQAT_BINARY DIR HEADS QUANT_YAML
set -euo pipefail
mxqat="$1" dir="$2" heads="$3" quant="$4"
mkdir -p "$dir/data"
verses=("In the beginning God created the heaven and the earth."
        "And the earth was without form, and void; and darkness was upon the face of the deep."
        "And God said, Let there be light: and there was light."
        "And God saw the light, that it was good: and God divided the light from the darkness.")
for split in train:60 val:4 test:4; do
  : > "$dir/data/${split%%:*}.txt"
  for ((i = 0; i < ${split##*:}; ++i)); do printf '%s\n' "${verses[@]}" >> "$dir/data/${split%%:*}.txt"; done
done
cat > "$dir/tiny.yaml" <<YAML
name: tiny_interop
seed: 5
data: {dataset: text, dir: $dir/data, batch_size: 8}
model: {type: gpt, layers: 2, d_model: 64, heads: $heads, context: 32, mlp_hidden: 96}
train: {steps: 60, optimizer: {type: adamw, lr: 3.0e-3}, eval_every: 60, log_every: 30}
$quant
qat: {steps: 20, optimizer: {type: adamw, lr: 1.0e-3}, eval_every: 20, log_every: 10}
YAML
cd "$dir"
"$mxqat" train tiny.yaml --out base --threads 2 > log.txt 2>&1
"$mxqat" qat tiny.yaml --from base/checkpoint.h5 --out qat --threads 2 >> log.txt 2>&1
"$mxqat" export qat --out model.h5 >> log.txt 2>&1
