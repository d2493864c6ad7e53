#!/usr/bin/env bash
# Where the GPT training step's time goes, phase by phase, and how each phase scales with
# threads: bench_gpt_step with its phase profiler on (MXQAT_BENCH_PROFILE, autograd/profile.h),
# one table per configuration: ms per step of every op's forward and backward (and the
# optimizer, the graph's release), at each thread count, with the speed-up from the first count
# to each other and the phase's share of the step at the first. Wall-clock, on the calling
# thread: a phase's time includes its parallel regions' start and join. CPU times (all threads,
# and the calling thread's) tell serial work from parallel work even on a loaded machine: at the
# second thread count T, "serial ms" = the calling thread's CPU time minus the others' / (T - 1),
# and the table ends with that share of the step and Amdahl's bound for 16 threads.
# Usage: bench/profile_gpt_step.sh [FILTER] [MIN_TIME]
#   FILTER: bench_gpt_step's --benchmark_filter (default: the FP32 and the SR mx_native step)
#   MIN_TIME: seconds per configuration and thread count (default 2)
# Environment: BUILD (default build), BIN (dir of bench_gpt_step, default $BUILD/bench), RUNNER
# (a prefix, e.g. a carried dynamic loader), THREADS (default 1,2), PYTHON (default python3),
# OMP_WAIT_POLICY (default passive; `default` leaves libgomp's own).
set -euo pipefail
cd "$(dirname "$0")/.."
filter=${1:-BM_GptFp32Step|BM_GptQatMxfp4SrMxNativeStep}
min_time=${2:-2}
build=${BUILD:-build}
bin=${BIN:-$build/bench}
runner=${RUNNER:-}
python=${PYTHON:-python3}
export MXQAT_BENCH_THREADS=${THREADS:-1,2}
if [ "${OMP_WAIT_POLICY:-passive}" = default ]; then unset OMP_WAIT_POLICY; else export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
MXQAT_BENCH_PROFILE=$tmp/profile.tsv $runner "$bin/bench_gpt_step" --benchmark_filter="$filter" \
  --benchmark_min_time="$min_time" >"$tmp/bench.txt" 2>&1 || { cat "$tmp/bench.txt"; exit 1; }
grep -E '^BM_' "$tmp/bench.txt"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
"$python" - "$tmp/profile.tsv" <<'PY'
import collections, sys
# (bench, label, threads) -> [wall s, process CPU s, calling thread CPU s, laps]
acc = collections.defaultdict(lambda: [0.0, 0.0, 0.0, 0])
steps = collections.defaultdict(int)  # (bench, threads) -> steps
labels = collections.OrderedDict()
for line in open(sys.argv[1]):
    bench, t, n, label, wall, pcpu, tcpu, laps = line.rstrip("\n").split("\t")
    a = acc[(bench, label, int(t))]
    a[0] += float(wall); a[1] += float(pcpu); a[2] += float(tcpu); a[3] += int(laps)
    labels.setdefault(bench, collections.OrderedDict())[label] = True
    if label == "optimizer step":
        steps[(bench, int(t))] += int(n)
for bench, names in labels.items():
    counts = sorted({t for (b, t) in steps if b == bench})
    t0 = counts[0]
    def per_step(l, t, i):
        return 1e3 * acc[(bench, l, t)][i] / steps[(bench, t)]
    total = {t: sum(per_step(l, t, 0) for l in names) for t in counts}
    cpu = {t: sum(per_step(l, t, 1) for l in names) for t in counts}
    print(f"\n### {bench}: per step, by phase (wall ms; CPU ms of all threads; 'others' = the "
          f"share of the phase's CPU time spent on threads other than the calling one, "
          f"(T-1)/T when it is all parallel, 0 when serial)")
    t1 = counts[1] if len(counts) > 1 else None
    def serial(l):  # the calling thread's CPU time that no other thread matched, at t1
        c, own = per_step(l, t1, 1), per_step(l, t1, 2)
        return max(0.0, own - (c - own) / (t1 - 1))
    print("| phase | laps | " + " | ".join(f"wall {t}" for t in counts) +
          "".join(f" | {t0}->{t}" for t in counts[1:]) + f" | wall share at {t0} | " +
          " | ".join(f"CPU {t}" for t in counts) + "".join(f" | others at {t}" for t in counts[1:]) +
          (f" | serial ms at {t1}" if t1 else "") + " |")
    print("|---" * (2 + 3 * len(counts) + 2 * (len(counts) - 1) + (1 if t1 else 0)) + "|")
    for l in sorted(names, key=lambda l: -per_step(l, t0, 0)):
        w = [per_step(l, t, 0) for t in counts]
        c = [per_step(l, t, 1) for t in counts]
        others = [(per_step(l, t, 1) - per_step(l, t, 2)) / per_step(l, t, 1) if per_step(l, t, 1) > 0 else 0
                  for t in counts[1:]]
        print(f"| {l} | {acc[(bench, l, t0)][3] / steps[(bench, t0)]:.0f} | " +
              " | ".join(f"{v:.2f}" for v in w) +
              "".join(f" | {w[0] / v:.2f}x" if v > 0 else " | -" for v in w[1:]) +
              f" | {100 * w[0] / total[t0]:.1f}% | " + " | ".join(f"{v:.2f}" for v in c) +
              "".join(f" | {100 * o:.0f}%" for o in others) + (f" | {serial(l):.2f}" if t1 else "") + " |")
    print("| **step** | | " + " | ".join(f"**{total[t]:.1f}**" for t in counts) +
          "".join(f" | **{total[t0] / total[t]:.2f}x**" for t in counts[1:]) + " | 100% | " +
          " | ".join(f"{cpu[t]:.1f}" for t in counts) + "".join(" | " for t in counts[1:]) +
          (f" | {sum(serial(l) for l in names):.1f}" if t1 else "") + " |")
    if t1:
        s = sum(serial(l) for l in names) / cpu[t0]
        print(f"serial share (serial ms at {t1} / CPU ms at {t0}): {100 * s:.1f}%; Amdahl's bound on the "
              f"speed-up {t0} -> 16 threads: {1 / (s + (1 - s) / 16):.1f}x (the estimate assumes an even "
              f"split and idle waiting: with spinning waits, OMP_WAIT_POLICY active or libgomp's default, "
              f"the others' CPU includes spinning and the serial time reads low)")
PY
