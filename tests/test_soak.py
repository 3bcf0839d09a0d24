"""Soak: DBPredictor("ppocr-v4") on many images of random sizes (32 to 4,000 px a
side, random aspect ratios, grey and colour); resident memory stays flat after
the warm-up, no image fails, a repeated image gives identical results at the
start and the end.

Long, so not in the default run: ``make soak`` (DBF_SOAK_IMAGES=2000) runs it;
``DBF_SOAK_IMAGES=100 pytest tests/test_soak.py`` is a short version.
DBF_SOAK_GROWTH_MB sets the bound on growth after warm-up (default 50 MB).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

IMAGES = int(os.environ.get("DBF_SOAK_IMAGES", "0"))
GROWTH_MB = float(os.environ.get("DBF_SOAK_GROWTH_MB", "50"))
pytestmark = pytest.mark.skipif(IMAGES <= 0, reason="soak test: set DBF_SOAK_IMAGES "
                                                    "(make soak runs 2,000 images)")


def resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def random_image(rng: np.random.Generator) -> np.ndarray:
    """Random size and aspect ratio, grey (2-D) or colour, with some structure
    (smooth blobs and dark strokes) so that the model finds regions."""
    long_side = int(np.exp(rng.uniform(np.log(32), np.log(4000))))
    short_side = max(32, int(long_side * rng.uniform(0.1, 1.0)))
    h, w = (long_side, short_side) if rng.random() < 0.5 else (short_side, long_side)
    small = rng.integers(0, 256, (max(2, h // 64), max(2, w // 64), 3), dtype=np.uint8)
    import cv2

    image = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    for _ in range(int(rng.integers(0, 12))):
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        cv2.rectangle(image, (x, y), (x + int(rng.integers(4, 200)), y + int(rng.integers(3, 30))),
                      (0, 0, 0), -1)
    return image[:, :, 0].copy() if rng.random() < 0.3 else image


def _same(a, b) -> bool:
    return torch.equal(a.boxes, b.boxes) and torch.equal(a.scores, b.scores)


def test_soak_memory_flat_no_failure_same_results():
    from dbnet_fast.predict import DBPredictor

    rng = np.random.default_rng(int(os.environ.get("DBF_SOAK_SEED", "0")))
    predictor = DBPredictor("ppocr-v4", device="cpu", batch_size=4)
    probe = random_image(np.random.default_rng(12345))
    first = predictor(probe)[0]
    largest = np.full((4000, 4000, 3), 128, np.uint8)  # the warm-up sees the largest inputs
    predictor([largest, largest[:, :, 0].copy()])
    warmup = max(40, IMAGES // 10)
    batch = 4
    baseline, peak, done = None, 0.0, 0
    while done < IMAGES:
        images = [random_image(rng) for _ in range(min(batch, IMAGES - done))]
        found = predictor(images)  # any exception fails the test: no image may fail
        assert len(found) == len(images)
        done += len(images)
        if baseline is None and done >= warmup:
            baseline = resident_mb()
        elif baseline is not None:
            peak = max(peak, resident_mb())
    last = predictor(probe)[0]
    growth = max(0.0, peak - baseline) if baseline is not None else 0.0
    print(f"soak: {done} images, resident {baseline:.0f} MB after warm-up "
          f"({warmup} images), peak after it {peak:.0f} MB, growth {growth:.1f} MB")
    assert _same(first, last), "a repeated image gave other results at the end"
    assert growth < GROWTH_MB, f"resident memory grew {growth:.1f} MB (bound {GROWTH_MB} MB)"
