#!/usr/bin/env bash
# Runs every libFuzzer harness in BUILD_DIR for SECONDS each (ASan and UBSan
# abort on the first report), from the seed corpus, after replaying every
# input in regressions/<harness>/. A finding fails the run and is left in
# BUILD_DIR/fuzz-findings/<harness>/ to be added to regressions/ with its fix.
set -euo pipefail
build=${1:?usage: run.sh BUILD_DIR SECONDS}
seconds=${2:?usage: run.sh BUILD_DIR SECONDS}
here=$(cd "$(dirname "$0")" && pwd)
work="$build/fuzz-work"
rm -rf "$work"
mkdir -p "$work/seeds"
python3 "$here/seeds.py" "$work/seeds"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$here/../sanitizers/ubsan.supp
export LSAN_OPTIONS=suppressions=$here/../sanitizers/lsan.supp:print_suppressions=0
# FUZZ_JOBS harnesses run at once (the Makefile: one per core), each for its
# own SECONDS; their output is printed in harness order once all have ended.
jobs=${FUZZ_JOBS:-1}

fuzz_one() {  # harness; prints its report, exits 1 on a finding
  local harness=$1 bin="$build/bin/fuzz_$1" findings="$build/fuzz-findings/$1"
  mkdir -p "$work/corpus/$harness" "$findings"
  if [ -d "$here/regressions/$harness" ] && [ -n "$(ls -A "$here/regressions/$harness")" ]; then
    echo "== fuzz_$harness: replaying regressions"
    "$bin" -runs=0 "$here/regressions/$harness"/* || return 1
  fi
  echo "== fuzz_$harness: ${seconds}s"
  if ! "$bin" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 -max_len=300000 \
      -print_final_stats=1 -artifact_prefix="$findings/" \
      "$work/corpus/$harness" "$work/seeds/$harness" 2>"$work/$harness.log"; then
    tail -60 "$work/$harness.log"
    echo "fuzz_$harness found a crash; the input is in $findings/" >&2
    return 1
  fi
  grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb" "$work/$harness.log" | tr '\n' ' '
  echo
}

harnesses=(image model_file graph config manifest http v2)
for harness in "${harnesses[@]}"; do
  while (( $(jobs -rp | wc -l) >= jobs )); do wait -n || true; done
  {
    if fuzz_one "$harness"; then echo 0 >"$work/$harness.status"; else echo 1 >"$work/$harness.status"; fi
  } >"$work/$harness.out" 2>&1 &
done
wait
status=0
for harness in "${harnesses[@]}"; do
  cat "$work/$harness.out"
  [[ $(cat "$work/$harness.status" 2>/dev/null) == 0 ]] || status=1
done
exit $status
