#!/usr/bin/env bash
# ctest LlamaCpp.TinyGptGguf: a tiny gpt (tiny_gpt_run.sh: 2 layers, d_model 64, 2 heads) QAT'd
# to W4A4 MXFP4 (head MXFP8), exported to HDF5 and to GGUF (F32 and MXFP4), then run in a real
# llama.cpp by bench/llamacpp/llamacpp_check: F32 logits within 1e-4 relative of mxqat's, MXFP4
# bits/byte within the bar of mxqat's fast path, llama.cpp's dequantized MXFP4 weights equal to
# ours. Then bench/llamacpp/llamacpp_generate end to end on the same model and MXFP4 GGUF (one
# round, 1 thread): llama.cpp fed mxqat's greedy tokens must mostly pick the same argmax, every
# rate must be positive, and more tokens than the context holds must be refused with the reason.
# Skipped (exit 77) when llama.cpp is not installed.
#   tests/interop/tiny_gguf_check.sh MXQAT_BINARY [LLAMACPP_CHECK_BINARY [LLAMACPP_GENERATE_BINARY]]
set -euo pipefail
mxqat="$1"
check="${2:-}"
gen="${3:-}"
if [[ -z "$check" || ! -x "$check" ]]; then
  echo "SKIPPED: llama.cpp is not installed; run scripts/install_deps.sh --llamacpp, then cmake again"
  exit 77
fi
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
"$(dirname "$0")/tiny_gpt_run.sh" "$mxqat" "$dir" 2 "quant:
  weight: mxfp4
  input: mxfp4
  rules: [{match: head, weight: mxfp8_e4m3, input: mxfp8_e4m3}]"
cd "$dir"
"$mxqat" export model.h5 --format gguf --weights f32 --out f32.gguf
"$mxqat" export model.h5 --format gguf --out mxfp4.gguf
"$check" --export model.h5 --gguf-f32 f32.gguf --gguf-mxfp4 mxfp4.gguf --threads 2 \
    --max-rel 1e-4 --max-bpb-diff "${MXQAT_GGUF_BPB_BAR:-0.05}"
[[ -n "$gen" ]] || exit 0
"$gen" --export model.h5 --gguf mxfp4.gguf --prompt "And God said" --tokens 16 --threads 1 \
    --rounds 1 --out generate.json
python3 - generate.json <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["new_tokens"] == 16 and d["prompt_tokens"] == 12, d
assert [r["threads"] for r in d["results"]] == [1], d["results"]
for k in d["llamacpp_contexts"]:
    agree = d["tokens"][k + "_teacher_forced_agree"]
    assert agree >= 12, f"{k}: llama.cpp's argmax agrees with mxqat's token at {agree} of 16 steps"
    for f in ("_prompt_tokens_per_s", "_gen_tokens_per_s"):
        assert d["results"][0][k + f] > 0 and d["results"][0]["mxqat_fast" + f] > 0, d["results"]
print("llamacpp_generate: teacher-forced agreement", {k: d["tokens"][k + "_teacher_forced_agree"] for k in d["llamacpp_contexts"]})
PY
if "$gen" --export model.h5 --gguf mxfp4.gguf --prompt "And God said" --tokens 40 2> err.txt; then
  echo "FAIL: a 12-byte prompt and 40 tokens in a context of 32 were accepted" >&2
  exit 1
fi
grep -q "context is 32" err.txt || { cat err.txt >&2; exit 1; }
