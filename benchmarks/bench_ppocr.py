"""PP-OCRv4 mobile detector forward (probability map) on one 960 x 960 image:
the native PyTorch module (dbnet_fast.model.ppocr), eager and under
torch.compile, against onnxruntime (its default CPU session, with as many
intra-op threads as torch) running the ONNX file the module is loaded from."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common import compiled, run

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("rapidocr_onnxruntime")
from dbnet_fast.model.ppocr import default_onnx_path, load_ppocr_det  # noqa: E402

SIZE = (960, 960)
_model = None


def model():
    global _model
    if _model is None:
        _model = load_ppocr_det()
    return _model


def image() -> torch.Tensor:
    """A normalised (1, 3, 960, 960) input with some structure (not a constant)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (1, 3, SIZE[0] // 8, SIZE[1] // 8)).astype(np.float32)
    return torch.nn.functional.interpolate(torch.from_numpy(x), size=SIZE, mode="bilinear")


@pytest.mark.parametrize("variant", ["eager", "compiled", "onnxruntime"])
@pytest.mark.parametrize("device", ["cpu"])  # named so that report.py --device selects it
def bench_ppocr_det_forward(benchmark, device, variant):
    x = image()
    if variant == "onnxruntime":
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = ort.InferenceSession(default_onnx_path(), options,
                                       providers=["CPUExecutionProvider"])
        feed = {"x": x.numpy()}
        step, role = (lambda: session.run(None, feed)), "baseline"
    else:
        net = model() if variant == "eager" else compiled(model())

        def step():
            with torch.no_grad():
                return net(x)

        role = "ours"
    group = f"ppocr det forward 1x3x{SIZE[0]}x{SIZE[1]} cpu, {torch.get_num_threads()} threads"
    run(benchmark, step, device=device, op="ppocr_det", variant=variant, role=role, group=group)
