"""cd-serve over real loopback sockets: every route and error, the original API's smoke checks,
concurrency, SIGTERM drain during a burst, reload under load, and promtool on /metrics."""
import concurrent.futures as futures
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

from common import FIXTURES, TempDirTest, prepare_sample, run, tool, train_small
from serve_util import Server, multipart

PHOTOS = os.path.join(FIXTURES, "photos")
DARKNET = os.path.join(os.path.dirname(FIXTURES), "..", "data", "pretrained", "darknet-tiny-imagenet")


def photo(name):
    with open(os.path.join(PHOTOS, name), "rb") as f:
        return f.read()


def setUpModule():
    global WORK, MODEL, MODEL2, EXPECTED
    WORK = tempfile.mkdtemp(prefix="catdog-e2e-serve-")
    data = prepare_sample(WORK)
    common = ["--architecture", "darknet", "--pretrained", DARKNET, "--mode", "frozen", "--input-size", "160",
              "--batch-size", "64", "--frozen-views", "1"]
    # The tests compare the server with cd-predict on the same model, never with
    # the labels, so a few epochs do (each epoch writes a checkpoint: 0.8 s under TSan).
    for name, seed in (("m1", "1"), ("m2", "2")):
        r = run([tool("cd-train"), "--data", data, "--output", os.path.join(WORK, name), "--metrics",
                 os.path.join(WORK, name, "t.json"), "--live", os.path.join(WORK, name, "live"), "--epochs", "4",
                 "--seed", seed, "--log-level", "warn", *common])
        assert r.returncode == 0, r.stderr
    MODEL = os.path.join(WORK, "m1", "model.cdm")
    MODEL2 = os.path.join(WORK, "m2", "model.cdm")
    # What cd-predict says for each fixture: the server must agree.
    r = run([tool("cd-predict"), "--model", MODEL, "--json", PHOTOS])
    assert r.returncode == 0, r.stderr
    EXPECTED = {os.path.basename(row["path"]): row for row in map(json.loads, r.stdout.splitlines())}


def tearDownModule():
    shutil.rmtree(WORK, ignore_errors=True)


class ServeBase(TempDirTest):
    extra = ()

    def setUp(self):
        super().setUp()
        self.server = Server(MODEL, *self.extra, log_path=self.path("serve.log"))
        self.server.wait_ready()

    def tearDown(self):
        self.server.stop()
        super().tearDown()

    def predict(self, name, headers=None):
        body, hdrs = multipart([(name, "image/jpeg", photo(name))])
        hdrs.update(headers or {})
        return self.server.json("POST", "/predict", body, hdrs)


