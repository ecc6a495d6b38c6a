"""Starting cd-serve on a free loopback port and talking to it over real sockets."""
import http.client
import json
import os
import socket
import subprocess
import time
import uuid

from common import tool


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, model, *extra, log_path, env=None):
        self.port = free_port()
        self.log_path = log_path
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [tool("cd-serve"), "--model", model, "--host", "127.0.0.1", "--port", str(self.port), *extra],
            stdout=subprocess.DEVNULL, stderr=open(log_path, "w"), env=full_env)

    def wait_ready(self, timeout=120):
        self._poll(lambda status: status == 200, "became ready", timeout)

    def wait_answering(self, path="/ready", timeout=120):
        """The status of the first answer to GET path: for a server that is up but never ready."""
        return self._poll(lambda status: True, "answered", timeout, path)

    def _poll(self, done, what, timeout, path="/ready"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                status = self.request("GET", path)[0]
                if done(status):
                    return status
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise AssertionError("cd-serve exited: " + self.log())
            time.sleep(0.1)
        raise AssertionError(f"cd-serve never {what}: " + self.log())

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def request(self, method, path, body=None, headers=None, timeout=60):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, dict(resp.getheaders()), data
        finally:
            conn.close()

    def json(self, method, path, body=None, headers=None):
        status, hdrs, data = self.request(method, path, body, headers)
        return status, json.loads(data)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def multipart(files, field="file"):
    """files: list of (filename, content_type, bytes). Returns (body, headers)."""
    boundary = uuid.uuid4().hex
    out = b""
    for name, ctype, data in files:
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n"
                f"Content-Type: {ctype}\r\n\r\n").encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
