"""The original API in FastAPI: POST /predict with multipart field 'file'. Run with
CD_MODEL=model.cdm uvicorn serve_peer:app --port N (one worker, as the original)."""
import os
import time
from datetime import datetime, timezone

import torch
from fastapi import FastAPI, File, HTTPException, UploadFile

from catdog_peer import load_model, preprocess_bytes

torch.set_num_threads(int(os.environ.get("PEER_THREADS", os.cpu_count())))
META, MODEL = load_model(os.environ["CD_MODEL"])
SIZE = META["input_size"]
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
        x = preprocess_bytes(data, SIZE).unsqueeze(0)
    except Exception:
        raise HTTPException(status_code=400, detail="Invalid image")
    with torch.inference_mode():
        p = float(torch.sigmoid(MODEL(x)).item())
    label = "dog" if p >= 0.5 else "cat"
    return {"class_label": label, "probability": p if label == "dog" else 1 - p,
            "prediction_time_ms": (time.perf_counter() - start) * 1000,
            "timestamp": datetime.now(timezone.utc).isoformat()}
