"""DBNet label maps in float64 NumPy + pyclipper + OpenCV, written from the
algorithm of MhLiao/DB's MakeSegDetectionData and MakeBorderMap (PaddleOCR
copies them). It is the oracle for dbnet_fast's label generation and the
baseline of its benchmark: clear over fast.

For an image of size (H, W) and text polygons (x, y in pixels; pixel (row i,
column j) is the point (x=j, y=i)):

1. Each polygon is clipped to the image; one with |area| < 1 is ignored.
2. A polygon whose bounding box is less than min_text_size high or wide, one
   tagged ignore, and one whose shrink vanishes are ignored: filled with 0 in
   shrink_mask, left out of the threshold map and its mask.
3. D = A (1 - r^2) / L (A area, L perimeter, r = shrink_ratio).
   shrink_map: the polygon shrunk by D (pyclipper, round joins, integer
   coordinates), every part where the shrink splits (MhLiao/DB keeps only the
   first part).
   thresh_mask: the polygon dilated by D.
   thresh_map: inside the dilated polygon's bounding box,
   max over polygons of 1 - clip(d / D, 0, 1), d the distance to the nearest
   edge, rescaled to [thresh_min, thresh_max].
4. distance="reference" is the published formula: the distance to an edge's
   line from the law of cosines, or the nearer endpoint where the angle at the
   pixel is acute; here without its NaN at vertices and degenerate edges.
   distance="exact" is the true point-to-segment distance.
"""

from __future__ import annotations

import numpy as np

DISTANCES = ("reference", "exact")


def polygon_area(points: np.ndarray) -> float:
    """Signed shoelace area (positive for counter-clockwise in x-right, y-up)."""
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def polygon_perimeter(points: np.ndarray) -> float:
    return float(np.linalg.norm(points - np.roll(points, -1, axis=0), axis=1).sum())


def offset_polygon(points: np.ndarray, delta: float) -> list[np.ndarray]:
    """The polygon grown (delta > 0) or shrunk (delta < 0) with round joins, as
    pyclipper gives it (integer coordinates); a list of parts, maybe empty."""
    import pyclipper

    offset = pyclipper.PyclipperOffset()
    offset.AddPath([tuple(p) for p in points], pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    return [np.asarray(part, dtype=np.float64).reshape(-1, 2) for part in offset.Execute(delta)]


def segment_distance(xs, ys, a, b, mode: str) -> np.ndarray:
    """Distance from the points (xs, ys) to the segment a-b."""
    if mode not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {mode!r}")
    d1 = (xs - a[0]) ** 2 + (ys - a[1]) ** 2
    d2 = (xs - b[0]) ** 2 + (ys - b[1]) ** 2
    length2 = (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2
    if length2 == 0:  # a degenerate edge is a point
        return np.sqrt(d1)
    if mode == "exact":
        t = ((xs - a[0]) * (b[0] - a[0]) + (ys - a[1]) * (b[1] - a[1])) / length2
        t = np.clip(t, 0.0, 1.0)
        return np.hypot(xs - (a[0] + t * (b[0] - a[0])), ys - (a[1] + t * (b[1] - a[1])))
    with np.errstate(divide="ignore", invalid="ignore"):
        # cosin = -cos(angle at the pixel) by the law of cosines
        cosin = (length2 - d1 - d2) / (2.0 * np.sqrt(d1 * d2))
        square_sin = np.clip(1.0 - cosin**2, 0.0, 1.0)
        line = np.sqrt(d1 * d2 * square_sin / length2)
    at_vertex = d1 * d2 == 0
    result = np.where(cosin < 0, np.sqrt(np.minimum(d1, d2)), line)
    return np.where(at_vertex, 0.0, result)


def db_targets_reference(
    polygons,
    size,
    ignore=None,
    *,
    shrink_ratio: float = 0.4,
    thresh_min: float = 0.3,
    thresh_max: float = 0.7,
    min_text_size: float = 8,
    distance: str = "reference",
) -> dict[str, np.ndarray]:
    """The four label maps of one image as float32 (H, W) arrays:
    shrink_map, shrink_mask, thresh_map, thresh_mask (see the module doc)."""
    import cv2

    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
    height, width = (int(v) for v in size)
    polygons = [np.array(p, dtype=np.float64).reshape(-1, 2) for p in polygons]
    ignored = [False] * len(polygons) if ignore is None else [bool(v) for v in ignore]
    if len(ignored) != len(polygons):
        raise ValueError("ignore must have one flag per polygon")

    shrink_map = np.zeros((height, width), np.float32)
    shrink_mask = np.ones((height, width), np.float32)
    thresh_mask = np.zeros((height, width), np.float32)
    canvas = np.zeros((height, width), np.float64)

    kept = []
    for i, poly in enumerate(polygons):
        poly[:, 0] = np.clip(poly[:, 0], 0, width - 1)
        poly[:, 1] = np.clip(poly[:, 1], 0, height - 1)
        area = abs(polygon_area(poly)) if len(poly) >= 3 else 0.0
        box_h = poly[:, 1].max() - poly[:, 1].min()
        box_w = poly[:, 0].max() - poly[:, 0].min()
        if ignored[i] or area < 1 or min(box_h, box_w) < min_text_size:
            cv2.fillPoly(shrink_mask, [poly.astype(np.int32)], 0.0)
            continue
        d = area * (1 - shrink_ratio**2) / polygon_perimeter(poly)
        shrunk = offset_polygon(poly, -d)
        if not shrunk:
            cv2.fillPoly(shrink_mask, [poly.astype(np.int32)], 0.0)
            continue
        for part in shrunk:
            cv2.fillPoly(shrink_map, [part.astype(np.int32)], 1.0)
        kept.append((poly, d))

    for poly, d in kept:
        padded = offset_polygon(poly, d)[0]
        cv2.fillPoly(thresh_mask, [padded.astype(np.int32)], 1.0)
        x0, x1 = int(padded[:, 0].min()), int(padded[:, 0].max())
        y0, y1 = int(padded[:, 1].min()), int(padded[:, 1].max())
        xs, ys = np.meshgrid(np.arange(x0, x1 + 1, dtype=np.float64),
                             np.arange(y0, y1 + 1, dtype=np.float64))
        nearest = np.full(xs.shape, np.inf)
        for j in range(len(poly)):
            edge = segment_distance(xs, ys, poly[j], poly[(j + 1) % len(poly)], distance)
            nearest = np.minimum(nearest, edge)
        value = 1.0 - np.clip(nearest / d, 0.0, 1.0)
        # the box part inside the image
        cx0, cx1 = max(x0, 0), min(x1, width - 1)
        cy0, cy1 = max(y0, 0), min(y1, height - 1)
        if cx0 > cx1 or cy0 > cy1:
            continue
        window = value[cy0 - y0:cy1 - y0 + 1, cx0 - x0:cx1 - x0 + 1]
        canvas[cy0:cy1 + 1, cx0:cx1 + 1] = np.fmax(canvas[cy0:cy1 + 1, cx0:cx1 + 1], window)

    thresh_map = (canvas * (thresh_max - thresh_min) + thresh_min).astype(np.float32)
    return {
        "shrink_map": shrink_map,
        "shrink_mask": shrink_mask,
        "thresh_map": thresh_map,
        "thresh_mask": thresh_mask,
    }
