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
many intra-op threads as torch.

Variants: ``dbnet_fast`` (eager, BatchNorm folded), ``dbnet_fast_compiled``
(``compile=True``, timed after its first call), ``rapidocr`` (the baseline).

As a script (the README's table, first-call cost included)::

    python benchmarks/bench_vs_rapidocr.py [--rounds 5] [--device cpu|cuda]

``--device cuda`` (scripts/gpu_check.sh): DBPredictor batch 1 and 16 against
onnxruntime-gpu's CUDA provider (when installed) on the same ONNX file, images/s.
"""

from __future__ import annotations

import argparse
import copy
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
from dbnet_fast.fold import fold_batchnorm  # noqa: E402
from dbnet_fast.model.paddle import MODELS, default_onnx_path, load_ppocr_det  # noqa: E402
from dbnet_fast.predict import DBPredictor  # noqa: E402

R18 = "dbnet-r18"
R18_POLICY = {"limit_side_len": 736, "limit_type": "short"}


def installed_models() -> list[str]:
    """The registry's names whose ONNX file is installed, then DBNet-R18."""
    names = []
    for name in MODELS:
        try:
            default_onnx_path(name)
        except FileNotFoundError:
            continue
        names.append(name)
    return names + [R18]


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


def _model(name: str, device) -> torch.nn.Module:
    if name == R18:
        checkpoint = os.environ.get("DBF_BENCH_CHECKPOINT")
        if checkpoint:
            from dbnet_fast.predict import load_model

            return load_model(checkpoint, device)[0]
        from dbnet_fast.engine.checkpoint import build_model

        torch.manual_seed(0)
        return build_model("resnet18").eval()
    return load_ppocr_det(name)


def predictor(name: str, device, batch_size: int = 1, compile: bool = False) -> DBPredictor:
    """DBPredictor on ``name`` with the model's own settings, BatchNorm folded as
    DBPredictor does for the models it loads by name."""
    model = copy.deepcopy(_model(name, device))
    fold_batchnorm(model)
    cfg = settings(name)
    policy = {k: cfg.pop(k) for k in ("limit_side_len", "limit_type")}
    return DBPredictor(model, device, batch_size=batch_size, compile=compile, postprocess=cfg,
                       **policy)


def onnx_file(name: str, folder: str) -> str:
    if name != R18:
        return default_onnx_path(name)
    from dbnet_fast.export import export_onnx

    path = os.path.join(folder, "dbnet_r18.onnx")
    if not os.path.isfile(path):
        export_onnx(_model(name, "cpu"), path)
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


@pytest.mark.parametrize("variant", ["dbnet_fast", "dbnet_fast_compiled", "rapidocr"])
@pytest.mark.parametrize("name", installed_models())
@pytest.mark.parametrize("device", ["cpu"])  # named so that report.py --device selects it
def bench_vs_rapidocr(benchmark, device, name, variant, tmp_path_factory):
    encoded = encoded_images()
    if variant == "rapidocr":
        folder = str(tmp_path_factory.getbasetemp())
        detect = _cached((name, "rapidocr"), lambda: rapidocr_detector(name, onnx_file(name, folder)))
        step, role = (lambda: [detect(decode(e)) for e in encoded]), "baseline"
    else:
        compiled = variant == "dbnet_fast_compiled"
        pred = _cached((name, variant), lambda: predictor(name, device, compile=compiled))
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


def cpu_table(rounds: int) -> list[dict]:
    """Per model: first call and median pass (4 images) of each variant, in one run."""
    encoded = encoded_images()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in installed_models():
            detect = rapidocr_detector(name, onnx_file(name, folder))
            eager, compiled = predictor(name, "cpu"), predictor(name, "cpu", compile=True)
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


def gpu_table(rounds: int) -> list[dict]:
    """DBPredictor batch 1 and 16 on CUDA against onnxruntime's CUDA provider, images/s
    on 16 images (the four real images, each at four scales)."""
    encoded = encoded_images()
    images = [cv2.resize(decode(e), None, fx=s, fy=s) for e in encoded for s in (0.6, 0.8, 1.0, 1.3)]
    cuda_ort = "CUDAExecutionProvider" in ort.get_available_providers()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in installed_models():
            row = {"model": name}
            for batch in (1, 16):
                pred = predictor(name, "cuda", batch_size=batch)
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_vs_rapidocr: --device cuda needs a CUDA device", file=sys.stderr)
        return 2
    print(f"CPU capability {cpu_capability()}, {torch.get_num_threads()} threads", flush=True)
    rows = cpu_table(args.rounds) if args.device == "cpu" else gpu_table(args.rounds)
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"cpu_capability": cpu_capability(), "threads": torch.get_num_threads(),
                       "rows": rows}, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
