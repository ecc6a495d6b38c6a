#!/usr/bin/env bash
# The compact from-scratch model on the full Kaggle data with a 30-minute budget
# (wall time of cd-train, caching included): test accuracy and wall time.
# Usage: bench/compact-budget.sh [TRAIN_DIR] [BUDGET_MIN]
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:-../shared/data/dogs-vs-cats-200/train}
budget=${2:-30}
work=bench/work/compact
export MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824 OMP_WAIT_POLICY=PASSIVE
[[ -d $src ]] || { echo "skip: $src is absent" >&2; exit 0; }
mkdir -p "$work"
build/bin/cd-prepare --source "$src" --output "$work/data" --log-level warn
start=$(date +%s)
# The budget check runs after each epoch against the epoch time, so stop a little early.
build/bin/cd-train --config /dev/null --data "$work/data" --output "$work/model" --metrics "$work/train.json" --live "$work/live" \
  --architecture compact --input-size 128 --epochs 200 --time-budget-min "$((budget - 1))" --log-level info 2>&1 |
  grep -E "^.{9}info  epoch [0-9]+:|done:|error"
end=$(date +%s)
build/bin/cd-eval --model "$work/model/model.cdm" --data "$work/data" --output "$work/eval" --log-level warn
python3 - "$work" "$((end - start))" <<'PY'
import json, sys
m = json.load(open(f"{sys.argv[1]}/eval/metrics.json"))
t = json.load(open(f"{sys.argv[1]}/train.json"))
print(f"compact@128: test accuracy {m['accuracy']*100:.2f}%, log loss {m['log_loss']:.4f}, "
      f"{t['epochs']} epochs (best {t['best_epoch']}), {t['images_per_second']:.0f} train img/s, wall {sys.argv[2]} s")
PY
