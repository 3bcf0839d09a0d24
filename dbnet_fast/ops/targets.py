"""DBNet label generation: the four training maps of each image from its text
polygons (MhLiao/DB's MakeSegDetectionData + MakeBorderMap), in C++ (one
thread per image) or, for a whole batch, in CUDA kernels.

Semantics (the float64 oracle is :mod:`dbnet_fast.reference.targets`): pixel
(row i, column j) is the point (x=j, y=i). Each polygon is clipped to the
image; one with |area| < 1, a bounding box less than ``min_text_size`` high or
wide, an ``ignore`` tag, or a shrink that comes out empty is ignored: it is
zeroed in shrink_mask and left out of the threshold map and its mask. With
D = A (1 - shrink_ratio^2) / L (area A, perimeter L):

- shrink_map = 1 on the polygon shrunk by D (every part where the shrink
  splits; MhLiao/DB keeps only one);
- thresh_mask = 1 on the polygon dilated by D;
- thresh_map = thresh_min + (thresh_max - thresh_min) * max over polygons of
  (1 - min(d / D, 1)) within the dilated polygon's bounding box, d the
  distance to the polygon's nearest edge by the published formula
  (``distance="reference"``: the nearer endpoint where the angle at the pixel
  is acute, never NaN) or the true distance (``distance="exact"``);
- shrink_mask = 0 on ignored polygons, else 1.

The shrunk and dilated polygons are pyclipper's (coordinates truncated to
integers, round joins, arc tolerance 0.25, crossings rounded as Clipper
rounds them) and the masks are drawn as cv2.fillPoly draws them (outline
lines and even-odd spans), so they equal the peers' masks but for a few
boundary pixels. An offset outline of more than 8192 points (hundreds of
sharp corners offset by hundreds of pixels) is not cleaned: its polygon is
ignored.

A polygon with no point (0 rows), or a coordinate that is not finite or is
beyond 1e7 pixels in magnitude (the range rule of every op that takes points),
raises ValueError; one with 1 or 2 points has no area and is ignored (zeroed
along its segment).
"""

from __future__ import annotations

import reprlib
from typing import NamedTuple, Sequence

import numpy as np
import torch

from dbnet_fast.ops._checks import (
    check_coordinates,
    check_device,
    check_finite_scalar,
    check_size,
    check_tensor,
)
from dbnet_fast.ops._native import _C

DISTANCES = ("reference", "exact")


class DBTargets(NamedTuple):
    """The four label maps, float32: (H, W) for one image, (B, H, W) for a batch."""

    shrink_map: torch.Tensor
    shrink_mask: torch.Tensor
    thresh_map: torch.Tensor
    thresh_mask: torch.Tensor


def _as_points(polygon, image: int, index: int) -> np.ndarray:
    """The polygon as an (N, 2) float64 array (values checked later, all at once)."""
    if isinstance(polygon, torch.Tensor):
        polygon = check_tensor("db_targets", _name(image, index), polygon).detach().cpu()
        # (float64 first: NumPy has no bfloat16)
        polygon = (polygon.double() if polygon.is_floating_point() else polygon).numpy()
    try:
        points = np.asarray(polygon)
    except (TypeError, ValueError) as error:
        raise TypeError(f"db_targets: {_name(image, index)} must be an (N, 2) array of numbers") \
            from error
    if points.dtype.kind not in "iuf":  # not bools, complex numbers, strings or objects
        raise TypeError(f"db_targets: {_name(image, index)} must be an (N, 2) array of real "
                        f"numbers, got dtype {points.dtype}")
    points = points.astype(np.float64, copy=False)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"db_targets: {_name(image, index)} must have shape (N, 2), "
                         f"got {points.shape}")
    if points.shape[0] == 0:
        raise ValueError(f"db_targets: {_name(image, index)} has no points")
    return points


def _name(image: int, index: int) -> str:
    return f"image {image} polygon {index}"


def _flags(tags, count: int, image: int) -> np.ndarray:
    """The ignore flags of one image: None (none ignored) or one bool per polygon."""
    if tags is None:
        return np.zeros(count, bool)
    if isinstance(tags, torch.Tensor):
        tags = check_tensor("db_targets", "ignore", tags).cpu()
    flags = np.asarray(tags)
    if flags.size and flags.dtype != bool:  # (an empty list comes out float64)
        raise TypeError(f"db_targets: image {image}: ignore must hold bools, "
                        f"got {reprlib.repr(tags)}")
    if flags.shape != (count,):
        raise ValueError(f"db_targets: image {image}: ignore must have one flag per polygon "
                         f"({count}), got {reprlib.repr(tags)}")
    return flags.astype(bool, copy=False)


