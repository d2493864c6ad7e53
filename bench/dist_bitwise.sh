#!/usr/bin/env bash
# Issue 16's bitwise bar: the final checkpoints of `mpirun -np 1..4` are identical (h5diff: every
# dataset and attribute) to one process without mpirun, on
#   1. the Fashion MLP (recipes/fashion_mlp.yaml, dropout 0.1, cut to MLP_STEPS steps,
#      train.micro_batches 16: 8 samples each), and
#   2. a KJV gpt QAT run: the FP32 baseline (recipes/kjv_gpt.yaml cut to GPT_STEPS steps, itself
#      checked the same way), then QAT of recipes/kjv_gpt_mxfp4.yaml (MXFP4 W4A4, distillation from
#      the baseline, telemetry) cut to GPT_STEPS steps, qat.micro_batches 16 (one window each);
#      and a QAT run stopped after a third of its steps on 2 processes and resumed on 3.
# Oversubscribed (more processes than cores) is fine: only the bits are compared.
# Usage: bench/dist_bitwise.sh [MLP_STEPS] [GPT_STEPS]    (defaults 60 and 36)
#   env: MXQAT (default build/mxqat), MPIRUN (default mpirun), MPIRUN_FLAGS (e.g.
#   --allow-run-as-root), KJV (default data/kjv: scripts/prepare_kjv.sh; its val and test splits
#   are cut to 32 KiB here, the evaluations are not what is measured)
set -euo pipefail
cd "$(dirname "$0")/.."
mlp_steps=${1:-60}
gpt_steps=${2:-36}
mxqat=${MXQAT:-build/mxqat}
mpirun="${MPIRUN:-mpirun} --oversubscribe ${MPIRUN_FLAGS:-}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/kjv"
cp "${KJV:-data/kjv}/train.txt" "$tmp/kjv/"
for s in val test; do head -c 32768 "${KJV:-data/kjv}/$s.txt" >"$tmp/kjv/$s.txt"; done
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
fail=0
same() {  # REFERENCE OTHER LABEL
  if h5diff -q "$1" "$2"; then echo "  $3: identical to one process"
  else echo "  $3: DIFFERS from one process"; fail=1; fi
}
quiet() { "$@" >"$tmp/log" 2>&1 || { tail -30 "$tmp/log"; exit 1; }; }
t0=$(date +%s)
echo "Fashion MLP, $mlp_steps steps, micro_batches 16:"
mlp=(recipes/fashion_mlp.yaml --set train.epochs=0 --set train.steps="$mlp_steps" --set train.micro_batches=16
     --set train.lr_schedule.warmup_steps=10
     --set train.eval_every=100000)
quiet "$mxqat" train "${mlp[@]}" --out "$tmp/mlp_serial"
for np in 1 2 3 4; do
  quiet $mpirun -np $np "$mxqat" train "${mlp[@]}" --out "$tmp/mlp_np$np"
  same "$tmp/mlp_serial/checkpoint.h5" "$tmp/mlp_np$np/checkpoint.h5" "-np $np"
done
echo "KJV gpt baseline, $gpt_steps steps, micro_batches 16:"
base=(recipes/kjv_gpt.yaml --set data.dir="$tmp/kjv" --set train.steps="$gpt_steps"
      --set train.micro_batches=16 --set train.eval_every=100000 --set train.lr_schedule.warmup_steps=5)
quiet "$mxqat" train "${base[@]}" --out "$tmp/base_serial"
for np in 2 4; do
  quiet $mpirun -np $np "$mxqat" train "${base[@]}" --out "$tmp/base_np$np"
  same "$tmp/base_serial/checkpoint.h5" "$tmp/base_np$np/checkpoint.h5" "-np $np"
done
echo "KJV gpt MXFP4 QAT (distillation, telemetry every 6 steps), $gpt_steps steps, micro_batches 16:"
qat=(recipes/kjv_gpt_mxfp4.yaml --from "$tmp/base_serial/checkpoint.h5" --set data.dir="$tmp/kjv"
     --set qat.steps="$gpt_steps" --set qat.micro_batches=16 --set qat.eval_every=100000
     --set qat.monitor_every=6 --set qat.checkpoint_every=0 --set qat.lr_schedule.warmup_steps=5)
quiet "$mxqat" qat "${qat[@]}" --out "$tmp/qat_serial"
for np in 1 2 3 4; do
  quiet $mpirun -np $np "$mxqat" qat "${qat[@]}" --out "$tmp/qat_np$np"
  same "$tmp/qat_serial/checkpoint.h5" "$tmp/qat_np$np/checkpoint.h5" "-np $np"
  cmp -s <(grep -v wall_s "$tmp/qat_serial/metrics.jsonl") <(grep -v wall_s "$tmp/qat_np$np/metrics.jsonl") &&
    echo "  -np $np: metrics.jsonl (loss, telemetry, phases) identical" || { echo "  -np $np: metrics.jsonl DIFFERS"; fail=1; }
done
quiet $mpirun -np 2 "$mxqat" qat "${qat[@]}" --out "$tmp/qat_resumed" --stop-at $((gpt_steps / 3))
quiet $mpirun -np 3 "$mxqat" qat "${qat[@]}" --out "$tmp/qat_resumed" --resume
# Weights and optimizer state: the telemetry's code-flip memory is not checkpointed (a resumed
# run's first report has no flips, also on one process), so metrics.jsonl and its byte count
# in the checkpoint's counters differ after a resume whatever the process count.
for g in /params /optimizer /scalars; do
  same_group=$(h5diff -q "$tmp/qat_serial/checkpoint.h5" "$tmp/qat_resumed/checkpoint.h5" $g $g && echo 1 || echo 0)
  if [ "$same_group" = 1 ]; then echo "  stopped at step $((gpt_steps / 3)) on -np 2, resumed on -np 3: $g identical to one process"
  else echo "  stopped at step $((gpt_steps / 3)) on -np 2, resumed on -np 3: $g DIFFERS"; fail=1; fi
done
echo "wall time $(($(date +%s) - t0)) s"
exit $fail
