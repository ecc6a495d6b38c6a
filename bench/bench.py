"""make bench: catdog against the Python stack a user would run instead, side by side in one run.
Prediction and serving run the default model `make run` wrote (models/model.cdm, and its export
models/model.onnx) against the exported graph on ONNX Runtime behind FastAPI + uvicorn
(peers/ort_peer.py); training runs against PyTorch from Python (peers/train_peer.py).
models/model.cdm is served as cd-serve serves it: in INT8 when it carries its calibration, as the
pipeline's does since 2026-12-07; the export, and so the peer, is f32.
BENCH_PARTS=predict,serving leaves out the training rows. Writes bench/results/latest.{json,md}."""
import csv
import json
import os
import platform
import random
import re
import shutil
import statistics
import struct
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.path.join(ROOT, "build", "bin")
PEERS = os.path.join(ROOT, "bench", "peers")
WORK = os.path.join(ROOT, "bench", "work", "bench")
RESULTS = os.path.join(ROOT, "bench", "results")
PY = "/usr/bin/python3"  # Debian's, which sees python3-torch (the training peer)
VENV_PY = os.path.join(ROOT, ".venv", "bin", "python")  # onnxruntime, fastapi, uvicorn, pillow (the ORT peer)
DEFAULT_MODEL = os.path.join(ROOT, "models", "model.cdm")
DEFAULT_ONNX = os.path.join(ROOT, "models", "model.onnx")
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from common import as_format_2  # noqa: E402

PARTS = set(os.environ.get("BENCH_PARTS", "predict,serving,training").split(","))
FULL = os.path.abspath(os.path.join(ROOT, "..", "shared", "data", "dogs-vs-cats-200", "train"))
DARKNET = os.path.join(ROOT, "data", "pretrained", "darknet-tiny-imagenet")
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
TUNED = {"MALLOC_MMAP_THRESHOLD_": "1073741824", "MALLOC_TRIM_THRESHOLD_": "1073741824", "OMP_WAIT_POLICY": "PASSIVE"}
SHIPPED = {k: "" for k in TUNED}
# Ours: each tool's own allocator profile (MemoryProfile in core/util/errors.h), no MALLOC_* override.
OURS = {"MALLOC_MMAP_THRESHOLD_": "", "MALLOC_TRIM_THRESHOLD_": "", "MALLOC_ARENA_MAX": "", "OMP_WAIT_POLICY": "PASSIVE"}
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
STAGES = ("queue", "decode", "preprocess", "forward", "respond")


def env(extra):
    e = dict(os.environ)
    for k, v in extra.items():
        if v:
            e[k] = v
        else:
            e.pop(k, None)
    e["PEER_THREADS"] = str(THREADS)
    e["PYTHONPATH"] = PEERS
    return e


def sh(args, extra=OURS, **kw):
    r = subprocess.run(args, env=env(extra), capture_output=True, text=True, **kw)
    if r.returncode not in (0, 3):
        raise RuntimeError(f"{args[0]} failed ({r.returncode}): {r.stderr[-2000:]}")
    return r


