"""dbnet_fast: fast DBNet / DBNet++ scene-text detection for PyTorch.

The hot paths are native ops in :mod:`dbnet_fast.ops` (C++ and CUDA kernels
registered as torch custom ops).
"""

from dbnet_fast.ops import build_info
from dbnet_fast.version import __version__

__all__ = ["DBPredictor", "Detections", "__version__", "build_info", "export_onnx"]


def __getattr__(name):
    # imported on first use: `import dbnet_fast` stays light (no cv2, no model code)
    if name == "DBPredictor":
        from dbnet_fast.predict import DBPredictor

        return DBPredictor
    if name == "Detections":
        from dbnet_fast.postprocess import Detections

        return Detections
    if name == "export_onnx":
        from dbnet_fast.export import export_onnx

        return export_onnx
    raise AttributeError(f"module 'dbnet_fast' has no attribute {name!r}")
