#!/usr/bin/env python3
"""Label noise in the training data: images whose cross-validated prediction strongly disagrees
with their label (confident learning over a cd-train feature cache), and whether training the
head without them helps on validation.

Reads one frozen-mode feature cache (run.feature_cache: a JSON header line, then float32 rows:
each training view in turn, then val) and the manifests it was computed from. The test split is
never read.

1. Cross-validated P(dog) for every train and val image: K folds over train + val together; each
   fold's head (logistic regression on standardised features, scikit-learn) trains on its images'
   rows (every cached view) and scores the held-out images' original view.
2. Suspects, by confident learning: with t_cat and t_dog the mean cross-validated probability of
   their own class among the images labelled cat and dog, an image labelled cat is a suspect when
   P(dog) >= t_dog, and one labelled dog when P(cat) >= t_cat. "Strong" suspects also give their
   own label less than 5%.
3. The effect: heads trained on the train split's rows with and without the train split's
   suspects, each scored on the val split (log loss and errors, on every val image and on the val
   images that are not suspects).

Writes bench/results/label-noise.{json,md} and the suspects' file names (one per line, as
cd-prepare --exclude reads them) to bench/results/label-noise-suspects.txt.

  .venv/bin/python bench/label-noise.py CACHE.bin DATA_DIR [--folds 5] [--c 0.001]
"""
import argparse
import csv
import json
import os
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from cv_heads import read_cache  # the feature cache's reader

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def manifest_paths(path):
    with open(path, newline="") as f:
        return [r["path"] for r in csv.DictReader(f)]


def fit(x, y, c):
    scale = StandardScaler().fit(x)
    return scale, LogisticRegression(C=c, max_iter=300).fit(scale.transform(x), y)


def p_dog(head, x):
    scale, model = head
    return np.clip(model.predict_proba(scale.transform(x))[:, 1], 1e-7, 1 - 1e-7)


