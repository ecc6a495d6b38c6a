"""cd-serve's Open Inference Protocol (V2) routes, called by the real clients from PyPI (Triton's
tritonclient and the kserve SDK) and by raw requests, on loopback against the real binary."""
import asyncio
import json
import os
import shutil
import socket
import struct
import sys
import tempfile
import unittest
import zlib

from common import FIXTURES, SOURCE_DIR, TempDirTest, prepare_sample, train_small
from serve_util import Server, multipart

PHOTOS = os.path.join(FIXTURES, "photos")
NAMES = ["cat.1.jpg", "dog.1.jpg", "cat.2.jpg", "dog.2.jpg"]

VENV_PYTHON = os.path.join(SOURCE_DIR, ".venv", "bin", "python")
try:
    import numpy as np
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException
    import kserve
except ImportError as e:  # the clients live in .venv, where make deps puts them
    if os.path.exists(VENV_PYTHON) and os.path.realpath(sys.prefix) != os.path.realpath(
            os.path.join(SOURCE_DIR, ".venv")):
        os.execv(VENV_PYTHON, [VENV_PYTHON, *sys.argv])
    CLIENTS = f"{e}; run make deps, which installs tritonclient and kserve into .venv"
else:
    CLIENTS = None


def photo(name):
    with open(os.path.join(PHOTOS, name), "rb") as f:
        return f.read()


def png(pixels):
    """A lossless RGB PNG of an HxWx3 uint8 array, with the standard library's zlib."""
    h, w, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def setUpModule():
    global WORK, MODEL
    if CLIENTS:
        return
    WORK = tempfile.mkdtemp(prefix="catdog-e2e-v2-")
    r = train_small(WORK, prepare_sample(WORK), "m", 2)
    assert r.returncode == 0, r.stderr
    MODEL = os.path.join(WORK, "m", "model.cdm")


def tearDownModule():
    if not CLIENTS:
        shutil.rmtree(WORK, ignore_errors=True)


@unittest.skipIf(CLIENTS, CLIENTS)
class V2Base(TempDirTest):
    extra = ()

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="catdog-e2e-v2-server-")
        cls.server = Server(MODEL, *cls.extra, log_path=os.path.join(cls.dir, "serve.log"))
        cls.server.wait_ready()
        cls.url = f"127.0.0.1:{cls.server.port}"
        status, cls.meta = cls.server.json("GET", "/model", headers=cls.auth())
        assert status == 200, cls.meta

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def auth(cls):
        return {}

    def predict(self, data, name="x.jpg"):
        """/predict's answer for one image: the reference every V2 answer must equal."""
        body, headers = multipart([(name, "image/jpeg", data)])
        status, answer = self.server.json("POST", "/predict", body, {**headers, **self.auth()})
        self.assertEqual(status, 200, answer)
        return answer

    def tensor_of(self, pixels):
        """The model's input for an image already at its side: cd-serve's normalisation, in CHW."""
        norm = self.meta["normalization"]
        if norm == "unit":
            scale, offset = np.full(3, 1 / 255, np.float32), np.zeros(3, np.float32)
        elif norm == "signed":
            scale, offset = np.full(3, 1 / 128, np.float32), np.full(3, -127 / 128, np.float32)
        else:
            mean = np.array([0.485, 0.456, 0.406], np.float32)
            std = np.array([0.229, 0.224, 0.225], np.float32)
            scale, offset = (np.float32(1) / (np.float32(255) * std)), -mean / std
        x = pixels.astype(np.float32) * scale.astype(np.float32) + offset.astype(np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None]).astype(np.float32)

    def random_image(self, seed):
        side = self.meta["input_size"]
        return np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)


