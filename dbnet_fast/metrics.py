"""ICDAR 2015 text-detection evaluation: the IoU protocol (precision, recall, H-mean).

This is the protocol of the Robust Reading Competition's ICDAR 2015 script
(IoU version, not DetEval), as MhLiao/DB's and PaddleOCR's
``DetectionIoUEvaluator`` compute it:

1. Ground-truth polygons flagged ``ignore`` ("###" text) are don't-care.
2. A detection is don't-care when, for some don't-care ground truth, the
   intersection area divided by the detection's own area is more than
   ``ignore_overlap`` (0.5). A zero-area detection is never don't-care.
3. Greedy one-to-one matching in order: for each ground truth i (in order),
   for each detection j (in order), match them if neither is matched yet,
   neither is don't-care and IoU(i, j) > ``iou_threshold`` (strictly). The
   first detection in order wins, not the best one.
4. Totals over all images: precision = matched / care detections, recall =
   matched / care ground truths (global counts, not a mean of per-image
   values); H-mean = 2 P R / (P + R). Each of the three is 0 when its
   denominator is 0, as the official script does: a dataset without any care
   ground truth has recall 0, one without care detections precision 0.
   Per image, the official script's convention is kept in ``per_image``:
   without care ground truth recall is 1 and precision is 1 when there is no
   care detection either, else 0.

Geometry (shapely): IoU = area(A & B) / (area(A) + area(B) - area(A & B)),
0 when that union is 0, so a polygon of fewer than 3 points has IoU 0 with
everything and is never matched; it still counts (a care ground truth lowers
recall, a detection lowers precision).

Invalid polygons (self-intersecting, e.g. a "bow-tie" quad, or of zero area
with 3 or more points, e.g. collinear ones) never raise. ``invalid="skip"``
(default) drops them before evaluation, as MhLiao/DB's and PaddleOCR's
evaluators do (a dropped ground truth does not count in recall, a dropped
detection not in precision), so the figures compare with published ones.
``invalid="repair"`` replaces them with ``shapely.make_valid``'s polygonal part
(a bow-tie becomes its two triangles, of total area the sum of theirs; a
collinear one becomes empty, IoU 0) and evaluates them like any other.

The settings are returned as ``protocol`` (:func:`protocol`), so every result
written to disk says how it was computed.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
import shapely
from shapely.geometry import Polygon

INVALID_MODES = ("skip", "repair")
PROTOCOL = "ICDAR 2015 IoU"


def protocol(iou_threshold: float = 0.5, ignore_overlap: float = 0.5,
             invalid: str = "skip") -> dict:
    """The settings of an evaluation, as written into results (``eval.json``)."""
    return {"name": PROTOCOL, "iou_threshold": float(iou_threshold),
            "ignore_overlap": float(ignore_overlap), "invalid": invalid,
            "matching": "greedy one-to-one in ground-truth order, IoU > iou_threshold",
            "totals": "global counts over all images"}


def evaluate_detections(
    predictions: Sequence,
    ground_truths: Sequence,
    iou_threshold: float = 0.5,
    ignore_overlap: float = 0.5,
    *,
    invalid: str = "skip",
) -> dict:
    """Evaluate detections against ground truth with the ICDAR 2015 IoU protocol.

    Args:
        predictions: per image, the detected polygons: a sequence of (K, 2)
            point arrays (NumPy arrays, torch tensors or nested lists, x then y),
            or one (N, K, 2) array (e.g. the (N, 4, 2) quads of the post-processor).
        ground_truths: per image, a sequence of ``(polygon, ignore)`` pairs,
            ``polygon`` a (K, 2) point array and ``ignore`` a bool (don't-care).
        iou_threshold: a detection matches a ground truth when IoU > this.
        ignore_overlap: a detection is don't-care when its intersection with a
            don't-care ground truth is more than this fraction of its own area.
        invalid: ``"skip"`` (default, as MhLiao/DB and PaddleOCR) or ``"repair"``
            invalid polygons (see the module documentation).

    Returns:
        a dict with ``precision``, ``recall``, ``hmean`` (floats), the global
        counts ``matched``, ``gt_care``, ``det_care``, ``num_images``,
        ``gt_skipped`` and ``det_skipped`` (invalid polygons dropped), ``protocol``
        (the settings, :func:`protocol`), and
        ``per_image``: one dict per image with ``precision``, ``recall``,
        ``hmean``, ``matched``, ``gt_care``, ``det_care``, ``pairs`` (list of
        ``(gt_index, det_index, iou)``), ``gt_dont_care`` and ``det_dont_care``
        (indices), ``gt_skipped`` and ``det_skipped`` (indices of invalid
        polygons dropped with ``invalid="skip"``). Indices refer to the input
        order of that image.
    """
    if isinstance(predictions, (str, bytes)) or not isinstance(predictions, Sequence):
        raise TypeError(f"predictions must be a sequence (one entry per image), "
                        f"got {type(predictions).__name__}")
    if isinstance(ground_truths, (str, bytes)) or not isinstance(ground_truths, Sequence):
        raise TypeError(f"ground_truths must be a sequence (one entry per image), "
                        f"got {type(ground_truths).__name__}")
    if len(predictions) != len(ground_truths):
        raise ValueError(f"predictions and ground_truths must have one entry per image, got "
                         f"{len(predictions)} and {len(ground_truths)}")
    iou_threshold = _fraction("iou_threshold", iou_threshold)
    ignore_overlap = _fraction("ignore_overlap", ignore_overlap)
    if invalid not in INVALID_MODES:
        raise ValueError(f"invalid must be one of {INVALID_MODES}, got {invalid!r}")

    per_image = [
        _evaluate_image(index, dets, gts, iou_threshold, ignore_overlap, invalid)
        for index, (dets, gts) in enumerate(zip(predictions, ground_truths))
    ]
    matched = sum(r["matched"] for r in per_image)
    gt_care = sum(r["gt_care"] for r in per_image)
    det_care = sum(r["det_care"] for r in per_image)
    recall = matched / gt_care if gt_care else 0.0
    precision = matched / det_care if det_care else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "hmean": _hmean(precision, recall),
        "matched": matched,
        "gt_care": gt_care,
        "det_care": det_care,
        "num_images": len(per_image),
        "gt_skipped": sum(len(r["gt_skipped"]) for r in per_image),
        "det_skipped": sum(len(r["det_skipped"]) for r in per_image),
        "protocol": protocol(iou_threshold, ignore_overlap, invalid),
        "per_image": per_image,
    }


def _fraction(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


def _hmean(precision: float, recall: float) -> float:
    total = precision + recall
    return 0.0 if total == 0 else 2.0 * precision * recall / total


def _points(value, what: str) -> np.ndarray:
    """A (K, 2) float64 array of finite points."""
    if hasattr(value, "detach"):  # torch tensor, without importing torch here
        value = value.detach().cpu().numpy()
    try:
        points = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} must be a (K, 2) array of numbers: {error}") from None
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"{what} must have shape (K, 2), got {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError(f"{what} has non-finite coordinates")
    return points


def _polygonal_part(geometry):
    """The polygons of a geometry (make_valid may also return lines or points)."""
    if geometry.geom_type in ("Polygon", "MultiPolygon"):
        return geometry
    parts = [p for p in shapely.get_parts(geometry) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else Polygon()


def _geometry(value, what: str, invalid: str):
    """A valid shapely geometry for a polygon, or None when it is invalid and skipped."""
    points = _points(value, what)
    if len(points) < 3:
        return Polygon()  # no area: IoU 0 with everything
    polygon = Polygon(points)
    if polygon.is_valid:
        return polygon
    if invalid == "skip":
        return None
    return _polygonal_part(shapely.make_valid(polygon))


def _image_detections(dets, image: int) -> list:
    if hasattr(dets, "detach"):
        dets = dets.detach().cpu().numpy()
    if isinstance(dets, np.ndarray):
        if dets.ndim == 3 and dets.shape[2] == 2:
            return list(dets)
        if dets.ndim == 1 and dets.size == 0:
            return []
        raise ValueError(f"predictions[{image}] as one array must have shape (N, K, 2), "
                         f"got {dets.shape}")
    if isinstance(dets, (str, bytes)) or not isinstance(dets, Sequence):
        raise TypeError(f"predictions[{image}] must be a sequence of (K, 2) polygons or an "
                        f"(N, K, 2) array, got {type(dets).__name__}")
    return list(dets)


def _image_ground_truths(gts, image: int) -> list[tuple[object, bool]]:
    if isinstance(gts, (str, bytes)) or not isinstance(gts, Sequence):
        raise TypeError(f"ground_truths[{image}] must be a sequence of (polygon, ignore) "
                        f"pairs, got {type(gts).__name__}")
    pairs = []
    for i, entry in enumerate(gts):
        if not isinstance(entry, (tuple, list)) or len(entry) != 2:
            raise ValueError(f"ground_truths[{image}][{i}] must be a (polygon, ignore) pair")
        polygon, ignore = entry
        if not isinstance(ignore, (bool, np.bool_)) and not (
                isinstance(ignore, numbers.Integral) and ignore in (0, 1)):
            raise TypeError(f"ground_truths[{image}][{i}]: ignore must be a bool, "
                            f"got {ignore!r}")
        pairs.append((polygon, bool(ignore)))
    return pairs


def _object_array(geometries: list) -> np.ndarray:
    array = np.empty(len(geometries), dtype=object)
    array[:] = geometries
    return array


def _intersection_areas(gts: np.ndarray, dets: np.ndarray) -> np.ndarray:
    """(G, D) intersection areas, computed only where the bounding boxes overlap."""
    areas = np.zeros((len(gts), len(dets)))
    if len(gts) == 0 or len(dets) == 0:
        return areas
    gb, db = shapely.bounds(gts), shapely.bounds(dets)  # (x0, y0, x1, y1), NaN when empty
    with np.errstate(invalid="ignore"):
        overlap = ((gb[:, None, 0] <= db[None, :, 2]) & (db[None, :, 0] <= gb[:, None, 2])
                   & (gb[:, None, 1] <= db[None, :, 3]) & (db[None, :, 1] <= gb[:, None, 3]))
    gi, di = np.nonzero(overlap)
    if len(gi):
        areas[gi, di] = shapely.area(shapely.intersection(gts[gi], dets[di]))
    return areas


def _evaluate_image(image, dets, gts, iou_threshold, ignore_overlap, invalid) -> dict:
    det_items = _image_detections(dets, image)
    gt_items = _image_ground_truths(gts, image)

    gt_index, gt_geoms, gt_ignore, gt_skipped = [], [], [], []
    for i, (polygon, ignore) in enumerate(gt_items):
        geometry = _geometry(polygon, f"ground_truths[{image}][{i}] polygon", invalid)
        if geometry is None:
            gt_skipped.append(i)
            continue
        gt_index.append(i)
        gt_geoms.append(geometry)
        gt_ignore.append(ignore)
    det_index, det_geoms, det_skipped = [], [], []
    for j, polygon in enumerate(det_items):
        geometry = _geometry(polygon, f"predictions[{image}][{j}]", invalid)
        if geometry is None:
            det_skipped.append(j)
            continue
        det_index.append(j)
        det_geoms.append(geometry)

    gt_array, det_array = _object_array(gt_geoms), _object_array(det_geoms)
    gt_area = shapely.area(gt_array).astype(np.float64)
    det_area = shapely.area(det_array).astype(np.float64)
    inter = _intersection_areas(gt_array, det_array)

    gt_dont_care = np.array(gt_ignore, dtype=bool)
    det_dont_care = np.zeros(len(det_geoms), dtype=bool)
    if gt_dont_care.any() and len(det_geoms):
        with np.errstate(divide="ignore", invalid="ignore"):
            covered = np.where(det_area > 0, inter[gt_dont_care] / det_area, 0.0)
        det_dont_care = (covered > ignore_overlap).any(axis=0)

    union = gt_area[:, None] + det_area[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)

    gt_taken = gt_dont_care.copy()  # don't-care entries can never be matched
    det_taken = det_dont_care.copy()
    pairs = []
    for g in range(len(gt_geoms)):
        for d in range(len(det_geoms)):
            if not gt_taken[g] and not det_taken[d] and iou[g, d] > iou_threshold:
                gt_taken[g] = det_taken[d] = True
                pairs.append((gt_index[g], det_index[d], float(iou[g, d])))

    matched = len(pairs)
    gt_care = int(len(gt_geoms) - gt_dont_care.sum())
    det_care = int(len(det_geoms) - det_dont_care.sum())
    if gt_care == 0:
        recall, precision = 1.0, (0.0 if det_care > 0 else 1.0)
    else:
        recall = matched / gt_care
        precision = matched / det_care if det_care else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "hmean": _hmean(precision, recall),
        "matched": matched,
        "gt_care": gt_care,
        "det_care": det_care,
        "pairs": pairs,
        "gt_dont_care": [gt_index[g] for g in np.flatnonzero(gt_dont_care)],
        "det_dont_care": [det_index[d] for d in np.flatnonzero(det_dont_care)],
        "gt_skipped": gt_skipped,
        "det_skipped": det_skipped,
    }
