#!/usr/bin/env bash
# The README's test command: installs the dependencies, builds, runs the whole test suite.
# Usage: scripts/test.sh [--sanitize]   (--sanitize: AddressSanitizer + UBSan build in build-asan/)
# Before the suite, each libFuzzer target of tests/fuzz runs for $MXQAT_CI_FUZZ_SECONDS (default 20) seconds
# (scripts/fuzz.sh, ASan + UBSan, from the seed corpus on a fresh clone, libFuzzer seed
# $MXQAT_FUZZ_SEED, default 1, so every run tries the same inputs in the same order; skipped,
# saying so, where clang-14 is not installed; MXQAT_CI_FUZZ_SECONDS=0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
fuzz_s=${MXQAT_CI_FUZZ_SECONDS:-20}
# --mpi: OpenMPI, so that the data-parallel tests (DistMpi.*, under mpirun) run too.
if [[ "$fuzz_s" != 0 ]]; then scripts/install_deps.sh --mpi --fuzz; else scripts/install_deps.sh --mpi; fi
scripts/build.sh "$@"
dir=build
[[ "${1:-}" == "--sanitize" ]] && dir=build-asan
export OMP_WAIT_POLICY=passive ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
# The fuzz targets run before the suite, so that ctest's summary is the last thing printed.
if [[ "$fuzz_s" != 0 ]]; then
  MXQAT_FUZZ_SEED=${MXQAT_FUZZ_SEED:-1} scripts/fuzz.sh all "$fuzz_s"
fi
cd "$dir" && ctest --output-on-failure -j "$(nproc)" --timeout 600
