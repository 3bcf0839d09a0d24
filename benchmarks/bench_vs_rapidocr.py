"""End to end against the peer: DBPredictor and RapidOCR's TextDetector on the
same encoded images (decode, resize, model, post-processing), same settings,
boxes compared.

Models: every pretrained name of the model registry
(:data:`dbnet_fast.model.paddle.MODELS`: PP-OCRv4, and v5 / v6-small where
installed) against RapidOCR 1.4.4's ``TextDetector`` (onnxruntime + PaddleOCR's
DBPostProcess) on that model's ONNX file with its own settings; and DBNet-R18
(the checkpoint in DBF_BENCH_CHECKPOINT, else random weights) against its own
ONNX export run the PaddleOCR way: OpenCV decode and resize, NumPy
normalisation, onnxruntime, PaddleOCR's DBPostProcess. onnxruntime gets as
many intra-op threads as torch. DBPredictor loads every model itself (a name or
a checkpoint file), so it runs folded exactly as a user's does.

Variants: ``dbnet_fast`` (eager) and ``rapidocr`` (the baseline); the script
adds ``compile=True`` (timed after its first call).

As a script (the README's table, first-call cost included)::

    python benchmarks/bench_vs_rapidocr.py [--rounds 5] [--device cpu|cuda]

``--device cuda`` (scripts/gpu_check.sh): DBPredictor batch 1 and 16 against
onnxruntime-gpu's CUDA provider (when it loads; else the row says why) on the same
ONNX file, images/s; ``--device cuda --dry-run`` runs that table's code on the CPU
(onnxruntime's CPU provider, small images, one round). ``--json`` is rewritten
after every row, so a run stopped at a time limit keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import pytest
import torch

cv2 = pytest.importorskip("cv2")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
detect_utils = pytest.importorskip("rapidocr_onnxruntime.ch_ppocr_det.utils")
TextDetector = pytest.importorskip("rapidocr_onnxruntime.ch_ppocr_det.text_detect").TextDetector

from common import run  # noqa: E402
from dbnet_fast.assets import real_maps_path  # noqa: E402
from dbnet_fast.data.transforms import inference_size  # noqa: E402
from dbnet_fast.engine.checkpoint import (build_model, load_checkpoint,  # noqa: E402
                                          model_from_checkpoint, save_checkpoint)
from dbnet_fast.model.paddle import MODELS, default_onnx_path, is_installed  # noqa: E402
from dbnet_fast.predict import DBPredictor  # noqa: E402

R18 = "dbnet-r18"
CUDA_EP, CPU_EP = "CUDAExecutionProvider", "CPUExecutionProvider"
R18_POLICY = {"limit_side_len": 736, "limit_type": "short"}


def installed_models() -> list[str]:
    """The registry's names whose ONNX file is installed, then DBNet-R18."""
    return [name for name in MODELS if is_installed(name)] + [R18]


def encoded_images() -> list[np.ndarray]:
    """The four real images the package carries, as encoded bytes (decoding is timed)."""
    data = np.load(real_maps_path())
    return [data[f"image_{n}"] for n in data["names"]]


def decode(encoded: np.ndarray) -> np.ndarray:
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)


def settings(name: str) -> dict:
    if name == R18:
        return {**R18_POLICY, "thresh": 0.3, "box_thresh": 0.6, "unclip_ratio": 1.5}
    return dict(MODELS[name].settings)


def r18_checkpoint(folder: str) -> str:
    """DBNet-R18's checkpoint: DBF_BENCH_CHECKPOINT, else random weights (seed 0)
    written once into ``folder``."""
    given = os.environ.get("DBF_BENCH_CHECKPOINT")
    if given:
        return given
    path = os.path.join(folder, "dbnet_r18.pt")
    if not os.path.isfile(path):
        torch.manual_seed(0)
        save_checkpoint(path, build_model("resnet18").eval(), rng=False)
    return path


def predictor(name: str, device, folder: str, batch_size: int = 1,
              compile: bool = False, trim_memory: bool = True) -> DBPredictor:
    """DBPredictor loading ``name`` (or R18's checkpoint) itself, with the settings
    the peer gets."""
    cfg = settings(name)
    policy = {k: cfg.pop(k) for k in ("limit_side_len", "limit_type")}
    return DBPredictor(r18_checkpoint(folder) if name == R18 else name, device,
                       batch_size=batch_size, compile=compile, trim_memory=trim_memory,
                       postprocess=cfg, **policy)


