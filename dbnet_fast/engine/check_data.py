"""``dbnet-fast check-data``: what a training run would make of a labelled dataset.

Reads the labels as training does, but never stops at the first bad record:
every record is checked and the findings are summed up.

Problems (``ok`` false, exit code 1: training would stop, or leave data out):
  ``malformed record`` (named by file and line / record: bad syntax or values,
  a declared size that is not the image's, points far outside the image),
  ``missing image``, ``unreadable image``, ``no care text`` at all, or
  ``labels`` (the label file or folder as a whole cannot be read).
Warnings (training runs, but look):
  ``degenerate`` polygons (fewer than 3 distinct points, dropped by the loader;
  or zero area), ``self_intersecting`` ones (the evaluators drop them),
  ``outside`` (points past the image border, clipped by training), ``tiny``
  (care text whose bounding box is below ``min_text_size`` pixels high or wide
  at the smallest training scale, the whole image fitted into ``image_size``:
  the label maps then treat it as don't-care), ``no_text`` images, and images of
  which less than ``LOW_TRAINED_SHARE`` is trained on (don't-care regions mask
  the rest).

``trained_share`` per image is the share of pixels the loss sees (the shrink
mask of the label maps built at that scale), ``text_share`` the share labelled
text (the shrink map); the summary gives their min / median / max.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
from shapely.geometry import Polygon

from dbnet_fast.data.formats import LabelError, image_size as header_size
from dbnet_fast.engine.atomic import atomic_write_image
from dbnet_fast.engine.data import parse_data_spec, real_dataset
from dbnet_fast.ops import db_targets

LOW_TRAINED_SHARE = 0.5
LABEL_SUFFIXES = (".txt", ".json", ".xml")
EXAMPLES = 20
"""Warnings listed per kind (all are counted)."""
CARE, DONT_CARE, TINY = (0, 200, 0), (0, 0, 230), (0, 200, 230)  # BGR


def check_data(data: str, *, split: str = "train", image_size: int = 640,
               min_text_size: float = 8, pictures=None, picture_count: int = 8) -> dict:
    """Checks the dataset ``data`` (``FORMAT:PATH``, ``icdar2015:PATH`` or
    ``totaltext:PATH``) as the module documentation says; returns the summary:
    ``images``, ``polygons``, ``dont_care``, ``problems`` (list of ``{kind,
    where, message}``), ``warnings`` (up to ``EXAMPLES`` per kind), ``counts``
    (of each warning kind), ``trained_share`` / ``text_share`` (min, median,
    max), ``ok``. ``pictures``: a folder for ``picture_count`` images with their
    polygons drawn (green care, red don't-care, yellow tiny)."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 32:
        raise ValueError(f"check-data: image_size must be an int >= 32, got {image_size!r}")
    if not (isinstance(min_text_size, (int, float)) and math.isfinite(min_text_size)
            and min_text_size >= 0):
        raise ValueError(f"check-data: min_text_size must be a number >= 0, got "
                         f"{min_text_size!r}")
    spec = parse_data_spec(data)
    if spec.scheme == "synthetic":
        raise ValueError("check-data: the synthetic data are generated, not read: name a "
                         "labelled dataset (FORMAT:PATH)")
    summary = {"data": str(spec), "split": split, "image_size": image_size,
               "min_text_size": min_text_size, "images": 0, "polygons": 0, "dont_care": 0,
               "problems": [], "warnings": [],
               "counts": dict.fromkeys(("left_out", "degenerate", "self_intersecting", "outside",
                                        "tiny", "no_text", "low_trained_share"), 0)}
    try:
        dataset = real_dataset(spec, split, skip_bad=True)
    except (LabelError, ValueError, FileNotFoundError) as error:  # the whole file or folder
        summary["problems"].append({"kind": "labels", "where": str(spec.root),
                                    "message": str(error)})
        return _finish(summary, [], [])
    for where, reason in dataset.skipped:
        summary["problems"].append({"kind": _left_out_kind(where, reason), "where": where,
                                    "message": reason})
    summary["counts"]["left_out"] = len(dataset.skipped)
    if dataset.dropped:
        _warn(summary, "degenerate", str(spec.root), f"{dataset.dropped} polygons with fewer "
              "than 3 distinct points were dropped by the loader", dataset.dropped)
    trained, text = [], []
    sizes = getattr(dataset, "sizes", None)
    for i, (path, annotation) in enumerate(zip(dataset.image_paths, dataset.annotations)):
        size = sizes[i] if sizes else header_size(path)
        if size is None:
            summary["problems"].append({"kind": "unreadable", "where": str(path),
                                        "message": "cannot be decoded"})
            continue
        shares = _check_image(summary, str(path), size, annotation, image_size, min_text_size)
        trained.append(shares[0])
        text.append(shares[1])
    summary["images"] = len(dataset.image_paths)
    if summary["images"] and summary["polygons"] == summary["dont_care"]:
        summary["problems"].append({"kind": "no care text", "where": str(spec.root),
                                    "message": "no polygon is care text: nothing to learn"})
    if pictures is not None:
        summary["pictures"] = _pictures(dataset, Path(pictures), picture_count, image_size,
                                        min_text_size)
    return _finish(summary, trained, text)


def _left_out_kind(where: str, reason: str) -> str:
    """What a dataset's ``skipped`` entry is: the loaders list unreadable images by
    their path, malformed records (missing images among them) by their record."""
    if "not found (looked for" in reason:
        return "missing image"
    return "unreadable image" if Path(where).is_file() and not where.endswith(
        LABEL_SUFFIXES) else "malformed record"


def _warn(summary: dict, kind: str, where: str, message: str, count: int = 1) -> None:
    summary["counts"][kind] += count
    if sum(w["kind"] == kind for w in summary["warnings"]) < EXAMPLES:
        summary["warnings"].append({"kind": kind, "where": where, "message": message})


def _check_image(summary, where, size, annotation, image_size, min_text_size):
    height, width = size
    scale = image_size / max(height, width)  # the smallest training scale: the whole image
    summary["polygons"] += len(annotation.polygons)
    summary["dont_care"] += sum(annotation.ignore)
    for k, (points, ignore) in enumerate(zip(annotation.polygons, annotation.ignore)):
        at = f"{where}: polygon {k}"
        points64 = points.astype(np.float64)
        if np.linalg.matrix_rank(points64 - points64.mean(0), tol=1e-9) < 2:
            _warn(summary, "degenerate", at, "zero area (collinear points)")
        elif not Polygon(points64).is_valid:
            _warn(summary, "self_intersecting", at, "self-intersecting (the evaluators of "
                  "MhLiao/DB and PaddleOCR drop it)")
        low, high = points.min(0), points.max(0)
        if (low < 0).any() or high[0] > width or high[1] > height:
            _warn(summary, "outside", at, f"points reach ({low[0]:g}, {low[1]:g}) - "
                  f"({high[0]:g}, {high[1]:g}) in a {width} x {height} image (clipped)")
        side = float((high - low).min()) * scale
        if not ignore and side < min_text_size:
            _warn(summary, "tiny", at, f"{side:.1f} px at training scale {scale:.3g} (below "
                  f"min_text_size {min_text_size:g}: trained as don't-care)")
    if not annotation.polygons:
        _warn(summary, "no_text", where, "no text polygons (a negative example)")
    fitted = (max(1, round(height * scale)), max(1, round(width * scale)))
    maps = db_targets([p * scale for p in annotation.polygons], fitted, annotation.ignore,
                      min_text_size=min_text_size)
    trained = float(maps.shrink_mask.numpy().mean())  # NumPy: no thread pool for a small sum
    if trained < LOW_TRAINED_SHARE:
        _warn(summary, "low_trained_share", where, f"only {trained:.0%} of the image is trained "
              "on (don't-care regions mask the rest)")
    return trained, float(maps.shrink_map.numpy().mean())


def _spread(values) -> dict | None:
    if not values:
        return None
    return {"min": round(float(np.min(values)), 4), "median": round(float(np.median(values)), 4),
            "max": round(float(np.max(values)), 4)}


def _finish(summary: dict, trained, text) -> dict:
    summary["trained_share"] = _spread(trained)
    summary["text_share"] = _spread(text)
    summary["ok"] = not summary["problems"]
    return summary


def _pictures(dataset, folder: Path, count: int, image_size: int, min_text_size) -> list[str]:
    """Draws ``count`` images spread over the dataset; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    picks = np.unique(np.linspace(0, len(dataset) - 1, min(count, len(dataset))).round()
                      .astype(int)) if len(dataset) and count > 0 else []
    written = []
    for index in picks:
        record = dataset.load(int(index))
        image = record["image"]
        scale = image_size / max(image.shape[:2])
        thickness = max(1, round(max(image.shape[:2]) / 500))
        for points, ignore in zip(record["polygons"], record["ignore"]):
            tiny = (points.max(0) - points.min(0)).min() * scale < min_text_size
            colour = DONT_CARE if ignore else TINY if tiny else CARE
            cv2.polylines(image, [np.round(points).astype(np.int32).reshape(-1, 1, 2)], True,
                          colour, thickness, cv2.LINE_AA)
        target = folder / f"{int(index):05d}_{Path(record['path']).stem}.png"
        atomic_write_image(target, image)
        written.append(str(target))
    return written
