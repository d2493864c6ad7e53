#!/usr/bin/env bash
# Installs every Debian package mxqat builds, tests and runs with. Idempotent, non-interactive.
# Usage: scripts/install_deps.sh [--bench] [--browser] [--torch]
#   --bench    adds python3-torch for the PyTorch comparisons
#   --browser  adds chromium, for the test that renders report.html headless (skipped without it)
#   --torch    adds python3-torch + numpy for the PyTorch llama reference of the import test
#              (scripts/llama_reference.py; skipped without it)
set -euo pipefail
pkgs=(cmake g++ make pkg-config libeigen3-dev libhdf5-dev hdf5-tools libspdlog-dev libfmt-dev
      libyaml-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev zlib1g-dev libgomp1
      dataset-fashion-mnist)
for opt in "$@"; do
  case "$opt" in
    --bench) pkgs+=(python3 python3-torch python3-numpy libopenblas0-pthread) ;;
    --browser) pkgs+=(chromium fonts-dejavu-core) ;;
    --torch) pkgs+=(python3 python3-torch python3-numpy) ;;
    *) echo "install_deps.sh: unknown option '$opt' (known: --bench, --browser, --torch)" >&2; exit 2 ;;
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
