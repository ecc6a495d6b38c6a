"""make bench, second part: cd-predict on each runtime, for the model `make run` trained.

- cold: one `cd-predict PHOTO` process per run, wall time from exec to exit, 20 runs per runtime,
  the runtimes interleaved so machine noise falls on both alike;
- throughput: one `cd-predict` over 1,000 photos per runtime (batch 32), images per second.

Writes bench/results/runtimes.{json,md}. BENCH_PHOTO picks the photo; by default the first
500-pixel-wide photo of ../shared/data/originals-sample, else a committed fixture."""
import glob
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PREDICT = os.path.join(ROOT, "build", "bin", "cd-predict")
SHARED = os.path.abspath(os.path.join(ROOT, "..", "shared", "data"))
WORK = os.path.join(ROOT, "bench", "work", "runtimes")
RESULTS = os.path.join(ROOT, "bench", "results")
MODELS = {"onnx (OpenCV DNN)": os.path.join(ROOT, "models", "model.onnx"),
          "cdm (LibTorch)": os.path.join(ROOT, "models", "model.cdm")}
COLD_RUNS = int(os.environ.get("BENCH_COLD_RUNS", "20"))
IMAGES = 1000


def jpeg_size(path):
    """(width, height) from a JPEG's frame header."""
    data = open(path, "rb").read()
    pos = 2
    while pos + 9 < len(data) and data[pos] == 0xFF:
        marker, length = data[pos + 1], int.from_bytes(data[pos + 2:pos + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(data[pos + 7:pos + 9], "big"), int.from_bytes(data[pos + 5:pos + 7], "big")
        pos += 2 + length
    return 0, 0


def pick_photo():
    if os.environ.get("BENCH_PHOTO"):
        return os.environ["BENCH_PHOTO"]
    for path in sorted(glob.glob(os.path.join(SHARED, "originals-sample", "*", "*.jpg"))):
        w, h = jpeg_size(path)
        if w == 500 and 370 <= h <= 380:
            return path
    return os.path.join(ROOT, "tests", "fixtures", "photos", "cat.1.jpg")


def photo_folder():
    """1,000 photos as links in one folder: the full data's first, else the sample's, repeated."""
    folder = os.path.join(WORK, "images1000")
    if os.path.isdir(folder) and len(os.listdir(folder)) == IMAGES:
        return folder
    full = sorted(glob.glob(os.path.join(SHARED, "dogs-vs-cats-200", "train", "*.jpg")))
    source = full[::max(1, len(full) // IMAGES)][:IMAGES] if len(full) >= IMAGES else \
        sorted(glob.glob(os.path.join(ROOT, "data", "sample", "images", "*", "*.jpg")))
    if not source:
        sys.exit("runtimes: no photos found (../shared/data or data/sample)")
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        os.unlink(os.path.join(folder, name))
    for i in range(IMAGES):
        os.symlink(source[i % len(source)], os.path.join(folder, f"{i:04d}.jpg"))
    return folder


def run(args):
    t0 = time.perf_counter()
    r = subprocess.run([PREDICT, *args, "--log-level", "warn"], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"runtimes: cd-predict {' '.join(args)} failed ({r.returncode}): {r.stderr[-1000:]}")
    return seconds, r.stdout


def main():
    for path in MODELS.values():
        if not os.path.isfile(path):
            sys.exit(f"runtimes: {path} is missing; run `make run` first")
    photo = pick_photo()
    size = jpeg_size(photo)
    cold = {name: [] for name in MODELS}
    answers = {}
    for _ in range(COLD_RUNS):
        for name, model in MODELS.items():
            seconds, out = run(["--model", model, photo])
            cold[name].append(seconds * 1000)
            answers[name] = out.strip()
    folder = photo_folder()
    throughput = {}
    for name, model in MODELS.items():
        seconds, out = run(["--model", model, "--batch-size", "32", folder])
        lines = [l for l in out.splitlines() if "\t" in l]
        throughput[name] = {"images": len(lines), "seconds": seconds, "images_per_s": len(lines) / seconds}
    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "photo": photo, "photo_size": size,
           "cold_ms": {n: {"median": statistics.median(v), "min": min(v), "max": max(v), "runs": v}
                       for n, v in cold.items()},
           "answers": answers, "throughput": throughput, "threads": os.cpu_count()}
    lines = [f"# cd-predict by runtime — {res['date']}", "",
             f"Model: models/model.cdm from `make run` and its export models/model.onnx; {os.cpu_count()} cores.",
             f"Cold: `cd-predict --model M {os.path.relpath(photo, ROOT)}` ({size[0]}x{size[1]}), "
             f"{COLD_RUNS} runs each, interleaved. Throughput: one `cd-predict --batch-size 32` over "
             f"{IMAGES} photos.", "",
             "| runtime | cold median, ms | cold min–max, ms | images/s over 1,000 | answer |",
             "|---|---|---|---|---|"]
    for name in MODELS:
        c, t = res["cold_ms"][name], throughput[name]
        lines.append(f"| {name} | {c['median']:.0f} | {c['min']:.0f}–{c['max']:.0f} | "
                     f"{t['images_per_s']:.1f} | {answers[name].split(chr(9), 1)[-1].replace(chr(9), ' ')} |")
    onnx, cdm = (res["cold_ms"][n]["median"] for n in MODELS)
    lines += ["", f"Cold ratio cdm/onnx: {cdm / onnx:.1f}x."]
    os.makedirs(RESULTS, exist_ok=True)
    for ext, text in (("json", json.dumps(res, indent=2)), ("md", "\n".join(lines) + "\n")):
        tmp = os.path.join(RESULTS, f".runtimes.{ext}.tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, os.path.join(RESULTS, f"runtimes.{ext}"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
