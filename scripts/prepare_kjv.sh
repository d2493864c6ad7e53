#!/usr/bin/env bash
# Prepares the King James Bible corpus for the byte-level language model (recipes/kjv_gpt*.yaml):
# installs Debian's bible-kjv if `bible` is missing, dumps Gen1:1-Rev22:21, strips the verse
# references ("Ge1:1 In the beginning..." -> "In the beginning..."; one verse per line, about
# 4.1 MB of ASCII) and writes contiguous 90/5/5 splits to data/kjv/{train,val,test}.txt.
# Idempotent: does nothing when the three files exist (FORCE=1 rewrites them).
# Usage: scripts/prepare_kjv.sh [OUT_DIR]   (default data/kjv under the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-data/kjv}
if [[ -z "${FORCE:-}" && -s "$out/train.txt" && -s "$out/val.txt" && -s "$out/test.txt" ]]; then
  echo "$out already holds train.txt, val.txt and test.txt (FORCE=1 to rewrite)"
  exit 0
fi
if ! command -v bible >/dev/null; then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  echo "installing Debian's bible-kjv"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q bible-kjv >/dev/null ||
    { $sudo apt-get update -q && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q bible-kjv >/dev/null; }
fi
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bible -f Gen1:1-Rev22:21 >"$tmp/raw.txt"
verses=$(wc -l <"$tmp/raw.txt")
# Every line must start with a reference: a stray line would mean the dump format changed.
bad=$(LC_ALL=C grep -cvE '^[0-9]?[A-Za-z]+[0-9]+:[0-9]+ ' "$tmp/raw.txt" || true)
if [[ "$verses" -ne 31102 || "$bad" -ne 0 ]]; then
  echo "unexpected bible output: $verses lines (expected 31102), $bad without a verse reference" >&2
  exit 1
fi
LC_ALL=C sed -E 's/^[0-9]?[A-Za-z]+[0-9]+:[0-9]+ //' "$tmp/raw.txt" >"$tmp/kjv.txt"
if LC_ALL=C grep -q '[^ -~]' "$tmp/kjv.txt"; then
  echo "the stripped text holds bytes outside printable ASCII; check the bible-kjv package" >&2
  exit 1
fi
# Contiguous splits by bytes: the first 90% train, the next 5% validation, the last 5% test.
/usr/bin/python3 - "$tmp/kjv.txt" "$tmp" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
n = len(data)
a, b = n * 90 // 100, n * 95 // 100
for name, part in (("train", data[:a]), ("val", data[a:b]), ("test", data[b:])):
    open(f"{sys.argv[2]}/{name}.txt", "wb").write(part)
PY
for s in train val test; do mv "$tmp/$s.txt" "$out/$s.txt"; done
echo "wrote $out: $(wc -c <"$tmp/kjv.txt") bytes of text from $verses verses;" \
     "train $(wc -c <"$out/train.txt"), val $(wc -c <"$out/val.txt"), test $(wc -c <"$out/test.txt") bytes"
