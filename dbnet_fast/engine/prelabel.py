"""Pre-labelling: detections written as label files (``dbnet-fast detect --labels``),
so that a pretrained detector bootstraps the labelling of a new dataset."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np

from dbnet_fast.engine.atomic import atomic_write_json, atomic_write_text

LABEL_FORMATS = ("paddleocr", "mmocr", "icdar2015")
LABEL_FILES = ("Label.txt", "textdet_prelabel.json", "gts")
"""What write_labels writes into its folder (image outputs must not take these names)."""


def _relative(image: Path, folder: Path) -> str:
    return Path(os.path.relpath(image.resolve(), folder.resolve())).as_posix()


def write_labels(format: str, records, out) -> Path:
    """Writes detections as labels of ``format`` (one of :data:`LABEL_FORMATS`) into
    the folder ``out``; returns the file (or folder) written.

    ``records``: per image a dict with ``image`` (path), ``height``, ``width`` and
    ``detections`` (a list of ``{"points": [[x, y], ...]}``), as ``dbnet-fast
    detect`` writes them. Transcriptions are left empty.

    - ``paddleocr``: ``out/Label.txt`` keyed ``<image folder name>/<file name>``
      as PPOCRLabel saves it: copy it into the image folder and open that folder
      in PPOCRLabel to correct the boxes (PaddleOCR and ``paddleocr:`` read it there);
    - ``mmocr``: ``out/textdet_prelabel.json``, image paths relative to ``out``;
    - ``icdar2015``: ``out/gts/gt_<stem>.txt`` (integer corners, quads only:
      other polygons become their minimum-area rectangles).
    """
    if format not in LABEL_FORMATS:
        raise ValueError(f"labels: format must be one of {LABEL_FORMATS}, got {format!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if format == "paddleocr":
        lines = []
        for record in records:
            image = Path(record["image"])
            words = [{"transcription": "", "points": [[round(x), round(y)] for x, y in
                                                      d["points"]], "difficult": False}
                     for d in record["detections"]]
            lines.append(f"{image.parent.name}/{image.name}\t"
                         f"{json.dumps(words, ensure_ascii=False)}\n")
        target = out / "Label.txt"
        atomic_write_text(target, "".join(lines))
        return target
    if format == "mmocr":
        data_list = []
        for record in records:
            instances = []
            for d in record["detections"]:
                points = np.asarray(d["points"], np.float64)
                instances.append({"polygon": points.reshape(-1).round(2).tolist(),
                                  "bbox": [*points.min(0).round(2).tolist(),
                                           *points.max(0).round(2).tolist()],
                                  "bbox_label": 0, "ignore": False})
            data_list.append({"img_path": _relative(Path(record["image"]), out),
                              "height": int(record["height"]), "width": int(record["width"]),
                              "instances": instances})
        target = out / "textdet_prelabel.json"
        atomic_write_json(target, {"metainfo": {"dataset_type": "TextDetDataset",
                                                "task_name": "textdet",
                                                "category": [{"id": 0, "name": "text"}]},
                                   "data_list": data_list})
        return target
    folder = out / "gts"
    folder.mkdir(exist_ok=True)
    for record in records:
        lines = []
        for d in record["detections"]:
            points = np.asarray(d["points"], np.float32)
            if len(points) != 4:
                points = cv2.boxPoints(cv2.minAreaRect(points))
            lines.append(",".join(str(int(round(v))) for v in points.reshape(-1)) + "\n")
        atomic_write_text(folder / f"gt_{Path(record['image']).stem}.txt", "".join(lines))
    return folder
