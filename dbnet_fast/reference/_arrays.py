"""Conversions shared by the reference implementations."""

from __future__ import annotations

import numpy as np


def as_float64(x) -> np.ndarray:
    """A NumPy float64 copy of an array-like or a torch tensor (any dtype or device)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function without overflow: exp is only taken of -|z|."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
