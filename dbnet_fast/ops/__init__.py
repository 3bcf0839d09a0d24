"""Fast DBNet ops: native CPU and CUDA kernels registered as torch custom ops.

- :func:`db_binarize`: the differentiable binarization, forward and backward fused.
- :func:`db_loss`: the whole DB loss (BCE with OHEM, Dice, L1) fused, forward and backward.
- :func:`db_targets`, :func:`db_targets_batch`: the four label maps from text polygons.
- :func:`build_info`: how the native extension was built.
"""

from dbnet_fast.ops._native import build_info
from dbnet_fast.ops.binarize import db_binarize
from dbnet_fast.ops.loss import db_loss
from dbnet_fast.ops.targets import DBTargets, db_targets, db_targets_batch

__all__ = ["DBTargets", "build_info", "db_binarize", "db_loss", "db_targets", "db_targets_batch"]
