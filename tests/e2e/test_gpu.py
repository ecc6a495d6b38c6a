"""--device cuda: trains on a GPU when LibTorch sees one; otherwise refuses clearly (exit 2).
CTest label: gpu. Without a CUDA device the training half is skipped with a message."""
import unittest

from common import TempDirTest, prepare_sample, read_json, train_small


class Cuda(TempDirTest):
    def test_cuda_device(self):
        data = prepare_sample(self.tmp)
        r = train_small(self.tmp, data, "gpu", 1, ["--device", "cuda"])
        if r.returncode == 2 and "no CUDA device is available" in r.stderr:
            self.assertIn("use --device cpu or auto", r.stderr)
            self.skipTest("no CUDA device visible to this LibTorch build")
        self.assertExit(r, 0)
        self.assertEqual(read_json(self.path("gpu", "train.json"))["epochs"], 1)
        auto = train_small(self.tmp, data, "auto", 1, ["--device", "auto"])
        self.assertExit(auto, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