class Routes(ServeBase):
    extra = ("--max-body-mb", "0.5")

    def test_original_api_smoke_checks(self):
        status, body = self.predict("dog.1.jpg")
        self.assertEqual(status, 200)
        self.assertIn(body["class_label"], ("cat", "dog"))
        self.assertTrue(0 <= body["probability"] <= 1)
        self.assertIn("prediction_time_ms", body)
        self.assertIn("timestamp", body)
        self.assertAlmostEqual(body["p_dog"], EXPECTED["dog.1.jpg"]["p_dog"], places=5)
        self.assertEqual(body["class_label"], EXPECTED["dog.1.jpg"]["class_label"])
        text, hdrs = multipart([("test.txt", "text/plain", b"not an image")])
        status, body = self.server.json("POST", "/predict", text, hdrs)
        self.assertEqual(status, 400)
        self.assertEqual(body["error"]["code"], 400)

    def test_health_ready_model_docs_page(self):
        status, h = self.server.json("GET", "/health")
        self.assertEqual(status, 200)
        self.assertEqual(set(h), {"status", "model_loaded", "model_path", "requests_served", "average_latency_ms"})
        self.assertTrue(h["model_loaded"])
        self.predict("cat.1.jpg")
        self.assertEqual(self.server.json("GET", "/health")[1]["requests_served"], 1)
        self.assertEqual(self.server.json("GET", "/ready")[0], 200)
        status, m = self.server.json("GET", "/model")
        self.assertEqual((status, m["architecture"], m["classes"]), (200, "darknet", ["cat", "dog"]))
        status, doc = self.server.json("GET", "/openapi.json")
        self.assertEqual(doc["openapi"], "3.0.3")
        for path in ("/health", "/ready", "/predict", "/predict/batch", "/model", "/metrics", "/docs", "/"):
            self.assertIn(path, doc["paths"])
        for path, marker in (("/docs", b"openapi.json"), ("/", b"<input id=\"file\"")):
            status, hdrs, page = self.server.request("GET", path)
            self.assertEqual(status, 200)
            self.assertTrue(hdrs["Content-Type"].startswith("text/html"))
            self.assertIn(marker, page)
            self.assertNotIn(b"http://", page.replace(b"http://www.w3.org", b""))  # no external assets

    def test_raw_image_body_and_batch(self):
        status, body = self.server.json("POST", "/predict", photo("cat.2.jpg"), {"Content-Type": "image/jpeg"})
        self.assertEqual(status, 200)
        self.assertAlmostEqual(body["p_dog"], EXPECTED["cat.2.jpg"]["p_dog"], places=5)
        files = [("cat.3.jpg", "image/jpeg", photo("cat.3.jpg")), ("bad.jpg", "image/jpeg", b"\xff\xd8\xff garbage"),
                 ("dog.3.jpg", "image/jpeg", photo("dog.3.jpg"))]
        body, hdrs = multipart(files, field="files")
        status, out = self.server.json("POST", "/predict/batch", body, hdrs)
        self.assertEqual(status, 200)
        preds = out["predictions"]
        self.assertEqual([p["filename"] for p in preds], ["cat.3.jpg", "bad.jpg", "dog.3.jpg"])
        self.assertEqual(preds[0]["class_label"], EXPECTED["cat.3.jpg"]["class_label"])
        self.assertEqual(preds[1]["error"]["code"], 400)
        self.assertEqual(preds[2]["class_label"], EXPECTED["dog.3.jpg"]["class_label"])

    def test_error_codes(self):
        def err(status, body):
            self.assertEqual(set(body), {"error"})
            self.assertEqual(set(body["error"]), {"code", "message", "type"})
            self.assertEqual(body["error"]["code"], status)
            return body["error"]["message"]
        s, b = self.server.json("POST", "/predict", b"\x00\x01garbage", {"Content-Type": "image/png"})
        self.assertEqual(s, 400)
        self.assertIn("not an image", err(s, b))
        s, b = self.server.json("GET", "/nope")
        self.assertEqual(s, 404)
        err(s, b)
        status, hdrs, data = self.server.request("GET", "/predict")
        self.assertEqual((status, hdrs.get("Allow")), (405, "POST"))
        err(405, json.loads(data))
        s, b = self.server.json("POST", "/predict", b"{}", {"Content-Type": "application/json"})
        self.assertEqual(s, 415)
        err(s, b)
        big = b"\xff" * (600 * 1024)
        s, b = self.server.json("POST", "/predict", big, {"Content-Type": "image/jpeg"})
        self.assertEqual(s, 413)
        err(s, b)

    def metrics_after(self, line, timeout=5.0):
        """/metrics once it shows line: a request is counted after its last byte is written,
        which can be a moment after the client has read it."""
        deadline = time.time() + timeout
        while True:
            status, hdrs, text = self.server.request("GET", "/metrics")
            if line in text.decode() or time.time() > deadline:
                return status, hdrs, text

    def test_metrics_pass_promtool(self):
        self.predict("cat.1.jpg")
        self.predict("dog.2.jpg")
        status, hdrs, text = self.metrics_after('catdog_stage_duration_seconds_count{stage="respond"} 2')
        self.assertEqual(status, 200)
        self.assertTrue(hdrs["Content-Type"].startswith("text/plain; version=0.0.4"))
        text = text.decode()
        for name in ("catdog_http_requests_total{", "catdog_http_request_duration_seconds_bucket",
                     "catdog_batch_size_bucket", "catdog_predictions_total{class=", "catdog_p_dog_bucket",
                     "catdog_model_info{", "process_resident_memory_bytes", "process_cpu_seconds_total",
                     "catdog_inference_buffer_bytes ", "catdog_inference_buffer_idle_bytes "):
            self.assertIn(name, text)
        self.assertIn('catdog_http_requests_total{route="/predict",code="200"} 2', text)
        # Where each prediction's time went: one observation per image and stage.
        for stage in ("decode", "preprocess", "queue", "forward", "respond"):
            self.assertIn(f'catdog_stage_duration_seconds_count{{stage="{stage}"}} 2', text)
            total = re.search(rf'^catdog_stage_duration_seconds_sum{{stage="{stage}"}} (\S+)$', text, re.M)
            self.assertIsNotNone(total, stage)
            self.assertGreaterEqual(float(total.group(1)), 0.0)
        forward = float(re.search(r'^catdog_stage_duration_seconds_sum{stage="forward"} (\S+)$', text, re.M).group(1))
        self.assertGreater(forward, 0.0)
        promtool = shutil.which("promtool")
        if not promtool:
            self.skipTest("promtool not installed (Debian package prometheus)")
        r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_one_log_line_per_request(self):
        self.predict("cat.1.jpg", {"X-Request-Id": "abc-123"})
        time.sleep(0.2)
        lines = [l for l in self.server.log().splitlines() if "request_id=abc-123" in l]
        self.assertEqual(len(lines), 1)
        self.assertIn("route=/predict", lines[0])
        self.assertIn("status=200", lines[0])
        self.assertIn("latency_ms=", lines[0])
        for field in ("decode_ms=", "preprocess_ms=", "queue_ms=", "forward_ms=", "respond_ms=", "batch=1",
                      "images=1"):
            self.assertIn(field, lines[0])
        forward = float(re.search(r"forward_ms=([\d.]+)", lines[0]).group(1))
        latency = float(re.search(r"latency_ms=([\d.]+)", lines[0]).group(1))
        self.assertGreater(forward, 0.0)
        self.assertLessEqual(forward, latency)

    def test_concurrent_clients_get_correct_answers(self):
        names = sorted(EXPECTED)

        def client(i):
            name = names[i % len(names)]
            status, body = self.predict(name)
            return name, status, body

        with futures.ThreadPoolExecutor(64) as pool:
            results = list(pool.map(client, range(128)))
        for name, status, body in results:
            self.assertEqual(status, 200, body)
            self.assertEqual(body["class_label"], EXPECTED[name]["class_label"])
            self.assertAlmostEqual(body["p_dog"], EXPECTED[name]["p_dog"], places=5)
        _, _, metrics = self.server.request("GET", "/metrics")
        sizes = [l for l in metrics.decode().splitlines() if l.startswith("catdog_batch_size_bucket{le=\"1\"}")]
        count = [l for l in metrics.decode().splitlines() if l.startswith("catdog_batch_size_count")]
        self.assertLess(float(count[0].split()[1]), 128, "no dynamic batching happened")


