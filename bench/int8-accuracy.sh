#!/usr/bin/env bash
# What INT8 costs in accuracy and buys in speed, on the oneDNN runtime as it
# runs: cd-eval on the test split in f32 (--f32: LibTorch, even for a model
# file that carries its calibration, as the pipeline's does) and with --int8-calibration (the convolutions on 8-bit data, calibrated on
# training images, on the oneDNN runtime), the same
# on the original-resolution photos of ../shared/data/originals-sample, and
# bench_forward's forward pass per image at batch 1 and 32, f32 and int8
# alternated. Writes bench/results/int8-accuracy.{json,md}.
# Usage: bench/int8-accuracy.sh [MODEL] [PREPARED] [CALIBRATION_IMAGES]
#   defaults: models/model.cdm, data/prepared (test.csv and train.csv), 256.
#   BENCH_INT8_OUT names the results (default int8-accuracy: bench/results/int8-accuracy.{json,md}).
#   For the issue's measurement, a model trained on the full data and its
#   cd-prepare folder.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-models/model.cdm}
prepared=${2:-data/prepared}
images=${3:-256}
originals=${BENCH_ORIGINALS:-../shared/data/originals-sample}
for f in "$model" "$prepared/test.csv" "$prepared/train.csv"; do
  [[ -f $f ]] || { echo "int8-accuracy.sh: $f is missing; run make run first" >&2; exit 2; }
done
cmake --build build --target bench_forward >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

evaluate() {  # NAME DATA [cd-eval flags...]
  local name=$1 data=$2
  shift 2
  build/bin/cd-eval --model "$model" --data "$data" --output "$work/$name" --log-level warn "$@"
}
int8=(--int8-calibration "$prepared/train.csv" --int8-images "$images")
evaluate test-f32 "$prepared" --f32
evaluate test-int8 "$prepared" "${int8[@]}"
if [[ -d $originals/cats && -d $originals/dogs ]]; then
  mkdir -p "$work/originals"
  {
    echo path,label
    for f in "$originals"/cats/*; do echo "$(realpath "$f"),cat"; done
    for f in "$originals"/dogs/*; do echo "$(realpath "$f"),dog"; done
  } >"$work/originals/test.csv"
  evaluate originals-f32 "$work/originals" --f32
  evaluate originals-int8 "$work/originals" "${int8[@]}"
else
  echo "int8-accuracy.sh: $originals is absent; the originals rows are skipped" >&2
fi
for round in 1 2 3; do
  build/bin/bench_forward --f32 "$model" 2 15 1 32 >"$work/forward-f32-$round.json"
  build/bin/bench_forward --int8 "$model" 2 15 1 32 >"$work/forward-int8-$round.json"
done

python3 - "$work" "$model" "$prepared" "$images" "${BENCH_INT8_OUT:-int8-accuracy}" <<'PY'
import csv, glob, json, os, statistics, sys, time
work, model, prepared, images, name = sys.argv[1:6]
out = "bench/results"
summary = {"model": model, "prepared": prepared, "calibration_images": int(images)}

def misjudged(name):
    with open(f"{work}/{name}/misclassified.csv") as f:
        return {row["path"] for row in csv.DictReader(f)}

rows = []
for split in ("test", "originals"):
    if not os.path.isdir(f"{work}/{split}-f32"):
        continue
    m = {p: json.load(open(f"{work}/{split}-{p}/metrics.json")) for p in ("f32", "int8")}
    changed = misjudged(f"{split}-f32") ^ misjudged(f"{split}-int8")
    summary[split] = {p: {k: m[p][k] for k in ("n", "accuracy", "log_loss", "fp", "fn")} for p in m}
    summary[split]["decisions_changed"] = sorted(changed)
    for p in ("f32", "int8"):
        rows.append(f"| {split} | {p} | {m[p]['n']} | {100 * m[p]['accuracy']:.2f}% | "
                    f"{m[p]['fp'] + m[p]['fn']} | {m[p]['log_loss']:.4f} |")
    rows.append(f"| {split} | decisions that differ | | | {len(changed)} | |")

speed = []
for batch in ("1", "32"):
    per = {p: [json.load(open(f))["batches"][batch]["median_ms_per_image"]
               for f in sorted(glob.glob(f"{work}/forward-{p}-*.json"))] for p in ("f32", "int8")}
    f, q = statistics.median(per["f32"]), statistics.median(per["int8"])
    summary[f"forward_b{batch}"] = {"f32_ms_per_image": per["f32"], "int8_ms_per_image": per["int8"]}
    speed.append(f"| {batch} | {f:.2f} ({min(per['f32']):.2f}-{max(per['f32']):.2f}) | "
                 f"{q:.2f} ({min(per['int8']):.2f}-{max(per['int8']):.2f}) | {f / q:.2f}× |")

json.dump(summary, open(f"{out}/{name}.json", "w"), indent=2)
with open(f"{out}/{name}.md", "w") as f:
    f.write(f"# INT8 on the oneDNN runtime: accuracy and speed — "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n"
            f"`bench/int8-accuracy.sh {model} {prepared} {images}`: cd-eval in f32 and with "
            f"`--int8-calibration {prepared}/train.csv --int8-images {images}` (the dense and depthwise "
            "convolutions on 8-bit data on the oneDNN runtime; the f32 rows are cd-eval's own, on LibTorch, "
            "which the runtime matches within 1e-4).\n\n"
            "| split | precision | images | accuracy | errors | log loss |\n|---|---|---:|---:|---:|---:|\n")
    f.write("\n".join(rows) + "\n\n")
    f.write("The forward pass alone (`bench_forward --f32|--int8 MODEL 2 15 1 32`, 2 threads, median ms per "
            "image of 15 runs; f32 and int8 alternated 3 times: median of the 3, and their range):\n\n"
            "| batch | f32 | int8 | f32/int8 |\n|---:|---:|---:|---:|\n")
    f.write("\n".join(speed) + "\n")
print(open(f"{out}/{name}.md").read())
PY
