"""DBPostProcessor: batches of DB probability maps to text boxes or polygons.

The default output equals PaddleOCR's DBPostProcess (and MhLiao/DB's
SegDetectorRepresenter) on the same maps and settings: same boxes (up to the
final rounding: we return float coordinates, PaddleOCR rounds them), same
scores. The quad pipeline runs natively (:func:`dbnet_fast.ops.db_boxes`):
one image per CPU thread for CPU maps; for CUDA maps entirely on the device,
only the kept boxes coming back (results are CPU tensors either way; the
CUDA candidates are the 8-connected components, without RETR_LIST's hole
borders, and score_mode="slow" is CPU-only: see db_boxes).

Polygon output runs on the host (CUDA maps are copied there once per batch)
and follows PaddleOCR's polygons_from_bitmap: threshold, dilation and
contours in one native pass (:func:`dbnet_fast.ops.map_contours`),
``cv2.approxPolyDP`` with epsilon 0.002 x perimeter, fast scores (native, all
polygons of an image at once), unclip with pyclipper, a polygon kept when the
unclip gives one path whose min-area box (native) has a short side >=
min_size + 2. It needs opencv and pyclipper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from dbnet_fast.ops import postprocess as ops
from dbnet_fast.ops._checks import (
    as_float32,
    check_finite_scalar,
    check_int,
    check_tensor,
    map_sizes,
)
from dbnet_fast.ops._native import _C

OUTPUTS = ("quad", "poly")


@dataclass
class Detections:
    """The text found in one image, in original-image pixels.

    boxes: float32 tensor (N, 4, 2), corners TL, TR, BR, BL as (x, y), for
    ``output="quad"``; a list of N float32 tensors (K_i, 2) for ``"poly"``.
    scores: float32 tensor (N,), the mean probability under each box.
    """

    boxes: torch.Tensor | list[torch.Tensor]
    scores: torch.Tensor

    def __len__(self) -> int:
        return int(self.scores.shape[0])


@dataclass
class DBPostProcessor:
    """Probability maps (B, 1, H, W) or (B, H, W) -> one :class:`Detections` per image.

    thresh: binarisation threshold (prob > thresh), in [0, 1]. box_thresh:
    boxes whose score is lower are dropped, in [0, 1]. unclip_ratio: boxes
    grow by area * ratio / perimeter, > 0. max_candidates: contours considered
    per image, in ``cv2.findContours(RETR_LIST)`` order, >= 1. score_mode:
    "fast" (mean under the box) or "slow" (under the contour). use_dilation:
    dilate the binary map by a 2x2 kernel first. min_size: boxes whose short
    side is below are dropped (below min_size + 2 after unclip). Numbers may be
    Python or NumPy scalars (stored as float and int); a bad setting raises a
    ValueError that names it.
    """

    thresh: float = 0.3
    box_thresh: float = 0.7
    unclip_ratio: float = 1.5
    max_candidates: int = 1000
    output: str = "quad"
    score_mode: str = "fast"
    use_dilation: bool = False
    min_size: float = 3.0

    def __post_init__(self):
        if self.output not in OUTPUTS:
            raise ValueError(f"DBPostProcessor: output must be one of {OUTPUTS}, got {self.output!r}")
        if self.score_mode not in ops.SCORE_MODES:
            raise ValueError(
                f"DBPostProcessor: score_mode must be one of {ops.SCORE_MODES}, got {self.score_mode!r}"
            )
        op = "DBPostProcessor"
        try:
            self.thresh = check_finite_scalar(op, "thresh", self.thresh, ge=0, le=1)
            self.box_thresh = check_finite_scalar(op, "box_thresh", self.box_thresh, ge=0, le=1)
            self.unclip_ratio = check_finite_scalar(op, "unclip_ratio", self.unclip_ratio, gt=0)
            self.min_size = check_finite_scalar(op, "min_size", self.min_size)
            self.max_candidates = check_int(op, "max_candidates", self.max_candidates, ge=1)
        except TypeError as error:  # a setting of the wrong type is a bad setting too
            raise ValueError(str(error)) from None

    def __call__(self, prob: torch.Tensor, sizes=None) -> list[Detections]:
        """``sizes``: each image's original (height, width) (a (B, 2) tensor or
        array, or a sequence of pairs); by default the map size."""
        maps = _as_maps(prob)
        batch, height, width = maps.shape
        dest = _as_sizes(sizes, batch, height, width)
        if self.output == "poly":
            maps = maps.cpu()  # polygons use OpenCV and pyclipper on the host
            return [self._polygons(maps[b], dest[b], b) for b in range(batch)]
        boxes, scores, counts = ops.db_boxes(
            maps, dest, thresh=self.thresh, box_thresh=self.box_thresh,
            unclip_ratio=self.unclip_ratio, max_candidates=self.max_candidates,
            score_mode=self.score_mode, use_dilation=self.use_dilation, min_size=self.min_size,
        )
        if batch == 1:
            return [Detections(boxes, scores)]
        splits = counts.tolist()
        return [Detections(b, s) for b, s in zip(boxes.split(splits), scores.split(splits))]

    def _polygons(self, prob: torch.Tensor, dest: torch.Tensor, index: int) -> Detections:
        import cv2
        import pyclipper

        height, width = prob.shape
        try:
            points, offsets = ops.map_contours(prob, self.thresh, self.use_dilation)
        except ValueError as error:  # the map holds NaN or inf (the settings were checked)
            raise ValueError(f"DBPostProcessor: {error} (image {index})") from error
        points, offsets = points.numpy(), offsets.numpy()
        approximations = []
        for k in range(min(len(offsets) - 1, self.max_candidates)):
            contour = points[offsets[k]:offsets[k + 1]].reshape(-1, 1, 2)
            epsilon = 0.002 * cv2.arcLength(contour, True)
            approx = cv2.approxPolyDP(contour, epsilon, True)
            if len(approx) >= 4:
                approximations.append(approx)
        # The native steps take every polygon of the image in one call (on
        # arrays built here, so without the checks that user input gets).
        scores = _C.contour_scores(prob, *_packed(approximations, np.int32)).tolist()
        grown, kept_scores = [], []
        for approx, score in zip(approximations, scores):
            if self.box_thresh > score:
                continue
            perimeter = cv2.arcLength(approx, True)
            if perimeter == 0:
                continue
            offset = pyclipper.PyclipperOffset()
            offset.AddPath(approx.reshape(-1, 2).tolist(), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
            paths = offset.Execute(cv2.contourArea(approx) * self.unclip_ratio / perimeter)
            if len(paths) == 1:
                grown.append(np.asarray(paths[0], np.int64))
                kept_scores.append(score)
        _, sides = _C.min_area_quads(*_packed(grown, np.int64))
        keep = [k for k, side in enumerate(sides.tolist()) if side >= self.min_size + 2]
        if not keep:
            return Detections([], torch.zeros(0, dtype=torch.float32))
        # To destination pixels in float32, as the quads: x / width * dest_w, clipped.
        polygons = np.concatenate([grown[k] for k in keep]).astype(np.float32)
        for axis, (size, dest_size) in enumerate(((width, dest[1]), (height, dest[0]))):
            dest_size = np.float32(dest_size)
            polygons[:, axis] = np.clip(polygons[:, axis] / np.float32(size) * dest_size, np.float32(0), dest_size)
        return Detections(list(torch.from_numpy(polygons).split([len(grown[k]) for k in keep])),
                          torch.tensor([kept_scores[k] for k in keep], dtype=torch.float32))


def postprocess_padded(postprocessor: DBPostProcessor, prob: torch.Tensor,
                       shapes: Sequence[tuple[int, int]],
                       sizes: Sequence[tuple[int, int]]) -> list[Detections]:
    """Detections of a padded batch of maps (B, 1, H, W): image b fills the top-left
    ``shapes[b]`` of its map and ``sizes[b]`` is its original size. One batched call
    when nothing is padded; otherwise each map is cropped to its image first."""
    height, width = prob.shape[-2:]
    if all(tuple(s) == (height, width) for s in shapes):
        return postprocessor(prob, sizes=list(sizes))
    return [postprocessor(prob[b:b + 1, :, :h, :w], sizes=[sizes[b]])[0]
            for b, (h, w) in enumerate(shapes)]


def _packed(polygons: list[np.ndarray], dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Point arrays as one CSR pair (points (N, 2) of ``dtype``, int64 offsets)."""
    points = np.concatenate([p.reshape(-1, 2) for p in polygons]) if polygons else np.zeros((0, 2))
    offsets = np.cumsum([0] + [len(p) for p in polygons], dtype=np.int64)
    return torch.from_numpy(points.astype(dtype)), torch.from_numpy(offsets)


