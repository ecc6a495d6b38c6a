#!/usr/bin/env python3
"""Cross-validated comparison of frozen-head feature sets, on validation data only.

Reads one cd-train feature cache (run.feature_cache: a JSON header line, then float32 rows: each
training view in turn, then val) and the manifests it was computed from, and compares heads on
column ranges of it by K-fold cross-validation over train and val together. The test split is
never read. Each fold trains on its images' rows (every cached view) and scores its held-out
images' original view. The head: logistic regression on standardised features (scikit-learn,
.venv), at each C given.

  .venv/bin/python bench/cv_heads.py CACHE.bin DATA_DIR --folds 5 --c 0.0003,0.001,0.003 \\
      --set lite2=0:2840 --set pair=0:5632 [--paired lite2,pair]

--paired A,B also prints the mean per-image difference B - A and its standard error at each C.
"""
import argparse
import csv
import json
import os
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler


def labels(path):
    with open(path, newline="") as f:
        return np.array([1 if row["label"] == "dog" else 0 for row in csv.DictReader(f)])


def read_cache(cache, data):
    """A frozen-mode feature cache and the manifests it was computed from: (views, val, y_train,
    y_val), views being each cached view's rows of the train split."""
    with open(cache, "rb") as f:
        header = json.loads(f.readline())
        dim, views = header["dim"], header["views"]
        rows = np.frombuffer(f.read(), dtype=np.float32).reshape(-1, dim)
    y_train, y_val = labels(os.path.join(data, "train.csv")), labels(os.path.join(data, "val.csv"))
    n_train = header["train_rows"] // views
    if n_train != len(y_train) or header["val_rows"] != len(y_val):
        raise SystemExit(f"{cache} does not hold {data}'s train and val rows")
    return [rows[v * n_train:(v + 1) * n_train] for v in range(views)], rows[views * n_train:], y_train, y_val


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cache")
    ap.add_argument("data", help="the cd-prepare folder the cache was computed from (train.csv, val.csv)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--c", default="0.001", help="comma-separated inverse regularisation strengths")
    ap.add_argument("--set", action="append", required=True, help="NAME=FIRST:END column range")
    ap.add_argument("--paired", default="", help="A,B: per-image difference of B's loss from A's")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()

    view, val, y_train, y_val = read_cache(args.cache, args.data)
    views, n_train = len(view), len(y_train)
    originals = np.concatenate([view[0], val])
    y = np.concatenate([y_train, y_val])
    fold = np.random.default_rng(args.seed).permutation(len(y)) % args.folds

    sets = {}
    for spec in args.set:
        name, span = spec.split("=")
        first, end = (int(v) for v in span.split(":"))
        sets[name] = slice(first, end)
    losses = {}
    for name, cols in sets.items():
        for c in (float(v) for v in args.c.split(",")):
            per_image, errors, t0 = np.empty(len(y)), 0, time.time()
            for k in range(args.folds):
                train, held = fold != k, fold == k
                extra = train[:n_train]  # the further views: of the train split's images only
                x = np.concatenate([originals[train, cols]] + [v[extra, cols] for v in view[1:]])
                t = np.concatenate([y[train]] + [y_train[extra]] * (views - 1))
                scale = StandardScaler().fit(x)
                model = LogisticRegression(C=c, max_iter=300).fit(scale.transform(x), t)
                p = np.clip(model.predict_proba(scale.transform(originals[held, cols]))[:, 1], 1e-7, 1 - 1e-7)
                per_image[held] = -(y[held] * np.log(p) + (1 - y[held]) * np.log(1 - p))
                errors += int(((p > 0.5) != y[held]).sum())
            losses[(name, c)] = per_image
            se = per_image.std() / np.sqrt(len(y))
            print(f"{name} C={c:g}: log loss {per_image.mean():.4f} (se {se:.4f}), "
                  f"errors {errors}/{len(y)}, {time.time() - t0:.0f} s", flush=True)
    if args.paired:
        a, b = args.paired.split(",")
        for (name, c), loss in losses.items():
            if name == b and (a, c) in losses:
                d = loss - losses[(a, c)]
                print(f"{b} - {a} at C={c:g}: {d.mean():+.4f} (se {d.std() / np.sqrt(len(d)):.4f})")


if __name__ == "__main__":
    main()
