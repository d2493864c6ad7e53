#!/usr/bin/env bash
# Configures and builds mxqat (Release, -O3, -march=native) into build/ (or $MXQAT_BUILD_DIR).
# Usage: scripts/build.sh [--sanitize] [extra cmake -D options]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${MXQAT_BUILD_DIR:-build}
opts=()
if [[ "${1:-}" == "--sanitize" ]]; then
  shift
  dir=${MXQAT_BUILD_DIR:-build-asan}
  opts+=(-DMXQAT_SANITIZE=ON -DMXQAT_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo)
fi
cmake -S . -B "$dir" "${opts[@]}" "$@" >/dev/null
cmake --build "$dir" -j "$(nproc)"
echo "mxqat: built in $dir"
