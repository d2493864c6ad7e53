#!/usr/bin/env bash
# Data-parallel scaling of the GPT training step (recipes/kjv_gpt.yaml: 4 layers, d 192, batch
# 16 x 128 bytes = 2048 tokens per step) for processes x threads mixes under mpirun. Every mix
# runs STEPS steps of `mxqat train`; mxqat logs the median step (first step left out), the
# gradient exchange inside it (allgatherv of the subtree sums + the tree's last additions, and
# any wait for a slower process) and tokens/s. Every mix runs with train.micro_batches 16 (the
# bits of every process count up to 16) and with micro_batches = P (the fewest a P-process run
# allows: bits equal for every count up to P; for P = 1 the plain step, the batch at once).
# Prints one row per run and the ratios: tokens/s vs the 1 x 16 plain step (same 16 cores) and
# per core vs 1 x 1; for runs of several processes the exchange's parts (slices sent, including
# the wait for the slowest process; the tree's additions; finished slices gathered) and each
# process's time on its own micro-batches (the fastest and the slowest process).
# Usage: bench/dist_scaling.sh [STEPS] [MIX ...]      MIX = PxT, default: the list below
#   env: MXQAT (default build/mxqat), MPIRUN (default mpirun), MPIRUN_FLAGS (extra flags, e.g.
#   --allow-run-as-root), DATA (the KJV corpus folder, default data/kjv: scripts/prepare_kjv.sh),
#   MICRO_BATCHES (which micro-batch counts per mix, default "16 P"; "P" for M = P only)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-20}
shift || true
mixes=${*:-"1x1 1x2 1x4 1x8 1x16 2x1 4x1 8x1 16x1 2x8 4x4 8x2"}
mxqat=${MXQAT:-build/mxqat}
mpirun=${MPIRUN:-mpirun}
data=${DATA:-data/kjv}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() {  # P T M: one run, prints "P T M step_ms exchange_ms share_pct tokens_per_s sent add gather own_min own_max"
  local p=$1 t=$2 m=$3 log="$tmp/$1x$2m$3.log"
  OMP_NUM_THREADS=$t OMP_WAIT_POLICY=passive $mpirun --oversubscribe --bind-to none ${MPIRUN_FLAGS:-} \
    -x OMP_NUM_THREADS -x OMP_WAIT_POLICY -np "$p" "$mxqat" train recipes/kjv_gpt.yaml \
    --out "$tmp/run_$1x$2m$3" --set data.dir="$data" --set train.steps="$steps" \
    --set train.micro_batches="$m" --set train.eval_every=100000 --set train.log_every=100000 \
    --set train.checkpoint_every=0 --set train.lr_schedule.warmup_steps=2 >"$log" 2>&1 ||
    { echo "run $1x$2 micro_batches $3 failed:" >&2; tail -20 "$log" >&2; exit 1; }
  local row parts own
  row=$(sed -n 's/.*median step \([0-9.]*\) ms, gradient exchange \([0-9.]*\) ms (\([0-9.]*\)% of the step), \([0-9]*\) targets\/s.*/\1 \2 \3 \4/p' "$log" | head -1)
  parts=$(sed -n 's/.*slices sent \([0-9.]*\) .*additions \([0-9.]*\), sums gathered \([0-9.]*\);.*/\1 \2 \3/p' "$log" | head -1)
  own=$(sed -n 's/.*own micro-batches per process: \([0-9. /]*\) ms.*/\1/p' "$log" | head -1 | tr -d ' ' | tr '/' '\n' |
        sort -g | sed -n '1p;$p' | tr '\n' ' ')
  echo "$p $t $m $row ${parts:-- - -} ${own:-- -}"
}
for mix in $mixes; do
  p=${mix%x*} t=${mix#*x} done_m=
  for m in ${MICRO_BATCHES:-16 P}; do
    [ "$m" = P ] && m=$p
    case " $done_m " in *" $m "*) continue ;; esac  # 16 x T: M = 16 = P once
    run "$p" "$t" "$m"
    done_m="$done_m $m"
  done
done | tee "$tmp/rows"
python3 - "$tmp/rows" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
num = lambda v: None if v == "-" else float(v)
rows = [(int(r[0]), int(r[1]), int(r[2]), *map(float, r[3:7]), *map(num, r[7:12])) for r in rows]
base16 = next((r[6] for r in rows if r[:3] == (1, 16, 1)), None)
base1 = next((r[6] for r in rows if r[:3] == (1, 1, 1)), None)
f = lambda v: "-" if v is None else f"{v:.1f}"
print("\n| processes x threads | micro-batches | step ms | exchange ms | exchange share | tokens/s | vs 1x16 plain "
      "| per core vs 1x1 | sent+wait / additions / gathered ms | own micro-batches ms (fastest-slowest process) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for p, t, m, s, e, sh, tok, se, ad, ga, lo, hi in rows:
    v16 = f"{100 * tok / base16:.0f}%" if base16 else "-"
    v1 = f"{100 * tok / (p * t * base1):.0f}%" if base1 else "-"
    parts = "-" if se is None else f"{se:.1f} / {ad:.1f} / {ga:.1f}"
    own = "-" if lo is None else f"{lo:.1f}-{hi:.1f}"
    print(f"| {p} x {t} | {m} | {s:.1f} | {e:.2f} | {sh:.1f}% | {tok:.0f} | {v16} | {v1} | {parts} | {own} |")
PY
