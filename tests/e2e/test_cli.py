"""Every tool answers --help and --version, and refuses bad flags and config keys with exit 2."""
import os
import unittest

from common import TOOLS, TempDirTest, run, tool


class CliContract(TempDirTest):
    def test_help_and_version_exit_zero(self):
        for name in TOOLS:
            with self.subTest(tool=name):
                r = run([tool(name), "--help"])
                self.assertExit(r, 0)
                self.assertIn("Usage:", r.stdout)
                self.assertIn("--log-format", r.stdout)
                v = run([tool(name), "--version"])
                self.assertExit(v, 0)
                self.assertRegex(v.stdout, rf"^{name} \d+\.\d+\.\d+ \(commit \S+, LibTorch \d+\.\d+")

    def test_unknown_flag_is_a_usage_error(self):
        for name in TOOLS:
            with self.subTest(tool=name):
                r = run([tool(name), "--no-such-flag"])
                self.assertExit(r, 2)
                self.assertTrue(r.stderr.startswith(f"{name}: error: "), r.stderr)
                self.assertEqual(r.stdout, "")

    def test_unknown_config_key_names_file_and_key(self):
        cfg = self.path("bad.yaml")
        with open(cfg, "w") as f:
            f.write("schedule:\n  epoch: 3\n")
        r = run([tool("cd-train"), "--config", cfg])
        self.assertExit(r, 2)
        self.assertIn(f"{cfg}: unknown key 'schedule.epoch'", r.stderr)

    def test_out_of_range_value_names_the_range(self):
        r = run([tool("cd-train"), "--epochs", "0"])
        self.assertExit(r, 2)
        self.assertIn("--epochs: value 0 is out of range; allowed: an integer in [1, 10000]", r.stderr)
        r = run([tool("cd-prepare"), "--source", "x"], env={"CD_SEED": "-4"})
        self.assertExit(r, 2)
        self.assertIn("environment variable CD_SEED", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
