#!/bin/bash
# The option reference (docs/reference/<tool>.md) is generated from each tool's
# Config declarations by `<tool> --help-markdown`.
#   tests/docs-reference.sh BIN_DIR write   regenerate the committed pages (make docs-reference)
#   tests/docs-reference.sh BIN_DIR check   fail, naming the page, when one is out of date (CTest)
set -euo pipefail
bin=$(cd "$1" && pwd)
mode=${2:-check}
root=$(cd "$(dirname "$0")/.." && pwd)
tools=(cd-prepare cd-train cd-eval cd-predict cd-serve cd-export cd-model)
# An empty folder: defaults that depend on files present (cd-predict's .onnx) are the built-in ones.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stale=0
for tool in "${tools[@]}"; do
  page="$root/docs/reference/$tool.md"
  (cd "$work" && env -i PATH=/usr/bin:/bin HOME="$work" "$bin/$tool" --help-markdown) > "$work/page.md"
  if [ "$mode" = write ]; then
    mv "$work/page.md" "$page"
  elif ! cmp -s "$work/page.md" "$page"; then
    echo "docs-reference: $page is out of date with $tool's options; run 'make docs-reference' and commit it" >&2
    diff -u "$page" "$work/page.md" >&2 || true
    stale=1
  fi
done
[ "$mode" = write ] && echo "docs-reference: wrote docs/reference/{$(IFS=,; echo "${tools[*]}")}.md"
exit $stale
