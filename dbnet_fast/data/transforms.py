"""Augmentation and the sample pipeline (MhLiao/DB's training recipe).

A transform is called as ``transform(image, polygons, ignore, rng=None)`` with
an (H, W, 3) uint8 BGR image (as ``cv2.imread`` gives), a list of (N_i, 2)
(x, y) pixel polygons, one ignore flag per polygon and a
``numpy.random.Generator`` (datasets pass one per sample: see
:mod:`dbnet_fast.data.seeding`). It returns the sample dict:

- ``image``: float32 tensor (3, H, W), RGB, ImageNet-normalised (:func:`normalize`);
- ``shrink_map``, ``shrink_mask``, ``thresh_map``, ``thresh_mask``: float32
  (H, W) tensors from :class:`~dbnet_fast.data.DBTargetBuilder`;
- ``polygons``: list of float32 (N_i, 2) arrays in output coordinates;
  ``ignore``: list of bools;
- :class:`EvalTransform` only: ``shape`` int64 (2,) the original (H, W), and
  ``scale`` float32 (2,) = (sx, sy), output size over original size per axis.

Geometry uses the project's pixel convention (pixel (row i, col j) is the
point (x=j, y=i)); every geometric step is a 3x3 matrix applied to the
polygons and, composed, in a single warp to the image, so polygons follow
the image exactly. :class:`TrainTransform` does, like MhLiao/DB: random
horizontal flip, rotation in +-10 degrees about the centre (same canvas),
random scale in [0.5, 3], a random crop whose edges avoid text rows and
columns where possible (MhLiao's RandomCropData; ``crop_sampler="mhliao"`` keeps
its every detail, :func:`mhliao_crop`), the crop resized keeping its
aspect into the top-left of the output square and zero-padded. Polygons
wholly outside the crop are dropped; polygons cut by it are clipped to it
(the target builder only clips to the image, which would put text labels on
the padding); the threshold band (thresh_mask) of a word cut by the crop edge
may still reach into the padding, as in MhLiao/DB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from dbnet_fast.data.targets import DBTargetBuilder
from dbnet_fast.normalization import IMAGENET_MEAN, IMAGENET_STD

MAP_KEYS = ("shrink_map", "shrink_mask", "thresh_map", "thresh_mask")

# per-channel constants on the 0-255 scale, RGB order, shaped (3, 1, 1)
_MEAN_255 = (torch.tensor(IMAGENET_MEAN) * 255).view(3, 1, 1)
_INV_STD_255 = (1.0 / (torch.tensor(IMAGENET_STD) * 255)).view(3, 1, 1)


def _check_image(image, who):
    array = isinstance(image, np.ndarray)
    if not array or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        what = f"{image.dtype} {image.shape}" if array else type(image).__name__
        raise ValueError(f"{who}: image must be an (H, W, 3) uint8 BGR array, got {what}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{who}: image is empty, shape {image.shape}")


def _check_polygons(polygons, ignore, who):
    out = []
    for i, polygon in enumerate(polygons):
        try:
            p = np.asarray(polygon, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise TypeError(f"{who}: polygon {i} must be an (N, 2) array of numbers") from error
        if p.ndim != 2 or p.shape[1] != 2 or len(p) == 0:
            raise ValueError(f"{who}: polygon {i} must have shape (N, 2) with N >= 1, got "
                             f"{p.shape}")
        if not np.isfinite(p).all():
            raise ValueError(f"{who}: polygon {i} has a NaN or infinite coordinate")
        out.append(p)
    if ignore is None:
        flags = [False] * len(out)
    else:
        flags = [bool(v) for v in ignore]
        if len(flags) != len(out):
            raise ValueError(f"{who}: ignore has {len(flags)} flags for {len(out)} polygons")
    return out, flags


def normalize(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 BGR -> (3, H, W) float32 RGB, (x / 255 - mean) / std with the
    ImageNet RGB mean and std. The channel order is reversed (BGR -> RGB) here."""
    # reorder the uint8 bytes first (cheap), then one float pass
    planes = np.ascontiguousarray(image.transpose(2, 0, 1)[::-1])
    return torch.from_numpy(planes).float().sub_(_MEAN_255).mul_(_INV_STD_255)


