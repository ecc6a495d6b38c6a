"""A model's life in MLflow's Model Registry, against a real tracking server on loopback: cd-train
and cd-model register versions, cd-model promotes only what is no worse and rolls back, and cd-serve
serves models:/NAME@ALIAS, following the alias on SIGHUP (under load, without a failed request) and
by polling, and keeps its model when a download is corrupt."""
import http.server
import json
import os
import signal
import threading
import time
import unittest

from common import FIXTURES, TempDirTest, prepare_sample, run, tool, train_small
from mlflow_util import MLFLOW, start_mlflow, stop_mlflow
from serve_util import Server, multipart

PHOTO = os.path.join(FIXTURES, "photos", "dog.2.jpg")


def fnv12(path):
    h = 0xcbf29ce484222325
    with open(path, "rb") as f:
        for byte in f.read():
            h = ((h ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"[:12]


@unittest.skipUnless(os.path.exists(MLFLOW), "mlflow is not installed; run make deps")
class Registry(TempDirTest):
    def setUp(self):
        super().setUp()
        self.mlflow, self.uri = start_mlflow(self.tmp)
        self.env = {"MLFLOW_TRACKING_URI": self.uri}

    def tearDown(self):
        stop_mlflow(self.mlflow)
        super().tearDown()

    def cd_model(self, *args, code=0):
        r = run([tool("cd-model"), *args], env=self.env)
        self.assertExit(r, code)
        return r

    def p_dog(self, model):
        r = run([tool("cd-predict"), "--model", model, "--json", PHOTO])
        self.assertExit(r, 0)
        return json.loads(r.stdout)["p_dog"]

    def served(self, server):
        body, headers = multipart([("dog.2.jpg", "image/jpeg", open(PHOTO, "rb").read())])
        status, answer = server.json("POST", "/predict", body, headers)
        self.assertEqual(status, 200, answer)
        return answer

    def registered_version(self, server):
        status, info = server.json("GET", "/model")
        self.assertEqual(status, 200, info)
        return info["registry"]["version"]

    def wait_version(self, server, version, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.registered_version(server) == version:
                return
            time.sleep(0.1)
        self.fail(f"cd-serve did not move to version {version}: " + server.log()[-2000:])

    def test_register_promote_follow_and_roll_back(self):
        data = prepare_sample(self.tmp)
        models, metrics = {}, {}
        for name, seed in (("m1", "1"), ("m2", "2")):
            r = train_small(self.tmp, data, name, 2, ["--seed", seed])
            self.assertExit(r, 0)
            models[name] = self.path(name, "model.cdm")
            r = run([tool("cd-eval"), "--model", models[name], "--data", data, "--output", self.path("eval-" + name)])
            self.assertExit(r, 0)
            metrics[name] = self.path("eval-" + name, "metrics.json")
        self.assertNotEqual(fnv12(models["m1"]), fnv12(models["m2"]))

        # cd-train registers what it trained, tagged with the file's hash
        r = train_small(self.tmp, data, "m3", 1, ["--register-model", "catdog-train"], env=self.env)
        self.assertExit(r, 0)
        self.assertNotIn("could not register", r.stderr)
        listed = [json.loads(line) for line in
                  self.cd_model("list", "catdog-train", "--json").stdout.splitlines()]
        self.assertEqual(len(listed), 1)
        self.assertEqual(listed[0]["tags"]["catdog.model_version"], fnv12(self.path("m3", "model.cdm")))

        # cd-model registers two versions with their test metrics; the second's say it ties the
        # first on accuracy with a lower log loss, which the promotion rule counts as no worse
        m1 = json.load(open(metrics["m1"]))
        tie_better = self.path("tie-better.json")
        with open(tie_better, "w") as f:
            json.dump({**json.load(open(metrics["m2"])), "accuracy": m1["accuracy"],
                       "log_loss": m1["log_loss"] / 2}, f)
        for i, (name, metrics_file) in enumerate((("m1", metrics["m1"]), ("m2", tie_better)), 1):
            r = self.cd_model("register", "catdog", "--model", models[name], "--metrics", metrics_file)
            self.assertEqual(r.stdout.strip(), str(i))
        versions = [json.loads(line) for line in self.cd_model("list", "catdog", "--json").stdout.splitlines()]
        self.assertEqual([v["version"] for v in versions], ["1", "2"])
        accuracy = json.load(open(metrics["m1"]))["accuracy"]
        self.assertAlmostEqual(float(versions[0]["tags"]["test_accuracy"]), accuracy)
        self.assertTrue(versions[0]["tags"]["catdog.git_commit"])
        self.assertEqual(len(versions[0]["tags"]["catdog.data_fingerprint"]), 16)
        r = self.cd_model("promote", "catdog", "1")
        self.assertIn("@champion was unset", r.stderr)
        self.assertIn("\t@champion\t", self.cd_model("show", "catdog@champion").stdout)
        r = self.cd_model("rollback", "catdog", code=1)
        self.assertIn("nothing to roll back to", r.stderr)

        # a worse candidate is refused unless forced
        worse = self.path("worse.json")
        with open(worse, "w") as f:
            json.dump({**json.load(open(metrics["m2"])), "accuracy": 0.01}, f)
        r = self.cd_model("register", "catdog", "--model", models["m2"], "--metrics", worse)
        self.assertEqual(r.stdout.strip(), "3")
        r = self.cd_model("promote", "catdog", "3", code=1)
        self.assertIn("is worse", r.stderr)
        tie_worse = self.path("tie-worse.json")
        with open(tie_worse, "w") as f:
            json.dump({**m1, "log_loss": m1["log_loss"] * 2 + 0.01}, f)
        r = self.cd_model("register", "catdog", "--model", models["m2"], "--metrics", tie_worse)
        self.assertEqual(r.stdout.strip(), "4")
        r = self.cd_model("promote", "catdog", "4", code=1)
        self.assertIn("is worse", r.stderr)
        self.assertEqual(json.loads(self.cd_model("show", "models:/catdog@champion", "--json").stdout)["version"], "1")

        # cd-serve serves the champion, and its answers are version 1's file's
        cache = self.path("cache")
        server = Server("models:/catdog@champion", "--model-cache", cache, log_path=self.path("serve.log"), env=self.env)
        poller = Server("models:/catdog@champion", "--model-cache", cache, "--registry-poll-s", "0.5",
                        log_path=self.path("poll.log"), env=self.env)
        try:
            server.wait_ready()
            poller.wait_ready()
            status, info = server.json("GET", "/model")
            self.assertEqual(info["registry"], {"uri": "models:/catdog@champion", "name": "catdog", "version": "1",
                                                "alias": "champion", "source": versions[0]["source"]})
            self.assertEqual(info["model_version"], fnv12(models["m1"]))
            self.assertAlmostEqual(self.served(server)["p_dog"], self.p_dog(models["m1"]), places=5)

            # promote version 2 and SIGHUP under load: not one request fails
            stop, results = threading.Event(), []

            def load():
                while not stop.is_set():
                    try:
                        results.append(self.served(server)["model_version"])
                    except Exception as e:  # a refused or dropped connection too
                        results.append("failed: " + repr(e))
            threads = [threading.Thread(target=load) for _ in range(4)]
            for t in threads:
                t.start()
            time.sleep(0.5)
            r = self.cd_model("promote", "catdog", "2")  # no worse: no --force needed
            self.assertIn("is no worse", r.stderr)
            server.proc.send_signal(signal.SIGHUP)
            self.wait_version(server, "2")
            time.sleep(0.5)
            stop.set()
            for t in threads:
                t.join()
            self.assertEqual(set(results), {fnv12(models["m1"]), fnv12(models["m2"])})
            self.assertAlmostEqual(self.served(server)["p_dog"], self.p_dog(models["m2"]), places=5)
            self.wait_version(poller, "2")  # the poller followed without a signal

            # roll back: version 1's answers again
            r = self.cd_model("rollback", "catdog")
            self.assertEqual(r.stdout.strip(), "1")
            server.proc.send_signal(signal.SIGHUP)
            self.wait_version(server, "1")
            self.assertAlmostEqual(self.served(server)["p_dog"], self.p_dog(models["m1"]), places=5)
            self.wait_version(poller, "1")

            # a damaged file in the cache is not trusted: a new server downloads it again
            cached = [n for n in os.listdir(cache) if n.startswith("catdog-1-")]
            self.assertEqual(len(cached), 1, os.listdir(cache))
            with open(os.path.join(cache, cached[0]), "r+b") as f:
                f.seek(100)
                f.write(b"\x00damaged")
            third = Server("models:/catdog@champion", "--model-cache", cache, log_path=self.path("third.log"),
                           env=self.env)
            try:
                third.wait_ready()
                self.assertAlmostEqual(self.served(third)["p_dog"], self.p_dog(models["m1"]), places=5)
            finally:
                third.stop()
            self.assertEqual(fnv12(os.path.join(cache, cached[0])), fnv12(models["m1"]))

            # a version whose file was damaged in the artifact store keeps the old model serving
            r = self.cd_model("register", "catdog", "--model", models["m2"], "--metrics", metrics["m2"])
            broken = json.loads(self.cd_model("show", "catdog/5", "--json").stdout)
            stored = os.path.join(self.tmp, "artifacts", broken["source"].split("mlflow-artifacts:/", 1)[1])
            with open(stored, "r+b") as f:
                f.seek(100)
                f.write(b"\x00damaged")
            self.cd_model("promote", "catdog", "5", "--force")
            server.proc.send_signal(signal.SIGHUP)
            deadline = time.time() + 30
            while "keeping the model already loaded" not in server.log() and time.time() < deadline:
                time.sleep(0.1)
            self.assertIn("hashes to", server.log())
            self.assertIn("keeping the model already loaded", server.log())
            self.assertEqual(self.registered_version(server), "1")
            self.assertAlmostEqual(self.served(server)["p_dog"], self.p_dog(models["m1"]), places=5)
            # the poller tried the damaged version once, not on every poll (0.5 s apart)
            deadline = time.time() + 30
            while "hashes to" not in poller.log() and time.time() < deadline:
                time.sleep(0.1)
            time.sleep(3)
            self.assertEqual(poller.log().count("hashes to"), 1, poller.log()[-3000:])
            self.assertEqual(self.registered_version(poller), "1")
        finally:
            server.stop()
            poller.stop()

    def test_errors_name_the_problem(self):
        r = run([tool("cd-model"), "list", "catdog"], env={"MLFLOW_TRACKING_URI": ""})
        self.assertExit(r, 2)
        self.assertIn("MLFLOW_TRACKING_URI", r.stderr)
        r = run([tool("cd-train"), "--register-model", "catdog", "--data", self.tmp, "--output", self.tmp],
                env={"MLFLOW_TRACKING_URI": ""})
        self.assertExit(r, 2)
        self.assertIn("MLFLOW_TRACKING_URI", r.stderr)
        r = self.cd_model("show", "nothing@champion", code=1)
        self.assertIn("RESOURCE_DOES_NOT_EXIST", r.stderr)
        r = self.cd_model("rollback", "catdog", code=1)
        self.assertIn("RESOURCE_DOES_NOT_EXIST", r.stderr)
        r = run([tool("cd-serve"), "--model", "models:/catdog"], env=self.env)
        self.assertExit(r, 2)
        self.assertIn("models:/NAME@ALIAS", r.stderr)


class TrackingToken(TempDirTest):
    """Needs no MLflow: a stand-in server records what cd-model sends."""

    def test_the_tracking_token_is_sent_as_a_bearer_token(self):
        seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(self.headers.get("Authorization"))
                self.send_response(404)
                self.send_header("Content-Type", "application/json")
                body = b'{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such alias"}'
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            uri = f"http://127.0.0.1:{httpd.server_address[1]}"
            r = run([tool("cd-model"), "show", "catdog@champion"],
                    env={"MLFLOW_TRACKING_URI": uri, "MLFLOW_TRACKING_TOKEN": "t0ken"})
            self.assertExit(r, 1)
            self.assertIn("no such alias", r.stderr)
            self.assertEqual(seen, ["Bearer t0ken"])
        finally:
            httpd.shutdown()


if __name__ == "__main__":
    unittest.main(verbosity=2)
