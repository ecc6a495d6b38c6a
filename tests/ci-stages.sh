#!/usr/bin/env bash
# make test: runs each stage (a make target) in order and times it. At the end
# it prints a table of stage, result and seconds, writes
# the same rows to $BUILD/ci-times.tsv, and prints ccache's figures for the run
# (zeroed at its start; the cache itself is kept). A failed stage shows in the
# table as FAIL and the stages after it still run, so one run reports every
# failure; the run then exits 1. deps and build are the exceptions: nothing
# after them can run without them.
# Usage: tests/ci-stages.sh STAGE...   (MAKE and BUILD come from the Makefile)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
make=${MAKE:-make}
build=${BUILD:-build}
table=$build/ci-times.tsv
rows=()
failed=0
start_all=$(date +%s.%N)
# This run's hits and misses, for the figures at the end (the cache is kept).
command -v ccache >/dev/null && ccache -z >/dev/null

seconds_since() { echo "$(date +%s.%N) - $1" | bc -l | xargs printf '%.0f'; }

write_table() {
  mkdir -p "$build"
  {
    printf 'stage\tresult\tseconds\n'
    printf '%s\n' "${rows[@]}"
    printf 'total\t%s\t%s\n' "$([[ $failed == 0 ]] && echo ok || echo FAIL)" "$(seconds_since "$start_all")"
  } >"$table.tmp" && mv "$table.tmp" "$table"
}

for stage in "$@"; do
  echo "==== stage $stage ($(date -u +%H:%M:%S))"
  t0=$(date +%s.%N)
  if "$make" --no-print-directory "$stage"; then result=ok; else result=FAIL; failed=1; fi
  rows+=("$stage"$'\t'"$result"$'\t'"$(seconds_since "$t0")")
  write_table
  if [[ $result == FAIL && ($stage == deps || $stage == build) ]]; then
    echo "==== stage $stage failed: the stages after it need it, so none of them ran"
    break
  fi
done

echo
echo "==== stage times ($table)"
awk -F'\t' '{ printf "%-26s %-7s %8s\n", $1, $2, $3 }' "$table"
if command -v ccache >/dev/null; then
  echo
  echo "==== ccache -s, this run (cache: ${CCACHE_DIR:-the default})"
  ccache -s
fi
exit $failed
