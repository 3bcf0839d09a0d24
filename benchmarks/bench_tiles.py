"""Large pages: H-mean and time of DBPredictor("ppocr-v4") with tiles against
plain resizing (the long side shrunk to 960), on pages rendered by the synthetic
generator at 3,000-4,000 px with 10-20 px words, whose word polygons are the
ground truth (ICDAR 2015 IoU protocol, dbnet_fast.metrics).

As a script (the README's table)::

    python benchmarks/bench_tiles.py [--pages 4] [--tiles 960]

Under pytest: one smaller page, timed both ways (a smoke run in CI).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import pytest
import torch

from common import run
from dbnet_fast.data.synthetic import SynthConfig, render_sample
from dbnet_fast.metrics import evaluate_detections
from dbnet_fast.predict import DBPredictor

pytest.importorskip("rapidocr_onnxruntime")  # ppocr-v4's weights

PAGE_CONFIG = SynthConfig(words=(150, 250), text_height=(10.0, 20.0), chars=(3, 10),
                          max_angle=5.0, curved_prob=0.0, plate_prob=0.0, ignore_prob=0.0,
                          clutter=(0, 4), texture_prob=0.0, blur_prob=0.0, noise_prob=0.0)


def page(seed: int, size: tuple[int, int]):
    """(image, ground truth as (polygon, ignore) pairs)."""
    image, polygons, ignore, _ = render_sample(seed, size, PAGE_CONFIG)
    return image, list(zip(polygons, ignore))


def evaluate(predictor: DBPredictor, pages) -> tuple[dict, float]:
    start = time.perf_counter()
    found = [predictor(image)[0].boxes.numpy() for image, _ in pages]
    seconds = time.perf_counter() - start
    return evaluate_detections(found, [truth for _, truth in pages]), seconds


@pytest.mark.parametrize("variant", ["tiles", "resize"])
@pytest.mark.parametrize("device", ["cpu"])
def bench_tiles_large_page(benchmark, device, variant):
    pages = [page(0, (1200, 1600))]
    pred = DBPredictor("ppocr-v4", device, tiles=640 if variant == "tiles" else None)
    role = "ours" if variant == "tiles" else "baseline"
    group = f"large page 1200 x 1600, ppocr-v4, {device}, {torch.get_num_threads()} threads"
    run(benchmark, lambda: evaluate(pred, pages), device=device, op="tiles", variant=variant,
        role=role, group=group)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=4)
    parser.add_argument("--tiles", type=int, default=960)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    pages = [page(i, (int(rng.integers(3000, 4001)), int(rng.integers(3000, 4001))))
             for i in range(args.pages)]
    rows = {}
    for name, tiles in (("resize to 960", None), (f"tiles {args.tiles}", args.tiles)):
        predictor = DBPredictor("ppocr-v4", "cpu", tiles=tiles, batch_size=4)
        result, seconds = evaluate(predictor, pages)
        rows[name] = {k: round(result[k], 4) for k in ("precision", "recall", "hmean")}
        rows[name]["seconds_per_page"] = round(seconds / len(pages), 2)
        print(name, json.dumps(rows[name]), flush=True)
    summary = {"cpu_capability": torch.backends.cpu.get_cpu_capability(),
               "threads": torch.get_num_threads(), "pages": [p[0].shape[:2] for p in pages],
               "words": sum(len(t) for _, t in pages), "rows": rows}
    print(json.dumps(summary))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(summary, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
