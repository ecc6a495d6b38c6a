"""One training epoch in Python with a DataLoader: same architecture, batch size,
augmentation ranges and thread count as cd-train. Prints JSON with images/s."""
import argparse
import csv
import json
import os
import time

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from catdog_peer import build, load_cdm


class Manifest(Dataset):
    def __init__(self, path, size, augment=True):
        base = os.path.dirname(path)
        with open(path) as f:
            self.rows = [(os.path.normpath(os.path.join(base, r["path"])), 1.0 if r["label"] == "dog" else 0.0)
                         for r in csv.DictReader(f)]
        # Keras ImageDataGenerator ranges: rotation 20, shift 0.2, zoom 0.2, horizontal flip.
        steps = [transforms.Resize((size, size))]
        if augment:
            steps += [transforms.RandomAffine(20, translate=(0.2, 0.2), scale=(0.8, 1.2)),
                      transforms.RandomHorizontalFlip()]
        self.tf = transforms.Compose(steps + [transforms.ToTensor()])

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        path, y = self.rows[i]
        with Image.open(path) as im:
            return self.tf(im.convert("RGB")), torch.tensor(y)


def frozen(model, meta, args):
    """The default recipe: backbone features once per image and its mirror, then a linear head."""
    model.eval()
    loader = DataLoader(Manifest(args.train, meta["input_size"], augment=False), batch_size=64,
                        num_workers=args.workers)
    feats, labels = [], []
    start = time.perf_counter()
    with torch.no_grad():
        for x, y in loader:
            x = x.contiguous(memory_format=torch.channels_last)
            feats += [model.embed(x), model.embed(x.flip(3))]
            labels += [y, y]
    seconds = time.perf_counter() - start
    seen = sum(len(y) for y in labels)
    f, y = torch.cat(feats), torch.cat(labels)
    f = (f - f.mean(0)) / f.std(0).clamp_min(1e-6)
    head = nn.Linear(f.shape[1], 1)
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    for _ in range(20):
        for i in range(0, len(y), 256):
            opt.zero_grad()
            nn.functional.binary_cross_entropy_with_logits(head(f[i:i + 256]).view(-1), y[i:i + 256]).backward()
            opt.step()
    print(json.dumps({"images": seen, "seconds": seconds, "images_per_second": seen / seconds}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--like", required=True, help="a .cdm whose architecture (and weights) to train")
    ap.add_argument("--mode", default="full", choices=["full", "finetune", "frozen"])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(42)
    meta, state = load_cdm(args.like)
    model = build(meta)
    model.load_state_dict(state)
    if args.mode == "frozen":
        return frozen(model, meta, args)
    model.train()
    if args.mode == "finetune":
        head = list(model.head.parameters())
        ids = {id(p) for p in head}
        groups = [{"params": [p for p in model.parameters() if id(p) not in ids], "lr": 1e-5}, {"params": head}]
        opt = torch.optim.Adam(groups, lr=1e-3)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    loader = DataLoader(Manifest(args.train, meta["input_size"]), batch_size=args.batch_size, shuffle=True,
                        num_workers=args.workers, persistent_workers=False)
    start, seen = time.perf_counter(), 0
    for x, y in loader:
        x = x.contiguous(memory_format=torch.channels_last)
        opt.zero_grad()
        loss = loss_fn(model(x).view(-1), y)
        loss.backward()
        opt.step()
        seen += len(y)
    seconds = time.perf_counter() - start
    print(json.dumps({"images": seen, "seconds": seconds, "images_per_second": seen / seconds}))


if __name__ == "__main__":
    main()
