#!/usr/bin/env bash
# The gradient exchange alone (bench/bench_dist_exchange.cpp), for 2 and 4 processes on one host
# under the launch settings of bench/dist_scaling.sh (--oversubscribe --bind-to none) and each
# shared-memory / network transport OpenMPI offers here: the default choice, vader (shared memory)
# with CMA single copy (process_vm_readv: one copy, needs ptrace rights between the processes)
# and without (two copies through shared-memory fragments), and tcp (loopback). Prints, first,
# what decides whether CMA works in this container (ptrace scope, the capability), then per
# transport and process count the three ways to finish the tree (whole vectors, fresh or kept
# buffers; slices) with the bytes each process receives and the rate.
# Usage: bench/dist_exchange.sh [STEPS] [NPS]     (defaults 20, "2 4")
#   env: BENCH (default build/bench/bench_dist_exchange), MPIRUN (default mpirun), MPIRUN_FLAGS
#   (extra flags, e.g. --allow-run-as-root), THREADS (OMP_NUM_THREADS per process, default 1),
#   FLOATS (floats per gradient, default the kjv_gpt's 1917697)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-20}
nps=${2:-"2 4"}
bench=${BENCH:-build/bench/bench_dist_exchange}
mpirun=${MPIRUN:-mpirun}
echo "ptrace_scope: $(cat /proc/sys/kernel/yama/ptrace_scope 2>/dev/null || echo 'no Yama (no restriction)')"
echo "capabilities: $(grep CapEff /proc/self/status | tr -s '\t' ' ') (CAP_SYS_PTRACE is bit 19)"
echo "/dev/shm: $(df -h /dev/shm 2>/dev/null | tail -1 | tr -s ' ')"
for np in $nps; do
  while IFS='|' read -r name flags; do
    echo "== np $np, $name ($flags)"
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=${THREADS:-1} OMP_WAIT_POLICY=passive timeout 120 $mpirun --oversubscribe --bind-to none \
      ${MPIRUN_FLAGS:-} -x OMP_NUM_THREADS -x OMP_WAIT_POLICY $flags -np "$np" "$bench" --steps "$steps" \
      ${FLOATS:+--floats $FLOATS} </dev/null 2>&1 | grep -v '^MPI, ' || echo "(failed: rc ${PIPESTATUS[0]})"
  done <<'WAYS'
default|
vader, CMA single copy|--mca btl self,vader --mca btl_vader_single_copy_mechanism cma
vader, no single copy|--mca btl self,vader --mca btl_vader_single_copy_mechanism none
tcp (loopback)|--mca btl self,tcp
WAYS
done
