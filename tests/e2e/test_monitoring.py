"""The monitoring configs against the real tools: promtool checks the Prometheus config and
rules and runs the alert unit tests, every alert has a firing and a quiet case, amtool checks
Alertmanager's config and routes every alert by its severity, and every metric the rules and the
Grafana dashboard read exists in a live cd-serve's /metrics."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import yaml

from common import SOURCE_DIR, TempDirTest, prepare_sample, train_small
from serve_util import Server, multipart

MONITORING = os.path.join(SOURCE_DIR, "configs", "monitoring")
RULE_FILES = [os.path.join(MONITORING, "rules", n) for n in ("recording.yml", "alerts.yml")]
ALERT_TESTS = os.path.join(MONITORING, "tests", "alerts_test.yml")
ALERTMANAGER = os.path.join(MONITORING, "alertmanager.yml")
DASHBOARD = os.path.join(MONITORING, "grafana", "catdog-serve.json")
PHOTOS = os.path.join(SOURCE_DIR, "tests", "fixtures", "photos")

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
                "unless", "offset", "inf", "nan",
                # aggregation operators, which may take their grouping before their "("
                "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                "bottomk", "topk", "quantile"}
# Series Prometheus makes itself rather than scraping them from cd-serve.
PROMETHEUS_OWN = {"up"}


def promtool(*args):
    exe = shutil.which("promtool")
    if not exe:
        raise unittest.SkipTest("promtool not installed (Debian package prometheus; `make deps`)")
    return subprocess.run([exe, *args], capture_output=True, text=True)


def amtool(*args):
    exe = shutil.which("amtool")
    if not exe:
        raise unittest.SkipTest("amtool not installed (Debian package prometheus-alertmanager; `make deps`)")
    return subprocess.run([exe, *args], capture_output=True, text=True)


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def rules(kind):
    """(name, expr) of every recording ('record') or alerting ('alert') rule."""
    out = []
    for path in RULE_FILES:
        for group in load_yaml(path)["groups"]:
            out += [(r[kind], r["expr"]) for r in group["rules"] if kind in r]
    return out


def dashboard_exprs():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def metric_names(expr):
    """The series names a PromQL expression reads: identifiers that are not functions, keywords,
    label names inside {...} or grouping lists, string contents or Grafana variables."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)        # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)                   # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)                  # range selectors
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", expr)
    expr = re.sub(r"\$\w+", "", expr)                       # Grafana variables
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        rest = expr[m.end():].lstrip()
        if rest.startswith("(") or m.group(0).lower() in PROMQL_WORDS:
            continue
        names.add(m.group(0))
    return names


