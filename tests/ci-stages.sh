#!/usr/bin/env bash
# make test: runs each stage (a make target) in order and times it. At the end
# it prints a table of stage, result, seconds and what it ran beside, writes
# the same rows to $BUILD/ci-times.tsv, and prints ccache's figures for the run
# (zeroed at its start; the cache itself is kept). A failed stage shows in the
# table as FAIL and the stages after it still run, so one run reports every
# failure; the run then exits 1. deps and build are the exceptions: nothing
# after them can run without them.
# A STAGE of the form a,b+c runs two lanes at once: a then b, and beside them
# c. Each stage is its own make with its output in $BUILD/ci-logs/, printed
# when every lane has ended; each keeps its own row and time, the group's
# spec in the last column, and the total is wall-clock time.
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
    printf 'stage\tresult\tseconds\tbeside\n'
    printf '%s\n' "${rows[@]}"
    printf 'total\t%s\t%s\t-\n' "$([[ $failed == 0 ]] && echo ok || echo FAIL)" "$(seconds_since "$start_all")"
  } >"$table.tmp" && mv "$table.tmp" "$table"
}

run_one() {  # stage; its make's status
  "$make" --no-print-directory "$1"
}

for spec in "$@"; do
  echo "==== stage $spec ($(date -u +%H:%M:%S))"
  IFS=+ read -r -a group <<<"$spec"
  if (( ${#group[@]} == 1 )); then
    t0=$(date +%s.%N)
    if run_one "$spec"; then result=ok; else result=FAIL; failed=1; fi
    rows+=("$spec"$'\t'"$result"$'\t'"$(seconds_since "$t0")"$'\t'"-")
    write_table
    if [[ $result == FAIL && ($spec == deps || $spec == build) ]]; then
      echo "==== stage $spec failed: the stages after it need it, so none of them ran"
      break
    fi
    continue
  fi
  logs=$build/ci-logs
  rm -rf "$logs" && mkdir -p "$logs"
  pids=()
  for lane in "${group[@]}"; do
    (
      IFS=, read -r -a stages <<<"$lane"
      for stage in "${stages[@]}"; do
        t0=$(date +%s.%N)
        if run_one "$stage" >"$logs/$stage.log" 2>&1; then r=ok; else r=FAIL; fi
        printf '%s\t%s\n' "$r" "$(seconds_since "$t0")" >"$logs/$stage.result"
      done
    ) &
    pids+=($!)
  done
  wait "${pids[@]}"
  for stage in ${spec//[+,]/ }; do
    echo "==== stage $stage (in $spec): output"
    cat "$logs/$stage.log"
    IFS=$'\t' read -r result secs <"$logs/$stage.result" || { result=FAIL secs=0; }
    [[ $result == ok ]] || failed=1
    rows+=("$stage"$'\t'"$result"$'\t'"$secs"$'\t'"$spec")
  done
  write_table
done

echo
echo "==== stage times ($table)"
awk -F'\t' '{ printf "%-26s %-7s %8s  %s\n", $1, $2, $3, $4 }' "$table"
if command -v ccache >/dev/null; then
  echo
  echo "==== ccache -s, this run (cache: ${CCACHE_DIR:-the default})"
  ccache -s
fi
exit $failed