def scores(p, y):
    loss = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    return {"log_loss": float(loss.mean()), "errors": int(((p > 0.5) != y).sum()), "images": int(len(y))}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cache")
    ap.add_argument("data", help="the cd-prepare folder the cache was computed from (train.csv, val.csv)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--c", type=float, default=0.001, help="inverse regularisation strength")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()

    view, val, y_train, y_val = read_cache(args.cache, args.data)
    views, n_train = len(view), len(y_train)
    train_paths = manifest_paths(os.path.join(args.data, "train.csv"))
    val_paths = manifest_paths(os.path.join(args.data, "val.csv"))
    originals = np.concatenate([view[0], val])
    y = np.concatenate([y_train, y_val])
    paths = train_paths + val_paths
    fold = np.random.default_rng(args.seed).permutation(len(y)) % args.folds

    t0 = time.time()
    p = np.empty(len(y))
    for k in range(args.folds):
        train, held = fold != k, fold == k
        extra = train[:n_train]  # the further views: of the train split's images only
        x = np.concatenate([originals[train]] + [v[extra] for v in view[1:]])
        t = np.concatenate([y[train]] + [y_train[extra]] * (views - 1))
        p[held] = p_dog(fit(x, t, args.c), originals[held])
        print(f"label-noise: fold {k + 1} of {args.folds}, {time.time() - t0:.0f} s", flush=True)

    own = np.where(y == 1, p, 1 - p)  # cross-validated probability of the given label
    t_dog, t_cat = p[y == 1].mean(), (1 - p[y == 0]).mean()
    suspect = np.where(y == 1, 1 - p >= t_cat, p >= t_dog)
    strong = suspect & (own < 0.05)
    order = np.argsort(own)
    listed = [i for i in order if suspect[i]]
    in_train = np.arange(len(y)) < n_train

    # The effect on validation: the head on the train split, with and without its suspects.
    effect = {}
    for name, keep in (("all", np.ones(n_train, bool)), ("without suspects", ~suspect[:n_train])):
        x = np.concatenate([v[keep] for v in view])
        t = np.concatenate([y_train[keep]] * views)
        pv = p_dog(fit(x, t, args.c), val)
        clean = ~suspect[n_train:]
        effect[name] = {"train_images": int(keep.sum()), "val": scores(pv, y_val),
                        "val_without_suspects": scores(pv[clean], y_val[clean])}
        print(f"label-noise: head on {name}: {effect[name]}", flush=True)

    # The same by cross-validation: per fold, heads with and without the fold's training suspects,
    # each scoring the held-out images that are not suspects; the mean per-image difference.
    diff = np.full(len(y), np.nan)
    for k in range(args.folds):
        train, held = fold != k, (fold == k) & ~suspect
        losses = []
        for keep in (train, train & ~suspect):
            extra = keep[:n_train]
            x = np.concatenate([originals[keep]] + [v[extra] for v in view[1:]])
            t = np.concatenate([y[keep]] + [y_train[extra]] * (views - 1))
            q = p_dog(fit(x, t, args.c), originals[held])
            losses.append(-(y[held] * np.log(q) + (1 - y[held]) * np.log(1 - q)))
        diff[held] = losses[1] - losses[0]
    d = diff[~np.isnan(diff)]
    effect["cross-validated"] = {"images": int(len(d)), "mean_log_loss_difference": float(d.mean()),
                                 "standard_error": float(d.std() / np.sqrt(len(d)))}
    print(f"label-noise: cross-validated, without suspects minus with: {effect['cross-validated']}", flush=True)

    out = {"cache": os.path.basename(args.cache), "folds": args.folds, "c": args.c,
           "images": int(len(y)), "train_images": int(n_train), "val_images": int(len(y_val)),
           "thresholds": {"dog": float(t_dog), "cat": float(t_cat)},
           "cv": scores(p, y),
           "suspects": int(suspect.sum()), "suspects_in_train": int((suspect & in_train).sum()),
           "suspects_in_val": int((suspect & ~in_train).sum()), "strong_suspects": int(strong.sum()),
           "effect": effect,
           "listed": [{"path": paths[i], "label": "dog" if y[i] else "cat", "p_given_label": float(own[i]),
                       "split": "train" if in_train[i] else "val"} for i in listed]}
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "label-noise.json"), "w") as f:
        json.dump(out, f, indent=1)
    with open(os.path.join(RESULTS, "label-noise-suspects.txt"), "w") as f:
        f.writelines(os.path.basename(paths[i]) + "\n" for i in listed)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [f"# Label noise in the training data, {when}", "",
             f"`bench/label-noise.py {os.path.basename(args.cache)} DATA --folds {args.folds} --c {args.c:g}`: "
             f"{len(y):,} train and val images (the test split is not read), {args.folds}-fold cross-validated "
             "logistic regression on the frozen default backbone's cached features (EfficientNet-Lite2 at 300, "
             "both views). A suspect is an image whose cross-validated probability of the other class reaches "
             "that class's mean self-confidence (confident learning); a strong suspect also gives its own label "
             "under 5%.", "",
             f"- cross-validated: log loss {out['cv']['log_loss']:.4f}, {out['cv']['errors']} errors of {len(y):,}",
             f"- thresholds: dog {t_dog:.4f}, cat {t_cat:.4f}",
             f"- suspects: **{out['suspects']}** ({out['suspects_in_train']} in train, {out['suspects_in_val']} in "
             f"val), of which {out['strong_suspects']} strong", "",
             "Training the head without the train split's suspects, scored on the val split:", "",
             "| head trained on | train images | val log loss | val errors | val log loss, suspects left out | "
             "val errors, suspects left out |", "|---|---:|---:|---:|---:|---:|"]
    for name, e in effect.items():
        if "val" not in e:
            continue
        lines.append(f"| {name} | {e['train_images']:,} | {e['val']['log_loss']:.4f} | {e['val']['errors']} / "
                     f"{e['val']['images']} | {e['val_without_suspects']['log_loss']:.4f} | "
                     f"{e['val_without_suspects']['errors']} / {e['val_without_suspects']['images']} |")
    cv = effect["cross-validated"]
    lines += ["", f"By {args.folds}-fold cross-validation over train and val, scored on the {cv['images']:,} held-out "
              "images that are not suspects: dropping each fold's training suspects changes the log loss by "
              f"{cv['mean_log_loss_difference']:+.5f} per image (standard error {cv['standard_error']:.5f})."]
    lines += ["", "The most confident disagreements (the file names alone: label-noise-suspects.txt):", "",
              "| image | label | cross-validated P(label) | split |", "|---|---|---:|---|"]
    for r in out["listed"][:25]:
        lines.append(f"| {os.path.basename(r['path'])} | {r['label']} | {r['p_given_label']:.4f} | {r['split']} |")
    with open(os.path.join(RESULTS, "label-noise.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