def onnx_file(name: str, folder: str) -> str:
    if name != R18:
        return default_onnx_path(name)
    from dbnet_fast.export import export_onnx

    path = os.path.join(folder, "dbnet_r18.onnx")
    if not os.path.isfile(path):  # the model as trained: onnxruntime folds BatchNorm itself
        export_onnx(model_from_checkpoint(load_checkpoint(r18_checkpoint(folder))), path)
    return path


class _FixedLimitDetector(TextDetector):
    """RapidOCR's TextDetector with the model's resize limit as given: its own
    get_preprocess raises a ``max`` limit to 1500 / 2000 for large images."""

    def get_preprocess(self, max_wh):
        return detect_utils.DetPreProcess(self.limit_side_len, self.limit_type, self.mean,
                                          self.std)


def rapidocr_detector(name: str, onnx_path: str, provider: str = CPU_EP):
    """The peer's pipeline: images (BGR arrays) -> list of (N, 4, 2) boxes. Its
    ``provider`` attribute names the execution provider the session really runs
    on (onnxruntime falls back to the CPU when CUDA's does not load)."""
    cfg = settings(name)
    threads = torch.get_num_threads()
    if name != R18:
        detector = _FixedLimitDetector({
            "model_path": onnx_path, "use_cuda": provider == CUDA_EP,
            "intra_op_num_threads": threads,
            "limit_side_len": cfg["limit_side_len"], "limit_type": cfg["limit_type"],
            "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "thresh": cfg["thresh"],
            "box_thresh": cfg["box_thresh"], "unclip_ratio": cfg["unclip_ratio"],
            "use_dilation": cfg.get("use_dilation", False),
            "score_mode": cfg.get("score_mode", "fast"), "max_candidates": 1000})
        session = detector.infer.session

        def detect(image):
            return detector(image)[0]
    else:
        # DBNet-R18 takes ImageNet-normalised RGB, which TextDetector cannot express: the
        # same steps written out (resize as DBPredictor's policy, onnxruntime, DBPostProcess)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(onnx_path, options, providers=[provider])
        post = detect_utils.DBPostProcess(thresh=cfg["thresh"], box_thresh=cfg["box_thresh"],
                                          unclip_ratio=cfg["unclip_ratio"])
        mean = np.array([0.485, 0.456, 0.406], np.float32)
        std = np.array([0.229, 0.224, 0.225], np.float32)

        def detect(image):
            h, w = inference_size(*image.shape[:2], cfg["limit_side_len"], cfg["limit_type"])
            resized = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
            x = ((resized[:, :, ::-1].astype(np.float32) / 255 - mean) / std).transpose(2, 0, 1)
            prob = session.run(None, {session.get_inputs()[0].name: x[None]})[0]
            return post(prob, image.shape[:2])[0]

    detect.provider = session.get_providers()[0]
    return detect


def box_agreement(ours, theirs) -> tuple[int, int, float]:
    """(our box count, theirs, largest corner distance in px between matched boxes,
    each of ours matched to the nearest of theirs by centre)."""
    n_ours, n_theirs, worst = 0, 0, 0.0
    for a, b in zip(ours, theirs):
        a = np.asarray(a.boxes, np.float64).reshape(-1, 4, 2)
        b = np.asarray(b, np.float64).reshape(-1, 4, 2)
        n_ours, n_theirs = n_ours + len(a), n_theirs + len(b)
        if len(a) and len(b):
            centres = np.linalg.norm(a.mean(1)[:, None] - b.mean(1)[None], axis=2)
            match = b[centres.argmin(1)]
            # corner order may start elsewhere: the best of the four rotations
            worst = max(worst, max(min(np.abs(np.roll(m, k, 0) - q).max() for k in range(4))
                                   for q, m in zip(a, match)))
    return n_ours, n_theirs, worst


_cache: dict = {}


def _cached(key, make):
    if key not in _cache:
        _cache[key] = make()
    return _cache[key]


# compiled inference is left to the script (its first call takes minutes on 2 cores)
@pytest.mark.parametrize("variant", ["dbnet_fast", "rapidocr"])
@pytest.mark.parametrize("name", installed_models())
@pytest.mark.parametrize("device", ["cpu"])  # named so that report.py --device selects it
def bench_vs_rapidocr(benchmark, device, name, variant, tmp_path_factory):
    encoded = encoded_images()
    folder = str(tmp_path_factory.getbasetemp())
    if variant == "rapidocr":
        detect = _cached((name, "rapidocr"),
                         lambda: rapidocr_detector(name, onnx_file(name, folder)))
        step, role = (lambda: [detect(decode(e)) for e in encoded]), "baseline"
    else:
        pred = _cached((name, variant), lambda: predictor(name, device, folder))
        step, role = (lambda: [pred(decode(e))[0] for e in encoded]), "ours"
    group = (f"end to end vs RapidOCR TextDetector, {name}, 4 real images, {device}, "
             f"{torch.get_num_threads()} threads, {cpu_capability()}")
    run(benchmark, step, device=device, op="vs_rapidocr", variant=variant, role=role, group=group)


