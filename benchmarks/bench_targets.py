"""db_targets against the float64 NumPy + pyclipper + OpenCV reference (the
algorithm of MhLiao/DB and PaddleOCR) at 640 x 640: one ICDAR-like image (30
quads) and one Total-Text-like image (10 curved polygons) on one thread, and a
batch of 16 (8 of each) on all threads (and on CUDA when there is a GPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common import devices, one_thread, run
from dbnet_fast.ops import db_targets, db_targets_batch
from dbnet_fast.reference.samples import icdar_like, total_text_like

pytest.importorskip("pyclipper")
pytest.importorskip("cv2")
from dbnet_fast.reference import db_targets_reference  # noqa: E402

SIZE = (640, 640)
IMAGES = {"icdar (30 quads)": icdar_like, "totaltext (10 curves)": total_text_like}


@pytest.mark.parametrize("variant", ["dbnet_fast", "reference"])
@pytest.mark.parametrize("image", list(IMAGES))
@pytest.mark.parametrize("device", ["cpu"])  # named so that report.py --device selects it
def bench_targets_one_image(benchmark, device, image, variant):
    polygons = IMAGES[image](np.random.default_rng(0), SIZE)
    if variant == "dbnet_fast":
        step, role = one_thread(lambda: db_targets(polygons, SIZE)), "ours"
    else:
        step, role = lambda: db_targets_reference(polygons, SIZE), "baseline"
    group = f"db_targets one image {image} cpu, one thread {SIZE}"
    run(benchmark, step, device=device, op="db_targets", variant=variant, role=role, group=group)


BATCH_VARIANTS = [(d, "dbnet_fast") for d in devices()] + [("cpu", "reference")]


@pytest.mark.parametrize("device, variant", BATCH_VARIANTS, ids=lambda v: str(v))
def bench_targets_batch(benchmark, device, variant):
    rng = np.random.default_rng(1)
    batch = [icdar_like(rng, SIZE) for _ in range(8)] + [total_text_like(rng, SIZE) for _ in range(8)]
    if variant == "dbnet_fast":
        step, role = lambda: db_targets_batch(batch, SIZE, device=device), "ours"
    else:
        step, role = lambda: [db_targets_reference(p, SIZE) for p in batch], "baseline"
    group = f"db_targets batch of 16 {device} {SIZE}"
    name = variant if device == "cpu" else f"{variant} cuda"
    run(benchmark, step, device=device, op="db_targets", variant=name, role=role, group=group)
