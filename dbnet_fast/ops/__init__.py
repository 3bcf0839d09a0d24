"""Fast DBNet ops: native CPU and CUDA kernels registered as torch custom ops.

- :func:`db_binarize`: the differentiable binarization, forward and backward fused.
- :func:`db_loss`: the whole DB loss (BCE with OHEM, Dice, L1) fused, forward and backward.
- :func:`db_targets`, :func:`db_targets_batch`: the four label maps from text polygons.
- :func:`db_boxes` and its steps (:func:`find_contours`, :func:`map_contours`, :func:`min_area_boxes`,
  :func:`box_scores`, :func:`contour_scores`, :func:`unclip`, :func:`polygon_masks`):
  DB post-processing, probability maps to scored boxes.
- :func:`build_info`: how the native extension was built; :func:`cpu_variant`: the SIMD
  variant its CPU kernels run (:func:`cpu_variants`: those this CPU can run).
"""

from dbnet_fast.ops._native import build_info, cpu_variant, cpu_variants
from dbnet_fast.ops.binarize import db_binarize
from dbnet_fast.ops.loss import db_loss
from dbnet_fast.ops.postprocess import (
    box_scores,
    contour_scores,
    db_boxes,
    find_contours,
    map_contours,
    min_area_boxes,
    polygon_masks,
    unclip,
)
from dbnet_fast.ops.targets import DBTargets, db_targets, db_targets_batch

__all__ = [
    "DBTargets", "box_scores", "build_info", "contour_scores", "cpu_variant", "cpu_variants", "db_binarize",
    "db_boxes", "db_loss", "db_targets", "db_targets_batch", "find_contours", "map_contours", "min_area_boxes",
    "polygon_masks", "unclip",
]
