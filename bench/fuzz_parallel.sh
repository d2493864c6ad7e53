#!/usr/bin/env bash
# The issue-14 fuzzing bar: the four libFuzzer targets at once until each has run N executions
# (default 1,040,000), P processes per target (different -seed, one shared working corpus per
# target, started from the seeds and every kept crash), each stopping at its share of N or after
# T seconds. Prints per target: executions, wall time, findings; logs and findings go to OUT.
# Usage: bench/fuzz_parallel.sh [BIN_DIR [SEED_DIR [OUT]]]
#   BIN_DIR  the fuzz_* binaries (default build-fuzz-fast/tests/fuzz: scripts/fuzz.sh --fast)
#   SEED_DIR holds corpus/TARGET and crashes/TARGET (default tests/fuzz)
#   env: P_recipe P_checkpoint P_export P_quantize (4 6 3 3: 16 cores; 0 leaves one out), N, T (200),
#        RUN (a prefix for each fuzz binary, e.g. a dynamic loader and --library-path)
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$here/build-fuzz-fast/tests/fuzz} seeds=${2:-$here/tests/fuzz} out=${3:-${OUT:-/tmp/mxqat_fuzz_parallel}}
T=${T:-200} N=${N:-1040000} RUN=${RUN:-}
declare -A P=([recipe]=${P_recipe:-4} [checkpoint]=${P_checkpoint:-6} [export]=${P_export:-3}
              [quantize]=${P_quantize:-3})
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$here/tests/lsan.supp}
work=$(mktemp -d /dev/shm/mxqat_corpus.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
echo "$(nproc --all) cores,$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)" | tee "$out/machine"
t0=$(date +%s%N)
for t in recipe checkpoint export quantize; do
  [[ ${P[$t]} == 0 ]] && continue  # P_TARGET=0 leaves a target out
  mkdir -p "$out/$t" "$out/crashes/$t" "$work/$t"
  runs=$(( (N + ${P[$t]} - 1) / ${P[$t]} ))
  for i in $(seq 1 "${P[$t]}"); do
    ( s=$(date +%s%N)
      $RUN "$bin/fuzz_$t" -seed="$i" -runs="$runs" -max_total_time="$T" -timeout=20 \
        -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 -close_fd_mask=1 \
        -artifact_prefix="$out/crashes/$t/" "$work/$t" "$seeds/corpus/$t" "$seeds/crashes/$t" \
        >"$out/$t/log$i" 2>&1
      echo "rc=$? wall_ms=$(( ($(date +%s%N) - s) / 1000000 ))" >>"$out/$t/log$i" ) &
  done
done
wait
echo "all targets: $(( ($(date +%s%N) - t0) / 1000000 )) ms" | tee "$out/summary"
status=0
for t in recipe checkpoint export quantize; do
  [[ ${P[$t]} == 0 ]] && continue
  execs=$(awk '/stat::number_of_executed_units/ {s += $2} END {print s + 0}' "$out/$t"/log*)
  wall=$(awk -F'wall_ms=' '/^rc=/ {if ($2 > m) m = $2} END {print m / 1000}' "$out/$t"/log*)
  rcs=$(grep -h '^rc=' "$out/$t"/log* | cut -d' ' -f1 | sort | uniq -c | tr -s ' ' | tr '\n' ',')
  found=$(find "$out/crashes/$t" -type f | wc -l)
  echo "$t: ${P[$t]} processes, $execs executions in ${wall} s, exit codes${rcs%,}, findings $found" |
    tee -a "$out/summary"
  [[ $found == 0 && $execs -ge $N ]] || status=1
done
exit $status
