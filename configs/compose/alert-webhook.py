"""The compose stack's webhook receiver: Alertmanager posts each notification
here (alertmanager.yml's receivers). Each one is logged as a JSON line on
stdout (`docker-compose logs alert-webhook`) and the most recent are kept for
GET /notifications, so a person or `make compose-smoke` can see what would
have paged. Stand-in for a real pager: point alertmanager.yml elsewhere in
production."""
import collections
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20  # Alertmanager's notifications are a few KiB
KEEP = 500

notifications = collections.deque(maxlen=KEEP)
lock = threading.Lock()


def summary(path, body):
    """What a person reading the log needs: receiver, status and each alert's name, instance and state."""
    return {
        "path": path,
        "receiver": body.get("receiver", ""),
        "status": body.get("status", ""),
        "group_labels": body.get("groupLabels", {}),
        "alerts": [{"alertname": a.get("labels", {}).get("alertname", ""),
                    "instance": a.get("labels", {}).get("instance", ""),
                    "severity": a.get("labels", {}).get("severity", ""),
                    "status": a.get("status", ""),
                    "summary": a.get("annotations", {}).get("summary", ""),
                    "startsAt": a.get("startsAt", ""), "endsAt": a.get("endsAt", "")}
                   for a in body.get("alerts", []) if isinstance(a, dict)],
    }


class Handler(BaseHTTPRequestHandler):
    def answer(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return self.answer(411, {"error": "Content-Length is required"})
        if length < 0 or length > MAX_BODY:
            return self.answer(413, {"error": f"a notification is at most {MAX_BODY} bytes"})
        try:
            body = json.loads(self.rfile.read(length))
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError as e:
            return self.answer(400, {"error": f"not an Alertmanager webhook notification: {e}"})
        entry = summary(self.path, body)
        with lock:
            notifications.append(entry)
        print(json.dumps(entry), flush=True)
        self.answer(200, {"received": len(entry["alerts"])})

    def do_GET(self):
        if self.path == "/health":
            return self.answer(200, {"status": "ok"})
        if self.path == "/notifications":
            with lock:
                return self.answer(200, list(notifications))
        self.answer(404, {"error": "GET /notifications or /health; Alertmanager POSTs to any other path"})

    def log_message(self, *args):
        pass  # one JSON line per notification is the log


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9095
    print(json.dumps({"listening": port}), flush=True)
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
