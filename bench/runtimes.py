"""make bench, second part: cd-predict on each runtime, for the model `make run` trained.

- cold: one `cd-predict PHOTO` process per run, wall time from exec to exit and peak RSS, 20 runs
  per model, the models interleaved so machine noise falls on all alike; where the milliseconds
  went (cd-predict --log-level debug: before main, model load, first result);
- throughput: one `cd-predict` over 1,000 photos per model (batch 32), images per second;
- forward: the exported graph's forward pass alone at batch 1 and 32, on catdog's oneDNN runtime
  (bench_forward) and on ONNX Runtime (PyPI onnxruntime, CPU provider), the same threads,
  alternated for ROUNDS rounds.

The models: models/model.cdm in f32 (rewritten by cd-export --format cdm, which drops the INT8
calibration the pipeline's file carries; the oneDNN runtime), its export models/model.onnx (the
same runtime), the model file calibrated for INT8 on data/prepared/train.csv (cd-eval
--int8-model, as cd-train calibrates the pipeline's; the oneDNN runtime on 8-bit data), and the
same model file rewritten as format 2,
without its graph, which runs on LibTorch as every .cdm did before the oneDNN runtime: the
baseline, in the same run.

Writes bench/results/runtimes.{json,md}. BENCH_PHOTO picks the photo; by default the first
500-pixel-wide photo of ../shared/data/originals-sample, else a committed fixture."""
import glob
import json
import re
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from common import as_format_2  # noqa: E402  (the e2e suites' format-2 writer)
PREDICT = os.path.join(ROOT, "build", "bin", "cd-predict")
FORWARD = os.path.join(ROOT, "build", "bin", "bench_forward")
VENV_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
SHARED = os.path.abspath(os.path.join(ROOT, "..", "shared", "data"))
WORK = os.path.join(ROOT, "bench", "work", "runtimes")
RESULTS = os.path.join(ROOT, "bench", "results")
CDM = os.path.join(ROOT, "models", "model.cdm")
F32_CDM = os.path.join(ROOT, "bench", "work", "runtimes", "model-f32.cdm")
EXPORT = os.path.join(ROOT, "build", "bin", "cd-export")
ONNX = os.path.join(ROOT, "models", "model.onnx")
OLD_CDM = os.path.join(WORK, "model-format2.cdm")
INT8_CDM = os.path.join(WORK, "model-int8.cdm")
EVAL = os.path.join(ROOT, "build", "bin", "cd-eval")
PREPARED = os.path.join(ROOT, "data", "prepared")
MODELS = {"oneDNN (.cdm, f32)": F32_CDM, "oneDNN (.onnx)": ONNX, "oneDNN INT8 (.cdm, cd-eval --int8-model)": INT8_CDM,
          "LibTorch (.cdm of format 2)": OLD_CDM}
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
ROUNDS = int(os.environ.get("BENCH_FORWARD_ROUNDS", "3"))
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
        sorted(glob.glob(os.path.join(ROOT, "data", "sample", "images", "*.jpg")))
    if not source:
        sys.exit("runtimes: no photos found (../shared/data or data/sample)")
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        os.unlink(os.path.join(folder, name))
    for i in range(IMAGES):
        os.symlink(source[i % len(source)], os.path.join(folder, f"{i:04d}.jpg"))
    return folder


ORT_SCRIPT = r"""
import json, sys, time
import numpy as np
import onnxruntime as ort
path, threads, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
opts = ort.SessionOptions()
opts.intra_op_num_threads = threads
opts.inter_op_num_threads = 1
opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
t0 = time.perf_counter()
sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
inp = sess.get_inputs()[0]
side = inp.shape[2]
out = {"runtime": "onnxruntime " + ort.__version__, "threads": threads,
       "open_ms": (time.perf_counter() - t0) * 1000, "batches": {}}
rng = np.random.default_rng(7)
for batch in (1, 32):
    x = rng.standard_normal((batch, 3, side, side), dtype=np.float32)
    t = time.perf_counter()
    sess.run(None, {inp.name: x})
    first = (time.perf_counter() - t) * 1000
    per = []
    for _ in range(repeats):
        t = time.perf_counter()
        sess.run(None, {inp.name: x})
        per.append((time.perf_counter() - t) * 1000 / batch)
    per.sort()
    out["batches"][str(batch)] = {"first_run_ms": first, "median_ms_per_image": per[len(per) // 2],
                                  "min_ms_per_image": per[0], "max_ms_per_image": per[-1]}
print(json.dumps(out))
"""


