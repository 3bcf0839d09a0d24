"""DB post-processing steps: probability maps to scored text boxes.

:func:`db_boxes` runs the whole quad pipeline of PaddleOCR's DBPostProcess
(and MhLiao/DB's SegDetectorRepresenter) on a batch of maps, one image per
CPU thread; the other functions are its steps, each usable alone. Ragged
results travel as CSR: a points tensor (N, 2) plus int64 offsets (K + 1), the
points of item k being ``points[offsets[k]:offsets[k + 1]]``.

Each step reproduces what the reference pipeline computes with OpenCV and
pyclipper, bit for bit where integer truncation follows:

- contours as ``cv2.findContours(RETR_LIST, CHAIN_APPROX_SIMPLE)``: outer
  borders of 8-connected components and borders of their holes, listed in
  reverse order of discovery (``max_candidates`` keeps the first ones);
- min-area rectangles as ``cv2.minAreaRect`` + ``cv2.boxPoints`` (OpenCV >= 4.5.4
  calipers, float32) with PaddleOCR's corner order (TL, TR, BR, BL);
- box scores as ``box_score_fast`` (mean under ``cv2.fillPoly`` of the corners
  truncated to integers, OpenCV >= 4.8 edge clipping) and ``box_score_slow``:
  the same pixels, their mean to a relative 2^-23 (rows are summed in float64
  after adding four floats at a time in float32);
- unclip as ``pyclipper.PyclipperOffset`` with round joins on the corners
  truncated to integers, grown by area * ratio / perimeter of the float box.

These functions return data-dependent sizes, so they are plain functions
(not traceable custom ops). The steps run on the CPU; :func:`db_boxes` also
runs on CUDA maps, on the device (see its docstring for how the CUDA
candidates differ from RETR_LIST's).
"""

from __future__ import annotations

import math

import torch

from dbnet_fast.ops._checks import as_float32, check_device, check_finite_scalar, check_tensor, map_sizes
from dbnet_fast.ops._native import _C

SCORE_MODES = ("fast", "slow")


def _check_map(op: str, name: str, value, dims: int, cuda: bool = False) -> torch.Tensor:
    check_tensor(op, name, value)
    if value.dim() != dims:
        raise ValueError(f"{op}: {name} must have {dims} dimensions, got shape {tuple(value.shape)}")
    if not value.is_floating_point():
        raise TypeError(f"{op}: {name} must be a floating tensor, got {value.dtype}")
    if not value.is_cpu:  # (the attribute tests are the cheap ones: this runs per call)
        if not (cuda and value.is_cuda):
            raise ValueError(f"{op}: {name} is on {value.device}; this step runs on the CPU")
        check_device(op, name, value.device)
    return as_float32(value)


