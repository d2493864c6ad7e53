#!/usr/bin/env bash
# Generation speed, side by side in one process: mxqat's packed MXFP4 fast path (`mxqat sample
# --fast`) vs llama.cpp's CPU backend on the MXFP4 GGUF written from the same gpt export
# (bench/llamacpp/llamacpp_generate: greedy, same prompt, same number of tokens, same threads;
# tokens compared first; ROUNDS interleaved rounds, medians). Writes EXPORT's GGUF next to it if
# it is missing or older than the export, the JSON next to it (EXPORT-generate.json, or OUT), and
# prints a table with the CPU model and the 1-minute load before and after.
# Usage: bench/compare_generate.sh EXPORT.h5 [ROUNDS]
# Environment: BUILD (build dir, default build), THREADS (comma-separated, default 1,2), BIN (dir
# of llamacpp_generate, default $BUILD/bench/llamacpp), MXQAT (default $BUILD/mxqat), RUNNER (a
# prefix for both, e.g. a carried dynamic loader), LIBDIR (llama.cpp's libraries, default the
# folder the build was configured with), GGUF (use this GGUF as it is, written before from the
# export), OUT, PYTHON (default python3), OMP_WAIT_POLICY (default passive; `default` leaves
# OpenMP's own spin-then-sleep).
# Needs scripts/install_deps.sh --llamacpp and a build configured after it.
set -euo pipefail
[[ $# -ge 1 ]] || { sed -n '2,15p' "$0" >&2; exit 2; }
export_h5=$1
rounds=${2:-15}
build=${BUILD:-build}
bin=${BIN:-$build/bench/llamacpp}
mxqat=${MXQAT:-$build/mxqat}
runner=${RUNNER:-}
threads=${THREADS:-1,2}
python=${PYTHON:-python3}
out=${OUT:-${export_h5%.h5}-generate.json}
if [ "${OMP_WAIT_POLICY:-passive}" = default ]; then unset OMP_WAIT_POLICY; else export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}; fi
[[ -x $bin/llamacpp_generate ]] || {
  echo "compare_generate.sh: $bin/llamacpp_generate is missing: run scripts/install_deps.sh --llamacpp, then cmake and build llamacpp_generate" >&2
  exit 2
}
[[ -f $export_h5 ]] || { echo "compare_generate.sh: no export $export_h5 (mxqat run RECIPE writes RUN/export/model.h5)" >&2; exit 2; }
gguf=${GGUF:-${export_h5%.h5}-mxfp4.gguf}
if [[ -z ${GGUF:-} && ( ! -f $gguf || $gguf -ot $export_h5 ) ]]; then
  $runner "$mxqat" export "$export_h5" --format gguf --out "$gguf"
fi
libdir=()
[[ -n ${LIBDIR:-} ]] && libdir=(--libdir "$LIBDIR")
load0=$(cut -d' ' -f1 /proc/loadavg)
$runner "$bin/llamacpp_generate" --export "$export_h5" --gguf "$gguf" --threads "$threads" \
    --rounds "$rounds" "${libdir[@]}" --out "$out" >/dev/null
load1=$(cut -d' ' -f1 /proc/loadavg)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
"$python" - "$out" "$cpu" "$(nproc)" "$load0" "$load1" "${OMP_WAIT_POLICY:-default}" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
cpu, cores, load0, load1, omp = sys.argv[2:7]
print(f"CPU: {cpu} ({cores} cores visible); 1-minute load {load0} before, {load1} after; "
      f"OMP_WAIT_POLICY {omp}")
print(f"llama.cpp: ggml {d['ggml_version']} ({d['ggml_commit']}), {d['ggml_cpu_library']}")
print(f"{d['prompt_tokens']}-token prompt, {d['new_tokens']} greedy tokens, {d['rounds']} interleaved rounds, medians")
t = d["tokens"]
llamas = [k for k in d["llamacpp_contexts"]]
for k in llamas:
    c = d["llamacpp_contexts"][k]
    fa = "flash attention " + ("off" if "disabled" in c["flash_attn_log"] else
                               "on (auto)" if "enabled" in c["flash_attn_log"] else "?")
    print(f"  {k}: KV {c['kv_cache']}, {fa}; tokens vs mxqat: common prefix "
          f"{t[k + '_common_prefix']}/{d['new_tokens']}, teacher-forced argmax agreement "
          f"{t[k + '_teacher_forced_agree']}/{d['new_tokens']}")
print()
print("| threads | llama.cpp setting | prompt tok/s mxqat | prompt tok/s llama.cpp | ratio | "
      "gen tok/s mxqat | gen tok/s llama.cpp | ratio |")
print("|---:|---|---:|---:|---:|---:|---:|---:|")
for r in d["results"]:
    for k in llamas:
        print(f"| {r['threads']} | {k} | {r['mxqat_fast_prompt_tokens_per_s']:.0f} | "
              f"{r[k + '_prompt_tokens_per_s']:.0f} | {r['prompt_ratio_mxqat_over_' + k]:.2f}x | "
              f"{r['mxqat_fast_gen_tokens_per_s']:.0f} | {r[k + '_gen_tokens_per_s']:.0f} | "
              f"{r['gen_ratio_mxqat_over_' + k]:.2f}x |")
print(f"(ratio = mxqat / llama.cpp, > 1: mxqat faster; JSON: {sys.argv[1]})")
PY