# How OpenMP's idle threads wait: as a user's shell runs the tools (libgomp's default, a bounded
# spin), or PASSIVE (the Makefile's and the images' setting, which keeps idle threads off a core
# another process needs). Each primitive of a forward pass is one parallel region, so PASSIVE
# pays a thread wake-up per primitive.
WAITS = {"default": None, "PASSIVE": "PASSIVE"}
COLD_WAIT = os.environ.get("BENCH_COLD_WAIT", "default")


def env(wait=COLD_WAIT):
    e = dict(os.environ)
    e.pop("OMP_WAIT_POLICY", None)
    if WAITS[wait]:
        e["OMP_WAIT_POLICY"] = WAITS[wait]
    return e


def run(args):
    """One cd-predict process: (seconds from exec to exit, stdout)."""
    t0 = time.perf_counter()
    r = subprocess.run([PREDICT, *args, "--log-level", "warn"], capture_output=True, text=True, env=env())
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"runtimes: cd-predict {' '.join(args)} failed ({r.returncode}): {r.stderr[-1000:]}")
    return seconds, r.stdout


def cold_run(model, photo):
    """One cold call: wall ms, peak RSS MB (this child's own) and its debug timing line."""
    with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f:
        t0 = time.perf_counter()
        p = subprocess.Popen([PREDICT, "--model", model, photo, "--log-level", "debug"],
                             stdout=out_f, stderr=err_f, env=env())
        _, status, usage = os.wait4(p.pid, 0)  # files, not pipes: nothing to drain while waiting
        ms = (time.perf_counter() - t0) * 1000
        p.returncode = os.waitstatus_to_exitcode(status)
        out_f.seek(0)
        err_f.seek(0)
        out, err = out_f.read().decode(), err_f.read().decode()
    if p.returncode != 0:
        sys.exit(f"runtimes: cd-predict --model {model} {photo} failed: {err[-1000:]}")
    parts = {}
    m = re.search(r"timing ms: before main (\d+), options (\d+), model load (\d+) \(([\w-]+)\), "
                  r"first result (\d+)", err)
    if m:
        parts = {"before_main": int(m[1]), "options": int(m[2]), "model_load": int(m[3]),
                 "runtime": m[4], "first_result": int(m[5])}
    return ms, usage.ru_maxrss / 1024, out.strip(), parts


def forward_rounds():
    """bench_forward (oneDNN, each OpenMP wait) and ONNX Runtime on the exported graph, alternated."""
    if not os.access(FORWARD, os.X_OK):
        sys.exit(f"runtimes: {FORWARD} is missing; `make bench` builds it")
    if not os.access(VENV_PYTHON, os.X_OK):
        sys.exit(f"runtimes: {VENV_PYTHON} is missing; run `make deps`")
    ours = {f"oneDNN (catdog), OpenMP wait {w}": (ONNX, w) for w in WAITS}
    ours["oneDNN INT8 (catdog, the --int8-model file), OpenMP wait default"] = (INT8_CDM, "default")
    rounds = {name: [] for name in ours}
    rounds["ONNX Runtime"] = []
    for _ in range(ROUNDS):
        for name, (model, wait) in ours.items():
            r = subprocess.run([FORWARD, model, str(THREADS), "15"], capture_output=True, text=True,
                               env=env(wait))
            if r.returncode != 0:
                sys.exit(f"runtimes: bench_forward failed: {r.stderr[-1000:]}")
            rounds[name].append(json.loads(r.stdout))
        r = subprocess.run([VENV_PYTHON, "-c", ORT_SCRIPT, ONNX, str(THREADS), "15"], capture_output=True,
                           text=True, env=env())
        if r.returncode != 0:
            sys.exit(f"runtimes: onnxruntime failed: {r.stderr[-1000:]}")
        rounds["ONNX Runtime"].append(json.loads(r.stdout))
    summary = {}
    for name, runs in rounds.items():
        summary[name] = {b: statistics.median(run["batches"][b]["median_ms_per_image"] for run in runs)
                         for b in ("1", "32")}
        summary[name]["first_b1_ms"] = statistics.median(run["batches"]["1"]["first_run_ms"] for run in runs)
        summary[name]["open_ms"] = statistics.median(run["open_ms"] for run in runs)
    return rounds, summary


