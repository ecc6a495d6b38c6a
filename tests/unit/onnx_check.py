"""What test_onnx_export.cpp asks of an exported file that only the ONNX project's own tools can
answer: onnx.checker's full check (with strict shape inference), and ONNX Runtime's P(dog) for a
batch of images preprocessed by catdog. Prints one JSON object."""
import json
import sys

import numpy as np
import onnx
import onnxruntime

path, inputs, n, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
model = onnx.load(path)
onnx.checker.check_model(model, full_check=True)
x = np.fromfile(inputs, dtype=np.float32).reshape(n, 3, size, size)
session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
(p,) = session.run(["p_dog"], {"input": x})
print(json.dumps({"p": p.reshape(-1).tolist(), "opset": model.opset_import[0].version,
                  "metadata": {prop.key: prop.value for prop in model.metadata_props}}))