def timed(args, extra=OURS):
    """Wall seconds and peak RSS (KB) of one run."""
    t0 = time.perf_counter()
    r = sh(["/usr/bin/time", "-f", "RSS=%M", *args], extra)
    seconds = time.perf_counter() - t0
    rss = int(re.search(r"RSS=(\d+)", r.stderr).group(1))
    return seconds, rss, r


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def prepare_data():
    src = FULL if os.path.isdir(FULL) else os.path.join(ROOT, "data", "sample", "images")
    prepared = os.path.join(WORK, "prepared")
    sh([f"{BIN}/cd-prepare", "--source", src, "--output", prepared, "--log-level", "warn"])
    sub = os.path.join(WORK, "train2000")
    os.makedirs(sub, exist_ok=True)
    for split, n in (("train", 2000), ("val", 64)):
        with open(os.path.join(prepared, f"{split}.csv")) as f:
            rows = list(csv.reader(f))
        body = rows[1:]
        random.Random(42).shuffle(body)  # manifests are sorted by path: cats first
        with open(os.path.join(sub, f"{split}.csv"), "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(rows[0])
            for path, label in body[:n]:
                w.writerow([os.path.relpath(os.path.normpath(os.path.join(prepared, path)), sub), label])
    images = os.path.join(WORK, "images1000")
    if not os.path.isdir(images):
        os.makedirs(images)
        with open(os.path.join(prepared, "test.csv")) as f:
            rows = list(csv.reader(f))[1:]
        random.Random(7).shuffle(rows)
        # 1,000 photos: the full data's test split has them; the sample's 40 are repeated.
        rows = (rows * (1000 // max(1, len(rows)) + 1))[:1000]
        for i, (path, _label) in enumerate(rows):
            os.symlink(os.path.normpath(os.path.join(prepared, path)), os.path.join(images, f"{i:04d}.jpg"))
    return src, sub, images


def cdm_meta(path):
    """The JSON metadata block of a catdog model file (magic, version, kind, length, JSON)."""
    with open(path, "rb") as f:
        head = f.read(24)
        (length,) = struct.unpack("<Q", head[16:24])
        meta = json.loads(f.read(length))
    return {k: meta.get(k) for k in ("architecture", "input_size", "second_input_size", "tta_flip", "format_version")}


def make_model(name, data, *args):
    out = os.path.join(WORK, name)
    sh([f"{BIN}/cd-train", "--config", "/dev/null", "--data", data, "--output", out, "--metrics", f"{out}/t.json",
        "--live", f"{out}/live", "--epochs", "1", "--max-train-images", "64", "--threads", str(THREADS), "--log-level", "warn", *args])
    return os.path.join(out, "model.cdm")


def bench_training(data, models):
    rows = {}
    specs = {"baseline@224": (["--architecture", "baseline", "--input-size", "224", "--epochs", "1", "--batch-size", "32",
                               "--log-level", "warn"], models["baseline"], "full"),
             "darknet frozen-rich@288 (default), feature extraction": (
                 ["--architecture", "darknet", "--pretrained", DARKNET, "--input-size", "288", "--mode", "frozen",
                  "--features", "rich", "--frozen-views", "2", "--batch-size", "256", "--epochs", "20", "--log-level", "info"],
                 models["darknet"], "frozen")}
    for name, (args, like, mode) in specs.items():
        log(f"training {name}: ours")
        out = os.path.join(WORK, "train-" + name.split("@")[0])
        wall, rss, r = timed([f"{BIN}/cd-train", "--config", "/dev/null", "--data", data, "--output", out,
                              "--metrics", f"{out}/t.json", "--live", f"{out}/live", "--threads", str(THREADS), *args])
        if mode == "frozen":  # the backbone pass is the work; the head takes well under a second
            ours = float(re.search(r"frozen backbone: \d+ feature rows of \d+ in [\d.]+s \(([\d.]+) img/s\)", r.stderr).group(1))
        else:
            ours = json.load(open(f"{out}/t.json"))["images_per_second"]
        peer = {}
        for label, extra in (("as shipped", SHIPPED), ("same allocator settings", TUNED)):
            log(f"training {name}: Python peer, {label}")
            pwall, prss, r = timed([PY, f"{PEERS}/train_peer.py", "--train", f"{data}/train.csv", "--like", like,
                                    "--mode", mode, "--threads", str(THREADS), "--workers", "1"], extra)
            peer[label] = {"images_per_second": json.loads(r.stdout)["images_per_second"], "wall_s": pwall, "rss_kb": prss}
        rows[name] = {"ours": {"images_per_second": ours, "wall_s": wall, "rss_kb": rss}, "peer": peer,
                      "ratio": ours / peer["same allocator settings"]["images_per_second"]}
    return rows


def bench_predict(model, onnx, images, repeats=7):
    """cd-predict on the model file against ort_peer.py on its export: one image from cold, then 1000."""
    one = os.path.join(images, "0000.jpg")
    out = {}
    for side, args, extra in (("ours", [f"{BIN}/cd-predict", "--model", model, one], OURS),
                              ("peer", [VENV_PY, f"{PEERS}/ort_peer.py", onnx, one], TUNED)):
        runs = [timed(args, extra) for _ in range(repeats + 1)]
        out[side] = {"cold_s": runs[0][0], "warm_median_s": statistics.median(r[0] for r in runs[1:]),
                     "rss_kb": max(r[1] for r in runs)}
    log("batch prediction over 1000 images")
    labels = {}
    for side, args, extra in (("ours", [f"{BIN}/cd-predict", "--model", model, images], OURS),
                              ("peer", [VENV_PY, f"{PEERS}/ort_peer.py", onnx, images], TUNED)):
        runs = [timed(args, extra) for _ in range(3)]
        wall = statistics.median(r[0] for r in runs)
        out[side]["batch1000_images_per_s"] = 1000 / wall
        out[side]["batch1000_rss_kb"] = max(r[1] for r in runs)
        labels[side] = [line.split("\t")[1] for line in runs[0][2].stdout.splitlines()]
    agree = sum(a == b for a, b in zip(labels["ours"], labels["peer"])) / max(1, len(labels["ours"]))
    out["label_agreement"] = agree
    out["cold_ratio"] = out["ours"]["cold_s"] / out["peer"]["cold_s"]
    out["batch_ratio"] = out["ours"]["batch1000_images_per_s"] / out["peer"]["batch1000_images_per_s"]
    return out


def wait_http(url, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} never answered")


def parse_wrk(text):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", text, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {"requests_per_s": rps, "p50_ms": pct(50), "p99_ms": pct(99), "non_2xx": int(errors.group(1)) if errors else 0}


def vm_hwm(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))


def stage_totals(port):
    """(sum seconds, count) per stage from cd-serve's catdog_stage_duration_seconds histogram."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for stage in STAGES:
        total = re.search(rf'^catdog_stage_duration_seconds_sum{{stage="{stage}"}} (\S+)$', text, re.M)
        count = re.search(rf'^catdog_stage_duration_seconds_count{{stage="{stage}"}} (\S+)$', text, re.M)
        out[stage] = (float(total.group(1)) if total else 0.0, float(count.group(1)) if count else 0.0)
    return out


def summarise(runs):
    """Median and spread (min, max) of each wrk figure over the repeats of one level."""
    out = {"runs": runs, "non_2xx": sum(r["non_2xx"] for r in runs)}
    for key in ("requests_per_s", "p50_ms", "p99_ms"):
        values = [r[key] for r in runs]
        out[key] = statistics.median(values)
        out[key + "_spread"] = [min(values), max(values)]
    return out


def bench_serving(model, onnx, image, seconds=8):
    """Each level REPEATS times against one running server: median and spread; for ours also the
    mean time per image in each stage (from /metrics) over all repeats of the level. Three servers:
    cd-serve on the oneDNN runtime (ours), cd-serve on the same model rewritten as format 2 (the
    LibTorch module every .cdm ran on before the runtime: 'libtorch'), and the FastAPI peer."""
    out = {}
    port = 18900
    format2 = os.path.join(WORK, "model-format2.cdm")
    as_format_2(model, format2)
    cd_serve = lambda m, p: [f"{BIN}/cd-serve", "--model", m, "--host", "127.0.0.1", "--port", str(p),
                             "--log-level", "warn", "--threads", str(THREADS)]
    servers = {
        "ours": (cd_serve(model, port), OURS, model, port),
        "libtorch": (cd_serve(format2, port + 2), OURS, format2, port + 2),
        "peer": ([VENV_PY, "-m", "uvicorn", "--factory", "ort_peer:create_app", "--host", "127.0.0.1",
                  "--port", str(port + 1), "--log-level", "warning", "--app-dir", PEERS], TUNED, onnx, port + 1),
    }
    for side, (args, extra, served, p) in servers.items():
        e = env(extra)
        e["CD_MODEL"] = served
        proc = subprocess.Popen(args, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        catdog = side != "peer"
        try:
            wait_http(f"http://127.0.0.1:{p}/health")
            if catdog:
                wait_http(f"http://127.0.0.1:{p}/ready")
            out[side] = {}
            for clients in (1, 16, 64):
                runs = []
                before = stage_totals(p) if catdog else None
                for rep in range(REPEATS):
                    log(f"serving {side}: {clients} clients, run {rep + 1} of {REPEATS}")
                    r = subprocess.run(["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--latency", "--timeout", "30s",
                                        "-s", os.path.join(ROOT, "bench", "multipart.lua"),
                                        f"http://127.0.0.1:{p}/predict"], env=dict(os.environ, BENCH_IMAGE=image),
                                       capture_output=True, text=True, check=True)
                    run = parse_wrk(r.stdout)
                    run["wrk_errors"] = wrk_errors(r.stdout)
                    runs.append(run)
                level = summarise(runs)
                level["wrk_errors"] = sum(r["wrk_errors"] for r in runs)
                if catdog:
                    time.sleep(0.5)  # the last responses' respond stage is recorded after their write
                    after = stage_totals(p)
                    level["stage_ms"] = {s: 1000 * (after[s][0] - before[s][0]) / max(1.0, after[s][1] - before[s][1])
                                         for s in STAGES}
                out[side][str(clients)] = level
            out[side]["peak_rss_kb"] = vm_hwm(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    out["ratio_rps_16"] = out["ours"]["16"]["requests_per_s"] / out["peer"]["16"]["requests_per_s"]
    out["ratio_p99_16"] = out["ours"]["16"]["p99_ms"] / out["peer"]["16"]["p99_ms"]
    out["ratio_rss"] = out["ours"]["peak_rss_kb"] / out["peer"]["peak_rss_kb"]
    out["ratio_rps_16_libtorch"] = out["ours"]["16"]["requests_per_s"] / out["libtorch"]["16"]["requests_per_s"]
    return out


def wrk_errors(text):
    """wrk's socket errors (connect, read, write, timeout), 0 when it printed none."""
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return sum(int(g) for g in m.groups()) if m else 0


def markdown(res):
    m = res["model"]
    lines = [f"# make bench — {res['date']}", "",
             f"{res['cpu']}, {res['threads']} threads; data: {res['data']}. Ours ran with each tool's own allocator",
             "profile (no MALLOC_* variables; OMP_WAIT_POLICY=PASSIVE). The peers ran with the settings of PERF-NOTES.md",
             "(MALLOC_MMAP/TRIM_THRESHOLD_ 1 GiB, OMP_WAIT_POLICY=PASSIVE) unless marked 'as shipped'.", "",
             f"Prediction and serving: the default model `make run` wrote ({m['meta']['architecture']} at "
             f"{m['meta']['input_size']}), `{m['ours']}` for catdog; the peer is its export `{m['peer']}` on ONNX Runtime "
             "(PyPI onnxruntime, the same threads) with Pillow, behind FastAPI + uvicorn (bench/peers/ort_peer.py). "
             "Training: Debian's python3-torch 1.13 (the same LibTorch build).", "",
             "| measure | catdog | Python peer | ratio (ours/peer) |", "|---|---|---|---|"]
    for name, t in res.get("training", {}).items():
        p = t["peer"]
        lines.append(f"| train img/s, {name} | {t['ours']['images_per_second']:.1f} | "
                     f"{p['same allocator settings']['images_per_second']:.1f} (as shipped {p['as shipped']['images_per_second']:.1f}) | "
                     f"{t['ratio']:.2f}× |")
    pr = res["predict"]
    lines += [f"| predict 1 image from cold, s | {pr['ours']['cold_s']:.3f} | {pr['peer']['cold_s']:.3f} | {pr['cold_ratio']:.2f} |",
              f"| predict 1 image warm (median), s | {pr['ours']['warm_median_s']:.3f} | {pr['peer']['warm_median_s']:.3f} | "
              f"{pr['ours']['warm_median_s'] / pr['peer']['warm_median_s']:.2f} |",
              f"| predict 1000 images, img/s | {pr['ours']['batch1000_images_per_s']:.1f} | {pr['peer']['batch1000_images_per_s']:.1f} | {pr['batch_ratio']:.2f}× |",
              f"| predict peak RSS, MB | {pr['ours']['batch1000_rss_kb'] / 1024:.0f} | {pr['peer']['batch1000_rss_kb'] / 1024:.0f} | |"]
    sv = res["serving"]
    for c in ("1", "16", "64"):
        o, p = sv["ours"][c], sv["peer"][c]
        lines.append(f"| serve {c} clients: req/s · p50 · p99 ms (median of {res['repeats']}) | {o['requests_per_s']:.1f} · {o['p50_ms']:.1f} · {o['p99_ms']:.1f} | "
                     f"{p['requests_per_s']:.1f} · {p['p50_ms']:.1f} · {p['p99_ms']:.1f} | {o['requests_per_s'] / p['requests_per_s']:.2f}× rps |")
    lines.append(f"| serve peak RSS, MB | {sv['ours']['peak_rss_kb'] / 1024:.0f} | {sv['peer']['peak_rss_kb'] / 1024:.0f} | {sv['ratio_rss']:.2f} |")
    lines += ["", f"Predictions agree on {pr['label_agreement'] * 100:.1f}% of the 1000 images.", "",
              f"## Serving: {res['repeats']} runs of 8 s per level, median (min–max)", "",
              "Capacity ratio: cd-serve's req/s over cd-predict's images/s on 1000 images, same model, same run.", "",
              "'LibTorch': cd-serve on the same model rewritten as format 2, which runs on the LibTorch module as every "
              ".cdm did before the oneDNN runtime.", "",
              "| clients | catdog req/s | p50 ms | p99 ms | LibTorch req/s | LibTorch p99 ms | peer req/s | peer p99 ms "
              "| capacity ratio | non-2xx (ours/LibTorch/peer) | wrk errors (ours/LibTorch/peer) |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    span = lambda d, k: f"{d[k]:.1f} ({d[k + '_spread'][0]:.1f}–{d[k + '_spread'][1]:.1f})"
    for c in ("1", "16", "64"):
        o, p = sv["ours"][c], sv["peer"][c]
        t = sv["libtorch"][c]
        lines.append(f"| {c} | {span(o, 'requests_per_s')} | {span(o, 'p50_ms')} | {span(o, 'p99_ms')} | "
                     f"{span(t, 'requests_per_s')} | {span(t, 'p99_ms')} | "
                     f"{span(p, 'requests_per_s')} | {span(p, 'p99_ms')} | {res['capacity'][c]:.2f} | "
                     f"{o['non_2xx']}/{t['non_2xx']}/{p['non_2xx']} | {o['wrk_errors']}/{t['wrk_errors']}/{p['wrk_errors']} |")
    lines += ["", f"p99 at 16 clients, ours/peer: {sv['ratio_p99_16']:.2f}. req/s at 16 clients, ours/LibTorch: "
              f"{sv['ratio_rps_16_libtorch']:.2f}. Peak RSS over the whole serving run, ours/peer: {sv['ratio_rss']:.2f} "
              f"(ours {sv['ours']['peak_rss_kb'] / 1024:.0f} MB, LibTorch {sv['libtorch']['peak_rss_kb'] / 1024:.0f} MB).", "",
              "Where each image's time goes in cd-serve (ms, mean over the level; catdog_stage_duration_seconds). "
              "forward is its batch's whole pass; queue includes waiting for admission:", "",
              "| clients | " + " | ".join(STAGES) + " |", "|---" * (len(STAGES) + 1) + "|"]
    for c in ("1", "16", "64"):
        st = sv["ours"][c]["stage_ms"]
        lines.append(f"| {c} | " + " | ".join(f"{st[s]:.2f}" for s in STAGES) + " |")
    lines += ["",
              "## Compute floor", "", f"Matmul peak (2048², {res['floor']['threads']} threads, OpenBLAS as configured here): "
              f"{res['floor']['matmul_gflops_per_s']:.0f} GFLOP/s. PERF-NOTES.md measured ~440 GFLOP/s for an FMA loop on 2 cores "
              "and 370-409 for oneDNN 3x3 convs; OPENBLAS_CORETYPE=Haswell halves OpenBLAS here, which is why convolutions "
              "(oneDNN) can exceed the matmul figure.", "",
              "Inference cost per image (BN folded, channels-last), with and without the mirrored second look (TTA):", "",
              "| architecture | input | forward GFLOP/img | inference img/s (batch 32) | GFLOP/s | of peak "
              "| ms/img b1 | ms/img b1 TTA | ms/img b32 | ms/img b32 TTA |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, a in res["floor"]["architectures"].items():
        lines.append(f"| {name} | {a['input']} | {a['forward_gflops_per_image']:.3f} | {a['inference_images_per_s_batch32']:.1f} | "
                     f"{a['inference_gflops_per_s']:.0f} | {a['fraction_of_matmul_peak'] * 100:.0f}% "
                     f"| {a['ms_per_image_batch1']:.1f} | {a['ms_per_image_batch1_tta']:.1f} "
                     f"| {a['ms_per_image_batch32']:.1f} | {a['ms_per_image_batch32_tta']:.1f} |")
    return "\n".join(lines) + "\n"


def main():
    os.makedirs(WORK, exist_ok=True)
    os.makedirs(RESULTS, exist_ok=True)
    started = time.time()
    if not (os.path.isfile(DEFAULT_MODEL) and os.path.isfile(DEFAULT_ONNX)):
        sys.exit("bench: models/model.cdm and models/model.onnx are missing; run `make run` first")
    src, data, images = prepare_data()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu, "threads": THREADS,
           "data": "2,000 images of " + ("../shared/data/dogs-vs-cats-200" if src == FULL else "the committed sample")}
    log("compute floor")
    res["floor"] = json.loads(sh([os.path.join(BIN, "bench_floor"), os.path.join(ROOT, "data", "pretrained"), str(THREADS)]).stdout)
    res["model"] = {"ours": os.path.relpath(DEFAULT_MODEL, ROOT), "peer": os.path.relpath(DEFAULT_ONNX, ROOT),
                    "meta": cdm_meta(DEFAULT_MODEL)}
    log("prediction")
    res["predict"] = bench_predict(DEFAULT_MODEL, DEFAULT_ONNX, images)
    log("serving")
    res["serving"] = bench_serving(DEFAULT_MODEL, DEFAULT_ONNX, os.path.join(images, "0000.jpg"))
    res["repeats"] = REPEATS
    res["capacity"] = {c: res["serving"]["ours"][c]["requests_per_s"] / res["predict"]["ours"]["batch1000_images_per_s"]
                       for c in ("1", "16", "64")}
    if "training" in PARTS:
        log("reference models")
        models = {"baseline": make_model("ref-baseline", data, "--architecture", "baseline", "--input-size", "224"),
                  "darknet": make_model("ref-darknet", data, "--architecture", "darknet", "--pretrained", DARKNET,
                                        "--input-size", "288", "--mode", "frozen", "--features", "rich", "--frozen-views", "1")}
        res["training"] = bench_training(data, models)
    res["total_s"] = time.time() - started
    with open(os.path.join(RESULTS, "latest.json"), "w") as f:
        json.dump(res, f, indent=2)
    md = markdown(res)
    with open(os.path.join(RESULTS, "latest.md"), "w") as f:
        f.write(md)
    print(md)
    log(f"done in {res['total_s']:.0f} s")


if __name__ == "__main__":
    main()