def _as_maps(prob) -> torch.Tensor:
    if isinstance(prob, np.ndarray):
        prob = torch.from_numpy(prob)
    check_tensor("DBPostProcessor", "prob", prob)
    if prob.dim() == 4:
        if prob.shape[1] != 1:
            raise ValueError(f"DBPostProcessor: prob must be (B, 1, H, W) or (B, H, W), got {tuple(prob.shape)}")
        prob = prob[:, 0]
    if prob.dim() != 3:
        raise ValueError(f"DBPostProcessor: prob must be (B, 1, H, W) or (B, H, W), got {tuple(prob.shape)}")
    if not prob.is_floating_point():
        raise TypeError(f"DBPostProcessor: prob must be a floating tensor, got {prob.dtype}")
    return as_float32(prob)  # CUDA maps stay there


def _as_sizes(sizes, batch: int, height: int, width: int) -> torch.Tensor:
    if sizes is None:
        return map_sizes(batch, height, width)
    # NumPy, not torch: these few numbers are checked once per call, in microseconds
    try:
        dest = np.asarray(sizes.cpu() if isinstance(sizes, torch.Tensor) else sizes,
                          dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError("DBPostProcessor: sizes must be (height, width) numbers") from error
    if dest.ndim == 1 and dest.size == 2:
        dest = np.broadcast_to(dest, (batch, 2))
    if dest.size == 0:
        dest = dest.reshape(0, 2)
    if dest.shape != (batch, 2):
        raise ValueError(f"DBPostProcessor: sizes must give (height, width) for each of the {batch} images")
    if not np.isfinite(dest).all() or (dest < 0).any() or (dest != np.round(dest)).any():
        raise ValueError("DBPostProcessor: sizes must be non-negative integers")
    return torch.from_numpy(dest.astype(np.int64))