class Triton(V2Base):
    def client(self):
        return triton.InferenceServerClient(self.url)

    def test_health_and_metadata(self):
        c = self.client()
        self.assertTrue(c.is_server_live())
        self.assertTrue(c.is_server_ready())
        self.assertTrue(c.is_model_ready("catdog"))
        server = c.get_server_metadata()
        self.assertEqual(server["name"], "cd-serve")
        self.assertIn("binary_tensor_data", server["extensions"])
        model = c.get_model_metadata("catdog")
        version = self.meta["model_version"]
        self.assertEqual(model["versions"], [version])
        side = self.meta["input_size"]
        self.assertEqual({(i["name"], i["datatype"]) for i in model["inputs"]}, {("image", "BYTES"), ("input", "FP32")})
        self.assertIn({"name": "input", "datatype": "FP32", "shape": [-1, 3, side, side]}, model["inputs"])
        self.assertEqual([o["name"] for o in model["outputs"]], ["p_dog", "label"])
        self.assertEqual(c.get_model_metadata("catdog", model_version=version)["name"], "catdog")
        self.assertTrue(c.is_model_ready("catdog", model_version=version))
        with self.assertRaises(InferenceServerException) as e:
            c.get_model_metadata("catdog", model_version="0123456789ab")
        self.assertIn("no version '0123456789ab'", str(e.exception))
        with self.assertRaises(InferenceServerException) as e:
            c.get_model_metadata("dogcat")
        self.assertIn("unknown model 'dogcat'", str(e.exception))
        self.assertFalse(c.is_model_ready("dogcat"))

    def test_a_batch_of_four_images_as_binary_bytes_equals_predict(self):
        images = [photo(n) for n in NAMES]
        inp = triton.InferInput("image", [4], "BYTES")
        inp.set_data_from_numpy(np.array(images, dtype=np.object_), binary_data=True)
        outputs = [triton.InferRequestedOutput("p_dog", binary_data=True),
                   triton.InferRequestedOutput("label", binary_data=False)]
        result = self.client().infer("catdog", [inp], outputs=outputs, request_id="four")
        p = result.as_numpy("p_dog")
        labels = result.as_numpy("label")
        self.assertEqual(p.shape, (4, 1))
        self.assertEqual(p.dtype, np.float32)
        self.assertEqual(result.get_response()["id"], "four")
        self.assertEqual(result.get_response()["model_version"], self.meta["model_version"])
        for i, image in enumerate(images):
            expected = self.predict(image, NAMES[i])
            self.assertAlmostEqual(float(p[i, 0]), expected["p_dog"], delta=1e-6)
            label = labels[i, 0]
            self.assertEqual(label.decode() if isinstance(label, bytes) else label, expected["class_label"])
        # every output in JSON when none is asked for
        inp.set_shape([1])
        inp.set_data_from_numpy(np.array(images[:1], dtype=np.object_), binary_data=True)
        result = self.client().infer("catdog", [inp])
        self.assertEqual(result.as_numpy("p_dog").shape, (1, 1))
        self.assertIsNotNone(result.as_numpy("label"))

    def test_a_preprocessed_tensor_in_json_and_in_binary_equals_predict(self):
        pixels = self.random_image(1)
        expected = self.predict(png(pixels), "noise.png")
        for binary in (False, True):
            x = self.tensor_of(pixels)
            inp = triton.InferInput("input", list(x.shape), "FP32")
            inp.set_data_from_numpy(x, binary_data=binary)
            result = self.client().infer("catdog", [inp],
                                         outputs=[triton.InferRequestedOutput("p_dog", binary_data=binary)])
            self.assertAlmostEqual(float(result.as_numpy("p_dog")[0, 0]), expected["p_dog"], delta=1e-6,
                                   msg=f"binary_data={binary}")

    def test_versioned_infer_route_and_metrics_labels(self):
        inp = triton.InferInput("image", [1], "BYTES")
        inp.set_data_from_numpy(np.array([photo("dog.3.jpg")], dtype=np.object_))
        result = self.client().infer("catdog", [inp], model_version=self.meta["model_version"])
        self.assertAlmostEqual(float(result.as_numpy("p_dog")[0, 0]), self.predict(photo("dog.3.jpg"))["p_dog"],
                               delta=1e-6)
        status, _, metrics = self.server.request("GET", "/metrics")
        text = metrics.decode()
        self.assertIn('catdog_http_requests_total{route="/v2/models/{name}/infer",code="200"}', text)
        self.assertIn('catdog_http_requests_total{route="/v2/health/live",code="200"}', text)


