#!/usr/bin/env bash
# Runs one libFuzzer target of tests/fuzz for a bounded time, building it first with clang-14.
# Usage: scripts/fuzz.sh [--fast] TARGET SECONDS [extra libFuzzer flags]
#   TARGET: recipe | checkpoint | export | quantize | all (each target for SECONDS)
#   default: ASan + UBSan (RelWithDebInfo), built in build-fuzz/ (or $MXQAT_FUZZ_BUILD_DIR);
#   --fast:  UBSan only (also -O2 -g), in build-fuzz-fast/: more executions per second for long
#            runs; ASan's checks (and leak detection) are what it gives up.
# The working corpus grows in BUILD_DIR/corpus/TARGET (seeded from tests/fuzz/corpus/TARGET);
# an input that crashes, hangs, leaks or allocates past the limits is written to
# tests/fuzz/crashes/TARGET/ and the script fails: commit that file (the ctest Fuzz.replay_TARGET
# replays it from then on) and fix the bug.
# MXQAT_FUZZ_SEED fixes libFuzzer's random seed (scripts/test.sh sets it: the same inputs in the
# same order on every run; a slower machine stops earlier in the same sequence).
# Without clang-14 it says so and exits 0 (install it with scripts/install_deps.sh --fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(recipe checkpoint export quantize)
fast=0
if [[ "${1:-}" == --fast ]]; then fast=1; shift; fi
usage="usage: scripts/fuzz.sh [--fast] TARGET SECONDS [libFuzzer flags] (TARGET: ${targets[*]} or all)"
target=${1:?$usage}
seconds=${2:?$usage}
shift 2
if ! command -v clang++-14 >/dev/null || ! command -v clang-14 >/dev/null; then
  echo "fuzz: clang-14 not found; skipping the fuzz targets (scripts/install_deps.sh --fuzz installs it)"
  exit 0
fi
if [[ "$target" == all ]]; then
  flags=(); [[ $fast == 1 ]] && flags=(--fast)
  for t in "${targets[@]}"; do "$0" "${flags[@]}" "$t" "$seconds" "$@"; done
  exit 0
fi
[[ " ${targets[*]} " == *" $target "* ]] || { echo "fuzz: unknown target '$target' (known: ${targets[*]}, all)" >&2; exit 2; }
if [[ $fast == 1 ]]; then
  dir=${MXQAT_FUZZ_BUILD_DIR:-build-fuzz-fast} sanitize=undefined type=RelWithDebInfo
else
  dir=${MXQAT_FUZZ_BUILD_DIR:-build-fuzz} sanitize=address,undefined type=RelWithDebInfo
fi
if [[ ! -f "$dir/CMakeCache.txt" ]]; then
  CC=clang-14 CXX=clang++-14 cmake -S . -B "$dir" -DMXQAT_FUZZ=ON -DMXQAT_FUZZ_SANITIZE=$sanitize \
    -DMXQAT_BUILD_TESTS=OFF -DMXQAT_BUILD_BENCH=OFF -DMXQAT_NATIVE=OFF -DCMAKE_BUILD_TYPE=$type \
    ${MXQAT_CCACHE:-} >/dev/null
fi
cmake --build "$dir" -j "${MXQAT_FUZZ_JOBS:-$(nproc)}" --target "fuzz_$target" >/dev/null
corpus="$dir/corpus/$target" crashes="tests/fuzz/crashes/$target"
mkdir -p "$corpus" "$crashes"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp}  # libraries' own leaks only
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
seed=(); [[ -n "${MXQAT_FUZZ_SEED:-}" ]] && seed=(-seed="$MXQAT_FUZZ_SEED")
# -rss_limit_mb: a bomb that allocates past this is a finding; -timeout: a hang is one too.
# -close_fd_mask=1: the quantize target prints what the CLI prints; not into the log.
log="$dir/fuzz_$target.log"
set +e
nice -n "${MXQAT_FUZZ_NICE:-10}" "$dir/tests/fuzz/fuzz_$target" -max_total_time="$seconds" \
  -timeout=20 -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1 -close_fd_mask=1 \
  "${seed[@]}" -artifact_prefix="$crashes/" "$@" "$corpus" "tests/fuzz/corpus/$target" >"$log" 2>&1
status=$?
set -e
grep -E "^#[0-9]+ +(DONE|INITED)|stat::number_of_executed_units|stat::average_exec_per_sec|ERROR|SUMMARY|Test unit written" "$log" || true
if [[ $status -ne 0 ]]; then
  echo "fuzz: $target found a problem (exit $status; log $log); the input is in $crashes/" >&2
  exit 1
fi
echo "fuzz: $target ran ${seconds}s without a finding"
