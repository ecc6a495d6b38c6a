"""cd-eval's files and cd-predict's contract with shell scripts: stdout, stderr and exit codes."""
import json
import math
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from serve_util import Server, multipart
from common import FIXTURES, SAMPLE, TempDirTest, as_format_2, prepare_sample, read_json, run, tool, train_small

PHOTOS = os.path.join(FIXTURES, "photos")
FORMATS = os.path.join(FIXTURES, "formats")


def setUpModule():
    global WORK, DATA, MODEL
    WORK = tempfile.mkdtemp(prefix="catdog-e2e-model-")
    DATA = prepare_sample(WORK)
    r = train_small(WORK, DATA, "m", 3)
    assert r.returncode == 0, r.stderr
    MODEL = os.path.join(WORK, "m", "model.cdm")


def tearDownModule():
    shutil.rmtree(WORK, ignore_errors=True)


class Eval(TempDirTest):
    def test_metrics_plots_and_pngs(self):
        out = self.path("eval")
        r = run([tool("cd-eval"), "--model", MODEL, "--data", DATA, "--output", out])
        self.assertExit(r, 0)
        m = read_json(os.path.join(out, "metrics.json"))
        for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "n", "tp", "fp", "tn", "fn"):
            self.assertIn(key, m)
        self.assertEqual(m["n"], 40)
        self.assertEqual(m["tp"] + m["fp"] + m["tn"] + m["fn"], 40)
        self.assertAlmostEqual(m["accuracy"], (m["tp"] + m["tn"]) / 40)
        confusion = read_json(os.path.join(out, "plots", "confusion.json"))
        self.assertEqual(len(confusion), 40)
        self.assertEqual(sum(1 for c in confusion if c["actual"] == "dog" and c["predicted"] == "dog"), m["tp"])
        for name, key in (("roc.json", "roc"), ("prc.json", "prc")):
            points = read_json(os.path.join(out, "plots", name))[key]
            self.assertGreater(len(points), 2)
            self.assertTrue(all(math.isfinite(v) for p in points for v in p.values()))
        wrong = open(os.path.join(out, "misclassified.csv")).read().splitlines()
        self.assertEqual(wrong[0], "path,label,predicted,p_dog")
        self.assertEqual(len(wrong) - 1, m["fp"] + m["fn"])
        for png in ("confusion.png", "roc.png"):
            with open(os.path.join(out, png), "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        # --tta forces the mirrored second look on, and it changes the answers.
        self.assertFalse(m["tta_flip"])
        r = run([tool("cd-eval"), "--model", MODEL, "--data", DATA, "--output", self.path("tta"), "--tta", "on"])
        self.assertExit(r, 0)
        t = read_json(os.path.join(self.path("tta"), "metrics.json"))
        self.assertTrue(t["tta_flip"])
        self.assertNotEqual(t["log_loss"], m["log_loss"])

    def test_int8_calibrates_on_training_images_and_stays_close_to_f32(self):
        f32, q = self.path("f32"), self.path("int8")
        self.assertExit(run([tool("cd-eval"), "--model", MODEL, "--data", DATA, "--output", f32]), 0)
        train = os.path.join(DATA, "train.csv")
        r = run([tool("cd-eval"), "--model", MODEL, "--data", DATA, "--output", q,
                 "--int8-calibration", train, "--int8-images", "32"])
        self.assertExit(r, 0)
        self.assertIn("int8: calibrated on 32 images", r.stderr)
        a, b = read_json(os.path.join(f32, "metrics.json")), read_json(os.path.join(q, "metrics.json"))
        self.assertNotIn("int8", a)
        self.assertEqual(b["int8"], {"calibration": train, "images": 32})
        self.assertEqual(b["n"], a["n"])
        self.assertLess(abs(a["log_loss"] - b["log_loss"]), 0.05)
        self.assertLessEqual(abs(a["accuracy"] - b["accuracy"]), 0.05)
        # --int8-model keeps the calibration: cd-eval, cd-predict and cd-serve run that file in INT8.
        kept, again = self.path("int8.cdm"), self.path("again")
        r = run([tool("cd-eval"), "--model", MODEL, "--data", DATA, "--output", self.path("keep"),
                 "--int8-calibration", train, "--int8-images", "32", "--int8-model", kept])
        self.assertExit(r, 0)
        self.assertExit(run([tool("cd-eval"), "--model", kept, "--data", DATA, "--output", again]), 0)
        c = read_json(os.path.join(again, "metrics.json"))
        self.assertEqual(c["int8"], {"calibration": "carried by " + kept})
        self.assertEqual(c["log_loss"], b["log_loss"])
        # --f32 measures a calibrated file without its calibration: the f32 figures again.
        r = run([tool("cd-eval"), "--model", kept, "--data", DATA, "--output", self.path("f32again"),
                 "--f32"])
        self.assertExit(r, 0)
        d = read_json(os.path.join(self.path("f32again"), "metrics.json"))
        self.assertNotIn("int8", d)
        self.assertEqual(d["log_loss"], a["log_loss"])
        r = run([tool("cd-eval"), "--model", kept, "--data", DATA, "--output", self.path("e3"),
                 "--f32", "--int8-calibration", train])
        self.assertExit(r, 2)
        self.assertIn("--f32 measures the model without INT8", r.stderr)
        # cd-export writes f32, and says so for a calibrated file.
        r = run([tool("cd-export"), "--model", kept, "--output", self.path("kept.onnx")])
        self.assertExit(r, 0)
        self.assertIn("carries INT8 calibration", r.stderr)
        r = run([tool("cd-export"), "--model", MODEL, "--output", self.path("f32.onnx")])
        self.assertExit(r, 0)
        self.assertNotIn("carries INT8 calibration", r.stderr)
        photo = os.path.join(PHOTOS, "cat.1.jpg")
        p = {}
        for name, path in (("f32", MODEL), ("int8", kept)):
            r = run([tool("cd-predict"), "--model", path, "--json", photo])
            self.assertExit(r, 0)
            p[name] = json.loads(r.stdout.splitlines()[0])["p_dog"]
        r = run([tool("cd-predict"), "--model", kept, "--log-level", "debug", photo])
        self.assertIn("(onednn-int8)", r.stderr)
        self.assertNotEqual(p["int8"], p["f32"])
        self.assertAlmostEqual(p["int8"], p["f32"], delta=0.05)
        server = Server(kept, log_path=self.path("serve.log"))
        try:
            server.wait_ready()
            with open(photo, "rb") as f:
                payload, headers = multipart([("cat.1.jpg", "image/jpeg", f.read())])
            status, body = server.json("POST", "/predict", payload, headers)
            _, info = server.json("GET", "/model")
        finally:
            server.stop()
        self.assertEqual(status, 200, body)
        self.assertEqual(info["runtime"], "onednn-int8")
        self.assertAlmostEqual(body["p_dog"], p["int8"], delta=1e-4)
        r = run([tool("cd-eval"), "--model", MODEL, "--data", DATA, "--output", self.path("e0"),
                 "--int8-model", kept])
        self.assertExit(r, 2)
        self.assertIn("give --int8-calibration too", r.stderr)
        # Nothing readable to calibrate on, or a GPU asked for: clear errors.
        unreadable = self.path("unreadable.csv")
        with open(unreadable, "w") as f:
            f.write("path,label\nmissing.jpg,cat\n")
        r = run([tool("cd-eval"), "--model", MODEL, "--data", DATA, "--output", self.path("e1"),
                 "--int8-calibration", unreadable])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("could be read to calibrate on", r.stderr)
        r = run([tool("cd-eval"), "--model", MODEL, "--data", DATA, "--output", self.path("e2"),
                 "--int8-calibration", train, "--device", "cuda"])
        self.assertExit(r, 2)
        self.assertIn("runs on the CPU", r.stderr)

    def test_corrupt_model_is_a_clear_error(self):
        bad = self.path("bad.cdm")
        data = open(MODEL, "rb").read()
        with open(bad, "wb") as f:
            f.write(data[:1000])
        r = run([tool("cd-eval"), "--model", bad, "--data", DATA, "--output", self.path("e")])
        self.assertExit(r, 1)
        self.assertIn("file is truncated", r.stderr)
        r = run([tool("cd-predict"), "--model", os.path.join(PHOTOS, "cat.1.jpg"), os.path.join(PHOTOS, "cat.1.jpg")])
        self.assertExit(r, 1)
        self.assertIn("not a catdog model file", r.stderr)


class Predict(TempDirTest):
    def predict(self, *args, stdin=None, env=None):
        return run([tool("cd-predict"), "--model", MODEL, *args], stdin=stdin, env=env)

    def assertTsvLine(self, line, path):
        fields = line.split("\t")
        self.assertEqual(fields[0], path)
        self.assertIn(fields[1], ("cat", "dog"))
        self.assertGreaterEqual(float(fields[2]), 0.5)
        self.assertLessEqual(float(fields[2]), 1.0)

    def test_good_jpeg(self):
        path = os.path.join(PHOTOS, "dog.1.jpg")
        r = self.predict(path)
        self.assertExit(r, 0)
        self.assertTsvLine(r.stdout.rstrip("\n"), path)
        self.assertEqual(r.stderr, "")

    def test_png_grayscale_cmyk_rgba(self):
        names = ["cat-png.png", "dog-gray.jpg", "cat-cmyk.jpg", "dog-rgba.png"]
        paths = [os.path.join(FORMATS, n) for n in names]
        r = self.predict(*paths)
        self.assertExit(r, 0)
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 4)
        for line, path in zip(lines, paths):
            self.assertTsvLine(line, path)

    def test_empty_file_and_missing_path_exit_3_and_keep_the_rest(self):
        empty = self.path("empty.jpg")
        open(empty, "wb").close()
        good = os.path.join(PHOTOS, "cat.2.jpg")
        missing = self.path("missing.jpg")
        r = self.predict(empty, good, missing)
        self.assertExit(r, 3)
        self.assertEqual(len(r.stdout.splitlines()), 1)
        self.assertTsvLine(r.stdout.rstrip("\n"), good)
        self.assertEqual(r.stderr.splitlines(), [
            f"cd-predict: {empty}: empty file (0 bytes)",
            f"cd-predict: {missing}: no such file or directory",
        ])

    def test_directory_expands_sorted(self):
        r = self.predict(PHOTOS)
        self.assertExit(r, 0)
        paths = [line.split("\t")[0] for line in r.stdout.splitlines()]
        self.assertEqual(paths, sorted(os.path.join(PHOTOS, n) for n in os.listdir(PHOTOS)))

    def test_stdin_paths_json_and_quiet(self):
        paths = [os.path.join(PHOTOS, "cat.3.jpg"), os.path.join(PHOTOS, "dog.3.jpg")]
        r = self.predict("--json", "-", stdin="\n".join(paths) + "\n")
        self.assertExit(r, 0)
        rows = [json.loads(line) for line in r.stdout.splitlines()]
        self.assertEqual([row["path"] for row in rows], paths)
        for row in rows:
            self.assertEqual(set(row), {"path", "class_label", "probability", "p_dog", "prediction_time_ms"})
            expected = row["p_dog"] if row["class_label"] == "dog" else 1 - row["p_dog"]
            self.assertAlmostEqual(row["probability"], expected, places=6)
            self.assertGreater(row["prediction_time_ms"], 0)
        q = self.predict("--quiet", paths[0])
        self.assertExit(q, 0)
        self.assertIn(q.stdout, ("cat\n", "dog\n"))

    def test_model_from_environment_and_usage_errors(self):
        r = run([tool("cd-predict"), os.path.join(PHOTOS, "cat.1.jpg")], env={"CD_MODEL": MODEL})
        self.assertExit(r, 0)
        r = run([tool("cd-predict")], env={"CD_MODEL": MODEL})
        self.assertExit(r, 2)
        self.assertIn("no images given", r.stderr)
        r = run([tool("cd-predict"), "--model", self.path("none.cdm"), os.path.join(PHOTOS, "cat.1.jpg")])
        self.assertExit(r, 1)
        self.assertIn("none.cdm", r.stderr)

    def test_text_file_named_jpg(self):
        fake = self.path("dog.jpg")
        with open(fake, "w") as f:
            f.write("not an image")
        r = self.predict(fake)
        self.assertExit(r, 3)
        self.assertEqual(r.stdout, "")
        self.assertEqual(r.stderr, f"cd-predict: {fake}: not a decodable image (expected JPEG, PNG, BMP or WebP)\n")