LIMIT_TYPES = ("max", "min", "resize_long", "short")
MAX_SIDE_LIMIT = 4000
"""inference_size never makes a side longer than this (or than limit_side_len, if larger)."""


def inference_size(height: int, width: int, limit_side_len: int = 960, limit_type: str = "max",
                   multiple: int = 32) -> tuple[int, int]:
    """The model input size (h, w) for an image of (height, width) at inference.

    ``limit_type`` (PaddleOCR's DetResizeForTest, type 0, for the first three):

    - ``"max"`` (PaddleOCR's default, with 960): shrink so the long side is at
      most ``limit_side_len``; never enlarge;
    - ``"min"`` (RapidOCR's, with 736): enlarge so the short side is at least
      ``limit_side_len``; never shrink;
    - ``"resize_long"``: scale so the long side equals ``limit_side_len``;
    - ``"short"`` (MhLiao/DB's evaluation, with 736): scale so the short side
      equals ``limit_side_len`` (rounded to a multiple), the long side rounded up.

    Sides are then rounded to the nearest multiple of ``multiple`` (at least one
    multiple), truncating ``side * ratio`` first as PaddleOCR does. Whatever
    the type, the long side is then kept within ``max(MAX_SIDE_LIMIT,
    limit_side_len)`` (newer PaddleOCR caps it at 4000 too): a 1 x 10000 strip
    enlarged to a 736 short side would otherwise need gigabytes.
    """
    if limit_type not in LIMIT_TYPES:
        raise ValueError(f"limit_type must be one of {LIMIT_TYPES}, got {limit_type!r}")
    if isinstance(limit_side_len, bool) or not isinstance(limit_side_len, (int, np.integer)) \
            or limit_side_len < 1:
        raise ValueError(f"limit_side_len must be a positive int, got {limit_side_len!r}")
    if height < 1 or width < 1:
        raise ValueError(f"image is empty: {height}x{width}")
    m = multiple
    cap = max(MAX_SIDE_LIMIT, limit_side_len)
    if limit_type == "short":
        short = max(m, round(limit_side_len / m) * m)
        long_side = max(m, math.ceil(short / min(height, width) * max(height, width) / m) * m)
        if long_side <= cap:
            return (short, long_side) if height <= width else (long_side, short)
        ratio = cap / max(height, width)  # too elongated: the long side at the cap
    elif limit_type == "max":
        ratio = limit_side_len / max(height, width) if max(height, width) > limit_side_len else 1.0
    elif limit_type == "min":
        ratio = limit_side_len / min(height, width) if min(height, width) < limit_side_len else 1.0
    else:
        ratio = limit_side_len / max(height, width)
    ratio = min(ratio, cap / max(height, width))
    return (max(m, int(round(int(height * ratio) / m) * m)),
            max(m, int(round(int(width * ratio) / m) * m)))


def check_input_size(size, who: str) -> tuple[int, int]:
    """An exact model input ``size`` -> (height, width) as ints; a ValueError naming
    ``who``'s ``size`` unless both are positive multiples of 32 (the model's stride)."""
    try:
        height, width = size
    except (TypeError, ValueError):
        height = width = None
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 32
               and v % 32 == 0 for v in (height, width)):
        raise ValueError(f"{who}: size must be (height, width), both positive multiples of 32, "
                         f"got {size!r}")
    return int(height), int(width)


# ----------------------------------------------------------------------------- geometry


def flip_matrix(width: int) -> np.ndarray:
    """Horizontal mirror of an image ``width`` pixels wide: x -> width - 1 - x."""
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def rotation_matrix(size, degrees: float) -> np.ndarray:
    """Rotation by ``degrees`` (counter-clockwise on screen, as cv2) about the centre
    of an image of ``size`` (H, W), keeping the canvas."""
    height, width = size
    m = cv2.getRotationMatrix2D(((width - 1) / 2.0, (height - 1) / 2.0), float(degrees), 1.0)
    return np.vstack([m, [0.0, 0.0, 1.0]])


