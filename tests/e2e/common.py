"""Helpers for the end-to-end tests: they drive the built binaries on real images."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

SOURCE_DIR = os.environ.get("CD_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN_DIR = os.environ.get("CD_BIN_DIR", os.path.join(SOURCE_DIR, "build", "bin"))
SAMPLE = os.path.join(SOURCE_DIR, "data", "sample", "images")
FIXTURES = os.path.join(SOURCE_DIR, "tests", "fixtures")
SHARED = os.path.abspath(os.path.join(SOURCE_DIR, "..", "shared"))
FULL_TRAIN = os.path.join(SHARED, "data", "dogs-vs-cats-200", "train")
TOOLS = ["cd-prepare", "cd-train", "cd-eval", "cd-predict", "cd-serve", "cd-export"]


def tool(name):
    return os.path.join(BIN_DIR, name)


def run(args, cwd=None, env=None, stdin=None, timeout=600):
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(args, cwd=cwd, env=full_env, input=stdin, capture_output=True, text=True,
                          timeout=timeout)


def read_json(path):
    with open(path) as f:
        return json.load(f)


class TempDirTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="catdog-e2e-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def assertExit(self, result, code):
        self.assertEqual(result.returncode, code,
                         f"exit {result.returncode}, expected {code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")


def prepare_sample(dest, extra=()):
    """cd-prepare on the committed sample; returns the output folder."""
    out = os.path.join(dest, "prepared")
    r = run([tool("cd-prepare"), "--source", SAMPLE, "--output", out, "--log-level", "warn", *extra])
    assert r.returncode == 0, r.stderr
    return out


# Two compute threads, or CD_THREADS: the ThreadSanitizer run sets 1, as LibTorch's OpenMP pool
# (oneDNN's kernels in it) is not instrumented and its barriers look like races.
FAST_TRAIN = ["--architecture", "compact", "--input-size", "48", "--threads", os.environ.get("CD_THREADS", "2"),
              "--log-level", "warn"]


def train_small(dest, data, name, epochs, extra=(), env=None):
    args = [tool("cd-train"), "--data", data, "--output", os.path.join(dest, name),
            "--metrics", os.path.join(dest, name, "train.json"), "--live", os.path.join(dest, name, "live"),
            "--epochs", str(epochs), *FAST_TRAIN, *extra]
    return run(args, env=env)


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


M64 = 0xFFFFFFFFFFFFFFFF
_GOLDEN, _MUL_A, _MUL_B = 0x9e3779b97f4a7c15, 0xbf58476d1ce4e5b9, 0x94d049bb133111eb


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M64


def _lane_step(acc, word):
    return (_rotl((acc + word * _MUL_A) & M64, 31) * _GOLDEN) & M64


def checksum64(data):
    """core/util/hash.h's checksum64 (a model file's checksum since format 4), in Python."""
    import struct
    n = len(data)
    lanes = [_GOLDEN, _MUL_A, _MUL_B, ~_GOLDEN & M64]
    blocks = n // 32
    for b, w in enumerate(struct.unpack_from(f"<{blocks * 4}Q", data)):
        lanes[b % 4] = _lane_step(lanes[b % 4], w)
    i = blocks * 32
    h = (_rotl(lanes[0], 1) + _rotl(lanes[1], 7) + _rotl(lanes[2], 12) + _rotl(lanes[3], 18)) & M64
    h ^= (n * _MUL_B) & M64
    while i + 8 <= n:
        h = (_rotl(h ^ _lane_step(0, struct.unpack_from("<Q", data, i)[0]), 27) * _GOLDEN + _MUL_B) & M64
        i += 8
    for c in data[i:]:
        h = (_rotl(h ^ ((c * _MUL_A) & M64), 11) * _GOLDEN) & M64
    h = ((h ^ (h >> 30)) * _MUL_A) & M64
    h = ((h ^ (h >> 27)) * _MUL_B) & M64
    return h ^ (h >> 31)


def model_checksum(version, body):
    """The checksum a model file of this format version ends with."""
    return checksum64(body) if version >= 4 else fnv1a64(body)


def as_format_2(src, dst):
    """A model file of format 3 or later rewritten as format 2 (no inference graph), as older catdog wrote it."""
    import struct
    with open(src, "rb") as f:
        data = f.read()
    version, _kind = struct.unpack_from("<II", data, 8)
    assert version >= 3, version
    pos = 16
    meta_len = struct.unpack_from("<Q", data, pos)[0]
    pos += 8 + meta_len
    payload_len = struct.unpack_from("<Q", data, pos)[0]
    pos += 8 + payload_len
    meta = json.loads(data[24:24 + meta_len])
    meta["format_version"] = 2
    new_meta = json.dumps(meta).encode()
    body = (data[:8] + struct.pack("<II", 2, _kind) + struct.pack("<Q", len(new_meta)) + new_meta
            + data[24 + meta_len:pos])
    with open(dst, "wb") as f:
        f.write(body + struct.pack("<Q", fnv1a64(body)))


def tsv_values(path):
    with open(path) as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:]
    return [float(r[2]) for r in rows]
