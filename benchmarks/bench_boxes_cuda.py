"""db_boxes on a batch of 16 960 x 960 maps on CUDA, the results copied to the
host (the op returns CPU tensors), against the CPU pipeline on all threads.
The maps are the real PP-OCRv4 maps the package carries (dbnet_fast/assets)
padded to 960 x 960. Needs only torch and OpenCV, so it
also runs on the GPU machine (bench_postprocess.py needs rapidocr)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common import run
from dbnet_fast.assets import real_maps_path
from dbnet_fast.ops import db_boxes

SETTINGS = dict(thresh=0.3, box_thresh=0.6, unclip_ratio=1.5)  # PaddleOCR's


def batch_of_16() -> torch.Tensor:
    maps = np.zeros((16, 960, 960), np.float32)
    data = np.load(real_maps_path())
    probs = [data[f"prob_{n}"] for n in data["names"]]
    for i in range(16):
        prob = probs[i % len(probs)]
        maps[i, : prob.shape[0], : prob.shape[1]] = prob
    return torch.from_numpy(maps)


@pytest.mark.parametrize("variant", ["dbnet_fast cuda", "dbnet_fast cpu"])
def bench_boxes_cuda_batch(benchmark, variant):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    maps = batch_of_16()
    if variant == "dbnet_fast cuda":
        maps, device, role = maps.cuda(), "cuda", "ours"
    else:
        device, role = "cpu", "baseline"
    group = "db_boxes batch of 16 960x960, results on the host"
    run(benchmark, lambda: db_boxes(maps, **SETTINGS), device=device, op="db_boxes", variant=variant,
        role=role, group=group)
