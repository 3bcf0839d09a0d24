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

A polygon with no point (0 rows) or a non-finite coordinate raises ValueError;
one with 1 or 2 points has no area and is ignored (zeroed along its segment).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import torch

from dbnet_fast.ops._checks import check_device, check_finite_scalar
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
        polygon = polygon.detach().cpu().numpy()
    try:
        points = np.asarray(polygon, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"db_targets: {_name(image, index)} must be an (N, 2) array of numbers") \
            from error
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"db_targets: {_name(image, index)} must have shape (N, 2), "
                         f"got {points.shape}")
    if points.shape[0] == 0:
        raise ValueError(f"db_targets: {_name(image, index)} has no points")
    return points


def _name(image: int, index: int) -> str:
    return f"image {image} polygon {index}"


def _raise_bad_value(batch, stacked: np.ndarray, offsets: np.ndarray):
    """Names the first polygon with a coordinate that is not finite or beyond 1e7 pixels."""
    row = int(np.argmax(~(np.abs(stacked) <= 1e7).all(axis=1)))
    index = int(np.searchsorted(offsets, row, side="right")) - 1
    names = [_name(b, i) for b, polygons in enumerate(batch) for i in range(len(polygons))]
    if not np.isfinite(stacked[row]).all():
        raise ValueError(f"db_targets: {names[index]} has a NaN or infinite coordinate")
    raise ValueError(f"db_targets: {names[index]} has a coordinate beyond 1e7 pixels")


def _size(size) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError) as error:
        raise TypeError(f"db_targets: size must be (height, width), got {size!r}") from error
    if height < 1 or width < 1 or height > 1 << 20 or width > 1 << 20:
        raise ValueError(f"db_targets: size must be positive (and at most 2^20), got {size!r}")
    return height, width


def _pack(batch, ignore):
    """CSR packing: points (N, 2), polygon offsets (P + 1), image offsets (B + 1), flags (P)."""
    arrays, flags, image_offsets = [], [], [0]
    if ignore is not None and len(ignore) != len(batch):
        raise ValueError("db_targets: ignore must have one entry per image")
    for b, polygons in enumerate(batch):
        tags = [False] * len(polygons) if ignore is None or ignore[b] is None else list(ignore[b])
        if len(tags) != len(polygons):
            raise ValueError(f"db_targets: image {b}: ignore must have one flag per polygon")
        arrays.extend(_as_points(polygon, b, i) for i, polygon in enumerate(polygons))
        flags.extend(bool(tag) for tag in tags)
        image_offsets.append(len(flags))
    polygon_offsets = np.zeros(len(arrays) + 1, np.int64)
    np.cumsum([len(a) for a in arrays], out=polygon_offsets[1:])
    stacked = np.concatenate(arrays) if arrays else np.zeros((0, 2))
    if not (np.abs(stacked) <= 1e7).all():  # NaN and inf fail too
        _raise_bad_value(batch, stacked, polygon_offsets)
    return (
        torch.from_numpy(stacked.astype(np.float32)),
        torch.from_numpy(polygon_offsets),
        torch.from_numpy(np.asarray(image_offsets, np.int64)),
        torch.from_numpy(np.asarray(flags, bool)),
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
        size: (height, width) of every image.
        ignore: per image, one bool per polygon (the ``###`` tag), or None.
        device: where to compute: None or "cpu" (C++, images in parallel over
            torch's threads) or a CUDA device (the whole batch in CUDA kernels).
        shrink_ratio, thresh_min, thresh_max, min_text_size, distance: see the
            module documentation (MhLiao/DB's defaults).

    Returns:
        :class:`DBTargets` of (B, H, W) float32 tensors on ``device``.
    """
    height, width = _size(size)
    if distance not in DISTANCES:
        raise ValueError(f"db_targets: distance must be one of {DISTANCES}, got {distance!r}")
    params = {}
    for name, value in [("shrink_ratio", shrink_ratio), ("thresh_min", thresh_min),
                        ("thresh_max", thresh_max), ("min_text_size", min_text_size)]:
        params[name] = check_finite_scalar("db_targets", name, value)
    if not 0 <= params["shrink_ratio"] < 1:
        raise ValueError(f"db_targets: shrink_ratio must be in [0, 1), got {shrink_ratio}")
    device = torch.device(device if device is not None else "cpu")
    check_device("db_targets", "device", device)
    if device.type == "meta":
        raise ValueError("db_targets: device must be the CPU or a CUDA device")
    packed = _pack(batch, ignore)
    if device.type != "cpu":
        packed = [t.to(device) for t in packed]
    maps = _C.targets(*packed, height, width, params["shrink_ratio"], params["thresh_min"],
                      params["thresh_max"], params["min_text_size"], distance == "exact")
    return DBTargets(*maps.unbind(0))


def db_targets(polygons: Sequence, size, ignore: Sequence[bool] | None = None, **options) -> DBTargets:
    """Label maps of one image: :class:`DBTargets` of (H, W) float32 CPU tensors.

    ``polygons`` is a sequence of (N_i, 2) arrays or tensors (x, y in pixels),
    ``ignore`` one bool per polygon; the keyword options are those of
    :func:`db_targets_batch` (``device`` included).
    """
    maps = db_targets_batch([polygons], size, None if ignore is None else [ignore], **options)
    return DBTargets(*(m[0] for m in maps))
