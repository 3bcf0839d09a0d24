"""Random text polygons for tests and benchmarks: ICDAR 2015-like word quads
and Total-Text-like curved lines, some crossing the image border."""

from __future__ import annotations

import numpy as np


def icdar_like(rng: np.random.Generator, size, count: int = 30) -> list[np.ndarray]:
    """Rotated, slightly perspective word quads of 8-60 px height, overlapping
    each other and the border (about one in ten partly outside)."""
    height, width = size
    polygons = []
    for _ in range(count):
        h = rng.uniform(8, 60)
        w = h * rng.uniform(1.0, 8.0)
        cx = rng.uniform(-0.05, 1.05) * width
        cy = rng.uniform(-0.05, 1.05) * height
        angle = rng.normal(0, 0.25) if rng.random() < 0.8 else rng.uniform(-np.pi / 2, np.pi / 2)
        corners = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
        corners += rng.normal(0, h * 0.05, corners.shape)  # perspective-like jitter
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        polygons.append(corners @ rotation.T + [cx, cy])
    return polygons


def total_text_like(rng: np.random.Generator, size, count: int = 10) -> list[np.ndarray]:
    """Curved text lines as polygons of 10-20 points: points along an arc and
    back along a parallel arc a text height away."""
    height, width = size
    polygons = []
    for _ in range(count):
        per_side = int(rng.integers(5, 11))
        length = rng.uniform(0.15, 0.6) * width
        h = rng.uniform(15, 60)
        x0 = rng.uniform(-0.05, 0.9) * width
        y0 = rng.uniform(0.05, 0.95) * height
        bend = rng.uniform(-0.4, 0.4) * length
        tilt = rng.uniform(-0.3, 0.3)
        t = np.linspace(0, 1, per_side)
        base = np.stack([x0 + t * length, y0 + tilt * t * length + bend * 4 * t * (1 - t)], 1)
        tangent = np.gradient(base, axis=0)
        normal = np.stack([-tangent[:, 1], tangent[:, 0]], 1)
        normal /= np.linalg.norm(normal, axis=1, keepdims=True)
        top, bottom = base - normal * h / 2, base + normal * h / 2
        polygons.append(np.concatenate([top, bottom[::-1]]))
    return polygons


def probability_map(rng: np.random.Generator, size, count: int = 30, ring: bool = True) -> np.ndarray:
    """A DB-like probability map (H, W) float32: blurred high-probability word
    boxes (rotated, some touching or crossing the border, some ring-shaped so
    that hole contours appear) on a low, noisy background."""
    import cv2

    height, width = size
    canvas = np.zeros((height, width), np.float32)
    for quad in icdar_like(rng, size, count):
        level = float(rng.uniform(0.4, 1.0))
        cv2.fillPoly(canvas, [np.round(quad).astype(np.int32)], level)
        if ring and rng.random() < 0.15:  # a hole inside the word
            centre = quad.mean(axis=0)
            cv2.fillPoly(canvas, [np.round(centre + (quad - centre) * 0.4).astype(np.int32)], 0.0)
    sigma = float(rng.uniform(0.8, 2.0))
    canvas = cv2.GaussianBlur(canvas, (0, 0), sigma)
    canvas += rng.normal(0, 0.05, canvas.shape).astype(np.float32)
    return np.clip(canvas, 0, 1).astype(np.float32)