class Runtimes(TempDirTest):
    """Model files and exported .onnx files both run on catdog's oneDNN runtime, without LibTorch or
    OpenCV DNN in the process; an older model file without its graph runs on LibTorch through the
    module loaded on demand, until cd-export --format cdm rewrites it. All give the same answers."""

    def setUp(self):
        super().setUp()
        self.onnx = self.path("model.onnx")
        r = run([tool("cd-export"), "--model", MODEL, "--output", self.onnx])
        self.assertExit(r, 0)

    def predict_json(self, model, *extra, env=None):
        r = run([tool("cd-predict"), "--model", model, "--json", PHOTOS, *extra], env=env)
        self.assertExit(r, 0)
        return {os.path.basename(row["path"]): row["p_dog"] for row in map(json.loads, r.stdout.splitlines())}

    def runtime_of(self, model):
        r = run([tool("cd-predict"), "--model", model, "--log-level", "debug", os.path.join(PHOTOS, "dog.1.jpg")])
        self.assertExit(r, 0)
        return r

    def test_every_runtime_and_file_agree(self):
        old = self.path("old.cdm")
        as_format_2(MODEL, old)
        torch_p = self.predict_json(old)
        for model in (MODEL, self.onnx):
            p = self.predict_json(model)
            self.assertEqual(sorted(torch_p), sorted(p))
            for name in torch_p:
                self.assertAlmostEqual(torch_p[name], p[name], delta=1e-4, msg=f"{model}: {name}")
        r = run([tool("cd-eval"), "--model", self.onnx, "--data", DATA, "--output", self.path("eval")])
        self.assertExit(r, 0)

    def test_an_old_model_file_runs_on_libtorch_until_rewritten(self):
        old, upgraded = self.path("old.cdm"), self.path("upgraded.cdm")
        as_format_2(MODEL, old)
        r = self.runtime_of(old)
        self.assertIn("(libtorch)", r.stderr)
        self.assertIn(f"cd-export --model {old} --format cdm", r.stderr)
        r = run([tool("cd-export"), "--model", old, "--format", "cdm", "--output", upgraded])
        self.assertExit(r, 0)
        self.assertIn("(onednn)", self.runtime_of(upgraded).stderr)
        self.assertEqual(self.predict_json(upgraded), self.predict_json(MODEL))
        if os.environ.get("CD_SANITIZE"):
            return  # linked in there: no module to miss
        # Where no LibTorch module is (the serving image), the error says how to rewrite the file.
        r = run([tool("cd-predict"), "--model", old, os.path.join(PHOTOS, "dog.1.jpg")],
                env={"CD_TORCH_MODULE": "/nonexistent/libcatdog_torch.so"})
        self.assertExit(r, 1)
        self.assertIn(f"cd-export --model {old} --format cdm", r.stderr)
        # A current model file never needs the module.
        self.assertIn("(onednn)", run([tool("cd-predict"), "--model", MODEL, "--log-level", "debug",
                                       os.path.join(PHOTOS, "dog.1.jpg")],
                                      env={"CD_TORCH_MODULE": "/nonexistent/libcatdog_torch.so"}).stderr)

    def assert_runtime_maps(self, maps):
        self.assertIn("libdnnl", maps)
        for absent in ("libtorch", "libcatdog_torch", "libopencv_dnn", "libopencv_imgcodecs", "libgdal"):
            self.assertNotIn(absent, maps)

    @unittest.skipIf(os.environ.get("CD_SANITIZE"),
                     "the sanitizer builds link the LibTorch runtime into cd-predict")
    def test_prediction_never_maps_libtorch_or_opencv_dnn(self):
        for model in (MODEL, self.onnx):
            # Many images one by one, so the process is still predicting when its first answer is out.
            paths = (os.path.join(PHOTOS, "cat.1.jpg") + "\n") * 3000
            proc = subprocess.Popen([tool("cd-predict"), "--model", model, "--batch-size", "1", "-"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                proc.stdin.write(paths)
                proc.stdin.close()
                first = proc.stdout.readline()  # the model is loaded and answering
                with open(f"/proc/{proc.pid}/maps") as f:
                    maps = f.read()
                rest = proc.stdout.read()
                proc.wait(timeout=300)
            finally:
                if proc.poll() is None:
                    proc.kill()
            self.assertEqual(proc.returncode, 0, proc.stderr.read())
            self.assertIn("cat.1.jpg", first)
            self.assertGreater(len(rest.splitlines()), 100)  # the maps were read mid-run
            self.assert_runtime_maps(maps)

    @unittest.skipIf(os.environ.get("CD_SANITIZE"),
                     "the sanitizer builds link the LibTorch runtime into cd-serve")
    def test_serving_never_maps_libtorch_or_opencv_dnn_and_agrees(self):
        photo = os.path.join(PHOTOS, "dog.2.jpg")
        expected = self.predict_json(MODEL)["dog.2.jpg"]
        for model in (MODEL, self.onnx):
            server = Server(model, log_path=self.path("serve.log"))
            try:
                server.wait_ready()
                with open(f"/proc/{server.proc.pid}/maps") as f:
                    maps = f.read()
                with open(photo, "rb") as f:
                    payload, headers = multipart([("dog.2.jpg", "image/jpeg", f.read())])
                status, body = server.json("POST", "/predict", payload, headers)
                _, info = server.json("GET", "/model")
            finally:
                server.stop()
            self.assertEqual(status, 200, body)
            self.assertAlmostEqual(body["p_dog"], expected, delta=1e-4)
            self.assertEqual(info["runtime"], "onednn")
            self.assert_runtime_maps(maps)

    def test_onnx_refuses_what_it_cannot_do(self):
        r = run([tool("cd-predict"), "--model", self.onnx, "--tta", "on", os.path.join(PHOTOS, "dog.1.jpg")])
        self.assertExit(r, 2)
        self.assertIn("fixed inside an exported .onnx file", r.stderr)
        bad = self.path("bad.onnx")
        with open(bad, "wb") as f:
            f.write(b"\x08\x05not really onnx")
        r = run([tool("cd-predict"), "--model", bad, os.path.join(PHOTOS, "dog.1.jpg")])
        self.assertExit(r, 1)
        self.assertIn("not an ONNX file from cd-export", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
