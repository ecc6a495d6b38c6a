"""cd-train on the committed sample: learning, reproducibility, resume, kill -9, and its errors."""
import os
import signal
import subprocess
import time
import unittest

from common import FAST_TRAIN, TempDirTest, prepare_sample, read_json, run, tool, train_small, tsv_values


class Train(TempDirTest):
    def setUp(self):
        super().setUp()
        self.data = prepare_sample(self.tmp)

    def live(self, name, metric="val/loss"):
        return tsv_values(self.path(name, "live", "plots", "metrics", metric + ".tsv"))

    def stamps(self, name):
        with open(self.path(name, "live", "plots", "metrics", "val", "loss.tsv")) as f:
            return [float(line.split("\t")[0]) for line in f.readlines()[1:]]

    def test_loss_falls_and_outputs_are_complete(self):
        r = train_small(self.tmp, self.data, "run", 6, ["--lr", "0.003"])
        self.assertExit(r, 0)
        losses = self.live("run", "train/loss")
        self.assertEqual(len(losses), 6)
        self.assertLess(min(losses[3:]), losses[0])
        for f in ("model.cdm", "checkpoint.cdm", "train.json", "live/metrics.json",
                  "live/plots/metrics/val/acc.tsv", "live/plots/metrics/train/acc.tsv"):
            self.assertTrue(os.path.exists(self.path("run", f)), f)
        header = open(self.path("run", "live", "plots", "metrics", "train", "loss.tsv")).readline()
        self.assertEqual(header, "timestamp\tstep\tloss\n")
        metrics = read_json(self.path("run", "train.json"))
        self.assertIn(metrics["best_epoch"], range(1, 7))
        self.assertEqual(metrics["val_loss"], min(self.live("run")))  # restore-best
        leftovers = [f for f in os.listdir(self.path("run")) if ".tmp." in f]
        self.assertEqual(leftovers, [])

    def test_same_seed_same_metrics(self):
        for name in ("a", "b"):
            self.assertExit(train_small(self.tmp, self.data, name, 2), 0)
        self.assertEqual(self.live("a"), self.live("b"))
        self.assertEqual(self.live("a", "train/loss"), self.live("b", "train/loss"))

    def test_two_epochs_equal_one_plus_resume(self):
        self.assertExit(train_small(self.tmp, self.data, "straight", 2), 0)
        self.assertExit(train_small(self.tmp, self.data, "split", 1), 0)
        resumed_at_ms = time.time() * 1000
        r = train_small(self.tmp, self.data, "split", 2, ["--resume"])
        self.assertExit(r, 0)
        # Epoch 1 comes from the checkpoint (stamped before the resume), epoch 2 is new.
        stamps = self.stamps("split")
        self.assertLess(stamps[0], resumed_at_ms)
        self.assertGreater(stamps[1], resumed_at_ms)
        self.assertEqual(self.live("straight"), self.live("split"))
        self.assertEqual(self.live("straight", "train/acc"), self.live("split", "train/acc"))

    def test_sigkill_mid_epoch_resumes_from_checkpoint(self):
        self.assertExit(train_small(self.tmp, self.data, "whole", 4, ["--patience", "10"]), 0)
        out = self.path("killed")
        args = [tool("cd-train"), "--data", self.data, "--output", out, "--metrics", os.path.join(out, "train.json"),
                "--live", os.path.join(out, "live"), "--epochs", "4", "--patience", "10", *FAST_TRAIN]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ckpt = os.path.join(out, "checkpoint.cdm")
        deadline = time.time() + 120
        while not os.path.exists(ckpt) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        time.sleep(0.15)  # into the next epoch
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.assertEqual(proc.returncode, -signal.SIGKILL)
        done_before = len(self.live("killed"))
        self.assertLess(done_before, 4, "the run finished before it could be killed")
        stamps_before = self.stamps("killed")
        r = train_small(self.tmp, self.data, "killed", 4, ["--resume", "--patience", "10"])
        self.assertExit(r, 0)
        self.assertEqual(self.stamps("killed")[:done_before], stamps_before)  # kept, not redone
        self.assertEqual(self.live("killed"), self.live("whole"))

    def write_manifest(self, name, rows):
        path = self.path(name)
        os.makedirs(path, exist_ok=True)
        for split in ("train", "val"):
            with open(os.path.join(path, f"{split}.csv"), "w") as f:
                f.write("path,label\n" + "".join(f"{p},{l}\n" for p, l in rows))
        return path

    def test_data_errors(self):
        first = open(os.path.join(self.data, "train.csv")).read().splitlines()[1:]
        cats = [line.rsplit(",", 1) for line in first if line.endswith(",cat")]
        resolved = [(os.path.normpath(os.path.join(self.data, p)), l) for p, l in cats]
        cases = {
            "empty": ([], "has no images"),
            "onecls": (resolved[:10], "holds only cat images; training needs both classes"),
            "missing": (resolved[:5] + [("/no/such/dog.jpg", "dog")], "cannot open '/no/such/dog.jpg'"),
        }
        for name, (rows, message) in cases.items():
            with self.subTest(case=name):
                r = train_small(self.tmp, self.write_manifest(name, rows), "out-" + name, 1)
                self.assertExit(r, 1)
                self.assertIn(message, r.stderr)
                self.assertFalse(os.path.exists(self.path("out-" + name, "model.cdm")))

    def test_nan_loss_stops_with_clear_message(self):
        r = train_small(self.tmp, self.data, "nan", 3, env={"CD_FAULT_NAN_AT_STEP": "3"})
        self.assertExit(r, 1)
        self.assertIn("training diverged: the loss became nan at epoch 1, batch 3; lower optimizer.lr", r.stderr)
        self.assertFalse(os.path.exists(self.path("nan", "model.cdm")))

    def test_corrupt_checkpoint_is_refused(self):
        self.assertExit(train_small(self.tmp, self.data, "c", 1), 0)
        ckpt = self.path("c", "checkpoint.cdm")
        data = open(ckpt, "rb").read()
        with open(ckpt, "wb") as f:
            f.write(data[: len(data) // 2])
        r = train_small(self.tmp, self.data, "c", 2, ["--resume"])
        self.assertExit(r, 1)
        self.assertIn("checkpoint.cdm: file is truncated", r.stderr)
        with open(ckpt, "wb") as f:
            f.write(b"garbage" * 10)
        r = train_small(self.tmp, self.data, "c", 2, ["--resume"])
        self.assertExit(r, 1)
        self.assertIn("not a catdog model file", r.stderr)

    def test_baseline_architecture_trains(self):
        r = run([tool("cd-train"), "--data", self.data, "--output", self.path("b"), "--metrics", self.path("b", "m.json"),
                 "--live", self.path("b", "live"), "--epochs", "1", "--architecture", "baseline", "--input-size", "64",
                 "--max-train-images", "64", "--threads", "2"])
        self.assertExit(r, 0)
        self.assertIn("baseline:", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
