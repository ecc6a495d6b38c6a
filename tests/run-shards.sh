#!/usr/bin/env bash
# Runs a Catch2 binary's test cases as N processes at once, the cases dealt out
# in turn, and prints each process's report after it ends. The sanitizer trees
# use it for unit_tests_torch: one process per case would pay LibTorch's start
# under the sanitizer 70 times, one process for all leaves a core idle.
# It fails when any shard fails, or when the shards together did not run
# every case the binary lists (a name the test spec did not match).
# Usage: tests/run-shards.sh N BINARY
set -uo pipefail
shards=$1 binary=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/catdog-shards-XXXXXX")
trap 'rm -rf "$work"' EXIT

# Catch 2's exit status after listing is the number of cases listed.
"$binary" --list-test-names-only | grep -v '^$' >"$work/names"
[[ -s $work/names ]] || {
  echo "run-shards: $binary listed no test cases"
  exit 1
}
total=$(wc -l <"$work/names")
# One test spec per line; Catch reads ',' '[' ']' '*' '~' '"' and '\' as syntax.
sed -e 's/[],[\\*~"]/\\&/g' "$work/names" |
  awk -v n="$shards" -v dir="$work" '{ print > (dir "/spec." (NR - 1) % n) }'

pids=()
for ((i = 0; i < shards; i++)); do
  [[ -f $work/spec.$i ]] || continue
  "$binary" -f "$work/spec.$i" >"$work/log.$i" 2>&1 &
  pids+=("$i:$!")
done

failed=0 ran=0
for entry in "${pids[@]}"; do
  i=${entry%%:*}
  if ! wait "${entry#*:}"; then failed=1; fi
  echo "==== $(basename "$binary") shard $((i + 1)) of $shards"
  grep -v '^Filters: ' "$work/log.$i"  # the shard's list of names
  # Catch's summary: "All tests passed (A assertions in C test cases)" or
  # "test cases: C | P passed | F failed".
  cases=$(grep -oE 'in [0-9]+ test cases?|test cases: +[0-9]+' "$work/log.$i" | grep -oE '[0-9]+' | tail -1)
  ran=$((ran + ${cases:-0}))
done
if [[ $ran != "$total" ]]; then
  echo "run-shards: the shards ran $ran test cases of the $total that $binary lists"
  failed=1
fi
exit $failed
