#!/usr/bin/env bash
# ctest LlamaCpp.TinyGptGguf: a tiny gpt (2 layers, d_model 64) trained for a few steps on a small
# corpus, QAT'd to W4A4 MXFP4 (head MXFP8), exported to HDF5 and to GGUF (F32 and MXFP4), then run
# in a real llama.cpp by bench/llamacpp/llamacpp_check: F32 logits within 1e-4 relative of
# mxqat's, MXFP4 bits/byte within the bar of mxqat's fast path, llama.cpp's dequantized MXFP4
# weights equal to ours. Skipped (exit 77) when llama.cpp is not installed.
#   tests/llamacpp/tiny_gguf_check.sh MXQAT_BINARY [LLAMACPP_CHECK_BINARY]
set -euo pipefail
mxqat="$1"
check="${2:-}"
if [[ -z "$check" || ! -x "$check" ]]; then
  echo "SKIPPED: llama.cpp is not installed; run scripts/install_deps.sh --llamacpp, then cmake again"
  exit 77
fi
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
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
name: tiny_gguf
seed: 5
data: {dataset: text, dir: $dir/data, batch_size: 8}
model: {type: gpt, layers: 2, d_model: 64, heads: 2, context: 32, mlp_hidden: 96}
train: {steps: 60, optimizer: {type: adamw, lr: 3.0e-3}, eval_every: 60, log_every: 30}
quant:
  weight: mxfp4
  input: mxfp4
  rules: [{match: head, weight: mxfp8_e4m3, input: mxfp8_e4m3}]
qat: {steps: 20, optimizer: {type: adamw, lr: 1.0e-3}, eval_every: 20, log_every: 10}
YAML
cd "$dir"
"$mxqat" train tiny.yaml --out base --threads 2 > log.txt 2>&1
"$mxqat" qat tiny.yaml --from base/checkpoint.h5 --out qat --threads 2 >> log.txt 2>&1
"$mxqat" export qat --out model.h5 >> log.txt 2>&1
"$mxqat" export model.h5 --format gguf --weights f32 --out f32.gguf
"$mxqat" export model.h5 --format gguf --out mxfp4.gguf
"$check" --export model.h5 --gguf-f32 f32.gguf --gguf-mxfp4 mxfp4.gguf --threads 2 \
    --max-rel 1e-4 --max-bpb-diff "${MXQAT_GGUF_BPB_BAR:-0.05}"
