#!/usr/bin/env bash
# What oneDNN's int8 convolutions would buy on this CPU, on the convolutions the
# default model's forward pass really runs: cd-predict runs models/model.onnx
# at batch 1 and 32 with ONEDNN_VERBOSE=1, and bench_int8 times each of those
# shapes as f32 (what the runtime runs) and as int8 (u8 activations, s8
# weights). Speed only: int8-accuracy.sh measures the runtime's INT8 as it
# runs, accuracy included. Writes bench/results/int8.{json,md}.
# Usage: bench/int8.sh [REPEATS]   (after make run)
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-11}
model=models/model.onnx
[[ -f $model ]] || { echo "int8.sh: $model is missing; run make run first" >&2; exit 2; }
mapfile -t photos < <(find data/sample -name '*.jpg' | sort | head -32)
((${#photos[@]} == 32)) || { echo "int8.sh: fewer than 32 photos under data/sample" >&2; exit 2; }
out=bench/results
for batch in 1 32; do
  ONEDNN_VERBOSE=1 build/bin/cd-predict --model "$model" --batch-size "$batch" "${photos[@]:0:batch}" 2>&1 |
    build/bin/bench_int8 "$repeats" >"$out/int8-b$batch.json"
done
python3 - "$out" <<'PY'
import json, sys, time
out = sys.argv[1]
rows, summary = [], {}
for batch in (1, 32):
    d = json.load(open(f"{out}/int8-b{batch}.json"))
    parts = {"depthwise": [s for s in d["shapes"] if s["shape"].startswith("g")],
             "dense (1x1, stem)": [s for s in d["shapes"] if not s["shape"].startswith("g")]}
    for name, shapes in list(parts.items()) + [("all", d["shapes"])]:
        f = sum(s["f32_ms"] for s in shapes) / batch
        q = sum(s["int8_ms"] for s in shapes) / batch
        rows.append(f"| {batch} | {name} | {len(shapes)} | {f:.2f} | {q:.2f} | {f / q:.2f}× |")
        summary[f"b{batch} {name}"] = {"f32_ms_per_image": f, "int8_ms_per_image": q}
impls = sorted({s["int8_impl"] for s in d["shapes"]})
json.dump(summary, open(f"{out}/int8.json", "w"), indent=2)
with open(f"{out}/int8.md", "w") as f:
    f.write(f"# int8 against f32 convolutions — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n"
            "The convolutions of one forward pass of models/model.onnx (from `make run`) as cd-predict ran them "
            "(ONEDNN_VERBOSE=1), each timed alone by `build/bin/bench_int8` (median of its runs) as f32 and as "
            "int8 (u8 activations, s8 weights, s8 output, per-channel scales, the same clip). "
            f"int8 implementations: {', '.join(impls)}. Speed only: int8-accuracy.md has the runtime's INT8, accuracy included.\n\n"
            "| batch | convolutions | count | f32 ms/image | int8 ms/image | f32/int8 |\n|---|---|---|---|---|---|\n")
    f.write("\n".join(rows) + "\n")
print(open(f"{out}/int8.md").read())
PY
rm -f "$out"/int8-b1.json "$out"/int8-b32.json