def main():
    for path in (CDM, ONNX):
        if not os.path.isfile(path):
            sys.exit(f"runtimes: {path} is missing; run `make run` first")
    os.makedirs(WORK, exist_ok=True)
    as_format_2(CDM, OLD_CDM)
    r = subprocess.run([EXPORT, "--model", CDM, "--format", "cdm", "--output", F32_CDM, "--log-level", "warn"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"runtimes: cd-export --format cdm failed: {r.stderr[-1000:]}")
    # The INT8 file a user would make: calibrated on the pipeline's training split.
    r = subprocess.run([EVAL, "--model", CDM, "--data", PREPARED, "--output", os.path.join(WORK, "eval-int8"),
                        "--int8-calibration", os.path.join(PREPARED, "train.csv"), "--int8-model", INT8_CDM,
                        "--log-level", "warn"], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"runtimes: cd-eval --int8-model failed: {r.stderr[-1000:]}")
    photo = pick_photo()
    size = jpeg_size(photo)
    cold = {name: [] for name in MODELS}
    rss = {name: [] for name in MODELS}
    parts = {name: [] for name in MODELS}
    answers = {}
    for _ in range(COLD_RUNS):
        for name, model in MODELS.items():
            ms, mb, out, where = cold_run(model, photo)
            cold[name].append(ms)
            rss[name].append(mb)
            parts[name].append(where)
            answers[name] = out
    folder = photo_folder()
    throughput = {}
    for name, model in MODELS.items():
        seconds, out = run(["--model", model, "--batch-size", "32", folder])
        lines = [l for l in out.splitlines() if "\t" in l]
        throughput[name] = {"images": len(lines), "seconds": seconds, "images_per_s": len(lines) / seconds}
    rounds, forward = forward_rounds()

    def median_part(name, key):
        values = [p[key] for p in parts[name] if key in p]
        return statistics.median(values) if values else float("nan")

    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "photo": photo, "photo_size": size,
           "cpus": os.cpu_count(), "threads": THREADS,
           "cold_ms": {n: {"median": statistics.median(v), "min": min(v), "max": max(v), "runs": v}
                       for n, v in cold.items()},
           "cold_peak_rss_mb": {n: statistics.median(v) for n, v in rss.items()},
           "cold_parts_ms": {n: {k: median_part(n, k) for k in ("before_main", "options", "model_load",
                                                               "first_result")} for n in MODELS},
           "answers": answers, "throughput": throughput, "forward": forward, "forward_rounds": rounds}
    lines = [f"# cd-predict by runtime — {res['date']}", "",
             f"Model: models/model.cdm from `make run`, its export models/model.onnx, the model file "
             f"calibrated for INT8 on data/prepared/train.csv (`cd-eval --int8-model`), and the model file "
             f"rewritten as format 2 (no graph: LibTorch, as every .cdm ran before); {os.cpu_count()} cores.",
             f"Cold: `cd-predict --model M {os.path.relpath(photo, ROOT)}` ({size[0]}x{size[1]}), "
             f"{COLD_RUNS} runs each, interleaved; the parts are cd-predict's own `--log-level debug` "
             f"timings (medians). Throughput: one `cd-predict --batch-size 32` over {IMAGES} photos.", "",
             "| model | cold median, ms | cold min–max, ms | before main | model load | first result "
             "| peak RSS, MB | images/s over 1,000 | answer |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in MODELS:
        c, t, p = res["cold_ms"][name], throughput[name], res["cold_parts_ms"][name]
        lines.append(f"| {name} | {c['median']:.0f} | {c['min']:.0f}–{c['max']:.0f} | {p['before_main']:.0f} "
                     f"| {p['model_load']:.0f} | {p['first_result']:.0f} | {res['cold_peak_rss_mb'][name]:.0f} "
                     f"| {t['images_per_s']:.1f} | {answers[name].split(chr(9), 1)[-1].replace(chr(9), ' ')} |")
    ort = forward["ONNX Runtime"]
    lines += ["", f"Cold runs with OpenMP wait {COLD_WAIT} (BENCH_COLD_WAIT).", "",
              f"Forward pass of models/model.onnx (INT8: the calibrated .cdm), {THREADS} threads, ms per "
              f"image (median over {ROUNDS} "
              f"alternated rounds of 15 runs each; `build/bin/bench_forward` against onnxruntime "
              f"{rounds['ONNX Runtime'][0]['runtime'].split()[-1]}, all graph optimisations, its own "
              f"spinning thread pool). First batch-1 run: the plan built, weights reordered, buffers "
              f"first touched. ORT/ours above 1: catdog's runtime is the faster.", "",
              "| runtime | batch 1 | batch 32 | first batch-1 run, ms | open, ms | ORT/ours b1 | ORT/ours b32 |",
              "|---|---|---|---|---|---|---|"]
    for name, f in forward.items():
        lines.append(f"| {name} | {f['1']:.2f} | {f['32']:.2f} | {f['first_b1_ms']:.0f} | {f['open_ms']:.0f} "
                     f"| {ort['1'] / f['1']:.2f} | {ort['32'] / f['32']:.2f} |")
    os.makedirs(RESULTS, exist_ok=True)
    for ext, text in (("json", json.dumps(res, indent=2)), ("md", "\n".join(lines) + "\n")):
        tmp = os.path.join(RESULTS, f".runtimes.{ext}.tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, os.path.join(RESULTS, f"runtimes.{ext}"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
