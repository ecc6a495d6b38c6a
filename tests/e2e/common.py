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


def as_format_2(src, dst):
    """A format-3 model file rewritten as format 2 (no inference graph), as older catdog wrote it."""
    import struct
    with open(src, "rb") as f:
        data = f.read()
    version, _kind = struct.unpack_from("<II", data, 8)
    assert version == 3, version
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
