#!/usr/bin/env bash
# Pretrained backbones on the full Kaggle data: architecture x input x mode x TTA
# -> test accuracy, log loss, errors on the 200 original-resolution photos of
# ../shared/data/originals-sample, inference ms per image at batch 1 and 32
# (bench_floor, BN folded, channels-last), and training wall time.
# Usage: bench/backbone-table.sh [VARIANT...]   (default: every variant below)
#   VARIANT is NAME, one of the names in the table at the bottom of this file.
# Env: SRC (train folder), WORK (scratch), OUT (the markdown table, appended to).
# Frozen variants keep their features in WORK/features (run.feature_cache), so
# variants that differ only in head settings share one feature pass; "train
# wall s" then covers the head alone, and the table says so.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${SRC:-../shared/data/dogs-vs-cats-200/train}
ORIGINALS=${ORIGINALS:-../shared/data/originals-sample}
WORK=${WORK:-bench/work/backbones}
OUT=${OUT:-bench/results/backbone-table.md}
BIN=build/bin
export MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824 OMP_WAIT_POLICY=PASSIVE
[ -d "$SRC" ] || { echo "skip: $SRC is absent" >&2; exit 0; }
mkdir -p "$WORK" "$(dirname "$OUT")"
[ -f "$WORK/data/test.csv" ] || $BIN/cd-prepare --source "$SRC" --output "$WORK/data" --log-level warn
[ -f "$WORK/floor.json" ] || $BIN/bench_floor data/pretrained 2 > "$WORK/floor.json"
if [ ! -f "$OUT" ]; then
  {
    echo "# Pretrained backbones on the full data ($(date -u +%F), $(nproc) threads, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
    echo
    echo "Written by \`bench/backbone-table.sh\`. Test split: $(($(wc -l < "$WORK/data/test.csv") - 1)) photos."
    echo "originals: errors out of the 200 photos of originals-sample. ms/img: bench_floor, one run."
    echo
    echo "| variant | architecture | input | mode | TTA | val loss | test accuracy | log loss | test errors | originals errors | ms/img b1 | ms/img b32 | train wall s |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  } > "$OUT"
fi

run() {  # name architecture size mode extra-train-args...
  local name=$1 arch=$2 size=$3 mode=$4; shift 4
  local dir="$WORK/$name" t0 t1 pretrained
  pretrained=data/pretrained/$arch
  [ "$arch" = darknet ] && pretrained=data/pretrained/darknet-tiny-imagenet
  # One backbone unless the variant names a second: configs/train.yaml's default has two.
  local one=(--second-backbone "")
  [[ " $* " == *" --second-backbone "* ]] && one=()
  t0=$(date +%s.%N)
  $BIN/cd-train --data "$WORK/data" --output "$dir" --metrics "$dir/train.json" --live "$dir/live" \
    --architecture "$arch" --pretrained "$pretrained" --input-size "$size" --mode "$mode" \
    --feature-cache "$WORK/features" --log-level warn "${one[@]}" "$@"
  t1=$(date +%s.%N)
  for tta in off on; do
    $BIN/cd-eval --model "$dir/model.cdm" --data "$WORK/data" --output "$dir/eval-$tta" --tta "$tta" --log-level warn
    local originals="-"
    if [ -d "$ORIGINALS" ]; then
      $BIN/cd-predict --model "$dir/model.cdm" --tta "$tta" --log-level warn "$ORIGINALS/cats" "$ORIGINALS/dogs" \
        > "$dir/originals-$tta.tsv"
      originals=$(awk -F'\t' '($1 ~ /\/cats\// && $2 != "cat") || ($1 ~ /\/dogs\// && $2 != "dog")' \
        "$dir/originals-$tta.tsv" | wc -l)
    fi
    python3 - "$dir" "$name" "$arch" "$size" "$mode" "$tta" "$originals" "$(echo "$t1 - $t0" | bc)" \
      "$WORK/floor.json" >> "$OUT" <<'PY'
import json, sys
d, name, arch, size, mode, tta, originals, wall, floor = sys.argv[1:]
m = json.load(open(f"{d}/eval-{tta}/metrics.json"))
t = json.load(open(f"{d}/train.json"))
f = json.load(open(floor))["architectures"].get(arch, {})
suffix = "_tta" if tta == "on" else ""
ms = lambda k: f"{f[k + suffix]:.1f}" if k + suffix in f and f.get("input") == int(size) else "-"
errors = m["fp"] + m["fn"]
print(f"| {name} | {arch} | {size} | {mode} | {tta} | {t['val_loss']:.4f} | {m['accuracy']*100:.2f}% "
      f"| {m['log_loss']:.4f} | {errors}/{m['n']} | {originals} | {ms('ms_per_image_batch1')} "
      f"| {ms('ms_per_image_batch32')} | {float(wall):.0f} |")
PY
  done
}

# Linear probe, then fine-tune: the last STAGES stages and the head start from
# lite2-300-views2's fitted model (trained first when absent), BN keeps its
# statistics. lpft NAME STAGES EPOCHS LR BACKBONE_LR_FACTOR [cd-train args...]
lpft() {
  local name=$1 stages=$2 epochs=$3 lr=$4 factor=$5; shift 5
  [ -f "$WORK/lite2-300-views2/model.cdm" ] || variant lite2-300-views2
  run "$name" efficientnet-lite2 300 finetune --features rich --finetune-stages "$stages" \
    --init "$WORK/lite2-300-views2/model.cdm" --keep-bn-statistics --epochs "$epochs" \
    --patience 2 --plateau-patience 1 --lr "$lr" --backbone-lr-factor "$factor" \
    --warmup-steps 200 --batch-size 32 "$@"
}

variant() {
  case $1 in
    lite0-frozen) run "$1" efficientnet-lite0 224 frozen --features rich --epochs 60 --lr 0.001 --batch-size 256 ;;
    lite1-frozen) run "$1" efficientnet-lite1 240 frozen --features rich --epochs 60 --lr 0.001 --batch-size 256 ;;
    lite2-frozen) run "$1" efficientnet-lite2 260 frozen --features rich --epochs 60 --lr 0.001 --batch-size 256 ;;
    lite2-frozen-tuned) run "$1" efficientnet-lite2 260 frozen --features rich --epochs 60 --lr 0.0003 --weight-decay 0.03 --batch-size 256 ;;
    lite2-views3) run "$1" efficientnet-lite2 260 frozen --features rich --epochs 60 --lr 0.0003 --weight-decay 0.03 --batch-size 256 --frozen-views 3 ;;
    lite2-richmax) run "$1" efficientnet-lite2 260 frozen --features rich-max --epochs 60 --lr 0.0003 --weight-decay 0.03 --batch-size 256 ;;
    lite2-richmax-views3) run "$1" efficientnet-lite2 260 frozen --features rich-max --epochs 60 --lr 0.0003 --weight-decay 0.03 --batch-size 256 --frozen-views 3 ;;
    lite2-300) run "$1" efficientnet-lite2 300 frozen --features rich --epochs 60 --lr 0.0003 --weight-decay 0.03 --batch-size 256 --frozen-views 1 ;;
    lite2-280) run "$1" efficientnet-lite2 280 frozen --features rich --epochs 60 --lr 0.0003 --weight-decay 0.03 --batch-size 256 --frozen-views 1 ;;
    lite2-300-views2) run "$1" efficientnet-lite2 300 frozen --features rich --epochs 60 --lr 0.0003 --weight-decay 0.03 --batch-size 256 --frozen-views 2 ;;
    lite2-300-260) run "$1" efficientnet-lite2 300 frozen --features rich --epochs 60 --lr 0.0003 --weight-decay 0.03 --batch-size 256 --frozen-views 2 --second-input-size 260 ;;
    lite2-320) run "$1" efficientnet-lite2 320 frozen --features rich --epochs 60 --lr 0.0003 --weight-decay 0.03 --batch-size 256 --frozen-views 1 ;;
    lite2-360) run "$1" efficientnet-lite2 360 frozen --features rich --epochs 60 --lr 0.0003 --weight-decay 0.03 --batch-size 256 --frozen-views 1 ;;
    lite2-finetune2) run "$1" efficientnet-lite2 260 finetune --features rich --finetune-stages 2 --epochs 1 --lr 0.001 --backbone-lr-factor 0.1 --warmup-steps 100 --batch-size 32 ;;
    # Fine-tuning from lite2-300-views2's fitted head (lpft, below).
    lite2-300-lpft) lpft "$1" 2 4 0.0001 0.3 ;;
    # lr 1e-5 for head and backbone alike, two epochs: the lowest validation loss.
    lite2-300-lpft-low) lpft "$1" 2 2 0.00001 1 ;;
    # lite2-300-lpft-low with stage 6 learning too, at lr 2e-5, with the mirror
    # as its only augmentation, and with stronger augmentation.
    lite2-300-lpft3-low) lpft "$1" 3 2 0.00001 1 ;;
    lite2-300-lpft-2e5) lpft "$1" 2 2 0.00002 1 ;;
    lite2-300-lpft-flip) lpft "$1" 2 2 0.00001 1 --rotation 0 --shift 0 --zoom 0 ;;
    lite2-300-lpft-strong) lpft "$1" 2 2 0.00001 1 --rotation 30 --shift 0.25 --zoom 0.3 ;;
    # A second backbone: Lite1 at 280 beside the default's Lite2 at 300, one head on both (5,632
    # inputs); the head's weight decay searched again (0.01, 0.03, 0.1, 0.3, 1; lr 1e-4, 1e-3).
    lite2-300-lite1-280) run "$1" efficientnet-lite2 300 frozen --features rich --epochs 60 --lr 0.0003 --weight-decay 0.1 --batch-size 256 --frozen-views 2 --second-backbone efficientnet-lite1 --second-backbone-size 280 ;;
    darknet-frozen) run "$1" darknet 288 frozen --features rich --epochs 60 --lr 0.001 --batch-size 256 ;;
    *) echo "unknown variant $1" >&2; exit 2 ;;
  esac
}

if [ $# -eq 0 ]; then set -- lite0-frozen lite2-frozen lite1-frozen darknet-frozen; fi
for v in "$@"; do variant "$v"; done
cat "$OUT"