class ApiKey(ServeBase):
    extra = ("--api-key", "s3cret")

    def test_key_required_except_probes(self):
        s, b = self.predict("cat.1.jpg")
        self.assertEqual((s, b["error"]["code"]), (401, 401))
        self.assertEqual(self.predict("cat.1.jpg", {"Authorization": "Bearer wrong"})[0], 401)
        self.assertEqual(self.predict("cat.1.jpg", {"Authorization": "Bearer s3cret"})[0], 200)
        self.assertEqual(self.predict("cat.1.jpg", {"X-API-Key": "s3cret"})[0], 200)
        self.assertEqual(self.server.json("GET", "/model")[0], 401)
        for path in ("/health", "/ready", "/metrics"):
            self.assertEqual(self.server.request("GET", path)[0], 200, path)


class NotReady(TempDirTest):
    def test_missing_model_is_alive_but_not_ready(self):
        server = Server(self.path("missing.cdm"), log_path=self.path("log"))
        try:
            deadline = time.time() + 30
            while time.time() < deadline:
                try:
                    status, h = server.json("GET", "/health")
                    break
                except OSError:
                    time.sleep(0.1)
            self.assertEqual((status, h["model_loaded"]), (200, False))
            time.sleep(0.5)
            s, b = server.json("GET", "/ready")
            self.assertEqual((s, b["error"]["code"]), (503, 503))
            body, hdrs = multipart([("cat.1.jpg", "image/jpeg", photo("cat.1.jpg"))])
            self.assertEqual(server.json("POST", "/predict", body, hdrs)[0], 503)
            # The model appears; SIGHUP loads it.
            shutil.copy(MODEL, self.path("missing.cdm"))
            server.proc.send_signal(signal.SIGHUP)
            server.wait_ready(timeout=60)
            self.assertEqual(server.json("POST", "/predict", body, hdrs)[0], 200)
        finally:
            server.stop()
        self.assertEqual(server.proc.returncode, 0)


