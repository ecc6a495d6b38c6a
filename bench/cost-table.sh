#!/usr/bin/env bash
# The inference cost per image of the model choices, on the runtime cd-predict
# and cd-serve use, in one run: the default (EfficientNet-Lite2 at 300 and
# Lite1 at 280, two backbones, one head) and Lite2 alone (the default before
# 2026-12-07), each in f32 and INT8 (calibrated by cd-eval
# --int8-calibration; the pipeline's file is the INT8 one), and the previous default
# (Tiny Darknet at 288 with test-time flip), whose f32 cost is the ceiling
# the default rule allows (docs/models.md, "How the models were chosen").
#
# Cost depends on the architecture, not on the weights, so each model is
# trained for a few epochs on the pipeline's data (after make run: the
# committed sample), f32 (--int8-images 0). bench_forward times the forward pass alone at batch 1
# and 32, the models alternated for ROUNDS rounds; the medians are reported.
# Each model runs with OpenMP's idle threads both spinning (libgomp's
# default, as a shell runs the tools) and sleeping (OMP_WAIT_POLICY=PASSIVE,
# the Makefile's and the images' setting): PASSIVE pays a thread wake-up per
# primitive, which shows at batch 1 in a model of many primitives.
# Writes bench/results/cost-table.{json,md}.
# Usage: bench/cost-table.sh [ROUNDS]   (default 3; after make run)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/bin
DATA=${COST_DATA:-data/prepared}
WORK=bench/work/cost
OUT=bench/results/cost-table
ROUNDS=${1:-3}
THREADS=${BENCH_THREADS:-2}
mkdir -p "$WORK"

train() {  # name cd-train-args...
  local name=$1
  shift
  [ -f "$WORK/$name/model.cdm" ] && return
  "$BIN/cd-train" --config configs/train.yaml --data "$DATA" --output "$WORK/$name" \
    --metrics "$WORK/$name/train.json" --live "$WORK/$name/live" --epochs 3 --int8-images 0 \
    --log-level warn "$@"
}
int8() {  # name: the INT8 file, calibrated on 64 training images
  [ -f "$WORK/$1/int8.cdm" ] && return
  "$BIN/cd-eval" --model "$WORK/$1/model.cdm" --data "$DATA" --output "$WORK/$1/eval-int8" \
    --int8-calibration "$DATA/train.csv" --int8-images 64 --int8-model "$WORK/$1/int8.cdm" --log-level warn
}

train lite2 --second-backbone "" --weight-decay 0.03
train two-backbone --second-backbone efficientnet-lite1 --second-backbone-size 280 --weight-decay 0.1
train darknet-tta --architecture darknet --input-size 288 --pretrained data/pretrained/darknet-tiny-imagenet \
  --second-backbone "" --features rich --tta-flip
int8 lite2
int8 two-backbone

models=(darknet-tta:model lite2:model lite2:int8 two-backbone:model two-backbone:int8)
for round in $(seq "$ROUNDS"); do
  for m in "${models[@]}"; do
    name=${m%%:*} file=${m##*:}
    for wait in default PASSIVE; do
      echo "cost-table: round $round of $ROUNDS, $name ($file), OpenMP wait $wait" >&2
      if [ "$wait" = default ]; then
        env -u OMP_WAIT_POLICY "$BIN/bench_forward" "$WORK/$name/$file.cdm" "$THREADS" 15 1 32
      else
        OMP_WAIT_POLICY=PASSIVE "$BIN/bench_forward" "$WORK/$name/$file.cdm" "$THREADS" 15 1 32
      fi > "$WORK/$name-$file-$wait-$round.json"
    done
  done
done

python3 - "$WORK" "$OUT" "$ROUNDS" "$THREADS" "${models[@]}" <<'PY'
import json, statistics, sys, time
work, out, rounds, threads, models = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:]
rows = []
for m in models:
    name, file = m.split(":")
    row = {"model": name, "precision": "INT8" if file == "int8" else "f32"}
    for wait in ("default", "PASSIVE"):
        runs = [json.load(open(f"{work}/{name}-{file}-{wait}-{r}.json")) for r in range(1, rounds + 1)]
        row["runtime"] = runs[0]["runtime"]
        for b in ("1", "32"):
            row[f"ms_b{b}_{wait}"] = statistics.median(r["batches"][b]["median_ms_per_image"] for r in runs)
    rows.append(row)
ceiling = rows[0]
for r in rows:
    for key in [k for k in r if k.startswith("ms_")]:
        r["of_ceiling" + key[2:]] = r[key] / ceiling[key]
when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
json.dump({"when": when, "threads": int(threads), "rounds": rounds, "rows": rows}, open(out + ".json", "w"), indent=1)
names = {"darknet-tta": "previous default: Tiny Darknet at 288, test-time flip (the ceiling)",
         "lite2": "EfficientNet-Lite2 at 300 (the default before 2026-12-07)",
         "two-backbone": "default: two backbones, Lite2 at 300 + Lite1 at 280"}
with open(out + ".md", "w") as f:
    f.write(f"# Inference cost per image of the model choices, {when}\n\n"
            f"`bench/cost-table.sh {rounds}`: the forward pass alone (`bench_forward`, {threads} threads) on the "
            f"runtime cd-predict and cd-serve use, medians of {rounds} alternated rounds of 15 runs, with OpenMP's "
            "idle threads spinning (libgomp's default) and sleeping (`OMP_WAIT_POLICY=PASSIVE`, the Makefile's and "
            "the images' setting). The ceiling is the previous default's f32 cost under the same setting; a model "
            "fits the rule at a ratio of at most 1.00.\n\n"
            "| model | precision | ms/img b1 | ms/img b32 | of ceiling b1 | of ceiling b32 | PASSIVE: ms/img b1 | "
            "b32 | of ceiling b1 | b32 |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    for r in rows:
        f.write(f"| {names[r['model']]} | {r['precision']} | {r['ms_b1_default']:.2f} | {r['ms_b32_default']:.2f} | "
                f"{r['of_ceiling_b1_default']:.2f} | {r['of_ceiling_b32_default']:.2f} | {r['ms_b1_PASSIVE']:.2f} | "
                f"{r['ms_b32_PASSIVE']:.2f} | {r['of_ceiling_b1_PASSIVE']:.2f} | {r['of_ceiling_b32_PASSIVE']:.2f} |\n")
    f.write("\nThe pipeline writes and serves the default's INT8 form: cd-train calibrates models/model.cdm "
            "(model.int8_images). The previous default is f32 as the pipeline wrote it.\n")
print(open(out + ".md").read())
PY
