"""Beyond one process: data-parallel cd-train over c10d/Gloo on loopback (two ranks of one thread
each against one process with the same global batch and seed, a rank killed mid-epoch, the whole
group resumed), and cd-predict --shard, whose shard outputs concatenate to the unsharded output."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from common import FIXTURES, SOURCE_DIR, TempDirTest, prepare_sample, run, tool

DARKNET = os.path.join(SOURCE_DIR, "data", "pretrained", "darknet-tiny-imagenet")
PHOTOS = os.path.join(FIXTURES, "photos")
# Frozen Tiny Darknet, the default mode. A global batch of 31 splits 16 + 15 over two ranks, so
# their gradients must be weighted by share, and 320 training rows leave a last batch of 10.
FROZEN = ["--architecture", "darknet", "--pretrained", DARKNET, "--mode", "frozen", "--input-size", "128",
          "--frozen-views", "1", "--batch-size", "31", "--threads", "1", "--seed", "7"]
# The two runs add the same float32 gradients in a different order (per rank, then across
# ranks), and Adam's division by sqrt(v) carries those last bits forward: measured differences
# are up to 2e-5 on losses near 0.22.
TOLERANCE = 1e-4


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setUpModule():
    global WORK, DATA
    WORK = tempfile.mkdtemp(prefix="catdog-e2e-dist-")
    DATA = prepare_sample(WORK)


def tearDownModule():
    shutil.rmtree(WORK, ignore_errors=True)


def val_losses(live):
    with open(os.path.join(live, "plots", "metrics", "val", "loss.tsv")) as f:
        return [float(line.split("\t")[2]) for line in list(f)[1:]]


def p_dogs(model):
    r = run([tool("cd-predict"), "--model", model, "--json", "--threads", "1", PHOTOS])
    assert r.returncode == 0, r.stderr
    return [json.loads(line)["p_dog"] for line in r.stdout.splitlines()]


class DataParallelTraining(TempDirTest):
    def train_args(self, out, extra=(), base=FROZEN):
        return [tool("cd-train"), "--data", DATA, "--output", out, "--metrics", os.path.join(out, "train.json"),
                "--live", os.path.join(out, "live"), "--log-level", "info", *base, *extra]

    def start_ranks(self, world, outs, extra=(), timeout_s=60, base=FROZEN):
        port = str(free_port())
        procs = []
        for rank in range(world):
            env = dict(os.environ, WORLD_SIZE=str(world), RANK=str(rank), MASTER_ADDR="127.0.0.1",
                       MASTER_PORT=port)
            log = open(self.path(f"rank{rank}.log"), "w")
            procs.append(subprocess.Popen(
                self.train_args(outs[rank], [*extra, "--dist-timeout-s", str(timeout_s)], base),
                env=env, stdout=log, stderr=subprocess.STDOUT))
            log.close()
        return procs

    def log(self, rank):
        with open(self.path(f"rank{rank}.log")) as f:
            return f.read()

    def finish(self, procs):
        for rank, p in enumerate(procs):
            self.assertEqual(p.wait(timeout=600), 0, self.log(rank))

    def test_two_ranks_train_the_model_one_process_trains(self):
        one = self.path("one")
        r = run(self.train_args(one, ["--epochs", "6"]))
        self.assertExit(r, 0)
        shared, rank1_out = self.path("shared"), self.path("rank1-out")
        self.finish(self.start_ranks(2, [shared, rank1_out], ["--epochs", "6"]))
        self.assertIn("distributed: rank 1 of 2 joined", self.log(1))
        expected, got = val_losses(os.path.join(one, "live")), val_losses(os.path.join(shared, "live"))
        self.assertEqual(len(got), 6)
        for e, g in zip(expected, got):
            self.assertAlmostEqual(e, g, delta=TOLERANCE, msg=f"{expected} vs {got}")
        self.assertGreater(expected[0] - expected[-1], 0.05, "the comparison needs a model that learns")
        for a, b in zip(p_dogs(os.path.join(one, "model.cdm")), p_dogs(os.path.join(shared, "model.cdm"))):
            self.assertAlmostEqual(a, b, delta=TOLERANCE)
        # Rank 0 alone writes: the other rank's --output stays empty.
        self.assertFalse(os.path.exists(rank1_out), os.listdir(rank1_out) if os.path.exists(rank1_out) else "")
        self.assertIn("written by rank 0", self.log(1))

    def test_the_group_resumes_where_it_stopped(self):
        one = self.path("one")
        self.assertExit(run(self.train_args(one, ["--epochs", "5"])), 0)
        shared = self.path("shared")
        self.finish(self.start_ranks(2, [shared, shared], ["--epochs", "2"]))
        self.finish(self.start_ranks(2, [shared, shared], ["--epochs", "5", "--resume"]))
        self.assertIn("resumed", self.log(1))
        expected, got = val_losses(os.path.join(one, "live")), val_losses(os.path.join(shared, "live"))
        self.assertEqual(len(got), 5)
        for e, g in zip(expected, got):
            self.assertAlmostEqual(e, g, delta=TOLERANCE)

    def test_a_dead_rank_fails_the_others_within_the_timeout(self):
        # Full training of the small CNN: long enough epochs to kill a rank in the middle.
        full = ["--architecture", "compact", "--mode", "full", "--input-size", "48", "--epochs", "200",
                "--batch-size", "16", "--threads", "1"]
        timeout_s = 20
        procs = self.start_ranks(2, [self.path("a"), self.path("b")], timeout_s=timeout_s, base=full)
        deadline = time.time() + 120
        while "epoch 2:" not in self.log(0) and time.time() < deadline and procs[0].poll() is None:
            time.sleep(0.2)
        self.assertIn("epoch 2:", self.log(0))
        procs[1].send_signal(signal.SIGKILL)
        killed = time.time()
        code = procs[0].wait(timeout=timeout_s + 30)
        self.assertNotEqual(code, 0)
        self.assertLess(time.time() - killed, timeout_s + 5)
        self.assertIn("rank 0 lost the group", self.log(0))
        procs[1].wait()

    def test_a_rank_that_never_comes_times_out_with_a_clear_message(self):
        procs = self.start_ranks(1, [self.path("a")], ["--epochs", "1"], timeout_s=3)
        # WORLD_SIZE=1 is one process: it must train normally.
        self.finish(procs)
        env = dict(os.environ, WORLD_SIZE="2", RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
        start = time.time()
        r = run(self.train_args(self.path("b"), ["--epochs", "1", "--dist-timeout-s", "3"]), env=env)
        self.assertExit(r, 1)
        self.assertIn("could not join the group", r.stderr)
        self.assertLess(time.time() - start, 60)

    def test_bad_rendezvous_settings_are_usage_errors(self):
        r = run(self.train_args(self.path("a"), ["--epochs", "1"]), env={"WORLD_SIZE": "2"})
        self.assertExit(r, 2)
        self.assertIn("RANK is not", r.stderr)
        r = run(self.train_args(self.path("a"), ["--epochs", "1"]), env={"WORLD_SIZE": "2", "RANK": "5"})
        self.assertExit(r, 2)
        self.assertIn("RANK='5'", r.stderr)


class ShardedPrediction(TempDirTest):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="catdog-e2e-shard-")
        r = run([tool("cd-train"), "--data", DATA, "--output", cls.work, "--metrics", os.path.join(cls.work, "t.json"),
                 "--live", os.path.join(cls.work, "live"), "--epochs", "2", "--log-level", "warn", *FROZEN])
        assert r.returncode == 0, r.stderr
        cls.model = os.path.join(cls.work, "model.cdm")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)

    def predict(self, *args, env=None):
        r = run([tool("cd-predict"), "--model", self.model, "--threads", "1", *args], env=env)
        self.assertExit(r, 0)
        return r.stdout

    def test_shards_concatenate_to_the_unsharded_output(self):
        inputs = [PHOTOS, os.path.join(DATA, "test.csv"), os.path.join(DATA, "val.csv")]
        whole = self.predict(*inputs)
        self.assertEqual(len(whole.splitlines()), 8 + 40 + 40)
        for count in (1, 3, 7):
            parts = [self.predict("--shard", f"{i}/{count}", *inputs) for i in range(count)]
            self.assertEqual("".join(parts), whole, f"{count} shards")
            sizes = [len(p.splitlines()) for p in parts]
            self.assertLessEqual(max(sizes) - min(sizes), 1, sizes)

    def test_an_indexed_job_index_picks_the_shard(self):
        inputs = [os.path.join(DATA, "test.csv")]
        parts = [self.predict("--shard", "4", *inputs, env={"JOB_COMPLETION_INDEX": str(i)}) for i in range(4)]
        self.assertEqual("".join(parts), self.predict(*inputs))
        r = run([tool("cd-predict"), "--model", self.model, "--shard", "4", *inputs])
        self.assertExit(r, 2)
        self.assertIn("JOB_COMPLETION_INDEX", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
