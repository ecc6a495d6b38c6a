"""What a Python user would write instead of cd-train: PyTorch from Python, the same
networks, the same weights (read from our .cdm files). The training peer builds on it."""
import io
import json
import struct

import torch
from torch import nn


def load_cdm(path):
    """Reads catdog's model container: magic, version, kind, JSON metadata, LibTorch archive."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"CDMODEL\n":
        raise ValueError(f"{path}: not a catdog model file")
    _version, _kind, meta_len = struct.unpack("<IIQ", data[8:24])
    meta = json.loads(data[24:24 + meta_len])
    pos = 24 + meta_len
    (payload_len,) = struct.unpack("<Q", data[pos:pos + 8])
    archive = torch.jit.load(io.BytesIO(data[pos + 8:pos + 8 + payload_len]))
    return meta, dict(archive.state_dict())


class Baseline(nn.Module):
    def __init__(self, size):
        super().__init__()
        layers, ch, side = [], 3, size
        for width in (32, 64, 128, 128):
            layers += [nn.Conv2d(ch, width, 3), nn.ReLU(), nn.MaxPool2d(2)]
            ch, side = width, (side - 2) // 2
        layers += [nn.Flatten(), nn.Linear(ch * side * side, 512), nn.ReLU(), nn.Dropout(0.5)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(512, 1)

    def forward(self, x):
        return self.head(self.body(x))


class Darknet(nn.Module):
    def __init__(self, params):
        super().__init__()
        self.mode = params.get("features", "both")
        layers, ch, self.taps, tap_ch = [], 3, [], 0
        for layer in params["layers"]:
            if layer["type"] == "pool":
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
                continue
            f, k = layer["filters"], layer["kernel"]
            layers += [nn.Conv2d(ch, f, k, padding=k // 2, bias=False), nn.BatchNorm2d(f, eps=params["bn_eps"]),
                       nn.LeakyReLU(params["leaky"])]
            ch = f
            if f >= 256:
                self.taps.append(len(layers) - 1)
                tap_ch += f
        self.features = nn.Sequential(*layers)
        self.imagenet = nn.Conv2d(ch, params["classes"], 1)
        dim = {"pooled": ch, "logits": params["classes"], "both": ch + params["classes"]}.get(self.mode)
        if self.mode == "rich":
            dim = ch + params["classes"] + tap_ch
        self.head = nn.Linear(dim, 1)

    def forward(self, x):
        return self.head(self.embed(x))

    def embed(self, x):
        parts = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if self.mode == "rich" and i in self.taps:
                parts.append(x.mean((2, 3)))
        pooled, logits = x.mean((2, 3)), self.imagenet(x).mean((2, 3))
        if self.mode == "pooled":
            return pooled
        if self.mode == "logits":
            return logits
        return torch.cat(parts + [pooled, logits], 1)


def build(meta):
    if meta["architecture"] == "baseline":
        return Baseline(meta["input_size"])
    if meta["architecture"] == "darknet":
        return Darknet(meta["arch_params"])
    raise ValueError("peer supports baseline and darknet")
