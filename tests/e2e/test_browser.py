"""The page at / in real headless Chromium, driven through chromedriver's W3C WebDriver API:
a photo is uploaded through the page and the label appears; a screenshot is kept."""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.request

from common import FIXTURES, SOURCE_DIR, TempDirTest, prepare_sample, run, tool
from serve_util import Server, free_port

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
DARKNET = os.path.join(SOURCE_DIR, "data", "pretrained", "darknet-tiny-imagenet")


class WebDriver:
    def __init__(self, log_path):
        self.port = free_port()
        self.proc = subprocess.Popen([DRIVER, f"--port={self.port}"], stdout=open(log_path, "w"),
                                     stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                self.call("GET", "/status")
                break
            except OSError:
                time.sleep(0.1)
        profile = tempfile.mkdtemp(prefix="catdog-chrome-")
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-quic", f"--user-data-dir={profile}", "--window-size=900,900"]
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome",
                                                 "goog:chromeOptions": {"binary": CHROMIUM, "args": args}}}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())["value"]

    def s(self, method, path, body=None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def find(self, css):
        found = self.s("POST", "/element", {"using": "css selector", "value": css})
        return next(iter(found.values()))

    def quit(self):
        try:
            self.call("DELETE", f"/session/{self.session}")
        finally:
            self.proc.terminate()
            self.proc.wait(timeout=30)


@unittest.skipUnless(CHROMIUM and DRIVER, "chromium and chromium-driver are not installed; run make deps")
class UploadPage(TempDirTest):
    def test_upload_shows_label_and_confidence(self):
        data = prepare_sample(self.tmp)
        r = run([tool("cd-train"), "--data", data, "--output", self.path("m"), "--metrics", self.path("m", "t.json"),
                 "--live", self.path("m", "live"), "--architecture", "darknet", "--pretrained", DARKNET,
                 "--mode", "frozen", "--input-size", "160", "--epochs", "15", "--frozen-views", "1", "--log-level", "warn"])
        self.assertExit(r, 0)
        server = Server(self.path("m", "model.cdm"), log_path=self.path("serve.log"))
        driver = None
        try:
            server.wait_ready()
            driver = WebDriver(self.path("driver.log"))
            driver.s("POST", "/url", {"url": f"http://127.0.0.1:{server.port}/"})
            self.assertEqual(driver.s("GET", "/title"), "Cat or dog?")
            picker = driver.find("#file")
            # The picker is hidden behind the drop zone; a person clicks the zone, the test types the path.
            driver.s("POST", "/execute/sync", {"script": "document.getElementById('file').hidden=false;", "args": []})
            photo = os.path.join(FIXTURES, "photos", "dog.3.jpg")
            driver.s("POST", f"/element/{picker}/value", {"text": photo})
            result = driver.find("#result")
            text = ""
            deadline = time.time() + 30
            while time.time() < deadline:
                text = driver.s("GET", f"/element/{result}/text")
                if "%" in text:
                    break
                time.sleep(0.2)
            self.assertRegex(text, r"^(Dog|Cat) — \d+\.\d%$")
            expected = json.loads(run([tool("cd-predict"), "--json", "--model", self.path("m", "model.cdm"), photo]).stdout)
            self.assertIn("Dog" if expected["class_label"] == "dog" else "Cat", text)
            self.assertIn(f"{expected['probability'] * 100:.1f}%", text)
            png = base64.b64decode(driver.s("GET", "/screenshot"))
            self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
            out = os.environ.get("CD_SCREENSHOT_DIR", self.tmp)
            os.makedirs(out, exist_ok=True)
            with open(os.path.join(out, "upload-page.png"), "wb") as f:
                f.write(png)
        finally:
            if driver:
                driver.quit()
            server.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
