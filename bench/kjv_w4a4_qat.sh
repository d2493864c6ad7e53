#!/usr/bin/env bash
# Issue 17's QAT rows on the harder recipe: QAT of the KJV gpt with every GEMM (the head included)
# at W4A4 MXFP4, from the FP32 baseline, in four variants: direct (MXFP4 from the first step),
# progressive (the recipe's FP8 -> FP6 -> FP4 schedule), direct with learned scales
# (quant.learned_scale: lsq) and direct under the block Hadamard rotation. Each variant is one
# resumable `mxqat qat` run (rerun the script to continue a killed one); the given variants run at
# the same time, THREADS each. Prints one markdown row per finished variant: its direct cast (the
# rtn figure of its policy), the QAT result, and the share of the plain MXFP4 rtn gap it recovers.
#   bench/kjv_w4a4_qat.sh BASELINE.h5 OUT_DIR [THREADS] [VARIANT ...]
#   VARIANT: direct | progressive | lsq | lsqF (lsq, offsets at lr x F, e.g. lsq10) | hadamard
#            (default: direct progressive lsq hadamard)
# e.g. bench/kjv_w4a4_qat.sh runs/kjv_gpt_w4a4/baseline/checkpoint.h5 runs/w4a4_qat 4
# MXQAT names the binary (default build/mxqat), DATA the corpus folder (default the recipe's),
# SMOKE=1 makes a 6-step run on 64 test windows (to try the command, not a figure).
set -euo pipefail
base=${1:?usage: bench/kjv_w4a4_qat.sh BASELINE.h5 OUT_DIR [THREADS] [VARIANT ...]}
out=${2:?usage: bench/kjv_w4a4_qat.sh BASELINE.h5 OUT_DIR [THREADS] [VARIANT ...]}
threads=${3:-4}
shift $(( $# < 3 ? $# : 3 ))
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(direct progressive lsq hadamard)
bin=${MXQAT:-build/mxqat}
data=()
[ -z "${DATA:-}" ] || data=(--set "data.dir=$DATA")
[ -z "${SMOKE:-}" ] || data+=(--set qat.steps=6 --set qat.eval_every=3 --set qat.checkpoint_every=3 --set data.test_limit=64 --set qat.lr_schedule.warmup_steps=2)
mkdir -p "$out"
for v in "${variants[@]}"; do
  case $v in
    direct) sets=(--set 'quant.schedule=[]') ;;
    progressive) sets=() ;;
    lsq) sets=(--set 'quant.schedule=[]' --set quant.learned_scale=lsq) ;;
    lsq[0-9]*) sets=(--set 'quant.schedule=[]' --set quant.learned_scale=lsq --set "qat.optimizer.scale_lr_factor=${v#lsq}") ;;
    hadamard) sets=(--set 'quant.schedule=[]' --set quant.rotation=hadamard) ;;
    *) echo "unknown variant '$v'; known: direct, progressive, lsq, lsqF (e.g. lsq10), hadamard" >&2; exit 2 ;;
  esac
  resume=()
  [ ! -f "$out/$v/checkpoint.h5" ] || resume=(--resume)
  $bin qat recipes/kjv_gpt_w4a4.yaml --from "$base" --out "$out/$v" --threads "$threads" \
    "${data[@]}" "${sets[@]}" "${resume[@]}" > "$out/$v.log" 2>&1 &
done
wait || true
/usr/bin/env python3 - "$out" "${variants[@]}" <<'PY'
import json, os, sys
out, variants = sys.argv[1], sys.argv[2:]
rows = {}
for v in variants:
    p = os.path.join(out, v, "summary.json")
    if os.path.exists(p):
        rows[v] = json.load(open(p))
if not rows:
    sys.exit("no variant finished; see the logs in " + out)
base = next(iter(rows.values()))["baseline"]
rtn = rows["direct"]["direct_cast"] if "direct" in rows else None
print(f"FP32 baseline {base:.4f} test bits/byte\n")
print("| QAT variant (W4A4 MXFP4, head included) | direct cast | QAT | gap to FP32 | share of the plain rtn gap recovered | steps | wall s |")
print("|---|---:|---:|---:|---:|---:|---:|")
for v, s in rows.items():
    share = f"{(rtn - s['qat']) / (rtn - base) * 100:.0f}%" if rtn is not None else "-"
    print(f"| {v} | {s['direct_cast']:.4f} | {s['qat']:.4f} | {s['qat'] - base:+.4f} | {share} | {s['steps']} | {s['wall_s']:.0f} |")
PY