def live_families(text):
    """Sample names (with _bucket/_sum/_count) and family names in an exposition text."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0))
    return names


def alert_labels():
    """(name, labels) of every alerting rule."""
    out = []
    for path in RULE_FILES:
        for group in load_yaml(path)["groups"]:
            out += [(r["alert"], r.get("labels", {})) for r in group["rules"] if "alert" in r]
    return out


class Amtool(unittest.TestCase):
    def test_config_is_valid(self):
        r = amtool("check-config", ALERTMANAGER)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SUCCESS", r.stdout)

    def test_a_misspelled_key_fails_the_check(self):
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
            f.write(open(ALERTMANAGER).read().replace("group_wait:", "group_wiat:"))
            f.flush()
            r = amtool("check-config", f.name)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("group_wiat", r.stdout + r.stderr)

    def test_every_alert_routes_to_its_severity_receiver(self):
        alerts = alert_labels()
        self.assertGreaterEqual(len(alerts), 6)
        for name, labels in alerts:
            severity = labels.get("severity")
            self.assertIn(severity, ("page", "ticket"), name)
            r = amtool("config", "routes", "test", "--config.file=" + ALERTMANAGER,
                       "alertname=" + name, "severity=" + severity, "instance=cd-serve:8000")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertEqual(r.stdout.strip(), "catdog-" + severity, name)

    def test_receivers_are_webhooks_that_hear_of_resolutions(self):
        config = load_yaml(ALERTMANAGER)
        for receiver in config["receivers"]:
            hooks = receiver.get("webhook_configs", [])
            self.assertTrue(hooks, receiver["name"])
            for hook in hooks:
                self.assertTrue(hook.get("send_resolved"), receiver["name"])
        targets = [t for am in load_yaml(os.path.join(MONITORING, "prometheus.yml"))["alerting"]["alertmanagers"]
                   for c in am["static_configs"] for t in c["targets"]]
        self.assertEqual(targets, ["alertmanager:9093"])


class Promtool(unittest.TestCase):
    def test_config_and_rules_are_valid(self):
        r = promtool("check", "config", os.path.join(MONITORING, "prometheus.yml"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("2 rule files found", r.stdout)
        r = promtool("check", "rules", *RULE_FILES)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_alert_unit_tests_pass(self):
        r = promtool("test", "rules", ALERT_TESTS)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SUCCESS", r.stdout)

    def test_every_alert_fires_in_a_test_and_stays_quiet_in_another(self):
        fired, quiet = set(), set()
        for case in load_yaml(ALERT_TESTS)["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
        alerts = {name for name, _ in rules("alert")}
        self.assertGreaterEqual(alerts, {"CatdogDown", "CatdogNotReady", "CatdogHighErrorRatio",
                                         "CatdogHighLatencyP99", "CatdogShedLoad", "CatdogPredictionDrift"})
        self.assertEqual(alerts - fired, set(), "alerts never made to fire")
        self.assertEqual(alerts - quiet, set(), "alerts never checked quiet")

    def test_every_recording_rule_is_pinned_by_a_test(self):
        pinned = set()
        for case in load_yaml(ALERT_TESTS)["tests"]:
            for check in case.get("promql_expr_test", []):
                if check.get("exp_samples"):
                    pinned |= metric_names(check["expr"])
        recorded = {name for name, _ in rules("record")}
        self.assertGreaterEqual(len(recorded), 9)
        self.assertEqual(recorded - pinned, set(), "recording rules without an expected value")

    def test_dashboard_queries_parse(self):
        # promtool parses PromQL only inside rule files: wrap each panel query in one,
        # with Grafana's variables given values.
        exprs = dashboard_exprs()
        self.assertGreaterEqual(len(exprs), 12)
        subst = {"$__rate_interval": "1m", "$job": "catdog", "$instance": ".*"}
        group = []
        for i, e in enumerate(exprs):
            for k, v in subst.items():
                e = e.replace(k, v)
            group.append({"record": f"dashboard:panel_{i}", "expr": e})
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
            yaml.safe_dump({"groups": [{"name": "dashboard", "rules": group}]}, f)
            f.flush()
            r = promtool("check", "rules", f.name)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_name_extraction_sees_renames(self):
        names = metric_names('sum by (le) (rate(catdog_x_bucket{route=~"/a.*",le="0.5"}[$__rate_interval]))'
                             ' / on (job) group_left foo:bar')
        self.assertEqual(names, {"catdog_x_bucket", "foo:bar"})


class LiveMetrics(TempDirTest):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="catdog-e2e-monitoring-")
        data = prepare_sample(cls.work)
        r = train_small(cls.work, data, "m", 2)
        assert r.returncode == 0, r.stderr
        cls.model = os.path.join(cls.work, "m", "model.cdm")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)

    def setUp(self):
        super().setUp()
        self.server = Server(self.model, log_path=self.path("serve.log"))
        self.server.wait_ready()
        for name in ("cat.1.jpg", "dog.2.jpg"):
            with open(os.path.join(PHOTOS, name), "rb") as f:
                body, headers = multipart([(name, "image/jpeg", f.read())])
            self.assertEqual(self.server.request("POST", "/predict", body, headers)[0], 200)
        status, _, text = self.server.request("GET", "/metrics")
        self.assertEqual(status, 200)
        self.metrics = text.decode()

    def tearDown(self):
        self.server.stop()
        super().tearDown()

    def test_rules_and_dashboard_read_only_exported_metrics(self):
        live = live_families(self.metrics)
        recorded = {name for name, _ in rules("record")}
        used = {}
        for source, exprs in (("recording rules", [e for _, e in rules("record")]),
                              ("alert rules", [e for _, e in rules("alert")]),
                              ("dashboard", dashboard_exprs())):
            for e in exprs:
                for name in metric_names(e):
                    used.setdefault(name, set()).add(source)
        missing = {n: sorted(s) for n, s in used.items()
                   if n not in live and n not in recorded and n not in PROMETHEUS_OWN}
        self.assertEqual(missing, {}, "metrics used but not exported by cd-serve (renamed?)")
        # The dashboard covers what an operator asked for.
        for needed in ("catdog_http_requests_total", "catdog_http_request_duration_seconds_bucket",
                       "catdog_batch_size_bucket", "catdog_queue_depth", "catdog_predictions_total",
                       "catdog_p_dog_bucket", "process_resident_memory_bytes", "process_cpu_seconds_total"):
            self.assertIn(needed, used, f"the dashboard does not show {needed}")

    def test_training_time_p_dog_reference_is_exported(self):
        status, _, body = self.server.request("GET", "/model")
        self.assertEqual(status, 200)
        reference = json.loads(body)["val_metrics"]["p_dog_mean"]
        self.assertGreater(reference, 0.0)
        self.assertLess(reference, 1.0)
        m = re.search(r"^catdog_model_p_dog_reference (\S+)$", self.metrics, re.M)
        self.assertIsNotNone(m, self.metrics)
        self.assertAlmostEqual(float(m.group(1)), reference, places=9)


if __name__ == "__main__":
    unittest.main(verbosity=2)