class KServe(V2Base):
    def test_kserve_rest_client_gets_predicts_answers(self):
        images = [photo(n) for n in NAMES[:2]]
        pixels = self.random_image(2)

        async def calls():
            client = kserve.InferenceRESTClient(kserve.RESTConfig(protocol="v2", retries=0))
            base = "http://" + self.url
            try:
                live = await client.is_server_live(base)
                ready = await client.is_model_ready(base, "catdog")
                inp = kserve.InferInput("image", [2], "BYTES")
                inp.set_data_from_numpy(np.array(images, dtype=np.object_), binary_data=True)
                by_bytes = await client.infer(base, kserve.InferRequest("catdog", infer_inputs=[inp]),
                                              model_name="catdog")
                x = self.tensor_of(pixels)
                tensor = kserve.InferInput("input", list(x.shape), "FP32")
                tensor.set_data_from_numpy(x, binary_data=False)
                by_tensor = await client.infer(base, kserve.InferRequest("catdog", infer_inputs=[tensor]),
                                               model_name="catdog")
                return live, ready, by_bytes, by_tensor
            finally:
                await client.close()

        live, ready, by_bytes, by_tensor = asyncio.run(calls())
        self.assertTrue(live)
        self.assertTrue(ready)
        outputs = {o.name: o for o in by_bytes.outputs}
        p = outputs["p_dog"].as_numpy()
        self.assertEqual(p.shape, (2, 1))
        for i, image in enumerate(images):
            self.assertAlmostEqual(float(p[i, 0]), self.predict(image, NAMES[i])["p_dog"], delta=1e-6)
        p_tensor = {o.name: o for o in by_tensor.outputs}["p_dog"].as_numpy()
        self.assertAlmostEqual(float(p_tensor[0, 0]), self.predict(png(pixels), "noise.png")["p_dog"], delta=1e-6)


