"""The docs' commands are the tests' commands.

README.md and every page under docs/ show two kinds of command blocks:

- ```console blocks: `$ ` lines a reader runs from the repository root after `make run`. This suite
  runs each page's lines, in order, in one bash process (so `&`, `$!` and files an earlier line
  wrote work as they do for the reader), in a sandbox laid out like the repository: build/bin,
  tests/, configs/, data/sample and .venv are the real ones; data/prepared, models/model.cdm,
  models/model.onnx and eval/ are made here by the tools themselves (a small model, so the suite
  takes seconds). Only two things are rewritten: /tmp/ becomes the sandbox's own, and port 8080 a
  free one. Any line that fails fails the page, naming the line.
- ```sh blocks: set-up, training, Docker and Kubernetes, which need minutes or a cluster. Their
  catdog commands are checked instead: every `--flag` of a build/bin/<tool> line must be one of
  that tool's options (its generated docs/reference/<tool>.md), and every `make X` a Makefile
  target.
"""
import glob
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from common import (BIN_DIR, FAST_TRAIN, SAMPLE, SOURCE_DIR, TempDirTest, prepare_sample, run,  # noqa: E402
                    tool)

PAGES = ["README.md"] + sorted(os.path.relpath(p, SOURCE_DIR)
                               for p in glob.glob(os.path.join(SOURCE_DIR, "docs", "**", "*.md"), recursive=True))
TOOLS = ("cd-prepare", "cd-train", "cd-eval", "cd-predict", "cd-serve", "cd-export", "cd-model")


def blocks(page, kind):
    with open(os.path.join(SOURCE_DIR, page), encoding="utf-8") as f:
        return re.findall(r"^```" + kind + r"\n(.*?)^```", f.read(), re.S | re.M)


def commands(block, prompt):
    """The block's command lines (continuations joined), without the prompt."""
    out, pending = [], ""
    for line in block.splitlines():
        if pending:
            pending += " " + line.strip()
        elif prompt and line.startswith(prompt):
            pending = line[len(prompt):]
        elif not prompt and line.strip() and not line.lstrip().startswith("#"):
            pending = line.strip()
        else:
            continue
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        out.append(pending)
        pending = ""
    return out


def train_small_args(root, prepared):
    out = os.path.join(root, "models")
    return [tool("cd-train"), "--data", prepared, "--output", out, "--metrics", os.path.join(out, "train.json"),
            "--live", os.path.join(out, "live"), "--epochs", "2", *FAST_TRAIN]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def documented_flags(name):
    with open(os.path.join(SOURCE_DIR, "docs", "reference", name + ".md"), encoding="utf-8") as f:
        return set(re.findall(r"^\| `(--[a-z0-9-]+)`", f.read(), re.M)) | {
            "--config", "--help", "--version", "--help-markdown"}


class DocsCommands(TempDirTest):
    @classmethod
    def setUpClass(cls):
        cls.root = __import__("tempfile").mkdtemp(prefix="catdog-docs-")
        root = cls.root
        os.makedirs(os.path.join(root, "build"))
        os.symlink(BIN_DIR, os.path.join(root, "build", "bin"))
        for name in ("tests", "configs", ".venv"):
            if os.path.exists(os.path.join(SOURCE_DIR, name)):
                os.symlink(os.path.join(SOURCE_DIR, name), os.path.join(root, name))
        os.makedirs(os.path.join(root, "data"))
        os.symlink(os.path.dirname(SAMPLE), os.path.join(root, "data", "sample"))
        os.makedirs(os.path.join(root, "tmp"))
        # What `make run` leaves, made by the tools (a small model: the commands, not the accuracy).
        prepared = prepare_sample(os.path.join(root, "data"))
        # From a folder without configs/: the small model's settings, not configs/train.yaml's.
        r = run(train_small_args(root, prepared), cwd=os.path.join(root, "tmp"))
        assert r.returncode == 0, r.stderr
        for args in ([tool("cd-export"), "--model", "models/model.cdm", "--output", "models/model.onnx"],
                     [tool("cd-eval"), "--model", "models/model.cdm", "--data", "data/prepared", "--output", "eval"]):
            r = run(args + ["--log-level", "warn"], cwd=root)
            assert r.returncode == 0, r.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def test_console_blocks_run_as_written(self):
        ran = 0
        for page in PAGES:
            lines = [c for b in blocks(page, "console") for c in commands(b, "$ ")]
            if not lines:
                continue
            with self.subTest(page=page):
                port = str(free_port())
                tmp = os.path.join(self.root, "tmp", page.replace("/", "_")) + "/"
                os.makedirs(tmp, exist_ok=True)
                script = ["set -e", "trap 'echo \"docs: this line failed: $BASH_COMMAND\" >&2' ERR"]
                for line in lines:
                    script.append(line.replace("/tmp/", tmp).replace("8080", port))
                r = subprocess.run(["bash", "-c", "\n".join(script)], cwd=self.root, capture_output=True,
                                   text=True, timeout=600, env=dict(os.environ, MLFLOW_TRACKING_URI=""))
                self.assertEqual(r.returncode, 0, f"{page}: its console lines failed (exit {r.returncode})\n"
                                 f"stdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-3000:]}")
                ran += len(lines)
        self.assertGreater(ran, 20, "the docs should show runnable examples")

    def test_sh_blocks_use_real_flags_and_targets(self):
        with open(os.path.join(SOURCE_DIR, "Makefile"), encoding="utf-8") as f:
            targets = set(re.findall(r"^([a-zA-Z0-9_.-]+):", f.read(), re.M))
        checked = 0
        for page in PAGES:
            for line in [c for b in blocks(page, "sh") for c in commands(b, "")]:
                line = line.split(" #")[0]
                for part in re.split(r"&&|\|\||\||;", line):
                    try:
                        words = shlex.split(part)
                    except ValueError:
                        continue
                    if not words:
                        continue
                    name = os.path.basename(words[0])
                    if words[0] == "make":
                        for target in (w for w in words[1:] if "=" not in w and not w.startswith("-")):
                            self.assertIn(target, targets, f"{page}: `{line}`: no Makefile target {target}")
                            checked += 1
                    elif name in TOOLS and words[0].startswith("build/bin/"):
                        known = documented_flags(name)
                        for w in words[1:]:
                            if w.startswith("--"):
                                flag = w.split("=")[0]
                                self.assertIn(flag, known, f"{page}: `{line}`: {name} has no option {flag}")
                                checked += 1
        self.assertGreater(checked, 10)

    def test_every_page_links_to_files_that_exist(self):
        for page in PAGES:
            with open(os.path.join(SOURCE_DIR, page), encoding="utf-8") as f:
                text = f.read()
            for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
                if "://" in target or target.startswith("mailto:"):
                    continue
                path = os.path.normpath(os.path.join(SOURCE_DIR, os.path.dirname(page), target))
                self.assertTrue(os.path.exists(path), f"{page}: link to {target}, which does not exist")


if __name__ == "__main__":
    unittest.main()
