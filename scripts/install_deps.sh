#!/usr/bin/env bash
# Installs every Debian package mxqat builds, tests and runs with. Idempotent, non-interactive.
# Usage: scripts/install_deps.sh [--bench] [--fuzz]
#   --bench adds python3-torch for the PyTorch comparisons; --fuzz adds clang-14 and its libFuzzer
#   runtime for scripts/fuzz.sh (scripts/test.sh skips the fuzz step, saying so, without them).
set -euo pipefail
pkgs=(cmake g++ make pkg-config libeigen3-dev libhdf5-dev hdf5-tools libspdlog-dev libfmt-dev
      libyaml-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev zlib1g-dev libgomp1
      dataset-fashion-mnist)
for flag in "$@"; do
  case "$flag" in
    --bench) pkgs+=(python3 python3-torch python3-numpy libopenblas0-pthread) ;;
    --fuzz) pkgs+=(clang-14 libclang-rt-14-dev) ;;
    *) echo "install_deps.sh: unknown flag '$flag' (known: --bench, --fuzz)" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "mxqat: dependencies present (${#pkgs[@]} packages)"
