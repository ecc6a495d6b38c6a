"""The real dvc on a fresh clone: repro, no-op repro, partial rerun, experiments, diff and plots."""
import json
import os
import re
import shutil
import subprocess
import unittest

from common import BIN_DIR, SOURCE_DIR, TempDirTest, read_json, run

DVC = shutil.which("dvc") or os.path.join(SOURCE_DIR, ".venv", "bin", "dvc")


@unittest.skipUnless(os.path.exists(DVC), "dvc is not installed; run make deps")
class DvcPipeline(TempDirTest):
    def dvc(self, *args):
        r = run([DVC, *args], cwd=self.clone, timeout=1200)
        self.assertExit(r, 0)
        return r.stdout + r.stderr

    def setUp(self):
        super().setUp()
        self.clone = self.path("clone")
        r = run(["git", "clone", "-q", SOURCE_DIR, self.clone])
        self.assertExit(r, 0)
        os.makedirs(os.path.join(self.clone, "build"))
        os.symlink(BIN_DIR, os.path.join(self.clone, "build", "bin"))
        # The pretrained stage runs .venv/bin/python, where make deps put the weight wheels.
        os.symlink(os.path.join(SOURCE_DIR, ".venv"), os.path.join(self.clone, ".venv"))
        for key, value in (("user.email", "ci@catdog.invalid"), ("user.name", "catdog ci")):
            run(["git", "config", key, value], cwd=self.clone)

    def test_committed_lock_is_current(self):
        # A fresh clone has no pipeline outputs yet, so a stage's upstream
        # outputs show as deleted deps. Nothing else may differ from the
        # committed dvc.lock: not the code, data, command or params.
        status = json.loads(self.dvc("status", "--json"))
        stale = {}
        for stage, entries in status.items():
            for entry in entries:
                for kind, changes in (entry.items() if isinstance(entry, dict) else [(entry, None)]):
                    if kind == "changed outs":
                        continue
                    if kind == "changed deps":
                        changes = {path: what for path, what in changes.items()
                                   if not (what == "deleted" and not self.tracked(path))}
                        if not changes:
                            continue
                    stale.setdefault(stage, {})[kind] = changes
        self.assertEqual(stale, {}, f"dvc.lock is stale; run make run and commit dvc.lock: {status}")

    def tracked(self, path):
        return run(["git", "ls-files", "--error-unmatch", path], cwd=self.clone).returncode == 0

    def test_pipeline_lifecycle(self):
        out = self.dvc("repro")
        for stage in ("pretrained", "prepare", "train", "export", "eval"):
            self.assertIn(f"Running stage '{stage}'", out)
        self.assertTrue(os.path.getsize(os.path.join(self.clone, "models", "model.onnx")) > 1000)
        metrics = read_json(os.path.join(self.clone, "eval", "metrics.json"))
        self.assertEqual(metrics["n"], 40)
        # The model file the pipeline writes is the one served: calibrated at the end of
        # training, so the eval stage, cd-predict and cd-serve all run it in INT8.
        self.assertEqual(metrics["int8"], {"calibration": "carried by models/model.cdm"})
        trained = read_json(os.path.join(self.clone, "metrics", "train.json"))
        self.assertEqual(trained["int8_calibration_images"], min(256, trained["train_images"]))
        # cd-predict's default is that file, not its f32 export beside it.
        self.assertTrue(os.path.isfile(os.path.join(self.clone, "models", "model.onnx")))
        r = run([os.path.join(BIN_DIR, "cd-predict"), "--log-level", "debug",
                 "data/sample/images/cat.1.jpg"], cwd=self.clone)
        self.assertExit(r, 0)
        self.assertIn("(onednn-int8)", r.stderr)

        self.assertIn("Data and pipelines are up to date", self.dvc("repro"))

        # Code that no stage runs is no stage's dependency.
        for only_serving in ("tools/cd-serve/pages.cpp", "tools/cd-predict/inputs.cpp"):
            with open(os.path.join(self.clone, only_serving), "a") as f:
                f.write("// touched\n")
        self.assertIn("Data and pipelines are up to date", self.dvc("status"))
        with open(os.path.join(self.clone, "tools/cd-train/schedule.cpp"), "a") as f:
            f.write("// touched\n")
        self.assertIn("train", json.loads(self.dvc("status", "--json")))
        run(["git", "checkout", "--", "tools"], cwd=self.clone)

        cfg = os.path.join(self.clone, "configs", "train.yaml")
        text = open(cfg).read()
        self.assertRegex(text, r"\n  epochs: \d+\n")
        # From here on the backbone's features are cached outside the clone, so the
        # experiment below (a head setting) skips the feature pass this run makes.
        self.assertIn('\n  feature_cache: ""', text)
        text = text.replace('\n  feature_cache: ""', '\n  feature_cache: "%s"' % self.path("features"))
        with open(cfg, "w") as f:
            f.write(re.sub(r"\n  epochs: \d+\n", "\n  epochs: 2\n", text))
        out = self.dvc("repro")
        self.assertNotIn("Running stage 'prepare'", out)
        self.assertIn("Running stage 'train'", out)
        self.assertIn("Running stage 'eval'", out)
        self.assertLessEqual(read_json(os.path.join(self.clone, "metrics", "train.json"))["epochs"], 2)

        run(["git", "add", "-A"], cwd=self.clone)
        self.assertExit(run(["git", "commit", "-qm", "four epochs"], cwd=self.clone), 0)
        self.dvc("exp", "run", "-S", "configs/train.yaml:optimizer.lr=0.002",
                 "-S", "configs/train.yaml:model.int8_images=0", "-n", "faster-lr")
        # model.int8_images: 0 leaves the model file in f32, and the eval stage measures that.
        self.assertNotIn("int8", read_json(os.path.join(self.clone, "eval", "metrics.json")))
        self.assertEqual(read_json(os.path.join(self.clone, "metrics", "train.json"))
                         ["int8_calibration_images"], 0)
        shown = self.dvc("exp", "show", "--no-pager", "--csv")
        self.assertIn("faster-lr", shown)
        self.assertIn("accuracy", shown.splitlines()[0])
        self.assertIn("0.002", shown)

        diff = self.dvc("metrics", "diff", "HEAD")
        self.assertIn("eval/metrics.json", diff)
        out_html = self.path("plots")
        self.dvc("plots", "show", "-o", out_html)
        html = open(os.path.join(out_html, "index.html")).read()
        for name in ("confusion.json", "roc.json", "prc.json", "loss.tsv"):
            self.assertIn(name, html)


if __name__ == "__main__":
    unittest.main(verbosity=2)
