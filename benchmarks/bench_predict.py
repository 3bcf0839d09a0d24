"""End to end: DBPredictor on the four real images the package carries (read,
resize, normalise, model, post-processing, boxes in original pixels), against
the same predictor with PaddleOCR's DBPostProcess (rapidocr-onnxruntime) in
place of ours, one map at a time as PaddleOCR runs it.

Models: DBNet-R18 at MhLiao/DB's 736 short side (weights from the checkpoint
in DBF_BENCH_CHECKPOINT (an absolute path: report.py runs in benchmarks/), e.g. the
demo's runs/demo/last.pt; otherwise randomly
initialised, whose maps say little about post-processing time) and PP-OCRv4
(pretrained, PaddleOCR's 960 limit). The rows "model", "postprocess" (ours)
and "postprocess_paddleocr" time those stages alone on the same inputs: their
ratio to the end-to-end rows is the share of time in each. images/s = 4 / median.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from common import devices, run

cv2 = pytest.importorskip("cv2")
DBPostProcess = pytest.importorskip("rapidocr_onnxruntime.ch_ppocr_det.utils").DBPostProcess
from dbnet_fast.assets import real_maps_path  # noqa: E402
from dbnet_fast.engine.checkpoint import build_model  # noqa: E402
from dbnet_fast.predict import DBPredictor  # noqa: E402

MODELS = {  # name: (resize policy, batch size)
    "r18": ({"limit_side_len": 736, "limit_type": "short"}, 1),
    "ppocr-v4": ({"limit_side_len": 960, "limit_type": "max"}, 1),
}
_cache: dict = {}


def images() -> list[np.ndarray]:
    data = np.load(real_maps_path())
    return [cv2.imdecode(data[f"image_{n}"], cv2.IMREAD_COLOR) for n in data["names"]]


def predictor(model: str, device: str) -> DBPredictor:
    key = (model, device)
    if key not in _cache:
        policy, batch_size = MODELS[model]
        if model == "r18":
            checkpoint = os.environ.get("DBF_BENCH_CHECKPOINT")
            source = checkpoint if checkpoint else build_model("resnet18").eval()
        else:
            source = model
        _cache[key] = DBPredictor(source, device, batch_size=batch_size, **policy)
    return _cache[key]


def paddleocr_end_to_end(pred: DBPredictor, pictures) -> list:
    """The same reading, resizing and model; PaddleOCR's post-processing per map."""
    post = pred.postprocessor
    paddle = DBPostProcess(thresh=post.thresh, box_thresh=post.box_thresh,
                           unclip_ratio=post.unclip_ratio)
    out = []
    with torch.no_grad():
        for picture in pictures:
            item = pred.prepare(picture)
            prob = pred.model(item.tensor[None].to(pred.device)).float().cpu().numpy()
            out.append(paddle(prob, item.size))
    return out


VARIANTS = ["dbnet_fast", "paddleocr_postprocess", "model", "postprocess",
            "postprocess_paddleocr"]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("device", devices())
def bench_predict_end_to_end(benchmark, device, model, variant):
    pictures = images()
    pred = predictor(model, device)
    prepared = [pred.prepare(p) for p in pictures]
    if variant == "dbnet_fast":
        step, role = (lambda: pred(pictures)), "ours"
    elif variant == "paddleocr_postprocess":
        step, role = (lambda: paddleocr_end_to_end(pred, pictures)), "baseline"
    elif variant == "model":
        inputs = [p.tensor[None].to(device) for p in prepared]

        def step():
            with torch.no_grad():
                return [pred.model(x).float().cpu() for x in inputs]

        role = "part"
    else:
        with torch.no_grad():
            maps = [pred.model(p.tensor[None].to(device)).float() for p in prepared]
        sizes = [p.size for p in prepared]
        if variant == "postprocess":
            step = lambda: [pred.postprocessor(m, sizes=[s]) for m, s in zip(maps, sizes)]  # noqa: E731
        else:
            post = pred.postprocessor
            paddle = DBPostProcess(thresh=post.thresh, box_thresh=post.box_thresh,
                                   unclip_ratio=post.unclip_ratio)
            arrays = [m.cpu().numpy() for m in maps]
            step = lambda: [paddle(m, s) for m, s in zip(arrays, sizes)]  # noqa: E731
        role = "part"
    shapes = "+".join(f"{p.tensor.shape[1]}x{p.tensor.shape[2]}" for p in prepared)
    group = (f"predict end to end {model} 4 real images ({shapes}) {device}, "
             f"{torch.get_num_threads()} threads")
    run(benchmark, step, device=device, op="predict", variant=variant, role=role, group=group)