class Lifecycle(TempDirTest):
    def burst(self, server, stop_event, results, name="dog.2.jpg"):
        body, hdrs = multipart([(name, "image/jpeg", photo(name))])
        while not stop_event.is_set():
            try:
                status, headers, data = server.request("POST", "/predict", body, hdrs)
                results.append((status, json.loads(data)))
            except (ConnectionError, OSError):
                results.append(("refused", None))
                time.sleep(0.01)

    def test_sigterm_during_burst_answers_every_accepted_request(self):
        server = Server(MODEL, "--grace-s", "20", log_path=self.path("log"))
        server.wait_ready()
        stop, results = threading.Event(), []
        threads = [threading.Thread(target=self.burst, args=(server, stop, results)) for _ in range(16)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        served_before = len([r for r in results if r[0] == 200])
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(timeout=30)
        stop.set()
        for t in threads:
            t.join()
        self.assertEqual(code, 0, server.log())
        answered = [r for r in results if r[0] != "refused"]
        self.assertGreater(served_before, 0)
        for status, body in answered:
            self.assertIn(status, (200, 503), body)
            if status == 200:
                self.assertEqual(body["class_label"], EXPECTED["dog.2.jpg"]["class_label"])
        self.assertIn("draining", server.log())
        self.assertIn("stopped cleanly", server.log())

    def test_reload_under_load_keeps_serving(self):
        live = self.path("live.cdm")
        shutil.copy(MODEL, live)
        server = Server(live, log_path=self.path("log"))
        try:
            server.wait_ready()
            v1 = server.json("GET", "/ready")[1]["model_version"]
            stop, results = threading.Event(), []
            threads = [threading.Thread(target=self.burst, args=(server, stop, results)) for _ in range(8)]
            for t in threads:
                t.start()
            time.sleep(0.5)
            shutil.copy(MODEL2, live + ".new")
            os.replace(live + ".new", live)
            server.proc.send_signal(signal.SIGHUP)
            deadline = time.time() + 60
            while time.time() < deadline and server.json("GET", "/ready")[1]["model_version"] == v1:
                time.sleep(0.1)
            v2 = server.json("GET", "/ready")[1]["model_version"]
            self.assertNotEqual(v1, v2)
            with open(live + ".new", "wb") as f:
                f.write(b"not a model")
            os.replace(live + ".new", live)
            server.proc.send_signal(signal.SIGHUP)
            time.sleep(1.5)
            stop.set()
            for t in threads:
                t.join()
            self.assertEqual(server.json("GET", "/ready")[1]["model_version"], v2)
            self.assertTrue(results)
            self.assertEqual({r[0] for r in results}, {200})
            versions = {r[1]["model_version"] for r in results}
            self.assertEqual(versions, {v1, v2})
            self.assertIn("cannot load model", server.log())
            self.assertIn("keeping the model already loaded", server.log())
        finally:
            server.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
