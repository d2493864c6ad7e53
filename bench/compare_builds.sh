#!/usr/bin/env bash
# The same results from two builds of mxqat (e.g. before and after a refactoring): runs one mxqat
# command with each binary in the same run directory (moved aside after each run, so that the
# paths written into checkpoints, exports and reports agree), then compares every HDF5 file
# (h5diff: every dataset and attribute, numbers exactly; and the h5dump text) and every JSON, JSON-lines, CSV, markdown and
# HTML file byte for byte after removing the wall-clock timings ("wall_s": ...).
# Prints one line per differing file and "same: N HDF5 files, M text files" when none differ;
# exits 1 on a difference. Needs h5diff (Debian's hdf5-tools).
# Usage: bench/compare_builds.sh OLD_MXQAT NEW_MXQAT WORKDIR MXQAT_ARGS...
#        (in MXQAT_ARGS, @OUT@ stands for the run directory)
# e.g.   bench/compare_builds.sh /tmp/base/build/mxqat build/mxqat /tmp/cmp run \
#          recipes/fashion_mlp_mxfp4.yaml --out @OUT@ --threads 2
set -euo pipefail
[[ $# -ge 4 ]] || { sed -n '2,13p' "$0" >&2; exit 2; }
old=$(realpath "$1") new=$(realpath "$2") work=$3
shift 3
command -v h5diff >/dev/null || { echo "h5diff missing: apt-get install hdf5-tools" >&2; exit 2; }
mkdir -p "$work"
work=$(realpath "$work")
run_with() {  # binary name
  local args=() a
  rm -rf "$work/run" "$work/$2"
  for a in "${cmd[@]}"; do args+=("${a//@OUT@/$work/run}"); done
  echo "$2: $1 ${args[*]}" >&2
  "$1" "${args[@]}" >"$work/$2.log" 2>&1 || { echo "$2 run failed, see $work/$2.log" >&2; exit 2; }
  mv "$work/run" "$work/$2"
}
cmd=("$@")
run_with "$old" old
run_with "$new" new
strip_timings() { sed -E 's/"wall_s": [-+0-9.eE]+/"wall_s": T/g' "$1"; }
h5=0 text=0 bad=0
while IFS= read -r f; do
  rel=${f#"$work/old/"}
  if [[ ! -e "$work/new/$rel" ]]; then echo "only in old: $rel"; bad=1; continue; fi
  case "$f" in
    *.h5)  # h5diff: numbers exactly; h5dump (file name line dropped): strings, attributes, layout
      h5=$((h5 + 1))
      if ! h5diff -q "$f" "$work/new/$rel" >/dev/null 2>&1 ||
         ! cmp -s <(h5dump "$f" | tail -n +2) <(h5dump "$work/new/$rel" | tail -n +2); then
        echo "differs: $rel"; bad=1
      fi ;;
    *.json | *.jsonl | *.csv | *.md | *.html | *.yaml)
      text=$((text + 1)); cmp -s <(strip_timings "$f") <(strip_timings "$work/new/$rel") || { echo "differs: $rel"; bad=1; } ;;
  esac
done < <(find "$work/old" -type f | sort)
while IFS= read -r f; do
  [[ -e "$work/old/${f#"$work/new/"}" ]] || { echo "only in new: ${f#"$work/new/"}"; bad=1; }
done < <(find "$work/new" -type f | sort)
if [[ $bad -eq 0 ]]; then echo "same: $h5 HDF5 files, $text text files"; fi
exit $bad
