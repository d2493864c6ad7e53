#!/usr/bin/env bash
# The README's run command: installs the dependencies, builds, and runs the default job end to end
# on real data (Fashion-MNIST): the FP32 baseline, then W4A4 MXFP4 QAT with the progressive
# FP8 -> FP6 -> FP4 schedule (direct cast evaluated first), each stage resumable.
# Usage: scripts/run.sh [RECIPE] [OUT_DIR]   (default recipes/fashion_mlp_mxfp4.yaml runs/<name>)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
recipe=${1:-recipes/fashion_mlp_mxfp4.yaml}
out=${2:-runs/$(basename "$recipe" .yaml)}
resume() { [[ -f "$1/checkpoint.h5" && ! -f "$1/summary.json" ]] && echo --resume || true; }
if [[ ! -f "$out/baseline/summary.json" ]]; then
  build/mxqat train "$recipe" --out "$out/baseline" $(resume "$out/baseline")
fi
if [[ ! -f "$out/qat/summary.json" ]]; then
  build/mxqat qat "$recipe" --from "$out/baseline/checkpoint.h5" --out "$out/qat" $(resume "$out/qat")
fi
echo "baseline: $out/baseline/summary.json"
echo "qat:      $out/qat/summary.json"
cat "$out/qat/summary.json"
