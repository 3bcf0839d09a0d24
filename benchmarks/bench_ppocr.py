"""PaddleOCR detectors' forward (probability map) on one 960 x 960 image, per
model (PP-OCRv4 / v5 mobile, PP-OCRv6 small): the native PyTorch module
(dbnet_fast.model.paddle), eager and under torch.compile, against onnxruntime
(its default CPU session, with as many intra-op threads as torch) running the
ONNX file the module is loaded from."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common import compiled, run

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from dbnet_fast.model.paddle import (MODELS, default_onnx_path, is_installed,  # noqa: E402
                                     load_ppocr_det)

SIZE = (960, 960)
ONE_PER_ARCH = {spec.arch: name for name, spec in reversed(MODELS.items())}.values()
"""The first model of each architecture (ppocr-v4, ppocr-v6-small)."""
_models: dict = {}


def model(name):
    if name not in _models:
        _models[name] = load_ppocr_det(name)
    return _models[name]


def image() -> torch.Tensor:
    """A normalised (1, 3, 960, 960) input with some structure (not a constant)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (1, 3, SIZE[0] // 8, SIZE[1] // 8)).astype(np.float32)
    return torch.nn.functional.interpolate(torch.from_numpy(x), size=SIZE, mode="bilinear")


@pytest.mark.parametrize("variant", ["eager", "compiled", "onnxruntime"])
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.skipif(
    not is_installed(n), reason=f"{MODELS[n].requirement} is not installed")) for n in MODELS])
@pytest.mark.parametrize("device", ["cpu"])  # named so that report.py --device selects it
def bench_ppocr_det_forward(benchmark, device, name, variant):
    if benchmark.disabled and variant == "compiled" and name not in ONE_PER_ARCH:
        pytest.skip("smoke run: torch.compile is checked on one model per architecture (each "
                    "compilation takes a minute or more on 2 cores)")
    x = image()
    if variant == "onnxruntime":
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = ort.InferenceSession(default_onnx_path(name), options,
                                       providers=["CPUExecutionProvider"])
        feed = {"x": x.numpy()}
        step, role = (lambda: session.run(None, feed)), "baseline"
    else:
        net = model(name) if variant == "eager" else compiled(model(name))

        def step():
            with torch.no_grad():
                return net(x)

        role = "ours"
    group = (f"{name} det forward 1x3x{SIZE[0]}x{SIZE[1]} cpu, "
             f"{torch.get_num_threads()} threads")
    run(benchmark, step, device=device, op=f"{name}_det", variant=variant, role=role, group=group)
