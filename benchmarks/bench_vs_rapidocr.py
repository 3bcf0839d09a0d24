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
onnxruntime-gpu's CUDA provider (when installed) on the same ONNX file, images/s.
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
              compile: bool = False) -> DBPredictor:
    """DBPredictor loading ``name`` (or R18's checkpoint) itself, with the settings
    the peer gets."""
    cfg = settings(name)
    policy = {k: cfg.pop(k) for k in ("limit_side_len", "limit_type")}
    return DBPredictor(r18_checkpoint(folder) if name == R18 else name, device,
                       batch_size=batch_size, compile=compile, postprocess=cfg, **policy)


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


def rapidocr_detector(name: str, onnx_path: str, device: str = "cpu"):
    """The peer's pipeline: images (BGR arrays) -> list of (N, 4, 2) boxes."""
    cfg = settings(name)
    threads = torch.get_num_threads()
    if name != R18:
        detector = _FixedLimitDetector({
            "model_path": onnx_path, "use_cuda": device == "cuda", "intra_op_num_threads": threads,
            "limit_side_len": cfg["limit_side_len"], "limit_type": cfg["limit_type"],
            "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "thresh": cfg["thresh"],
            "box_thresh": cfg["box_thresh"], "unclip_ratio": cfg["unclip_ratio"],
            "use_dilation": cfg.get("use_dilation", False),
            "score_mode": cfg.get("score_mode", "fast"), "max_candidates": 1000})
        return lambda image: detector(image)[0]
    # DBNet-R18 takes ImageNet-normalised RGB, which TextDetector cannot express:
    # the same steps written out (resize as DBPredictor's policy, onnxruntime, DBPostProcess)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    session = ort.InferenceSession(onnx_path, options, providers=providers)
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


def cpu_table(rounds: int, models: list[str]) -> list[dict]:
    """Per model: first call and median pass (4 images) of each variant, in one run."""
    encoded = encoded_images()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in models:
            detect = rapidocr_detector(name, onnx_file(name, folder))
            eager = predictor(name, "cpu", folder)
            compiled = predictor(name, "cpu", folder, compile=True)
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
            rows.append({"model": name, "first_s": first, "median_s": medians,
                         "boxes_ours": found[0], "boxes_rapidocr": found[1],
                         "max_corner_px": round(found[2], 2),
                         "speedup_eager": medians["rapidocr"] / medians["eager"],
                         "speedup_compiled": medians["rapidocr"] / medians["compiled"]})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def gpu_table(rounds: int, models: list[str]) -> list[dict]:
    """DBPredictor batch 1 and 16 on CUDA against onnxruntime's CUDA provider, images/s
    on 16 images (the four real images, each at four scales)."""
    encoded = encoded_images()
    images = [cv2.resize(decode(e), None, fx=s, fy=s)
              for e in encoded for s in (0.6, 0.8, 1.0, 1.3)]
    cuda_ort = "CUDAExecutionProvider" in ort.get_available_providers()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in models:
            row = {"model": name}
            for batch in (1, 16):
                pred = predictor(name, "cuda", folder, batch_size=batch)
                pred(images)
                seconds = _median_seconds(lambda: (pred(images), torch.cuda.synchronize()), rounds)
                row[f"dbnet_fast_batch{batch}_images_per_s"] = len(images) / seconds
            if cuda_ort:
                detect = rapidocr_detector(name, onnx_file(name, folder), device="cuda")
                [detect(i) for i in images]
                seconds = _median_seconds(lambda: [detect(i) for i in images], rounds)
                row["onnxruntime_cuda_images_per_s"] = len(images) / seconds
            else:
                row["onnxruntime_cuda_images_per_s"] = None  # onnxruntime-gpu not installed
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


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


def folder_table(count: int, models: list[str]) -> list[dict]:
    """``dbnet-fast detect`` (2 reading workers, JSON only) against RapidOCR's
    detector reading and running the same files one by one; images/s."""
    from dbnet_fast.engine.detect import detect_files

    rows = []
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
                                  device="cpu", pictures=False, workers=2, progress=False)
            ours = result["seconds"]
            rows.append({"model": name, "images": count, "failed": result["failed"],
                         "dbnet_fast_images_per_s": count / ours,
                         "rapidocr_images_per_s": count / peer, "speedup": peer / ours})
            print(json.dumps(rows[-1]), flush=True)
    return rows


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
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_vs_rapidocr: --device cuda needs a CUDA device", file=sys.stderr)
        return 2
    print(f"CPU capability {cpu_capability()}, {torch.get_num_threads()} threads", flush=True)
    if args.folder:
        rows = folder_table(args.folder, args.models)
    elif args.device == "cpu":
        rows = cpu_table(args.rounds, args.models)
    else:
        rows = gpu_table(args.rounds, args.models)
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"cpu_capability": cpu_capability(), "threads": torch.get_num_threads(),
                       "rows": rows}, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