def _check_csr(op: str, points, offsets, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    check_tensor(op, "points", points)
    check_tensor(op, "offsets", offsets)
    if points.dim() != 2 or points.shape[1] != 2:
        raise ValueError(f"{op}: points must be (N, 2), got shape {tuple(points.shape)}")
    if offsets.dim() != 1 or offsets.numel() < 1:
        raise ValueError(f"{op}: offsets must be 1-D with at least one element")
    if points.is_floating_point() and not bool(torch.isfinite(points).all()):
        raise ValueError(f"{op}: points must be finite")
    offsets = offsets.to("cpu", torch.int64).contiguous()
    if int(offsets[0]) != 0 or int(offsets[-1]) != points.shape[0] or bool((offsets[1:] < offsets[:-1]).any()):
        raise ValueError(f"{op}: offsets must start at 0, not decrease and end at len(points)")
    return points.to("cpu", dtype).contiguous(), offsets


def _check_boxes(op: str, boxes) -> torch.Tensor:
    check_tensor(op, "boxes", boxes)
    if boxes.dim() != 3 or tuple(boxes.shape[1:]) != (4, 2):
        raise ValueError(f"{op}: boxes must be (K, 4, 2), got shape {tuple(boxes.shape)}")
    boxes = boxes.detach().to("cpu", torch.float32).contiguous()
    if not bool(torch.isfinite(boxes).all()):
        raise ValueError(f"{op}: boxes must be finite")
    if boxes.numel() and float(boxes.abs().max()) >= 2.0**30:
        raise ValueError(f"{op}: box coordinates must be below 2**30 in magnitude")
    return boxes


def find_contours(bitmap: torch.Tensor, simple: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Borders of a binary map (H, W) (nonzero = text): int32 points (N, 2) as
    (x, y) and int64 offsets, in ``cv2.findContours(RETR_LIST)`` order.
    ``simple`` keeps only the ends of straight runs (CHAIN_APPROX_SIMPLE)."""
    check_tensor("find_contours", "bitmap", bitmap)
    if bitmap.dim() != 2:
        raise ValueError(f"find_contours: bitmap must be (H, W), got shape {tuple(bitmap.shape)}")
    if bitmap.is_floating_point():
        bitmap = bitmap != 0  # NaN counts as foreground, as in OpenCV's != 0 test
    return _C.contours(bitmap.to("cpu", torch.uint8).contiguous(), bool(simple))


def map_contours(prob: torch.Tensor, thresh: float = 0.3,
                 use_dilation: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The borders of the binary map ``prob > thresh`` of a probability map (H, W)
    (compared in float32; ``use_dilation``: dilated by a 2x2 kernel first, as
    ``cv2.dilate``), as :func:`find_contours` with ``simple=True``, in one native
    pass. A map holding NaN or inf is refused with a ValueError."""
    prob = _check_map("map_contours", "prob", prob, 2)
    thresh = check_finite_scalar("map_contours", "thresh", thresh)
    return _C.map_contours(prob, thresh, bool(use_dilation))


def min_area_boxes(points: torch.Tensor, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The minimum-area rectangle of each integer point set: boxes (K, 4, 2)
    float32 in TL, TR, BR, BL order and their short sides (K,) float32.
    An empty set gives a zero box."""
    if isinstance(points, torch.Tensor) and points.is_floating_point():
        if bool(torch.isfinite(points).all()) and not bool((points == points.round()).all()):
            raise ValueError("min_area_boxes: points must be integers (pixel coordinates)")
    points, offsets = _check_csr("min_area_boxes", points, offsets, torch.int64)
    return _C.min_area_quads(points, offsets)


def box_scores(prob: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Mean probability under each box (K, 4, 2) as PaddleOCR's box_score_fast:
    float64 (K,); 0 for a box with no pixel in the map."""
    prob = _check_map("box_scores", "prob", prob, 2)
    return _C.quad_scores(prob, _check_boxes("box_scores", boxes))


def contour_scores(prob: torch.Tensor, points: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Mean probability inside each integer polygon (CSR) as box_score_slow: float64 (K,)."""
    prob = _check_map("contour_scores", "prob", prob, 2)
    points, offsets = _check_csr("contour_scores", points, offsets, torch.int32)
    return _C.contour_scores(prob, points, offsets)


def unclip_distances(boxes: torch.Tensor, unclip_ratio: float = 1.5) -> torch.Tensor:
    """The growth distance of each box: area * unclip_ratio / perimeter, float64 (K,)."""
    boxes = _check_boxes("unclip", boxes).double()
    x, y = boxes[..., 0], boxes[..., 1]
    area = 0.5 * (x * y.roll(-1, 1) - x.roll(-1, 1) * y).sum(1).abs()
    perimeter = (boxes - boxes.roll(-1, 1)).norm(dim=2).sum(1)
    return area * float(unclip_ratio) / perimeter


def unclip(boxes: torch.Tensor, unclip_ratio: float = 1.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Each box grown by area * unclip_ratio / perimeter with round joins, as
    pyclipper does it (corners truncated to integers, ArcTolerance 0.25):
    int64 points (N, 2) and offsets. The points are pyclipper's before its
    clean-up union, which for a convex box only drops points inside the hull."""
    if not (isinstance(unclip_ratio, (int, float)) and math.isfinite(unclip_ratio) and unclip_ratio > 0):
        raise ValueError(f"unclip: unclip_ratio must be a positive finite number, got {unclip_ratio!r}")
    boxes = _check_boxes("unclip", boxes)
    distances = unclip_distances(boxes, unclip_ratio)
    corners = boxes.to(torch.int64).reshape(-1, 2)  # truncation toward zero, as pyclipper
    offsets = torch.arange(0, 4 * boxes.shape[0] + 1, 4, dtype=torch.int64)
    return _C.offset_polygons(corners, offsets, distances.nan_to_num(0.0))


def polygon_masks(points: torch.Tensor, offsets: torch.Tensor, size) -> torch.Tensor:
    """Each integer polygon (CSR) rasterised as ``cv2.fillPoly`` does it (outline
    included) on a canvas of ``size = (H, W)``: bool (K, H, W)."""
    points, offsets = _check_csr("polygon_masks", points, offsets, torch.int64)
    height, width = (int(v) for v in size)
    if height < 0 or width < 0:
        raise ValueError(f"polygon_masks: size must be non-negative, got {size}")
    return _C.polygon_masks(points, offsets, height, width).bool()


def db_boxes(
    prob: torch.Tensor,
    dest_sizes: torch.Tensor | None = None,
    *,
    thresh: float = 0.3,
    box_thresh: float = 0.7,
    unclip_ratio: float = 1.5,
    max_candidates: int = 1000,
    score_mode: str = "fast",
    use_dilation: bool = False,
    min_size: float = 3.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The quad pipeline on a batch of probability maps (B, H, W), CPU or CUDA.

    Returns boxes (N, 4, 2) float32 (TL, TR, BR, BL) in destination pixels
    (x * dest_w / W, clipped to [0, dest_w]), scores (N,) float32 and the
    number of boxes of each image (B,) int64 (boxes of image b follow those of
    images before it), all on the host (CPU tensors), whatever the device of
    ``prob``. ``dest_sizes`` (B, 2) holds each image's (height, width); by
    default the map size.

    CPU maps: one image per thread, contours as ``cv2.findContours(RETR_LIST)``.

    CUDA maps: the whole pipeline runs on the device (threshold and dilation,
    8-connected labelling, hull and min-area box per component, fast score,
    unclip, second box, filters); only the kept boxes come back. The
    candidates are the 8-connected components, i.e. the outer borders of
    RETR_LIST: the borders of holes inside components, which RETR_LIST also
    lists, are not candidates on CUDA. Components are taken in RETR_LIST's
    order (by their first pixel in raster order, last first) and
    ``max_candidates`` counts components only, so the two paths give the same
    boxes, in the same order, unless a hole border yields a box on the CPU or
    an image has more than ``max_candidates`` borders. The box arithmetic is
    the CPU's (float32 without fused multiply-adds), with two caveats: the
    device's double-precision sin, cos, acos, atan2 and hypot may differ from
    the host's by an ulp, and where two rectangles of equal area tie,
    minAreaRect picks by the order in which the border trace meets the hull
    points, which the device infers from the hull (thin parts traced out and
    back can break it: 1 in 14,000 random blobs of the native tests got
    another box, a tiny one). Scores agree to a relative 2e-7 (the summation order,
    and the CPU's float32 partial sums of long rows).
    ``score_mode="slow"`` (mean under the contour) is not implemented on CUDA
    and raises NotImplementedError.
    """
    prob = _check_map("db_boxes", "prob", prob, 3, cuda=True)
    if prob.is_cuda and score_mode == "slow":
        raise NotImplementedError(
            "db_boxes: score_mode='slow' (mean under the contour) has no CUDA implementation; "
            "use score_mode='fast' for CUDA maps, or pass CPU maps"
        )
    batch, height, width = prob.shape
    if dest_sizes is None:
        dest_sizes = map_sizes(batch, height, width)
    check_tensor("db_boxes", "dest_sizes", dest_sizes)
    if tuple(dest_sizes.shape) != (batch, 2):
        raise ValueError(f"db_boxes: dest_sizes must be ({batch}, 2), got shape {tuple(dest_sizes.shape)}")
    if dest_sizes.dtype != torch.int64 or not dest_sizes.is_cpu:
        dest_sizes = dest_sizes.to("cpu", torch.int64)
    # (negative sizes are refused by the native code, with a ValueError)
    for name, value in (("thresh", thresh), ("box_thresh", box_thresh), ("min_size", min_size)):
        if not (isinstance(value, (int, float)) and math.isfinite(value)):
            raise ValueError(f"db_boxes: {name} must be a finite number, got {value!r}")
    if not (isinstance(unclip_ratio, (int, float)) and math.isfinite(unclip_ratio) and unclip_ratio > 0):
        raise ValueError(f"db_boxes: unclip_ratio must be a positive finite number, got {unclip_ratio!r}")
    if not isinstance(max_candidates, int) or max_candidates < 0:
        raise ValueError(f"db_boxes: max_candidates must be a non-negative int, got {max_candidates!r}")
    if score_mode not in SCORE_MODES:
        raise ValueError(f"db_boxes: score_mode must be one of {SCORE_MODES}, got {score_mode!r}")
    return _C.boxes(prob, dest_sizes, float(thresh), float(box_thresh), float(unclip_ratio),
                    int(max_candidates), score_mode == "slow", bool(use_dilation), float(min_size))


# Test hooks: the CUDA pipeline's kernels run one thread after another on the
# CPU (seed: 0 raster order, 1 reversed, else shuffled), so that their logic is
# checked where no GPU is present.


def _emulated_cuda_boxes(prob: torch.Tensor, dest_sizes: torch.Tensor | None = None, *,
                         thresh: float = 0.3, box_thresh: float = 0.7, unclip_ratio: float = 1.5,
                         max_candidates: int = 1000, use_dilation: bool = False,
                         min_size: float = 3.0, seed: int = 0):
    prob = _check_map("db_boxes", "prob", prob, 3)
    batch, height, width = prob.shape
    if dest_sizes is None:
        dest_sizes = map_sizes(batch, height, width)
    dest_sizes = dest_sizes.to("cpu", torch.int64)
    return _C.boxes_emulated(prob, dest_sizes, float(thresh), float(box_thresh), float(unclip_ratio),
                             int(max_candidates), bool(use_dilation), float(min_size), int(seed))


def _emulated_cuda_labels(mask: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """int32 (H, W): each text pixel's component as its first pixel's linear index,
    -1 for background."""
    return _C.label_components_emulated(mask.to("cpu", torch.uint8).contiguous(), int(seed))


def _row_wise_box_scores(prob: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """box_scores computed from per-row pixel intervals, as the CUDA pipeline does."""
    prob = _check_map("box_scores", "prob", prob, 2)
    return _C.quad_row_scores(prob, _check_boxes("box_scores", boxes))
