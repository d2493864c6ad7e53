#!/usr/bin/env bash
# ctest LlamaCpp.TinyGptGguf: a tiny gpt (tiny_gpt_run.sh: 2 layers, d_model 64, 2 heads) QAT'd
# to W4A4 MXFP4 (head MXFP8), exported to HDF5 and to GGUF (F32 and MXFP4), then run in a real
# llama.cpp by bench/llamacpp/llamacpp_check: F32 logits within 1e-4 relative of mxqat's, MXFP4
# bits/byte within the bar of mxqat's fast path, llama.cpp's dequantized MXFP4 weights equal to
# ours. Skipped (exit 77) when llama.cpp is not installed.
#   tests/interop/tiny_gguf_check.sh MXQAT_BINARY [LLAMACPP_CHECK_BINARY]
set -euo pipefail
mxqat="$1"
check="${2:-}"
if [[ -z "$check" || ! -x "$check" ]]; then
  echo "SKIPPED: llama.cpp is not installed; run scripts/install_deps.sh --llamacpp, then cmake again"
  exit 77
fi
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
"$(dirname "$0")/tiny_gpt_run.sh" "$mxqat" "$dir" 2 "quant:
  weight: mxfp4
  input: mxfp4
  rules: [{match: head, weight: mxfp8_e4m3, input: mxfp8_e4m3}]"
cd "$dir"
"$mxqat" export model.h5 --format gguf --weights f32 --out f32.gguf
"$mxqat" export model.h5 --format gguf --out mxfp4.gguf
"$check" --export model.h5 --gguf-f32 f32.gguf --gguf-mxfp4 mxfp4.gguf --threads 2 \
    --max-rel 1e-4 --max-bpb-diff "${MXQAT_GGUF_BPB_BAR:-0.05}"
