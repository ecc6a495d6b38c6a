"""cd-prepare on real photos mixed with every kind of bad input."""
import filecmp
import os
import shutil
import unittest

from common import FIXTURES, FULL_TRAIN, SAMPLE, TempDirTest, read_json, run, tool


class Prepare(TempDirTest):
    def make_messy(self, root):
        os.makedirs(root)
        for i in range(10, 30):
            for c in ("cat", "dog"):
                shutil.copy(os.path.join(SAMPLE, f"{c}.{i}.jpg"), root)
        open(os.path.join(root, "cat.1.jpg"), "wb").close()
        shutil.copy(os.path.join(FIXTURES, "formats", "truncated.jpg"), os.path.join(root, "cat.2.jpg"))
        with open(os.path.join(root, "dog.2.jpg"), "w") as f:
            f.write("I am a text file\n")
        shutil.copy(os.path.join(FIXTURES, "formats", "tiny-5x5.png"), os.path.join(root, "dog.5.png"))
        shutil.copy(os.path.join(FIXTURES, "formats", "cat-png.png"), os.path.join(root, "cat.7.png"))
        shutil.copy(os.path.join(SAMPLE, "dog.11.jpg"), os.path.join(root, "dog.777.jpg"))
        shutil.copy(os.path.join(SAMPLE, "cat.50.jpg"), os.path.join(root, "horse.1.jpg"))

    def test_bad_inputs_are_rejected_with_reasons(self):
        src = self.path("src")
        self.make_messy(src)
        r = run([tool("cd-prepare"), "--source", src, "--output", self.path("out")])
        self.assertExit(r, 0)
        report = read_json(self.path("out", "report.json"))
        reasons = {os.path.basename(x["path"]): x["reason"] for x in report["rejected"]}
        self.assertEqual(reasons, {
            "cat.1.jpg": "empty file (0 bytes)",
            "cat.2.jpg": "truncated JPEG (no end-of-image marker)",
            "dog.2.jpg": "not a decodable image (expected JPEG, PNG, BMP or WebP)",
            "dog.5.png": "too small: 5x5 (minimum 32x32)",
            "horse.1.jpg": "unknown class 'horse' in file name (expected cat.N.jpg or dog.N.jpg)",
        })
        self.assertEqual([(os.path.basename(d["path"]), os.path.basename(d["duplicate_of"]))
                          for d in report["duplicates"]], [("dog.777.jpg", "dog.11.jpg")])
        self.assertEqual(report["accepted"], 41)  # 40 photos + the PNG
        metrics = read_json(self.path("out", "metrics.json"))
        self.assertEqual((metrics["rejected"], metrics["duplicates"]), (5, 1))
        self.assertEqual(metrics["train"] + metrics["val"] + metrics["test"], 41)
        manifests = "".join(open(self.path("out", f"{s}.csv")).read() for s in ("train", "val", "test"))
        self.assertIn("cat.7.png,cat", manifests)
        self.assertNotIn("dog.777.jpg", manifests)
        self.assertIn("rejected", r.stderr)

    def test_same_input_and_seed_give_identical_files(self):
        for out in ("a", "b"):
            r = run([tool("cd-prepare"), "--source", SAMPLE, "--output", self.path(out), "--seed", "7"])
            self.assertExit(r, 0)
        names = ["train.csv", "val.csv", "test.csv", "report.json", "metrics.json"]
        match, mismatch, errors = filecmp.cmpfiles(self.path("a"), self.path("b"), names, shallow=False)
        self.assertEqual(match, names)
        counts = read_json(self.path("a", "report.json"))["counts"]
        self.assertEqual(counts["train"], {"cat": 160, "dog": 160, "total": 320})
        self.assertEqual(counts["test"], {"cat": 20, "dog": 20, "total": 40})

    def test_class_folders_layout(self):
        for c, folder in (("cat", "cats"), ("dog", "Dog")):
            os.makedirs(self.path("src", folder))
            for i in range(20):
                shutil.copy(os.path.join(SAMPLE, f"{c}.{i}.jpg"), self.path("src", folder, f"img{i}.jpeg"))
        r = run([tool("cd-prepare"), "--source", self.path("src"), "--output", self.path("out")])
        self.assertExit(r, 0)
        self.assertEqual(read_json(self.path("out", "report.json"))["counts"]["train"]["dog"], 16)

    def test_missing_source_and_empty_source(self):
        r = run([tool("cd-prepare"), "--source", self.path("nope")])
        self.assertExit(r, 2)
        self.assertIn("is not a directory", r.stderr)
        os.makedirs(self.path("empty"))
        r = run([tool("cd-prepare"), "--source", self.path("empty"), "--output", self.path("o")])
        self.assertExit(r, 1)
        self.assertIn("no files found", r.stderr)

    @unittest.skipUnless(os.path.isdir(FULL_TRAIN), f"full data set absent at {FULL_TRAIN}")
    def test_full_dataset(self):
        r = run([tool("cd-prepare"), "--source", FULL_TRAIN, "--output", self.path("full")])
        self.assertExit(r, 0)
        m = read_json(self.path("full", "metrics.json"))
        self.assertEqual(m["found"], 23000)
        self.assertGreater(m["train"], 18000)


if __name__ == "__main__":
    unittest.main(verbosity=2)