class Malformed(V2Base):
    """What a hostile or buggy client sends gets 400 and the protocol's error object; the server lives on."""

    def infer(self, body, headers=None, path="/v2/models/catdog/infer"):
        status, hdrs, data = self.server.request("POST", path, body, {**(headers or {}), **self.auth()})
        answer = json.loads(data)
        self.assertEqual(set(answer), {"error"}, answer)
        self.assertIsInstance(answer["error"], str)
        return status, answer["error"]

    def binary(self, head, tail):
        text = json.dumps(head).encode()
        return self.infer(text + tail, {"Inference-Header-Content-Length": str(len(text))})

    def test_malformed_requests_are_400_with_the_protocol_error(self):
        side = self.meta["input_size"]
        cases = {
            "wrong datatype": (json.dumps({"inputs": [{"name": "input", "datatype": "INT32", "shape": [1],
                                                       "data": [1]}]}), "datatype INT32"),
            "datatype of the other input": (json.dumps({"inputs": [{"name": "image", "datatype": "FP32",
                                                                    "shape": [1], "data": [1]}]}),
                                            "must be BYTES"),
            "overflowing shape": (json.dumps({"inputs": [{"name": "input", "datatype": "FP32",
                                                          "shape": [2 ** 62, 2 ** 62, 3, 3], "data": [1]}]}),
                                  "more elements"),
            "shape and data disagree": (json.dumps({"inputs": [{"name": "input", "datatype": "FP32",
                                                                "shape": [1, 3, side, side], "data": [0.5] * 10}]}),
                                        "more elements than the 10"),
            "shape not the model's": (json.dumps({"inputs": [{"name": "input", "datatype": "FP32",
                                                              "shape": [1, 3, 2, 2], "data": [0.5] * 12}]}),
                                      f"[N,3,{side},{side}]"),
            "missing input": (json.dumps({"inputs": []}), "no inputs"),
            "no inputs key": (json.dumps({"id": "x"}), "no inputs"),
            "unknown input": (json.dumps({"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1],
                                                      "data": [1]}]}), "unknown input 'pixels'"),
            "unknown output": (json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                                       "data": ["x"]}], "outputs": [{"name": "logits"}]}),
                               "unknown output 'logits'"),
            "not JSON": ("{\"inputs\": [", "not valid JSON"),
            "not an image": (json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                                     "data": ["hello"]}]}), "image 0: not an image"),
            "NaN in a tensor": (json.dumps({"inputs": [{"name": "input", "datatype": "FP32",
                                                        "shape": [1, 3, side, side],
                                                        "data": [0.0] * (3 * side * side - 1) + [1e39]}]}),
                                "NaN or infinite"),
        }
        for what, (body, says) in cases.items():
            with self.subTest(what):
                status, error = self.infer(body.encode())
                self.assertEqual(status, 400, error)
                self.assertIn(says, error)

        image = photo("cat.1.jpg")
        section = struct.pack("<I", len(image)) + image
        declared = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                "parameters": {"binary_data_size": len(section)}}]}
        status, error = self.binary(declared, section[:-100])
        self.assertEqual(status, 400)
        self.assertIn("truncated", error)
        status, error = self.binary(declared, section[:2])
        self.assertEqual(status, 400)
        lying = struct.pack("<I", 10 ** 9) + image
        declared["inputs"][0]["parameters"]["binary_data_size"] = len(lying)
        status, error = self.binary(declared, lying)
        self.assertEqual(status, 400)
        self.assertIn("past the end", error)
        status, error = self.infer(b"{}", {"Inference-Header-Content-Length": "99999"})
        self.assertEqual(status, 400)
        status, error = self.infer(b"{}", {"Inference-Header-Content-Length": "-1"})
        self.assertEqual(status, 400)

        # budgets: too many images, wrong route, wrong method, a body over the limit
        many = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [65], "data": ["x"] * 65}]}
        status, error = self.infer(json.dumps(many).encode())
        self.assertIn(status, (400, 413))
        status, error = self.infer(b"{}", path="/v2/models/dogcat/infer")
        self.assertEqual(status, 404)
        self.assertIn("unknown model", error)
        status, hdrs, data = self.server.request("GET", "/v2/models/catdog/infer")
        self.assertEqual((status, hdrs.get("Allow")), (405, "POST"))
        self.assertIn("error", json.loads(data))
        self.assertEqual(self.server.request("GET", "/v2/nothing")[0], 404)
        self.assertEqual(self.server.request("GET", "/v2/health/live")[0], 200)
        self.assertIsNone(self.server.proc.poll())

    def test_a_body_over_the_limit_is_413_in_the_protocols_form(self):
        # Declared over the limit: answered from the header, before any of the body is sent.
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=30) as s:
            s.sendall(b"POST /v2/models/catdog/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % (11 << 20))
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        self.assertIn(b" 413 ", head.split(b"\r\n")[0])
        self.assertEqual(set(json.loads(body)), {"error"})
        self.assertIn("limit", json.loads(body)["error"])


class Keyed(V2Base):
    extra = ("--api-key", "s3cret", "--model-name", "pets")

    @classmethod
    def auth(cls):
        return {"Authorization": "Bearer s3cret"}

    def test_the_api_key_and_the_model_name_apply(self):
        c = triton.InferenceServerClient(self.url)
        self.assertTrue(c.is_server_live())  # probes need no key
        self.assertTrue(c.is_model_ready("pets"))
        with self.assertRaises(InferenceServerException) as e:
            c.get_model_metadata("pets")
        self.assertIn("API key", str(e.exception))
        inp = triton.InferInput("image", [1], "BYTES")
        inp.set_data_from_numpy(np.array([photo("cat.4.jpg")], dtype=np.object_))
        with self.assertRaises(InferenceServerException):
            c.infer("pets", [inp])
        result = c.infer("pets", [inp], headers=self.auth())
        self.assertEqual(result.get_response()["model_name"], "pets")
        self.assertAlmostEqual(float(result.as_numpy("p_dog")[0, 0]), self.predict(photo("cat.4.jpg"))["p_dog"],
                               delta=1e-6)
        self.assertEqual(self.server.request("GET", "/v2/models/catdog", headers=self.auth())[0], 404)


class OpenApi(V2Base):
    def test_every_documented_route_is_answered(self):
        status, doc = self.server.json("GET", "/openapi.json")
        self.assertEqual(status, 200)
        version = self.meta["model_version"]
        v2 = [p for p in doc["paths"] if p.startswith("/v2")]
        self.assertEqual(len(v2), 9, v2)
        for path, ops in doc["paths"].items():
            concrete = path.replace("{model_name}", "catdog").replace("{model_version}", version)
            for method in ops:
                with self.subTest(path=path, method=method):
                    body = b"{}" if method == "post" else None
                    status, headers, _ = self.server.request(method.upper(), concrete, body,
                                                             {"Content-Type": "application/json"})
                    self.assertNotIn(status, (404, 405), f"{method} {path}")
                    for code in ops[method]["responses"]:
                        self.assertRegex(code, r"^[1-5]\d\d$")
        # and what is not documented is not answered
        for path in ("/v2/models/catdog/explain", "/v2/models/catdog/versions", "/v2/repository/index"):
            self.assertEqual(self.server.request("GET", path)[0], 404, path)


if __name__ == "__main__":
    unittest.main(verbosity=2)
