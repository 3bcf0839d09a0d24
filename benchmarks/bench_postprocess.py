"""DBPostProcessor against PaddleOCR's own DBPostProcess (from
rapidocr-onnxruntime) on the real PP-OCRv4 maps the package carries, with
PaddleOCR's inference settings: each map on one thread, and a batch of 16
maps (the real maps repeated) on all threads (and on CUDA when there is a GPU).
Polygon output (one map, one thread) against PaddleOCR's polygons_from_bitmap
as NumPy + OpenCV + pyclipper + shapely (dbnet_fast.reference.postprocess: the
package that ships DBPostProcess has no polygon mode)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common import devices, one_thread, run
from dbnet_fast.assets import real_maps_path
from dbnet_fast.postprocess import DBPostProcessor

DBPostProcess = pytest.importorskip("rapidocr_onnxruntime.ch_ppocr_det.utils").DBPostProcess

SETTINGS = dict(thresh=0.3, box_thresh=0.6, unclip_ratio=1.5)


def real_maps() -> dict[str, np.ndarray]:
    data = np.load(real_maps_path())
    return {str(n): data[f"prob_{n}"] for n in data["names"]}


MAP_NAMES = ["skimage_page", "networkx_labels", "synth_document", "synth_scene"]


@pytest.mark.parametrize("variant", ["dbnet_fast", "paddleocr"])
@pytest.mark.parametrize("name", MAP_NAMES)
@pytest.mark.parametrize("device", ["cpu"])  # named so that report.py --device selects it
def bench_postprocess_one_map(benchmark, device, name, variant):
    prob = real_maps()[name]
    if variant == "dbnet_fast":
        maps, post = torch.from_numpy(prob)[None], DBPostProcessor(**SETTINGS)
        step, role = one_thread(lambda: post(maps)), "ours"
    else:
        post = DBPostProcess(**SETTINGS)
        step, role = lambda: post(prob[None, None], prob.shape), "baseline"
    group = f"postprocess one map {name} {prob.shape[0]}x{prob.shape[1]} cpu, one thread"
    run(benchmark, step, device=device, op="postprocess", variant=variant, role=role, group=group)


@pytest.mark.parametrize("variant", ["dbnet_fast", "reference"])
@pytest.mark.parametrize("name", MAP_NAMES)
@pytest.mark.parametrize("device", ["cpu"])
def bench_postprocess_poly_one_map(benchmark, device, name, variant):
    pytest.importorskip("pyclipper")
    pytest.importorskip("shapely")
    from dbnet_fast.reference.postprocess import polygons_from_map_reference

    prob = real_maps()[name]
    if variant == "dbnet_fast":
        maps, post = torch.from_numpy(prob)[None], DBPostProcessor(output="poly", **SETTINGS)
        step, role = one_thread(lambda: post(maps)), "ours"
    else:
        step, role = lambda: polygons_from_map_reference(prob, prob.shape, **SETTINGS), "baseline"
    group = f"postprocess poly one map {name} {prob.shape[0]}x{prob.shape[1]} cpu, one thread"
    run(benchmark, step, device=device, op="postprocess", variant=variant, role=role, group=group)


BATCH_VARIANTS = [(d, "dbnet_fast") for d in devices()] + [("cpu", "paddleocr")]


@pytest.mark.parametrize("device, variant", BATCH_VARIANTS, ids=lambda v: str(v))
def bench_postprocess_batch(benchmark, device, variant):
    # 16 maps of one size (960 x 960, each real map padded with zeros)
    maps = np.zeros((16, 960, 960), np.float32)
    for i, prob in enumerate(list(real_maps().values()) * 4):
        maps[i, : prob.shape[0], : prob.shape[1]] = prob
    if variant == "dbnet_fast":
        batch, post = torch.from_numpy(maps).to(device), DBPostProcessor(**SETTINGS)
        step, role = lambda: post(batch), "ours"
    else:
        post = DBPostProcess(**SETTINGS)
        step, role = lambda: [post(m[None, None], m.shape) for m in maps], "baseline"
    group = f"postprocess batch of 16 960x960 {device}"
    name = variant if device == "cpu" else f"{variant} cuda"
    run(benchmark, step, device=device, op="postprocess", variant=name, role=role, group=group)
