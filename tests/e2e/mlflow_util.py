"""A real MLflow tracking server on loopback (sqlite backend, proxied artifacts) for the tests."""
import os
import shutil
import socket
import subprocess
import time
import urllib.request

from common import SOURCE_DIR

VENV_BIN = os.path.join(SOURCE_DIR, ".venv", "bin")
MLFLOW = shutil.which("mlflow") or os.path.join(VENV_BIN, "mlflow")
PYTHON = os.path.join(os.path.dirname(MLFLOW), "python")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow(work):
    """Starts `mlflow server` with its store and artifacts under work; returns (process, uri)."""
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    log = os.path.join(work, "mlflow-server.log")
    proc = subprocess.Popen(
        [MLFLOW, "server", "--backend-store-uri", f"sqlite:///{os.path.join(work, 'mlflow.db')}",
         "--artifacts-destination", os.path.join(work, "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        cwd=work, stdout=subprocess.DEVNULL, stderr=open(log, "w"), start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(uri + "/health", timeout=2) as resp:
                if resp.status == 200:
                    return proc, uri
        except OSError:
            time.sleep(0.5)
    stop_mlflow(proc)
    raise AssertionError("mlflow server did not start: " + open(log).read()[-2000:])


def stop_mlflow(proc):
    os.killpg(proc.pid, 15)
    proc.wait(timeout=60)
