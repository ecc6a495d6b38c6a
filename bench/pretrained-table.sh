#!/usr/bin/env bash
# Frozen vs fine-tuned Tiny Darknet, 160 vs 224 input, TTA off and on, on the
# full Kaggle data: test accuracy, log loss and wall time per variant.
# Usage: bench/pretrained-table.sh [TRAIN_DIR] [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:-../shared/data/dogs-vs-cats-200/train}
WORK=${2:-bench/work/pretrained}
BIN=build/bin
export MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824 OMP_WAIT_POLICY=PASSIVE
[ -d "$SRC" ] || { echo "skip: $SRC is absent" >&2; exit 0; }
mkdir -p "$WORK" bench/results
$BIN/cd-prepare --source "$SRC" --output "$WORK/data" --log-level warn
OUT=bench/results/pretrained-table.md
{
  echo "# Tiny Darknet on the full data ($(date -u +%F), $(nproc) threads, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
  echo
  echo "| variant | input | TTA | test accuracy | log loss | train wall s |"
  echo "|---|---|---|---|---|---|"
} > "$OUT"
variant() {  # name size extra-train-args...
  local name=$1 size=$2; shift 2
  local dir="$WORK/$name" t0 t1
  t0=$(date +%s.%N)
  $BIN/cd-train --data "$WORK/data" --output "$dir" --metrics "$dir/train.json" --live "$dir/live" \
    --architecture darknet --second-backbone "" --pretrained data/pretrained/darknet-tiny-imagenet \
    --input-size "$size" \
    --log-level warn "$@"
  t1=$(date +%s.%N)
  for tta in off on; do
    $BIN/cd-eval --model "$dir/model.cdm" --data "$WORK/data" --output "$dir/eval-$tta" --tta "$tta" --log-level warn
    python3 - "$dir/eval-$tta/metrics.json" "$name" "$size" "$tta" "$(echo "$t1 - $t0" | bc)" >> "$OUT" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
print(f"| {sys.argv[2]} | {sys.argv[3]} | {sys.argv[4]} | {m['accuracy']*100:.2f}% | {m['log_loss']:.4f} | {float(sys.argv[5]):.0f} |")
PY
  done
}
variant frozen 224 --mode frozen --features both --epochs 60 --lr 0.001 --batch-size 256
variant frozen 160 --mode frozen --features both --epochs 60 --lr 0.001 --batch-size 256
variant finetune 224 --mode finetune --features both --epochs 1 --lr 0.001 --backbone-lr-factor 0.01 --warmup-steps 200
variant frozen-rich 224 --mode frozen --features rich --epochs 60 --lr 0.001 --batch-size 256
cat "$OUT"
