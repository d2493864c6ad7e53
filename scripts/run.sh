#!/usr/bin/env bash
# The README's run command: installs the dependencies, builds, and runs the default recipe end to
# end on real data (Fashion-MNIST). Usage: scripts/run.sh [RECIPE] [--out DIR] [mxqat options]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
recipe=${1:-recipes/fashion_mlp.yaml}
shift || true
exec build/mxqat train "$recipe" "$@"
