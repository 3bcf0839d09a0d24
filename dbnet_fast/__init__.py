"""dbnet_fast: fast DBNet / DBNet++ scene-text detection for PyTorch.

The hot paths are native ops in :mod:`dbnet_fast.ops` (C++ and CUDA kernels
registered as torch custom ops).
"""

from dbnet_fast.ops import build_info
from dbnet_fast.version import __version__

__all__ = ["__version__", "build_info"]