def resize_matrix(size, new_size) -> np.ndarray:
    """The map of ``cv2.resize`` from (H, W) ``size`` to ``new_size``:
    x -> (x + 0.5) * new_w / w - 0.5 (pixel edges map to pixel edges)."""
    (h, w), (nh, nw) = size, new_size
    sx, sy = nw / w, nh / h
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


def crop_resize_matrix(box, out_size) -> np.ndarray:
    """Crop ``box`` = (x0, y0, w, h) (pixels x0 .. x0 + w - 1) resized to ``out_size`` (oh, ow)
    at the top-left of the output."""
    x0, y0, w, h = box
    return resize_matrix((h, w), out_size) @ np.array([[1.0, 0, -x0], [0, 1.0, -y0], [0, 0, 1.0]])


def transform_polygons(polygons, matrix) -> list[np.ndarray]:
    """Each (N, 2) polygon through the 3x3 ``matrix`` (affine or projective), float64."""
    out = []
    for p in polygons:
        p = np.asarray(p, dtype=np.float64)
        q = p @ matrix[:2, :2].T + matrix[:2, 2]
        w = p @ matrix[2, :2] + matrix[2, 2]
        out.append(q / w[:, None])
    return out


def mirror_order(polygon: np.ndarray) -> np.ndarray:
    """Re-orders a mirrored polygon so it keeps its vertex convention.

    A mirror reverses orientation. A polygon of 2n points written as the top
    edge (left to right) then the bottom edge back, as ICDAR quads (TL, TR, BR,
    BL) and curved 2n-point polygons are, gets each half reversed: the old TR
    becomes the new TL. An odd count keeps its first point and reverses the rest.
    """
    n = len(polygon)
    if n % 2 == 0:
        half = n // 2
        return np.concatenate([polygon[:half][::-1], polygon[half:][::-1]])
    return np.concatenate([polygon[:1], polygon[1:][::-1]])


def clip_polygon(polygon: np.ndarray, rect) -> np.ndarray:
    """``polygon`` (N, 2) clipped to ``rect`` = (x0, y0, x1, y1) (Sutherland-Hodgman).

    Returns the clipped (K, 2) polygon, K = 0 when nothing is left; a polygon
    wholly inside comes back unchanged (same points, same order)."""
    x0, y0, x1, y1 = rect
    lo, hi = polygon.min(0), polygon.max(0)
    if lo[0] >= x0 and lo[1] >= y0 and hi[0] <= x1 and hi[1] <= y1:
        return polygon
    if hi[0] <= x0 or hi[1] <= y0 or lo[0] >= x1 or lo[1] >= y1:
        return polygon[:0]
    points = polygon
    for axis, bound, keep_below in ((0, x0, False), (0, x1, True), (1, y0, False), (1, y1, True)):
        if len(points) == 0:
            break
        inside = points[:, axis] <= bound if keep_below else points[:, axis] >= bound
        out = []
        for i in range(len(points)):
            p, q = points[i - 1], points[i]
            pin, qin = inside[i - 1], inside[i]
            if pin != qin:  # the edge crosses the line: add the crossing
                t = (bound - p[axis]) / (q[axis] - p[axis])
                out.append(p + t * (q - p))
            if qin:
                out.append(q)
        points = np.array(out).reshape(-1, 2)
    return points


def _runs(indices):
    """Consecutive runs of sorted ``indices`` as a list of arrays."""
    return np.split(indices, np.flatnonzero(np.diff(indices) > 1) + 1)


def _pick_span(rng, free, length):
    """Two positions on text-free lines: from two different free runs when there are
    several (so text between them is kept whole), else anywhere on the free lines."""
    runs = _runs(free)
    if len(runs) > 1:
        a, b = rng.choice(len(runs), size=2, replace=False)
        lo, hi = sorted((int(rng.choice(runs[a])), int(rng.choice(runs[b]))))
    else:
        lo, hi = sorted(int(v) for v in rng.choice(free, size=2))
    return min(max(lo, 0), length - 1), min(max(hi, 0), length - 1)


