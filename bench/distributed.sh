#!/usr/bin/env bash
# Two ranks of one thread against one process of two threads, on this machine:
# training images/s (the frozen feature pass of the default model, and full
# training of the small CNN) and prediction images/s (cd-predict over the
# committed sample, whole or as two --shard halves in parallel). Each figure is
# the median of REPEATS runs. Writes bench/results/distributed.md.
# Usage: bench/distributed.sh [REPEATS]
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-3}
work=bench/work/distributed
rm -rf "$work"
mkdir -p "$work"
export MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824 OMP_WAIT_POLICY=PASSIVE
build/bin/cd-prepare --source data/sample/images --output "$work/data" --log-level warn
frozen=(--architecture darknet --second-backbone "" --pretrained data/pretrained/darknet-tiny-imagenet --mode frozen
  --input-size 224 --frozen-views 2 --epochs 3)
full=(--architecture compact --second-backbone "" --mode full --input-size 96 --epochs 3 --batch-size 32)
port=29731

train() {  # world threads-per-rank log-prefix args...
  local world=$1 threads=$2 log=$3
  shift 3
  local pids=()
  for ((rank = 0; rank < world; rank++)); do
    WORLD_SIZE=$world RANK=$rank MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
      build/bin/cd-train --data "$work/data" --output "$log-out$rank" --metrics "$log-out$rank/t.json" \
      --live "$log-out$rank/live" --threads "$threads" --log-level info "$@" >"$log.$rank" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  port=$((port + 1))
}
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
# images/s from the logs of rank 0: the feature pass, or the median epoch after the first.
feature_rate() { sed -n 's/.*frozen backbone: .* (\([0-9.]*\) img\/s).*/\1/p' "$1.0"; }
epoch_rate() { sed -n 's/.*info  epoch [2-9][0-9]*: .*s (\([0-9.]*\) img\/s).*/\1/p' "$1.0" | median; }

declare -A result
for layout in "1 2" "2 1"; do
  read -r world threads <<<"$layout"
  key="${world}x${threads}"
  f=() e=() p=()
  for ((i = 0; i < repeats; i++)); do
    train "$world" "$threads" "$work/frozen-$key" "${frozen[@]}"
    f+=("$(feature_rate "$work/frozen-$key")")
    train "$world" "$threads" "$work/full-$key" "${full[@]}"
    e+=("$(epoch_rate "$work/full-$key")")
    model=$work/frozen-1x2-out0/model.cdm  # one model for both layouts
    start=$(date +%s.%N)
    if ((world == 1)); then
      build/bin/cd-predict --model "$model" --threads 2 data/sample/images >"$work/pred.tsv"
    else
      build/bin/cd-predict --model "$model" --threads 1 --shard 0/2 data/sample/images >"$work/pred0.tsv" &
      build/bin/cd-predict --model "$model" --threads 1 --shard 1/2 data/sample/images >"$work/pred1.tsv"
      wait
    fi
    p+=("$(echo "400 / ($(date +%s.%N) - $start)" | bc -l)")
  done
  result[$key]="$(printf '%s\n' "${f[@]}" | median) $(printf '%s\n' "${e[@]}" | median) $(printf '%s\n' "${p[@]}" | median)"
done
cat "$work/pred0.tsv" "$work/pred1.tsv" | cmp - "$work/pred.tsv" || { echo "shards differ from the whole" >&2; exit 1; }

read -r f1 e1 p1 <<<"${result[1x2]}"
read -r f2 e2 p2 <<<"${result[2x1]}"
{
  echo "# 2 ranks x 1 thread against 1 process x 2 threads"
  echo
  echo "\`bench/distributed.sh $repeats\` on $(nproc) cores, $(date -u +%Y-%m-%d); medians of $repeats runs, images/s, on the committed sample."
  echo
  echo "| work | 1 process x 2 threads | 2 ranks x 1 thread | ratio |"
  echo "|---|---|---|---|"
  printf '| frozen feature pass, Tiny Darknet at 224, 680 rows | %.1f | %.1f | %.2f |\n' "$f1" "$f2" "$(echo "$f2 / $f1" | bc -l)"
  printf '| full training, compact CNN at 96, 320 rows/epoch | %.1f | %.1f | %.2f |\n' "$e1" "$e2" "$(echo "$e2 / $e1" | bc -l)"
  printf '| cd-predict, 400 photos (whole, or 2 shards at once) | %.1f | %.1f | %.2f |\n' "$p1" "$p2" "$(echo "$p2 / $p1" | bc -l)"
} | tee bench/results/distributed.md
