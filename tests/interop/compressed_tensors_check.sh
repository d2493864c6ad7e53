#!/usr/bin/env bash
# ctest Interop.CompressedTensorsNumpy: a tiny gpt (tiny_gpt_run.sh: 2 layers, d_model 64, 4
# heads) QAT'd with MXFP4 attention, NVFP4 MLP and an MXFP8 head, exported to HDF5 and to the
# compressed-tensors layout (mixed-precision: both pack formats), then decoded by
# scripts/check_compressed_tensors.py (numpy only) and compared bit for bit with mxqat's decode.
# Skipped (exit 77) when python3 has no numpy.
#   tests/interop/compressed_tensors_check.sh MXQAT_BINARY SOURCE_DIR
set -euo pipefail
mxqat="$1"
src="$2"
py=python3
[[ -x /usr/bin/python3 ]] && py=/usr/bin/python3
if ! "$py" -c "import numpy" 2>/dev/null; then
  echo "SKIPPED: $py has no numpy (apt-get install python3-numpy)"
  exit 77
fi
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
"$src/tests/interop/tiny_gpt_run.sh" "$mxqat" "$dir" 4 "quant:
  weight: mxfp4
  input: mxfp4
  rules:
    - {match: \"blocks.*.mlp.*\", weight: nvfp4, input: nvfp4}
    - {match: head, weight: mxfp8_e4m3, input: mxfp8_e4m3}"
cd "$dir"
"$mxqat" export model.h5 --format compressed-tensors --out ct
"$py" "$src/scripts/check_compressed_tensors.py" ct --export model.h5 --mxqat "$mxqat"