def text_preserving_crop(polygons, ignore, size, rng, min_side_ratio=0.1, max_tries=10):
    """A random crop box (x0, y0, w, h) of an image of ``size`` (H, W) whose edges lie on
    rows and columns crossed by no cared-for polygon's bounding box, holding at least one
    such polygon (partly at least); the whole image when no try succeeds."""
    height, width = size
    rows = np.zeros(height, bool)
    cols = np.zeros(width, bool)
    care = [p for p, ig in zip(polygons, ignore) if not ig]
    boxes = []
    for p in care:
        lo = np.floor(p.min(0)).astype(int)
        hi = np.ceil(p.max(0)).astype(int)
        boxes.append((lo, hi))
        cols[np.clip(lo[0], 0, width) : np.clip(hi[0] + 1, 0, width)] = True
        rows[np.clip(lo[1], 0, height) : np.clip(hi[1] + 1, 0, height)] = True
    free_x, free_y = np.flatnonzero(~cols), np.flatnonzero(~rows)
    if free_x.size == 0 or free_y.size == 0 or not care:
        return 0, 0, width, height
    for _ in range(max_tries):
        x0, x1 = _pick_span(rng, free_x, width)
        y0, y1 = _pick_span(rng, free_y, height)
        if x1 - x0 < min_side_ratio * width or y1 - y0 < min_side_ratio * height:
            continue
        for lo, hi in boxes:
            if hi[0] >= x0 and lo[0] < x1 and hi[1] >= y0 and lo[1] < y1:
                return x0, y0, x1 - x0, y1 - y0
    return 0, 0, width, height


def mhliao_crop(polygons, ignore, size, rng, min_side_ratio=0.1, max_tries=10):
    """MhLiao/DB's RandomCropData.crop_area: a crop box (x0, y0, w, h) of an image of
    ``size`` (H, W), the whole image when no try succeeds (``crop_sampler="mhliao"``).

    Same idea as :func:`text_preserving_crop`, with MhLiao/DB's details kept, since
    they decide how often it falls back to the whole image (measured on ICDAR 2015's
    training set in issue 23: 33.8% against 7.2% for ours) and so how small words
    appear in training:

    - a cared-for polygon marks columns ``round(min x)`` .. ``round(max x) - 1`` as
      text (rows alike), by Python slicing: a negative start counts from the end, so
      a word hanging over the left or top edge usually marks nothing;
    - the free (unmarked) columns are split into runs, and the last run is never kept;
      with more than one run left, two runs are drawn *with* replacement and one
      column from each (the same run twice gives a narrow span, usually a failed
      try), else two columns anywhere on the free ones; rows alike, after columns;
    - a try succeeds when both sides reach ``min_side_ratio`` of the image and some
      cared-for polygon is not wholly outside the box (unrounded, strict tests);
    - the random draws are those of MhLiao/DB's NumPy calls, in its order, on ``rng``.
    """
    height, width = size
    rows = np.zeros(height, bool)
    cols = np.zeros(width, bool)
    care = [np.asarray(p, np.float64) for p, ig in zip(polygons, ignore) if not ig]
    for p in care:
        lo, hi = np.round(p.min(0)).astype(int), np.round(p.max(0)).astype(int)
        cols[lo[0]:hi[0]] = True
        rows[lo[1]:hi[1]] = True
    free_x, free_y = np.flatnonzero(~cols), np.flatnonzero(~rows)
    if free_x.size == 0 or free_y.size == 0:
        return 0, 0, width, height
    runs_x, runs_y = _runs(free_x)[:-1], _runs(free_y)[:-1]
    for _ in range(max_tries):
        x0, x1 = _mhliao_span(rng, free_x, runs_x, width)
        y0, y1 = _mhliao_span(rng, free_y, runs_y, height)
        if x1 - x0 < min_side_ratio * width or y1 - y0 < min_side_ratio * height:
            continue
        for p in care:
            lo, hi = p.min(0), p.max(0)
            if not (hi[0] < x0 or lo[0] > x1 or hi[1] < y0 or lo[1] > y1):
                return x0, y0, x1 - x0, y1 - y0
    return 0, 0, width, height


