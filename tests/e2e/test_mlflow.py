"""cd-train against a real MLflow tracking server on loopback, checked with MLflow's own client."""
import os
import unittest

from common import TempDirTest, prepare_sample, run, train_small
from mlflow_util import MLFLOW, PYTHON, start_mlflow, stop_mlflow

CHECK = r"""
import sys
from mlflow.tracking import MlflowClient
client = MlflowClient(sys.argv[1])
exp = client.get_experiment_by_name("e2e-tracking")
assert exp is not None, "experiment missing"
runs = client.search_runs([exp.experiment_id])
assert len(runs) == 1, f"{len(runs)} runs"
r = runs[0]
assert r.info.status == "FINISHED", r.info.status
# Every effective setting is a param, under its config key, not a hand-picked few.
assert r.data.params["model.architecture"] == "compact", r.data.params
assert r.data.params["schedule.epochs"] == "3", r.data.params
for key in ("augmentation.rotation", "schedule.plateau_factor", "run.threads", "optimizer.lr", "train_images"):
    assert key in r.data.params, (key, sorted(r.data.params))
assert len(r.data.params) >= 35, len(r.data.params)
assert len(r.data.tags["data_fingerprint"]) == 16, r.data.tags
for key in ("train_loss", "val_loss", "val_accuracy", "train_accuracy"):
    steps = sorted(m.step for m in client.get_metric_history(r.info.run_id, key))
    assert steps == [0, 1, 2], (key, steps)
arts = [a.path for a in client.list_artifacts(r.info.run_id, "model")]
assert arts == ["model/model.cdm"], arts
print("ok")
"""


@unittest.skipUnless(os.path.exists(MLFLOW), "mlflow is not installed; run make deps")
class MlflowTracking(TempDirTest):
    def start_server(self):
        self.server, self.uri = start_mlflow(self.tmp)

    def stop_server(self):
        stop_mlflow(self.server)

    def tearDown(self):
        if getattr(self, "server", None) and self.server.poll() is None:
            self.stop_server()
        super().tearDown()

    def test_run_is_logged_and_a_dead_server_costs_one_warning(self):
        data = prepare_sample(self.tmp)
        self.start_server()
        env = {"MLFLOW_TRACKING_URI": self.uri}
        r = train_small(self.tmp, data, "tracked", 3, ["--experiment", "e2e-tracking", "--patience", "10"], env=env)
        self.assertExit(r, 0)
        check = run([PYTHON, "-c", CHECK, self.uri])
        self.assertExit(check, 0)
        self.assertEqual(check.stdout.strip(), "ok")

        self.stop_server()
        r = train_small(self.tmp, data, "untracked", 2, ["--experiment", "e2e-tracking"], env=env)
        self.assertExit(r, 0)
        warnings = [line for line in r.stderr.splitlines() if "MLflow" in line]
        self.assertEqual(len(warnings), 1, r.stderr)
        self.assertIn("training goes on without tracking", warnings[0])
        self.assertTrue(os.path.exists(self.path("untracked", "model.cdm")))


if __name__ == "__main__":
    unittest.main(verbosity=2)
