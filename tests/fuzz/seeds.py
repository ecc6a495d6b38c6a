"""Writes the seed corpus for each harness into DIR/<harness>/, from the committed fixtures:
photos and odd formats for the decoder, the configs for the loader, and requests built
around the fixture images for the HTTP layer."""
import glob
import gzip
import json
import os
import struct
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from common import checksum64, fnv1a64  # noqa: E402
from costly import flat_png, many_scans_jpeg  # noqa: E402


def model_file(meta, payload=b"PK\x03\x04weights"):
    m = json.dumps(meta).encode()
    body = b"CDMODEL\n" + struct.pack("<IIQ", 2, 1, len(m)) + m + struct.pack("<Q", len(payload)) + payload
    return body + struct.pack("<Q", fnv1a64(body))


def model_file_v3(meta, graph, payload=b"PK\x03\x04weights", version=3):
    """Format 3 (FNV-1a checksum) or 4 (checksum64): the same layout."""
    m = json.dumps(meta).encode()
    body = (b"CDMODEL\n" + struct.pack("<IIQ", version, 1, len(m)) + m + struct.pack("<Q", len(payload)) + payload
            + struct.pack("<Q", len(graph)) + graph)
    return body + struct.pack("<Q", checksum64(body) if version >= 4 else fnv1a64(body))


def inference_graph():
    """catdog-graph 1: a 1x1 conv, a ReLU6, pooling and a Gemm, as cd-train writes them."""
    weights = [("w", [2, 3, 1, 1]), ("b", [2]), ("g", [1, 2])]
    header, data = {"input": "input", "output": "p_dog", "weights": [], "nodes": []}, b""
    for name, dims in weights:
        header["weights"].append({"name": name, "dims": dims, "offset": len(data)})
        n = 1
        for d in dims:
            n *= d
        data += struct.pack(f"<{n}f", *[0.25 * (i + 1) for i in range(n)])
        data += b"\0" * (-len(data) % 64)
    def node(op, inputs, output, ints=None, floats=None):
        return {"op": op, "inputs": inputs, "output": output, "ints": ints or {}, "floats": floats or {}}
    header["nodes"] = [
        node("Conv", ["input", "w", "b"], "c", {"kernel_shape": [1, 1], "group": [1], "pads": [0, 0, 0, 0]}),
        node("Clip", ["c"], "a", floats={"min": 0.0, "max": 6.0}),
        node("GlobalAveragePool", ["a"], "p"),
        node("Flatten", ["p"], "f", {"axis": [1]}),
        node("Gemm", ["f", "g"], "l", {"transB": [1]}),
        node("Sigmoid", ["l"], "p_dog"),
    ]
    h = json.dumps(header).encode()
    out = b"catdog-graph 1\n" + struct.pack("<Q", len(h)) + h
    return out + b"\0" * (-len(out) % 64) + data


def proto_field(number, value):
    """One protobuf field: an int as a varint, bytes or str length-delimited."""
    def varint(n):
        out = b""
        while True:
            byte, n = n & 0x7F, n >> 7
            out += bytes([byte | (0x80 if n else 0)])
            if not n:
                return out
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    value = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(value)) + value


def onnx_model(meta):
    """An ONNX ModelProto as cd-export writes it, in miniature: one initializer, Mul and Sigmoid."""
    tensor = proto_field(1, 1) + proto_field(2, 1) + proto_field(8, "half") + proto_field(9, struct.pack("<f", 0.5))
    nodes = [proto_field(1, "input") + proto_field(1, "half") + proto_field(2, "m") + proto_field(4, "Mul"),
             proto_field(1, "m") + proto_field(2, "p_dog") + proto_field(4, "Sigmoid")]
    graph = b"".join(proto_field(1, n) for n in nodes) + proto_field(5, tensor)
    graph += proto_field(11, proto_field(1, "input")) + proto_field(12, proto_field(1, "p_dog"))
    props = proto_field(1, "catdog.meta") + proto_field(2, json.dumps(meta))
    return proto_field(7, graph) + proto_field(14, props)


def request(method, path, body=b"", headers=()):
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def multipart(parts, boundary="b0undary"):
    out = b""
    for name, filename, data in parts:
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
                f"Content-Type: image/png\r\n\r\n").encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode(), ("Content-Type", f"multipart/form-data; boundary={boundary}")


