"""cd-train on the committed sample: learning, reproducibility, resume, kill -9, and its errors."""
import json
import os
import signal
import subprocess
import time
import unittest

from common import FAST_TRAIN, FIXTURES, SOURCE_DIR, TempDirTest, prepare_sample, read_json, run, tool, train_small, tsv_values


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


VENV_PYTHON = os.path.join(SOURCE_DIR, ".venv", "bin", "python")
LITE0 = os.path.join(SOURCE_DIR, "data", "pretrained", "efficientnet-lite0")


@unittest.skipUnless(os.path.exists(os.path.join(LITE0, "weights.json")),
                     "data/pretrained/efficientnet-lite0 is absent; run make pretrained")
class EfficientNetLite(TempDirTest):
    def setUp(self):
        super().setUp()
        self.data = prepare_sample(self.tmp)

    def train(self, name, *extra, pretrained=LITE0):
        return run([tool("cd-train"), "--data", self.data, "--output", self.path(name),
                    "--metrics", self.path(name, "m.json"), "--live", self.path(name, "live"),
                    "--architecture", "efficientnet-lite0", "--pretrained", pretrained, "--threads", "2", *extra])

    def assert_every_fixture_right(self, model):
        r = run([tool("cd-predict"), "--model", model, os.path.join(FIXTURES, "photos")])
        self.assertExit(r, 0)
        rows = [line.split("\t") for line in r.stdout.splitlines()]
        self.assertEqual(len(rows), 8)
        for path, label, _ in rows:
            self.assertEqual(label, os.path.basename(path).split(".")[0], path)

    def test_frozen_head_on_the_sample_gets_every_fixture_right(self):
        r = self.train("frozen", "--mode", "frozen", "--input-size", "160", "--features", "rich",
                       "--batch-size", "256", "--epochs", "30")
        self.assertExit(r, 0)
        self.assertIn("efficientnet-lite0:", r.stderr)
        self.assert_every_fixture_right(self.path("frozen", "model.cdm"))

    def test_feature_cache_skips_the_feature_pass_and_changes_nothing(self):
        cache = self.path("cache")
        args = ["--mode", "frozen", "--input-size", "96", "--epochs", "4", "--feature-cache", cache]
        first = self.train("a", *args)
        self.assertExit(first, 0)
        self.assertEqual(len(os.listdir(cache)), 1)
        second = self.train("b", *args)
        self.assertExit(second, 0)
        self.assertIn("features from", second.stderr)
        self.assertEqual(read_json(self.path("a", "m.json"))["val_loss"],
                         read_json(self.path("b", "m.json"))["val_loss"])
        # Another input size is another backbone pass, in its own file.
        third = self.train("c", *(args[:3] + ["112"] + args[4:]))
        self.assertExit(third, 0)
        self.assertNotIn("features from", third.stderr)
        self.assertEqual(len(os.listdir(cache)), 2)
        # A damaged cache file is recomputed, with a warning.
        victim = min((os.path.join(cache, n) for n in os.listdir(cache)), key=os.path.getmtime)
        with open(victim, "r+b") as f:
            f.truncate(100)
        fourth = self.train("d", *args)
        self.assertExit(fourth, 0)
        self.assertIn("not a feature cache this run can use", fourth.stderr)
        self.assertEqual(read_json(self.path("d", "m.json"))["val_loss"],
                         read_json(self.path("a", "m.json"))["val_loss"])

    def test_augmented_views_extend_the_cache_and_a_smaller_run_reads_it(self):
        cache = self.path("cache")
        args = ["--mode", "frozen", "--input-size", "96", "--epochs", "4", "--feature-cache", cache]

        def header():
            (name,) = os.listdir(cache)
            with open(os.path.join(cache, name), "rb") as f:
                return json.loads(f.readline()), os.path.getsize(os.path.join(cache, name))

        self.assertExit(self.train("two", *args, "--frozen-views", "2"), 0)
        two, two_size = header()
        self.assertEqual(two["views"], 2)
        # Three views: the two cached ones are read back, only the augmented one is computed.
        three = self.train("three", *args, "--frozen-views", "3", "--log-level", "debug")
        self.assertExit(three, 0)
        self.assertIn("(2 view(s) of each training image)", three.stderr)
        self.assertIn("augmented view 1", three.stderr)
        self.assertNotIn("features train (mirrored)", three.stderr)
        grown, grown_size = header()
        self.assertEqual(grown["views"], 3)
        self.assertEqual(grown["train_rows"], 3 * two["train_rows"] // 2)
        self.assertEqual(grown_size - two_size, two["train_rows"] // 2 * two["dim"] * 4)
        # The augmented rows are new data: the head sees different features.
        self.assertNotEqual(read_json(self.path("two", "m.json"))["val_loss"],
                            read_json(self.path("three", "m.json"))["val_loss"])
        # A two-view run takes the first two views of the three-view file: the first run again.
        again = self.train("again", *args, "--frozen-views", "2")
        self.assertExit(again, 0)
        self.assertIn("(2 view(s) of each training image)", again.stderr)
        self.assertEqual(read_json(self.path("two", "m.json"))["val_loss"],
                         read_json(self.path("again", "m.json"))["val_loss"])
        # An augmented view is the same pixels in every run: a fresh three-view pass matches.
        fresh = self.train("fresh", *args[:-1], self.path("cache2"), "--frozen-views", "3")
        self.assertExit(fresh, 0)
        self.assertEqual(read_json(self.path("three", "m.json"))["val_loss"],
                         read_json(self.path("fresh", "m.json"))["val_loss"])

    def test_finetune_only_the_last_stage(self):
        r = self.train("ft", "--mode", "finetune", "--finetune-stages", "1", "--input-size", "96",
                       "--epochs", "1", "--max-train-images", "32", "--batch-size", "16")
        self.assertExit(r, 0)
        r = self.train("bad", "--mode", "finetune", "--finetune-stages", "12", "--input-size", "96",
                       "--epochs", "1", "--max-train-images", "32")
        self.assertExit(r, 2)
        self.assertIn("model.finetune_stages must be 1..9", r.stderr)

    def test_finetune_starts_from_the_head_a_frozen_run_fitted(self):
        frozen = self.train("lp", "--mode", "frozen", "--input-size", "96", "--features", "rich",
                            "--batch-size", "256", "--epochs", "20")
        self.assertExit(frozen, 0)
        fitted = read_json(self.path("lp", "m.json"))["val_loss"]
        self.assertLess(fitted, 0.3)
        # A learning rate too small to move anything: what validation sees is the starting point.
        still = ["--mode", "finetune", "--finetune-stages", "1", "--input-size", "96", "--features", "rich",
                 "--epochs", "1", "--max-train-images", "32", "--batch-size", "16", "--lr", "1e-7",
                 "--warmup-steps", "0", "--keep-bn-statistics"]
        r = self.train("ft", *still, "--init", self.path("lp", "model.cdm"))
        self.assertExit(r, 0)
        self.assertIn("starting from the weights of", r.stderr)
        self.assertAlmostEqual(read_json(self.path("ft", "m.json"))["val_loss"], fitted, delta=0.005)
        r = self.train("zero", *still)
        self.assertExit(r, 0)
        self.assertGreater(read_json(self.path("zero", "m.json"))["val_loss"], 0.6)
        # Another input size is another network: refused, naming both.
        r = self.train("other", *(still[:5] + ["112"] + still[6:]), "--init", self.path("lp", "model.cdm"))
        self.assertExit(r, 2)
        self.assertIn("at 96", r.stderr)
        self.assertIn("same architecture, input size and features", r.stderr)
        r = self.train("frozen2", "--mode", "frozen", "--input-size", "96", "--epochs", "1",
                       "--init", self.path("lp", "model.cdm"))
        self.assertExit(r, 2)
        self.assertIn("model.init is for mode full or finetune", r.stderr)

    def test_a_second_backbone_trains_beside_the_first_and_its_errors_are_named(self):
        r = self.train("pair", "--mode", "frozen", "--input-size", "128", "--features", "rich",
                       "--second-backbone", "efficientnet-lite1", "--second-backbone-size", "112",
                       "--batch-size", "256", "--epochs", "30")
        self.assertExit(r, 0)
        # The head reads Lite0's rich features and Lite1's side by side (2,792 each).
        self.assertIn("feature rows of 5584", r.stderr)
        self.assert_every_fixture_right(self.path("pair", "model.cdm"))

        r = self.train("missing", "--mode", "frozen", "--second-backbone", "efficientnet-lite7")
        self.assertExit(r, 2)
        self.assertIn("model.second_backbone efficientnet-lite7 needs its weights in", r.stderr)
        r = run([tool("cd-train"), "--data", self.data, "--output", self.path("c"), "--metrics",
                 self.path("c", "m.json"), "--live", self.path("c", "live"), "--architecture", "compact",
                 "--second-backbone", "efficientnet-lite1"])
        self.assertExit(r, 2)
        self.assertIn("beside an efficientnet-lite model.architecture", r.stderr)

    def test_wrong_weights_folder_is_named(self):
        r = self.train("w", pretrained=os.path.join(SOURCE_DIR, "data", "pretrained", "darknet-tiny-imagenet"))
        self.assertExit(r, 1)
        self.assertIn("make pretrained", r.stderr)

    @unittest.skipUnless(os.path.exists(VENV_PYTHON), "no .venv; run make deps")
    def test_converter_refuses_what_is_not_a_legacy_torch_file(self):
        bogus = self.path("bogus.pth")
        with open(bogus, "wb") as f:
            f.write(b"PK\x03\x04 not a pickle")
        r = run([VENV_PYTHON, os.path.join(SOURCE_DIR, "tools", "cd-train", "import_efficientnet_lite.py"),
                 "efficientnet-lite0", "--pth", bogus, "--license", bogus, "--output", self.path("out")])
        self.assertExit(r, 1)
        self.assertIn("import_efficientnet_lite:", r.stderr)
        self.assertFalse(os.path.exists(self.path("out", "efficientnet-lite0", "weights.json")))


if __name__ == "__main__":
    unittest.main(verbosity=2)
