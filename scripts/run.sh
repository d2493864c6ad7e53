#!/usr/bin/env bash
# The README's run command: installs the dependencies, builds, and runs the whole job of a recipe
# on real data (Fashion-MNIST) with `mxqat run`: FP32 baseline -> PTQ (rtn, mse, gptq) -> QAT
# (direct and progressive FP8 -> FP6 -> FP4, per compared format) -> packed export -> bitwise
# verification -> report. Every stage is skipped when done and resumed when interrupted, so
# running it again after a kill continues where it stopped.
# Usage: scripts/run.sh [RECIPE] [OUT_DIR]   (default recipes/fashion_mlp_mxfp4.yaml runs/<name>)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
recipe=${1:-recipes/fashion_mlp_mxfp4.yaml}
args=("$recipe")
if [[ $# -ge 2 ]]; then args+=(--out "$2"); fi
build/mxqat run "${args[@]}"