def _pack(batch, ignore):
    """CSR packing: points (N, 2), polygon offsets (P + 1), image offsets (B + 1), flags (P)."""
    arrays, flags, image_offsets = [], [], [0]
    if ignore is not None:
        if isinstance(ignore, (str, bytes)) or not hasattr(ignore, "__len__"):
            raise TypeError(f"db_targets: ignore must be None or a sequence, "
                            f"got {reprlib.repr(ignore)}")
        if len(ignore) != len(batch):
            raise ValueError("db_targets: ignore must have one entry per image")
    for b, polygons in enumerate(batch):
        flags.append(_flags(None if ignore is None else ignore[b], len(polygons), b))
        arrays.extend(_as_points(polygon, b, i) for i, polygon in enumerate(polygons))
        image_offsets.append(len(arrays))
    polygon_offsets = np.zeros(len(arrays) + 1, np.int64)
    np.cumsum([len(a) for a in arrays], out=polygon_offsets[1:])
    stacked = torch.from_numpy(np.concatenate(arrays) if arrays else np.zeros((0, 2)))

    def polygon_of(row: int) -> str:  # names the polygon holding a bad point
        index = int(np.searchsorted(polygon_offsets, row, side="right")) - 1
        names = [_name(b, i) for b, polygons in enumerate(batch) for i in range(len(polygons))]
        return names[index]

    check_coordinates("db_targets", polygon_of, stacked)
    return (
        stacked.float(),
        torch.from_numpy(polygon_offsets),
        torch.from_numpy(np.asarray(image_offsets, np.int64)),
        torch.from_numpy(np.concatenate([np.zeros(0, bool), *flags])),
    )


def db_targets_batch(
    batch: Sequence[Sequence],
    size,
    ignore: Sequence[Sequence[bool] | None] | None = None,
    *,
    shrink_ratio: float = 0.4,
    thresh_min: float = 0.3,
    thresh_max: float = 0.7,
    min_text_size: float = 8,
    distance: str = "reference",
    device=None,
) -> DBTargets:
    """Label maps for a batch of images of one size.

    Args:
        batch: per image, a sequence of polygons, each an (N_i, 2) array or
            tensor of (x, y) pixel coordinates.
        size: (height, width) of every image, positive ints (at most 2^20).
        ignore: per image, one bool per polygon (the ``###`` tag), or None.
        device: where to compute: None or "cpu" (C++, images in parallel over
            torch's threads) or a CUDA device (the whole batch in CUDA kernels).
        shrink_ratio, thresh_min, thresh_max, min_text_size, distance: see the
            module documentation (MhLiao/DB's defaults); shrink_ratio in [0, 1),
            0 <= thresh_min <= thresh_max <= 1, min_text_size >= 0.

    Returns:
        :class:`DBTargets` of (B, H, W) float32 tensors on ``device``.
    """
    op = "db_targets"
    height, width = check_size(op, size, positive=True, maximum=1 << 20)
    if distance not in DISTANCES:
        raise ValueError(f"{op}: distance must be one of {DISTANCES}, got {distance!r}")
    shrink_ratio = check_finite_scalar(op, "shrink_ratio", shrink_ratio, ge=0, lt=1)
    thresh_min = check_finite_scalar(op, "thresh_min", thresh_min, ge=0, le=1)
    thresh_max = check_finite_scalar(op, "thresh_max", thresh_max, ge=0, le=1)
    if thresh_min > thresh_max:
        raise ValueError(f"{op}: thresh_min must be <= thresh_max, "
                         f"got {thresh_min} and {thresh_max}")
    min_text_size = check_finite_scalar(op, "min_text_size", min_text_size, ge=0)
    device = torch.device(device if device is not None else "cpu")
    check_device(op, "device", device)
    points, *offsets_and_flags = _pack(batch, ignore)  # (the offsets stay on the host: checked there)
    maps = _C.targets(points.to(device), *offsets_and_flags, height, width, shrink_ratio, thresh_min,
                      thresh_max, min_text_size, distance == "exact")
    return DBTargets(*maps.unbind(0))


def db_targets(polygons: Sequence, size, ignore: Sequence[bool] | None = None, **options) -> DBTargets:
    """Label maps of one image: :class:`DBTargets` of (H, W) float32 CPU tensors.

    ``polygons`` is a sequence of (N_i, 2) arrays or tensors (x, y in pixels),
    ``ignore`` one bool per polygon; the keyword options are those of
    :func:`db_targets_batch` (``device`` included).
    """
    maps = db_targets_batch([polygons], size, None if ignore is None else [ignore], **options)
    return DBTargets(*(m[0] for m in maps))
