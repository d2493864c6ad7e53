#!/usr/bin/env bash
# Data-parallel PTQ (issue 16): `mxqat ptq` of the KJV gpt (recipes/kjv_gpt_mxfp4.yaml, MXFP4
# W4A4) under mpirun for processes x threads mixes. The calibration forward passes (GPTQ's
# sequential Hessians, the observers, AWQ's group inputs) are split by calibration batch
# (ptq.calib_samples CALIB windows, 32 per batch); GPTQ's solve, the AWQ search and the test
# evaluations run on every process. Every mix's output files (one JSON per row, summary.json
# without its wall time) are compared byte for byte with one process without mpirun, and its
# wall time with that run's.
# Usage: bench/dist_ptq.sh [CALIB] [MIX ...]      CALIB default 256 (8 batches), MIX = PxT,
#   default "1x16 2x8 4x4 8x2" (the first mix's thread count is the reference's)
#   env: MXQAT (default build/mxqat), MPIRUN (default mpirun), MPIRUN_FLAGS (e.g.
#   --allow-run-as-root), DATA (default data/kjv: scripts/prepare_kjv.sh; val and test are cut to
#   32 KiB here), BASE (a baseline checkpoint of recipes/kjv_gpt.yaml; default: trained here for
#   24 steps, the weights are not what is measured), METHODS (default "[rtn, gptq]")
set -euo pipefail
cd "$(dirname "$0")/.."
calib=${1:-256} methods=${METHODS:-"[rtn, gptq]"}
shift || true
mixes=${*:-"1x16 2x8 4x4 8x2"}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/kjv"
cp "${DATA:-data/kjv}/train.txt" "$tmp/kjv/"
for s in val test; do head -c 32768 "${DATA:-data/kjv}/$s.txt" >"$tmp/kjv/$s.txt"; done
mxqat=${MXQAT:-build/mxqat} mpirun=${MPIRUN:-mpirun}
quiet() { "$@" >"$tmp/log" 2>&1 || { tail -30 "$tmp/log"; exit 1; }; }
first=${mixes%% *}
t0=${first#*x}
export OMP_WAIT_POLICY=passive
base=${BASE:-}
if [ -z "$base" ]; then
  OMP_NUM_THREADS=$t0 quiet "$mxqat" train recipes/kjv_gpt.yaml --set data.dir="$tmp/kjv" --set train.steps=24 \
    --set train.eval_every=100000 --set train.lr_schedule.warmup_steps=5 --out "$tmp/base"
  base=$tmp/base/checkpoint.h5
fi
args=(recipes/kjv_gpt_mxfp4.yaml --from "$base" --set data.dir="$tmp/kjv" --set ptq.calib_samples="$calib"
      --set "ptq.methods=$methods" --set 'compare.formats=[mxfp4]')
now() { date +%s.%N; }
files() {  # DIR: every output file, summary.json without its wall time
  for f in "$1"/*.json; do echo "== $(basename "$f")"; sed 's/, "wall_s": [0-9.e+-]*//' "$f"; done
}
s=$(now)
OMP_NUM_THREADS=$t0 quiet "$mxqat" ptq "${args[@]}" --out "$tmp/serial"
ref=$(awk -v a="$(now)" -v b="$s" 'BEGIN { printf "%.1f", a - b }')
files "$tmp/serial" >"$tmp/serial.txt"
echo "one process x $t0 threads (no mpirun): $ref s, $(ls "$tmp/serial"/*.json | wc -l) files"
echo
echo "| processes x threads | wall s | vs 1 process x $t0 threads | files vs one process |"
echo "|---|---|---|---|"
fail=0
for mix in $mixes; do
  p=${mix%x*} t=${mix#*x}
  s=$(now)
  OMP_NUM_THREADS=$t quiet $mpirun --oversubscribe --bind-to none ${MPIRUN_FLAGS:-} -x OMP_NUM_THREADS -x OMP_WAIT_POLICY \
    -np "$p" "$mxqat" ptq "${args[@]}" --out "$tmp/np$mix"
  w=$(awk -v a="$(now)" -v b="$s" 'BEGIN { printf "%.1f", a - b }')
  files "$tmp/np$mix" >"$tmp/np$mix.txt"
  if cmp -s "$tmp/serial.txt" "$tmp/np$mix.txt"; then same=identical; else same=DIFFER; fail=1; fi
  printf '| %s x %s | %s | %sx | %s |\n' "$p" "$t" "$w" "$(awk -v a="$ref" -v b="$w" 'BEGIN { printf "%.2f", a / b }')" "$same"
done
exit $fail
