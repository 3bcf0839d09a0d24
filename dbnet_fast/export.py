"""ONNX export of DB detectors (DBNet, DBNet++, PPOCRDet) for deployment.

The exported graph is the eval-mode model: ``images`` (N, 3, H, W) float32 ->
``prob`` (N, 1, H, W), the probability map, with dynamic N, H and W (H and W
multiples of 32). Pre-processing stays outside, as the model's ``input_norm``
says (written into the file's metadata with the stride), and so does
post-processing (:class:`~dbnet_fast.postprocess.DBPostProcessor` on ``prob``).

It uses torch's TorchScript-based exporter (``dynamo=False``): it needs no
package beyond torch, and the graph has only standard ONNX operators. Models
with deformable convolutions (``dcn=True``) need opset >= 19 (ONNX DeformConv)
and are refused with a clear error, as the TorchScript exporter cannot write it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

STRIDE = 32
OPSET = 17
TOLERANCE = 1e-4
"""Largest absolute difference from PyTorch allowed when ``check=True``."""
INPUT_DESCRIPTIONS = {
    "imagenet": "RGB, (x / 255 - mean) / std with ImageNet mean (0.485, 0.456, 0.406) and std "
                "(0.229, 0.224, 0.225)",
    "ppocr": "BGR, (x / 255 - 0.5) / 0.5",
}


def export_onnx(model: torch.nn.Module, path, *, opset: int = OPSET, check: bool = True,
                sample_size: tuple[int, int] = (96, 128)) -> Path:
    """Writes ``model`` (eval mode, on the CPU, float32) as ONNX to ``path``.

    Args:
        model: a DBNet / PPOCRDet; not changed (a CPU float32 copy is exported).
        path: the .onnx file to write (folders are created).
        opset: the ONNX opset (17 by default; >= 11).
        check: run the file with onnxruntime on a fresh random input of another
            size and batch than the one traced and raise RuntimeError if the
            probability map differs from PyTorch's by more than 1e-4 (needs
            ``onnxruntime``: ``pip install onnxruntime``).
        sample_size: (H, W) of the input traced (multiples of 32).
    Returns:
        the path written.
    """
    import copy

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"export_onnx: model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 11:
        raise ValueError(f"export_onnx: opset must be an int >= 11, got {opset!r}")
    if (not isinstance(sample_size, (tuple, list)) or len(sample_size) != 2
            or any(not isinstance(s, int) or s < STRIDE or s % STRIDE for s in sample_size)):
        raise ValueError(f"export_onnx: sample_size must be two positive multiples of {STRIDE}, "
                         f"got {sample_size!r}")
    if any(type(m).__name__ == "ModulatedDeformConv2d" for m in model.modules()):
        raise ValueError("export_onnx: deformable convolutions (dcn=True) cannot be exported by "
                         "torch's TorchScript ONNX exporter; export a model without DCN")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")  # renamed once written and checked
    model = copy.deepcopy(model).float().cpu().eval()
    sample = torch.zeros(1, 3, *sample_size)
    dynamic = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.onnx.export(model, (sample,), os.fspath(partial), dynamo=False, opset_version=opset,
                          input_names=["images"], output_names=["prob"],
                          dynamic_axes={"images": dynamic, "prob": dynamic})
    norm = getattr(model, "input_norm", "imagenet")
    _add_metadata(partial, {"producer": "dbnet_fast", "input_norm": norm,
                            "input": INPUT_DESCRIPTIONS.get(norm, norm), "stride": str(STRIDE),
                            "output": "prob: probability map (N, 1, H, W)"})
    try:
        if check:
            difference = onnx_difference(model, partial, (2, 3, sample_size[0] + STRIDE,
                                                          sample_size[1] + 2 * STRIDE))
            if not difference <= TOLERANCE:
                raise RuntimeError(f"export_onnx: onnxruntime's probability map differs from "
                                   f"PyTorch's by {difference:.3g} (> {TOLERANCE}); {path} "
                                   f"not written")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def onnx_difference(model: torch.nn.Module, path, shape, seed: int = 0) -> float:
    """Max absolute difference between ``model`` and the ONNX file at ``path`` on a
    random input of ``shape`` (onnxruntime, CPU)."""
    try:
        import onnxruntime
    except ImportError as error:
        raise ImportError("export_onnx(check=True) runs the file with onnxruntime: "
                          "pip install onnxruntime (or pass check=False)") from error
    images = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        expected = model.float().cpu().eval()(images).numpy()
    session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    got = session.run(["prob"], {"images": images.numpy()})[0]
    if got.shape != expected.shape:
        return float("inf")
    return float(abs(got - expected).max())


def _add_metadata(path: Path, values: dict[str, str]) -> None:
    """Key/value metadata in the file (when the ``onnx`` package is installed)."""
    try:
        import onnx
    except ImportError:
        return
    proto = onnx.load(os.fspath(path))
    for key, value in values.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, os.fspath(path))
