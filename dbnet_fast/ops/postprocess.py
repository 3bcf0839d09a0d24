"""DB post-processing steps: probability maps to scored text boxes.

:func:`db_boxes` runs the whole quad pipeline of PaddleOCR's DBPostProcess
(and MhLiao/DB's SegDetectorRepresenter) on a batch of maps, one image per
CPU thread; the other functions are its steps, each usable alone. Ragged
results travel as CSR: a points tensor (N, 2) plus int64 offsets (K + 1), the
points of item k being ``points[offsets[k]:offsets[k + 1]]`` (offsets of an
integer dtype). Point coordinates (points and boxes) must be finite and
within 1e7 pixels in magnitude, as in every op that takes points; anything
else is refused with a ValueError.

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

import torch

from dbnet_fast.ops._checks import (
    BITMAP_DTYPES,
    FLOAT_DTYPES,
    INTEGER_DTYPES,
    as_float32,
    check_coordinates,
    check_finite_scalar,
    check_int,
    check_size,
    check_tensor,
    map_sizes,
)
from dbnet_fast.ops._native import _C

SCORE_MODES = ("fast", "slow")


def _check_map(op: str, name: str, value, dims: int, cuda: bool = False) -> torch.Tensor:
    if not cuda and isinstance(value, torch.Tensor) and not value.is_cpu:
        raise ValueError(f"{op}: {name} is on {value.device}; this step runs on the CPU")
    check_tensor(op, name, value)
    if value.dim() != dims:
        raise ValueError(f"{op}: {name} must have {dims} dimensions, got shape {tuple(value.shape)}")
    if not value.is_floating_point():
        raise TypeError(f"{op}: {name} must be a floating tensor, got {value.dtype}")
    return as_float32(value)


def _check_points(op: str, name: str, points) -> None:
    """A real tensor of coordinates within the range rule (check_coordinates)."""
    check_tensor(op, name, points)
    if points.dtype not in INTEGER_DTYPES and points.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: {name} must be an integer or floating tensor, got {points.dtype}")
    check_coordinates(op, name, points)


def _check_csr(op: str, points, offsets, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    _check_points(op, "points", points)
    if points.dim() != 2 or points.shape[1] != 2:
        raise ValueError(f"{op}: points must be (N, 2), got shape {tuple(points.shape)}")
    check_tensor(op, "offsets", offsets)
    if offsets.dtype not in INTEGER_DTYPES:  # a cast would truncate fractional offsets
        raise TypeError(f"{op}: offsets must be an integer tensor, got {offsets.dtype}")
    if offsets.dim() != 1 or offsets.numel() < 1:
        raise ValueError(f"{op}: offsets must be 1-D with at least one element")
    offsets = offsets.to("cpu", torch.int64).contiguous()
    if int(offsets[0]) != 0 or int(offsets[-1]) != points.shape[0] or bool((offsets[1:] < offsets[:-1]).any()):
        raise ValueError(f"{op}: offsets must start at 0, not decrease and end at len(points)")
    return points.to("cpu", dtype).contiguous(), offsets


def _check_boxes(op: str, boxes) -> torch.Tensor:
    _check_points(op, "boxes", boxes)
    if boxes.dim() != 3 or tuple(boxes.shape[1:]) != (4, 2):
        raise ValueError(f"{op}: boxes must be (K, 4, 2), got shape {tuple(boxes.shape)}")
    return boxes.detach().to("cpu", torch.float32).contiguous()


def _as_bitmap(op: str, name: str, bitmap) -> torch.Tensor:
    """A (H, W) map of any real dtype as a contiguous uint8 CPU mask, nonzero
    as text (NaN too, as OpenCV's != 0): a cast to uint8 would wrap 256 to 0."""
    check_tensor(op, name, bitmap)
    if bitmap.dim() != 2:
        raise ValueError(f"{op}: {name} must be (H, W), got shape {tuple(bitmap.shape)}")
    if bitmap.dtype not in BITMAP_DTYPES:
        raise TypeError(f"{op}: {name} must be a real (bool, integer or floating) tensor, "
                        f"got {bitmap.dtype}")
    if bitmap.dtype not in (torch.uint8, torch.bool):
        bitmap = bitmap != 0
    return bitmap.to("cpu", torch.uint8).contiguous()


def find_contours(bitmap: torch.Tensor, simple: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Borders of a binary map (H, W) (nonzero = text, in any real dtype; NaN
    is text): int32 points (N, 2) as (x, y) and int64 offsets, in
    ``cv2.findContours(RETR_LIST)`` order.
    ``simple`` keeps only the ends of straight runs (CHAIN_APPROX_SIMPLE)."""
    return _C.contours(_as_bitmap("find_contours", "bitmap", bitmap), bool(simple))


def map_contours(prob: torch.Tensor, thresh: float = 0.3,
                 use_dilation: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The borders of the binary map ``prob > thresh`` of a probability map (H, W)
    (compared in float32; ``use_dilation``: dilated by a 2x2 kernel first, as
    ``cv2.dilate``), as :func:`find_contours` with ``simple=True``, in one native
    pass. ``thresh`` is in [0, 1]; a map holding NaN or inf is refused with a
    ValueError."""
    prob = _check_map("map_contours", "prob", prob, 2)
    thresh = check_finite_scalar("map_contours", "thresh", thresh, ge=0, le=1)
    return _C.map_contours(prob, thresh, bool(use_dilation))


def min_area_boxes(points: torch.Tensor, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The minimum-area rectangle of each integer point set: boxes (K, 4, 2)
    float32 in TL, TR, BR, BL order and their short sides (K,) float32.
    An empty set gives a zero box."""
    checked, offsets = _check_csr("min_area_boxes", points, offsets, torch.int64)
    if points.is_floating_point() and not bool((points == points.round()).all()):
        raise ValueError("min_area_boxes: points must be integers (pixel coordinates)")
    return _C.min_area_quads(checked, offsets)


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
    return _distances(_check_boxes("unclip", boxes), _check_unclip_ratio("unclip", unclip_ratio))


def _check_unclip_ratio(op: str, unclip_ratio) -> float:
    return check_finite_scalar(op, "unclip_ratio", unclip_ratio, gt=0)


def _distances(boxes: torch.Tensor, unclip_ratio: float) -> torch.Tensor:
    boxes = boxes.double()
    x, y = boxes[..., 0], boxes[..., 1]
    area = 0.5 * (x * y.roll(-1, 1) - x.roll(-1, 1) * y).sum(1).abs()
    perimeter = (boxes - boxes.roll(-1, 1)).norm(dim=2).sum(1)
    return area * unclip_ratio / perimeter


def unclip(boxes: torch.Tensor, unclip_ratio: float = 1.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Each box grown by area * unclip_ratio / perimeter with round joins, as
    pyclipper does it (corners truncated to integers, ArcTolerance 0.25):
    int64 points (N, 2) and offsets. The points are pyclipper's before its
    clean-up union, which for a convex box only drops points inside the hull."""
    unclip_ratio = _check_unclip_ratio("unclip", unclip_ratio)
    boxes = _check_boxes("unclip", boxes)
    distances = _distances(boxes, unclip_ratio).nan_to_num(0.0)  # (NaN: a box of no perimeter)
    # The grown boxes keep to the coordinate range too (a huge ratio would overflow).
    check_coordinates("unclip", f"a box grown by unclip_ratio {unclip_ratio}",
                      boxes.abs().amax((1, 2)).double() + distances)
    corners = boxes.to(torch.int64).reshape(-1, 2)  # truncation toward zero, as pyclipper
    offsets = torch.arange(0, 4 * boxes.shape[0] + 1, 4, dtype=torch.int64)
    return _C.offset_polygons(corners, offsets, distances)


def polygon_masks(points: torch.Tensor, offsets: torch.Tensor, size) -> torch.Tensor:
    """Each integer polygon (CSR) rasterised as ``cv2.fillPoly`` does it (outline
    included) on a canvas of ``size = (H, W)``: bool (K, H, W)."""
    points, offsets = _check_csr("polygon_masks", points, offsets, torch.int64)
    height, width = check_size("polygon_masks", size, positive=False)
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
    default the map size. ``thresh`` and ``box_thresh`` are in [0, 1],
    ``unclip_ratio`` > 0, ``max_candidates`` >= 0 (Python or NumPy scalars).

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
    op = "db_boxes"
    prob = _check_map(op, "prob", prob, 3, cuda=True)
    if prob.is_cuda and score_mode == "slow":
        raise NotImplementedError(
            "db_boxes: score_mode='slow' (mean under the contour) has no CUDA implementation; "
            "use score_mode='fast' for CUDA maps, or pass CPU maps"
        )
    batch, height, width = prob.shape
    if dest_sizes is None:
        dest_sizes = map_sizes(batch, height, width)
    check_tensor(op, "dest_sizes", dest_sizes)
    if tuple(dest_sizes.shape) != (batch, 2):
        raise ValueError(f"{op}: dest_sizes must be ({batch}, 2), "
                         f"got shape {tuple(dest_sizes.shape)}")
    if dest_sizes.dtype != torch.int64 or not dest_sizes.is_cpu:
        if dest_sizes.dtype not in INTEGER_DTYPES:  # a cast would truncate fractional sizes
            raise TypeError(f"{op}: dest_sizes must be an integer tensor, got {dest_sizes.dtype}")
        dest_sizes = dest_sizes.to("cpu", torch.int64)
    # (negative sizes are refused by the native code, with a ValueError)
    thresh = check_finite_scalar(op, "thresh", thresh, ge=0, le=1)
    box_thresh = check_finite_scalar(op, "box_thresh", box_thresh, ge=0, le=1)
    unclip_ratio = _check_unclip_ratio(op, unclip_ratio)
    min_size = check_finite_scalar(op, "min_size", min_size)
    max_candidates = check_int(op, "max_candidates", max_candidates, ge=0)
    if score_mode not in SCORE_MODES:
        raise ValueError(f"{op}: score_mode must be one of {SCORE_MODES}, got {score_mode!r}")
    return _C.boxes(prob, dest_sizes, thresh, box_thresh, unclip_ratio, max_candidates,
                    score_mode == "slow", bool(use_dilation), min_size)
