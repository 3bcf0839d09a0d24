"""PaddleOCR's polygon post-processing (polygons_from_bitmap) in NumPy +
OpenCV + pyclipper + shapely, written from its description: the oracle of
``DBPostProcessor(output="poly")``. (The quad pipeline's oracle is PaddleOCR's
own DBPostProcess, which the tests import from rapidocr-onnxruntime.)"""

from __future__ import annotations

import numpy as np


def _min_area_side(points: np.ndarray) -> float:
    import cv2

    return float(min(cv2.minAreaRect(points.reshape(-1, 1, 2))[1]))


def _fast_score(prob: np.ndarray, polygon: np.ndarray) -> float:
    import cv2

    height, width = prob.shape
    x0 = int(np.clip(np.floor(polygon[:, 0].min()), 0, width - 1))
    x1 = int(np.clip(np.ceil(polygon[:, 0].max()), 0, width - 1))
    y0 = int(np.clip(np.floor(polygon[:, 1].min()), 0, height - 1))
    y1 = int(np.clip(np.ceil(polygon[:, 1].max()), 0, height - 1))
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    local = (polygon - [x0, y0]).astype(np.int32)
    cv2.fillPoly(mask, [local], 1)
    return float(cv2.mean(prob[y0 : y1 + 1, x0 : x1 + 1], mask)[0])


def polygons_from_map_reference(prob: np.ndarray, dest_size, *, thresh=0.3, box_thresh=0.7,
                                unclip_ratio=1.5, max_candidates=1000, min_size=3.0,
                                use_dilation=False):
    """(polygons, scores) of one map (H, W): contours (RETR_LIST), polygon
    approximation (epsilon 0.002 x perimeter), at least 4 points, fast score,
    unclip by area * ratio / perimeter (one resulting path only), short side
    of its min-area box >= min_size + 2, scaled to dest_size = (H, W)."""
    import cv2
    import pyclipper
    from shapely.geometry import Polygon

    height, width = prob.shape
    bitmap = (prob > np.float32(thresh)).astype(np.uint8)
    if use_dilation:
        bitmap = cv2.dilate(bitmap, np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(bitmap * 255, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    polygons, scores = [], []
    for contour in contours[:max_candidates]:
        epsilon = 0.002 * cv2.arcLength(contour, True)
        points = cv2.approxPolyDP(contour, epsilon, True).reshape(-1, 2)
        if len(points) < 4:
            continue
        score = _fast_score(prob, points.astype(np.float64))
        if box_thresh > score:
            continue
        shape = Polygon(points)
        if shape.length == 0:
            continue
        offset = pyclipper.PyclipperOffset()
        offset.AddPath(points.tolist(), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
        grown = offset.Execute(shape.area * unclip_ratio / shape.length)
        if len(grown) != 1:
            continue
        grown = np.asarray(grown[0], np.float64)
        if _min_area_side(grown.astype(np.int32)) < min_size + 2:
            continue
        grown[:, 0] = np.clip(grown[:, 0] / width * dest_size[1], 0, dest_size[1])
        grown[:, 1] = np.clip(grown[:, 1] / height * dest_size[0], 0, dest_size[0])
        polygons.append(grown)
        scores.append(score)
    return polygons, scores
