"""Splits ICDAR 2015's training set into a training part and a held-out part,
written as PaddleOCR label lists (``train.txt``, ``val.txt``) that ``dbnet-fast
train --data paddleocr:...`` and ``dbnet-fast eval --data paddleocr:...`` read.

Settings (thresholds, resize) are chosen on the held-out part so the test set is
only ever scored at the end. Usage::

    python scripts/ic15_split.py /data/icdar2015 --out /data/ic15_split --holdout 100
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from dbnet_fast.data import ICDAR2015Dataset


def label_line(path: str, polygons, texts, ignore) -> str:
    """One PaddleOCR line: ``<image path>\\t<JSON list of points / transcription>``;
    a don't-care word is written with the transcription ``###``."""
    items = [{"transcription": "###" if dont_care else text,
              "points": np.asarray(polygon, np.float64).round(3).tolist()}
             for polygon, text, dont_care in zip(polygons, texts, ignore)]
    return f"{path}\t{json.dumps(items, ensure_ascii=False)}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", help="ICDAR 2015 folder (original or MhLiao/DB layout)")
    parser.add_argument("--out", required=True, help="folder for train.txt and val.txt")
    parser.add_argument("--holdout", type=int, default=100, help="held-out images (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    dataset = ICDAR2015Dataset(args.root, "train")
    if not 0 < args.holdout < len(dataset):
        parser.error(f"--holdout must be between 1 and {len(dataset) - 1}, got {args.holdout}")
    held_out = set(np.random.default_rng(args.seed).choice(len(dataset), args.holdout,
                                                            replace=False).tolist())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = {"train": [], "val": []}
    for i, path in enumerate(dataset.image_paths):
        a = dataset.annotations[i]
        lines["val" if i in held_out else "train"].append(
            label_line(str(Path(path).resolve()), a.polygons, a.texts, a.ignore))
    for name, rows in lines.items():
        (out / f"{name}.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
        print(f"{out / name}.txt: {len(rows)} images")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
