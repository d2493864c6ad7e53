#!/usr/bin/env bash
# The GGUF figures of an mxqat gpt export: writes its F32 and MXFP4 GGUF files next to it and runs
# bench/llamacpp/llamacpp_check on every test window (a JSON line; exit 1 if a bar is missed).
#   bench/gguf_check.sh EXPORT.h5 [--windows N] [--threads N]
# Needs scripts/install_deps.sh --llamacpp and a build configured after it (build/bench/llamacpp).
set -euo pipefail
export_h5="$1"; shift
root="$(cd "$(dirname "$0")/.." && pwd)"
check="$root/build/bench/llamacpp/llamacpp_check"
[[ -x "$check" ]] || { echo "gguf_check.sh: $check is missing: run scripts/install_deps.sh --llamacpp, then cmake and build" >&2; exit 2; }
out="${export_h5%.h5}"
"$root/build/mxqat" export "$export_h5" --format gguf --weights f32 --out "$out-f32.gguf"
"$root/build/mxqat" export "$export_h5" --format gguf --out "$out-mxfp4.gguf"
"$check" --export "$export_h5" --gguf-f32 "$out-f32.gguf" --gguf-mxfp4 "$out-mxfp4.gguf" \
    --out "$out-llamacpp.json" "$@"