def cpu_capability() -> str:
    """The SIMD level torch dispatches to (ATEN_CPU_CAPABILITY emulates a lower one)."""
    return torch.backends.cpu.get_cpu_capability()


# --------------------------------------------------------------------------- script


def _median_seconds(step, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cpu_table(rounds: int, models: list[str], emit, trim_memory: bool = True) -> None:
    """Per model: first call and median pass (4 images) of each variant, in one run
    (``trim_memory``: DBPredictor's; False for the whole run, since the heap is shared)."""
    encoded = encoded_images()
    with tempfile.TemporaryDirectory() as folder:
        for name in models:
            detect = rapidocr_detector(name, onnx_file(name, folder))
            eager = predictor(name, "cpu", folder, trim_memory=trim_memory)
            compiled = predictor(name, "cpu", folder, compile=True, trim_memory=trim_memory)
            steps = {"rapidocr": lambda: [detect(decode(e)) for e in encoded],
                     "eager": lambda: [eager(decode(e))[0] for e in encoded],
                     "compiled": lambda: [compiled(decode(e))[0] for e in encoded]}
            first = {}
            for key, step in steps.items():
                start = time.perf_counter()
                step()
                first[key] = time.perf_counter() - start
            medians = {key: [] for key in steps}
            for _ in range(rounds):  # interleaved, so a change of load falls on all three
                for key, step in steps.items():
                    medians[key].append(_median_seconds(step, 1))
            medians = {key: statistics.median(v) for key, v in medians.items()}
            found = box_agreement(steps["eager"](), steps["rapidocr"]())
            emit({"model": name, "trim_memory": trim_memory, "first_s": first, "median_s": medians,
                  "boxes_ours": found[0], "boxes_rapidocr": found[1],
                  "max_corner_px": round(found[2], 2),
                  "speedup_eager": medians["rapidocr"] / medians["eager"],
                  "speedup_compiled": medians["rapidocr"] / medians["compiled"]})


def batch_sets(scale: float = 1.0) -> dict[str, list[np.ndarray]]:
    """The 16 images of the batch table two ways: ``mixed`` (the four real images,
    each at four scales: 16 input shapes, as PaddleOCR users run the CUDA provider)
    and the same 16 resized to one square (``960x960`` at scale 1), so that batches
    of 16 can form."""
    mixed = [cv2.resize(decode(e), None, fx=s * scale, fy=s * scale)
             for e in encoded_images() for s in (0.6, 0.8, 1.0, 1.3)]
    side = 32 * max(1, round(960 * scale / 32))
    return {"mixed": mixed, f"{side}x{side}": [cv2.resize(i, (side, side)) for i in mixed]}


def onnxruntime_peer(name: str, folder: str, provider: str):
    """``(detect, None)``: the peer on ``provider``; or ``(None, why it cannot run
    there)``, so that DBPredictor's rows are still measured."""
    if provider not in ort.get_available_providers():
        return None, (f"{provider} not in onnxruntime {ort.__version__} "
                      f"(onnxruntime-gpu not installed)")
    try:
        if provider == CUDA_EP and hasattr(ort, "preload_dlls"):
            ort.preload_dlls()  # CUDA and cuDNN from the nvidia-* packages beside torch
        detect = rapidocr_detector(name, onnx_file(name, folder), provider)
    except Exception as error:  # noqa: BLE001 - recorded in the row
        return None, f"{provider} failed: {type(error).__name__}: {error}"
    if detect.provider != provider:
        return None, f"{provider} did not load; the session fell back to {detect.provider}"
    return detect, None


def _throughput(step, count: int, rounds: int) -> dict:
    """The first pass's seconds (cuDNN's searches for new shapes fall there) and
    images/s of the median pass after it."""
    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    return {"first_s": first, "images_per_s": count / _median_seconds(step, rounds)}


def gpu_table(rounds: int, models: list[str], emit, device: str = "cuda",
              scale: float = 1.0) -> None:
    """DBPredictor batch 1 and 16 on ``device`` against onnxruntime on the same ONNX
    file (its CUDA provider on CUDA), on each image set of :func:`batch_sets`.
    ``device="cpu"`` with a small ``scale`` is gpu_check.sh's dry run: the same code,
    onnxruntime's CPU provider."""
    provider = CUDA_EP if device == "cuda" else CPU_EP
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    where = torch.cuda.get_device_name() if device == "cuda" else device
    sets = batch_sets(scale)
    with tempfile.TemporaryDirectory() as folder:
        for name in models:
            preds = {batch: predictor(name, device, folder, batch_size=batch) for batch in (1, 16)}
            peer, why_not = onnxruntime_peer(name, folder, provider)
            for label, images in sets.items():
                row = {"model": name, "images": label, "count": len(images), "device": where,
                       "onnxruntime": why_not or provider}
                for batch, pred in preds.items():
                    row[f"dbnet_fast_batch{batch}"] = _throughput(
                        lambda: (pred(images), sync()), len(images), rounds)
                if peer is not None:
                    row["onnxruntime_batch1"] = _throughput(
                        lambda: [peer(i) for i in images], len(images), rounds)
                emit(row)


def write_folder(folder: str, count: int) -> list[str]:
    """``count`` JPEGs of mixed sizes (the real images at random scales 0.4-2.5)."""
    rng = np.random.default_rng(0)
    originals = [decode(e) for e in encoded_images()]
    paths = []
    for i in range(count):
        image = originals[i % len(originals)]
        scale = float(np.exp(rng.uniform(np.log(0.4), np.log(2.5))))
        path = os.path.join(folder, f"image_{i:04d}.jpg")
        cv2.imwrite(path, cv2.resize(image, None, fx=scale, fy=scale))
        paths.append(path)
    return paths


def folder_table(count: int, models: list[str], emit, trim_memory: bool = True) -> None:
    """``dbnet-fast detect`` (2 reading workers, JSON only) against RapidOCR's
    detector reading and running the same files one by one; images/s."""
    from dbnet_fast.engine.detect import detect_files

    with tempfile.TemporaryDirectory() as folder:
        images = os.path.join(folder, "images")
        os.makedirs(images)
        paths = write_folder(images, count)
        for name in [m for m in models if m != R18]:  # detect loads models by name
            detect = rapidocr_detector(name, onnx_file(name, folder))
            start = time.perf_counter()
            for path in paths:
                detect(cv2.imread(path))
            peer = time.perf_counter() - start
            result = detect_files([images], os.path.join(folder, f"out-{name}"), name,
                                  device="cpu", pictures=False, workers=2, progress=False,
                                  trim_memory=trim_memory)
            ours = result["seconds"]
            emit({"model": name, "images": count, "failed": result["failed"],
                  "trim_memory": trim_memory,
                  "dbnet_fast_images_per_s": count / ours,
                  "rapidocr_images_per_s": count / peer, "speedup": peer / ours})


def recorder(path: str | None):
    """``emit(row)``: prints the row and rewrites ``path`` (atomically) with every
    row so far."""
    rows = []

    def emit(row: dict) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)
        if path:
            tmp = f"{path}.tmp"
            with open(tmp, "w") as out:
                json.dump({"cpu_capability": cpu_capability(), "threads": torch.get_num_threads(),
                           "rows": rows}, out, indent=1)
            os.replace(tmp, path)

    return emit


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--json", help="write the rows to this file")
    parser.add_argument("--models", nargs="+", choices=installed_models(),
                        default=installed_models())
    parser.add_argument("--folder", type=int, metavar="N",
                        help="instead: dbnet-fast detect over a folder of N mixed-size images "
                        "against RapidOCR looping over the same files, images/s")
    parser.add_argument("--keep-memory", action="store_true",
                        help="DBPredictor(trim_memory=False) / detect --keep-memory for the whole "
                        "run (CPU tables)")
    parser.add_argument("--dry-run", action="store_true",
                        help="with --device cuda: that table's code on the CPU (onnxruntime's "
                        "CPU provider), small images, one round (scripts/gpu_check.sh --dry-run)")
    args = parser.parse_args(argv)
    if args.dry_run and (args.device != "cuda" or args.folder):
        parser.error("--dry-run goes with --device cuda")
    if args.device == "cuda" and not args.dry_run and not torch.cuda.is_available():
        print("bench_vs_rapidocr: --device cuda needs a CUDA device", file=sys.stderr)
        return 2
    print(f"CPU capability {cpu_capability()}, {torch.get_num_threads()} threads", flush=True)
    emit = recorder(args.json)
    if args.folder:
        folder_table(args.folder, args.models, emit, trim_memory=not args.keep_memory)
    elif args.device == "cpu":
        cpu_table(args.rounds, args.models, emit, trim_memory=not args.keep_memory)
    elif args.dry_run:
        gpu_table(1, args.models, emit, device="cpu", scale=0.15)
    else:
        gpu_table(args.rounds, args.models, emit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