def _mhliao_span(rng, free, runs, length):
    if len(runs) > 1:
        picked = rng.choice(len(runs), size=2)
        values = [int(rng.choice(runs[i], size=1)[0]) for i in picked]
    else:
        values = [int(v) for v in rng.choice(free, size=2)]
    return min(max(min(values), 0), length - 1), min(max(max(values), 0), length - 1)


CROP_SAMPLERS = {"ours": text_preserving_crop, "mhliao": mhliao_crop}
"""TrainTransform's crop samplers by name."""


def _warp(image, matrix, out_size):
    """``image`` through the affine 3x3 ``matrix`` into ``out_size`` (H, W); strong
    downscales first go through an area resize (no aliasing) and then the warp."""
    factor = math.sqrt(abs(np.linalg.det(matrix[:2, :2])))
    if factor < 0.66:
        h, w = image.shape[:2]
        pre_size = (max(1, round(h * factor * 1.5)), max(1, round(w * factor * 1.5)))
        pre = cv2.resize(image, pre_size[::-1], interpolation=cv2.INTER_AREA)
        matrix = matrix @ np.linalg.inv(resize_matrix((h, w), pre_size))
        image = pre
    return cv2.warpAffine(image, matrix[:2], (out_size[1], out_size[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def _out_size(size, who):
    if isinstance(size, (int, np.integer)):
        size = (size, size)
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{who}: size must be an int or (height, width), got {size!r}") from error
    if h < 8 or w < 8:
        raise ValueError(f"{who}: size must be at least 8 pixels, got {size!r}")
    return h, w


def _finish(image, polygons, ignore, builder, targets):
    sample = {"image": normalize(image)}
    if targets:
        maps = builder(polygons, image.shape[:2], ignore)
        sample.update(zip(MAP_KEYS, maps))
    sample["polygons"] = [p.astype(np.float32) for p in polygons]
    sample["ignore"] = list(ignore)
    return sample


@dataclass
class TrainTransform:
    """MhLiao/DB training augmentation + labels; see the module documentation.

    Args:
        size: output side (int) or (height, width); 640 as MhLiao/DB.
        flip_prob: probability of the horizontal flip.
        max_rotation: rotations are uniform in +-max_rotation degrees.
        scale_range: the random scale is uniform in this range.
        min_crop_side_ratio, max_tries: of the text-preserving crop.
        builder: makes the label maps (a :class:`DBTargetBuilder`).
        targets: False leaves the label maps out.
        crop_sampler: ``"ours"`` (:func:`text_preserving_crop`) or ``"mhliao"``
            (:func:`mhliao_crop`, MhLiao/DB's exactly; falls back to the whole image
            far more often).
    """

    size: int | tuple[int, int] = 640
    flip_prob: float = 0.5
    max_rotation: float = 10.0
    scale_range: tuple[float, float] = (0.5, 3.0)
    min_crop_side_ratio: float = 0.1
    max_tries: int = 10
    builder: DBTargetBuilder = field(default_factory=DBTargetBuilder)
    targets: bool = True
    crop_sampler: str = "ours"

    def __post_init__(self):
        self.size = _out_size(self.size, "TrainTransform")
        if self.crop_sampler not in CROP_SAMPLERS:
            raise ValueError(f"TrainTransform: crop_sampler must be one of "
                             f"{tuple(CROP_SAMPLERS)}, got {self.crop_sampler!r}")
        if not 0 <= self.flip_prob <= 1:
            raise ValueError(f"TrainTransform: flip_prob must be in [0, 1], got {self.flip_prob}")
        if not 0 <= self.max_rotation <= 180:
            raise ValueError("TrainTransform: max_rotation must be in [0, 180], got "
                             f"{self.max_rotation}")
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ValueError("TrainTransform: scale_range must be 0 < low <= high, got "
                             f"{self.scale_range}")
        if not 0 < self.min_crop_side_ratio <= 1 or self.max_tries < 1:
            raise ValueError("TrainTransform: min_crop_side_ratio must be in (0, 1] and "
                             "max_tries >= 1")

    def sample_crop(self, image_size, polygons, ignore, rng):
        """The random draws, in order: flip, rotation, scale, then the crop.

        Returns ``matrix`` (3x3, input image -> scaled image), ``scaled`` (H, W) of
        the scaled image, ``box`` (x0, y0, w, h) the crop in it (the whole scaled
        image when the sampler falls back) and ``flipped``."""
        height, width = image_size
        matrix = np.eye(3)
        flipped = rng.random() < self.flip_prob
        if flipped:
            matrix = flip_matrix(width) @ matrix
        angle = rng.uniform(-self.max_rotation, self.max_rotation)
        matrix = rotation_matrix((height, width), angle) @ matrix
        s = rng.uniform(*self.scale_range)
        scaled = (max(1, round(height * s)), max(1, round(width * s)))
        matrix = resize_matrix((height, width), scaled) @ matrix
        box = CROP_SAMPLERS[self.crop_sampler](transform_polygons(polygons, matrix), ignore,
                                               scaled, rng, self.min_crop_side_ratio,
                                               self.max_tries)
        return matrix, scaled, box, flipped

    def geometry(self, image_size, polygons, ignore, rng):
        """The random 3x3 matrix from the input image to the output, the valid output
        region (oh, ow) (the rest is padding) and whether the image was flipped."""
        matrix, _, box, flipped = self.sample_crop(image_size, polygons, ignore, rng)
        out_h, out_w = self.size
        fit = min(out_w / box[2], out_h / box[3])
        valid = (max(1, min(out_h, int(box[3] * fit))), max(1, min(out_w, int(box[2] * fit))))
        return crop_resize_matrix(box, valid) @ matrix, valid, flipped

    def __call__(self, image, polygons=(), ignore=None, rng=None) -> dict:
        _check_image(image, "TrainTransform")
        polygons, ignore = _check_polygons(polygons, ignore, "TrainTransform")
        rng = rng if rng is not None else np.random.default_rng()
        matrix, (vh, vw), flipped = self.geometry(image.shape[:2], polygons, ignore, rng)
        out = _warp(image, matrix, self.size)
        out[vh:] = 0
        out[:, vw:] = 0
        rect = (-0.5, -0.5, vw - 0.5, vh - 0.5)
        kept, flags = [], []
        for p, flag in zip(transform_polygons(polygons, matrix), ignore):
            if flipped:
                p = mirror_order(p)
            p = clip_polygon(p, rect) if len(p) >= 3 else p
            lo, hi = (p.min(0), p.max(0)) if len(p) else (None, None)
            if len(p) == 0 or (hi < rect[:2]).any() or (lo > rect[2:]).any():
                continue  # wholly outside the crop
            kept.append(p)
            flags.append(flag)
        return _finish(out, kept, flags, self.builder, self.targets)


@dataclass
class EvalTransform:
    """Resize keeping the aspect ratio, sides rounded to multiples of ``multiple``;
    or to an exact ``size``.

    Args:
        short_side: scale so the short side becomes this; None keeps the scale at 1.
        max_side: then, if the long side exceeds this, scale it down to it.
        multiple: each output side is rounded to the nearest multiple (>= 1 multiple).
        builder, targets: as :class:`TrainTransform`.
        size: (height, width), multiples of 32: every image is resized to exactly
            this, aspect not kept, bilinear (MhLiao/DB's ICDAR 2015 test resize is
            (736, 1280), ``cv2.resize``'s default interpolation); excludes
            ``short_side`` and ``max_side``.

    The sample also holds ``shape`` (original H, W) and ``scale`` = (sx, sy), the
    output size over the original per axis; :func:`unscale_polygons` maps output
    points back exactly (``points / scale`` is within half a pixel).
    """

    short_side: int | None = None
    max_side: int | None = None
    multiple: int = 32
    builder: DBTargetBuilder = field(default_factory=DBTargetBuilder)
    targets: bool = True
    size: tuple[int, int] | None = None

    def __post_init__(self):
        if self.size is not None:
            self.size = check_input_size(self.size, "EvalTransform")
            if self.short_side is not None or self.max_side is not None:
                raise ValueError("EvalTransform: size (exact) excludes short_side and max_side")
        for name in ("short_side", "max_side"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
                raise ValueError(f"EvalTransform: {name} must be a positive int or None, got "
                                 f"{value!r}")
        if not isinstance(self.multiple, (int, np.integer)) or self.multiple < 1:
            raise ValueError("EvalTransform: multiple must be a positive int, got "
                             f"{self.multiple!r}")

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) of the resized image for an input of (height, width)."""
        if self.size is not None:
            return self.size
        s = 1.0 if self.short_side is None else self.short_side / min(height, width)
        if self.max_side is not None and max(height, width) * s > self.max_side:
            s = self.max_side / max(height, width)
        m = self.multiple
        return max(m, round(height * s / m) * m), max(m, round(width * s / m) * m)

    def __call__(self, image, polygons=(), ignore=None, rng=None) -> dict:
        _check_image(image, "EvalTransform")
        polygons, ignore = _check_polygons(polygons, ignore, "EvalTransform")
        height, width = image.shape[:2]
        size = self.output_size(height, width)
        if size != (height, width):
            shrink = size[0] < height or size[1] < width
            mode = cv2.INTER_AREA if shrink and self.size is None else cv2.INTER_LINEAR
            image = cv2.resize(image, size[::-1], interpolation=mode)
        polygons = transform_polygons(polygons, resize_matrix((height, width), size))
        sample = _finish(image, polygons, ignore, self.builder, self.targets)
        sample["shape"] = torch.tensor([height, width], dtype=torch.int64)
        sample["scale"] = torch.tensor([size[1] / width, size[0] / height], dtype=torch.float32)
        return sample


def unscale_polygons(polygons, scale) -> list[np.ndarray]:
    """Output-coordinate polygons back to the original image of an :class:`EvalTransform`
    sample: x -> (x + 0.5) / sx - 0.5 (same for y), float32."""
    sx, sy = (float(v) for v in scale)
    factor = np.array([sx, sy])
    return [((np.asarray(p, np.float64) + 0.5) / factor - 0.5).astype(np.float32) for p in polygons]


def collate(samples: list[dict]) -> dict:
    """DataLoader ``collate_fn`` for sample dicts.

    Tensors are stacked (B, ...); images or maps of different sizes are zero-padded
    at the bottom and right to the largest (masks are 0 there, so losses skip it).
    ``valid_size`` int64 (B, 2) holds each sample's own (h, w). Everything else
    (``polygons``, ``ignore``, ``texts``) becomes a list with one entry per sample.
    """
    if not samples:
        raise ValueError("collate: empty batch")
    keys = list(samples[0])
    for i, s in enumerate(samples):
        if list(s) != keys:
            raise ValueError(f"collate: sample {i} has keys {list(s)}, sample 0 has {keys}")
    batch = {}
    for key in keys:
        values = [s[key] for s in samples]
        if not all(isinstance(v, torch.Tensor) for v in values):
            batch[key] = values
            continue
        shapes = {tuple(v.shape) for v in values}
        if len(shapes) == 1:
            batch[key] = torch.stack(values)
            continue
        if len({v.ndim for v in values}) != 1 or values[0].ndim < 2 or \
                len({tuple(v.shape[:-2]) for v in values}) != 1:
            raise ValueError(f"collate: {key} tensors cannot be padded to one shape: "
                             f"{sorted(shapes)}")
        h = max(v.shape[-2] for v in values)
        w = max(v.shape[-1] for v in values)
        out = values[0].new_zeros((len(values), *values[0].shape[:-2], h, w))
        for i, v in enumerate(values):
            out[i, ..., : v.shape[-2], : v.shape[-1]] = v
        batch[key] = out
    if "image" in batch:
        sizes = [list(s["image"].shape[-2:]) for s in samples]
        batch["valid_size"] = torch.tensor(sizes, dtype=torch.int64)
    return batch