def main(out):
    def put(harness, name, data):
        os.makedirs(os.path.join(out, harness), exist_ok=True)
        with open(os.path.join(out, harness, name), "wb") as f:
            f.write(data)

    for path in glob.glob(os.path.join(FIXTURES, "photos", "*")) + glob.glob(os.path.join(FIXTURES, "formats", "*")):
        with open(path, "rb") as f:
            put("image", os.path.basename(path), f.read())
    # Progressive JPEGs of one scan copied many times, below and above the scan limit, for
    # the mutator to find the other ways a scan's cost escapes its bytes.
    put("image", "scans-8.jpg", many_scans_jpeg(256, 8))
    put("image", "scans-60.jpg", many_scans_jpeg(256, 60))
    put("image", "scans-400.jpg", many_scans_jpeg(512, 400))
    put("image", "flat-640x480.png", flat_png(640, 480))
    for path in glob.glob(os.path.join(ROOT, "configs", "*.yaml")):
        with open(path, "rb") as f:
            put("config", os.path.basename(path), f.read())
    meta = {"format_version": 2, "architecture": "compact", "arch_params": {"bn_eps": 1e-3},
            "input_size": 64, "resize": "stretch", "normalization": "unit", "classes": ["cat", "dog"],
            "threshold": 0.5, "tta_flip": False}
    put("model_file", "small.cdm", model_file(meta))
    put("model_file", "small-v3.cdm", model_file_v3(dict(meta, format_version=3), inference_graph()))
    put("model_file", "small-v4.cdm", model_file_v3(dict(meta, format_version=4), inference_graph(), version=4))
    # The graph readers: a first byte of 0 picks catdog-graph, 1 an ONNX file.
    put("graph", "graph", b"\0" + inference_graph())
    put("graph", "onnx", b"\1" + onnx_model(meta))
    put("manifest", "sample.csv", b"path,label\nimages/cat.1.jpg,cat\n\"images/a,b.jpg\",dog\n")
    with open(os.path.join(FIXTURES, "formats", "tiny-5x5.png"), "rb") as f:
        png = f.read()
    put("http", "health", request("GET", "/health") + request("GET", "/ready"))
    put("http", "raw", request("POST", "/predict", png, [("Content-Type", "image/png")]))
    body, ctype = multipart([("file", "a.png", png)])
    put("http", "multipart", request("POST", "/predict", body, [ctype]))
    body, ctype = multipart([("file", "a.png", png), ("file", "b.png", png)])
    put("http", "batch", request("POST", "/predict/batch", body, [ctype, ("X-Request-Id", "abc")]))
    chunked = b"".join(b"%x\r\n" % len(png[i:i + 40]) + png[i:i + 40] + b"\r\n" for i in range(0, len(png), 40))
    put("http", "chunked", b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunked + b"0\r\n\r\n")
    put("http", "gzip", request("POST", "/predict", gzip.compress(png),
                                [("Content-Type", "image/png"), ("Content-Encoding", "gzip")]))
    put("http", "expect", request("POST", "/predict", png, [("Content-Type", "image/png"),
                                                           ("Expect", "100-continue")]))
    # The Open Inference Protocol: JSON tensors, and the binary extension (a 3-byte prefix
    # for fuzz_v2: bit 0 of the first byte turns the extension on, the next two give the
    # JSON's length, little-endian).
    tensor = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 2, 2], "data": [0.5] * 12}],
              "outputs": [{"name": "p_dog"}, {"name": "label", "parameters": {"binary_data": True}}]}
    section = struct.pack("<I", len(png)) + png
    binary = {"id": "b", "inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                     "parameters": {"binary_data_size": len(section)}}],
              "parameters": {"binary_data_output": True}}
    head = json.dumps(binary).encode()
    put("v2", "json", b"\x00\x00\x00" + json.dumps(tensor).encode())
    put("v2", "binary", b"\x01" + struct.pack("<H", len(head)) + head + section)
    put("http", "v2-infer", request("POST", "/v2/models/catdog/infer", head + section,
                                    [("Inference-Header-Content-Length", str(len(head)))]))
    put("http", "v2-metadata", request("GET", "/v2") + request("GET", "/v2/models/catdog") +
        request("GET", "/v2/health/ready"))


if __name__ == "__main__":
    main(sys.argv[1])
