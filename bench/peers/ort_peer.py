"""What a Python user would deploy instead of cd-serve and cd-predict today: the exported
model.onnx on ONNX Runtime, Pillow for the pixels and FastAPI + uvicorn for the API.

  uvicorn --factory ort_peer:create_app --port N    (CD_MODEL=model.onnx; the original's API)
  python ort_peer.py MODEL.onnx IMAGE|DIR...        (PATH<TAB>LABEL<TAB>PROB per image)

Runs with .venv's python (onnxruntime, fastapi, uvicorn, python-multipart, pillow, numpy: all
pinned there by make py-deps). The preprocessing follows the catdog.* metadata cd-export
writes: size, resize policy and normalisation. Pillow's resize is not OpenCV's, so a
probability can differ from catdog's in the third decimal; the labels are compared.
"""
import io
import os
import sys
import time
from datetime import datetime, timezone

import numpy as np
import onnxruntime as ort
from PIL import Image


class Model:
    def __init__(self, path, threads):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        self.size = int(meta["catdog.input_size"])
        self.resize = meta.get("catdog.resize", "stretch")
        self.norm = meta.get("catdog.normalization", "unit")
        self.threshold = float(meta.get("catdog.threshold", "0.5"))
        self.input = self.session.get_inputs()[0].name

    def pixels(self, image):
        """size x size x 3 floats, as catdog's resize policy and normalisation say."""
        image = image.convert("RGB")
        s, (w, h) = self.size, image.size
        if self.resize == "stretch":
            image = image.resize((s, s), Image.BILINEAR)
        elif self.resize == "center-crop":
            k = s / min(w, h)
            nw, nh = max(s, round(w * k)), max(s, round(h * k))
            image = image.resize((nw, nh), Image.BILINEAR)
            left, top = (nw - s) // 2, (nh - s) // 2
            image = image.crop((left, top, left + s, top + s))
        else:  # letterbox
            k = s / max(w, h)
            nw, nh = max(1, round(w * k)), max(1, round(h * k))
            canvas = Image.new("RGB", (s, s), (128, 128, 128))
            canvas.paste(image.resize((nw, nh), Image.BILINEAR), ((s - nw) // 2, (s - nh) // 2))
            image = canvas
        x = np.asarray(image, dtype=np.float32)
        if self.norm == "imagenet":
            x = (x / 255.0 - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
        elif self.norm == "signed":
            x = (x - 127.0) / 128.0
        else:
            x = x / 255.0
        return x.transpose(2, 0, 1)

    def p_dog(self, images):
        batch = np.stack([self.pixels(i) for i in images]).astype(np.float32)
        return self.session.run(None, {self.input: batch})[0].reshape(-1).tolist()


def threads():
    return int(os.environ.get("PEER_THREADS", os.cpu_count()))


def create_app():
    from fastapi import FastAPI, File, HTTPException, UploadFile

    model = Model(os.environ["CD_MODEL"], threads())
    app = FastAPI()

    @app.get("/health")
    def health():
        return {"status": "healthy", "model_loaded": True}

    @app.post("/predict")
    async def predict(file: UploadFile = File(...)):
        start = time.perf_counter()
        if not (file.content_type or "").startswith("image/"):
            raise HTTPException(status_code=400, detail="File must be an image")
        data = await file.read()
        try:
            image = Image.open(io.BytesIO(data))
            image.load()
        except Exception:
            raise HTTPException(status_code=400, detail="Invalid image")
        p = model.p_dog([image])[0]
        label = "dog" if p >= model.threshold else "cat"
        return {"class_label": label, "probability": p if label == "dog" else 1 - p,
                "prediction_time_ms": (time.perf_counter() - start) * 1000,
                "timestamp": datetime.now(timezone.utc).isoformat()}

    return app


def main():
    model = Model(sys.argv[1], threads())
    paths = []
    for arg in sys.argv[2:]:
        if os.path.isdir(arg):
            paths += sorted(os.path.join(arg, n) for n in os.listdir(arg))
        else:
            paths.append(arg)
    for i in range(0, len(paths), 32):
        chunk = paths[i:i + 32]
        for path, p in zip(chunk, model.p_dog([Image.open(q) for q in chunk])):
            label = "dog" if p >= model.threshold else "cat"
            print(f"{path}\t{label}\t{p if label == 'dog' else 1 - p:.4f}")


if __name__ == "__main__":
    main()
