#!/usr/bin/env bash
# Installs every Debian package mxqat builds, tests and runs with. Idempotent, non-interactive.
# Usage: scripts/install_deps.sh [--mpi] [--bench] [--browser] [--torch] [--llamacpp] [--fuzz]
#   --mpi       adds OpenMPI (libopenmpi-dev, openmpi-bin): data-parallel training under mpirun
#               (CMake's MXQAT_MPI turns on when it finds it) and the DistMpi tests (skipped,
#               saying so, without mpirun); scripts/test.sh always passes it
#   --bench     adds python3-torch for the PyTorch comparisons of bench/
#   --browser   adds chromium, for the test that renders report.html headless (skipped without it)
#   --torch     adds python3-torch + numpy for the PyTorch llama reference of the import test
#               (scripts/llama_reference.py; skipped without it)
#   --llamacpp  adds nodejs and git (and npm unless present), and installs a prebuilt llama.cpp
#               into .llamacpp/ (git-ignored): npm packages node-llama-cpp (its llama.cpp source
#               bundle: the headers) and @node-llama-cpp/linux-x64 (the CPU libraries), for
#               bench/llamacpp (GGUF checks; without it the GGUF ctest is skipped)
#   --fuzz      adds clang-14 and its libFuzzer runtime for scripts/fuzz.sh (scripts/test.sh skips
#               the fuzz step, saying so, without them)
set -euo pipefail
LLAMACPP_VERSION=3.22.1   # node-llama-cpp release; its llama.cpp is tagged in llama/llama.cpp.info.json
pkgs=(cmake g++ make pkg-config libeigen3-dev libhdf5-dev hdf5-tools libspdlog-dev libfmt-dev
      libyaml-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev zlib1g-dev libgomp1
      dataset-fashion-mnist)
llamacpp=0
for opt in "$@"; do
  case "$opt" in
    --mpi) pkgs+=(libopenmpi-dev openmpi-bin) ;;
    --bench) pkgs+=(python3 python3-torch python3-numpy libopenblas0-pthread) ;;
    --browser) pkgs+=(chromium fonts-dejavu-core) ;;
    --torch) pkgs+=(python3 python3-torch python3-numpy) ;;
    --llamacpp) pkgs+=(nodejs git ca-certificates); llamacpp=1
                # Debian's npm; a nodejs from elsewhere (e.g. NodeSource) brings its own npm
                command -v npm >/dev/null || pkgs+=(npm) ;;
    --fuzz) pkgs+=(clang-14 libclang-rt-14-dev) ;;
    *) echo "install_deps.sh: unknown option '$opt' (known: --mpi, --bench, --browser, --torch, --llamacpp, --fuzz)" >&2; exit 2 ;;
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
if ((llamacpp)); then
  root="$(cd "$(dirname "$0")/.." && pwd)"
  dir="$root/.llamacpp"
  if [[ ! -f "$dir/include/llama.h" || "$(cat "$dir/version" 2>/dev/null)" != "$LLAMACPP_VERSION" ]]; then
    rm -rf "$dir" && mkdir -p "$dir"
    # --ignore-scripts: nothing is built or downloaded beyond the two packages and their JS deps.
    npm install --prefix "$dir" --no-save --ignore-scripts --no-audit --no-fund --omit=optional \
      "node-llama-cpp@$LLAMACPP_VERSION" "@node-llama-cpp/linux-x64@$LLAMACPP_VERSION"
    src="$(mktemp -d)"
    git -c advice.detachedHead=false clone -q "$dir/node_modules/node-llama-cpp/llama/gitRelease.bundle" "$src/llama.cpp"
    mkdir -p "$dir/include"
    cp "$src"/llama.cpp/include/*.h "$src"/llama.cpp/ggml/include/*.h "$dir/include/"
    rm -rf "$src"
    ln -sfn node_modules/@node-llama-cpp/linux-x64/bins/linux-x64 "$dir/lib"
    echo "$LLAMACPP_VERSION" > "$dir/version"
  fi
  echo "mxqat: llama.cpp (node-llama-cpp $LLAMACPP_VERSION) in $dir; re-run cmake to build bench/llamacpp"
fi
