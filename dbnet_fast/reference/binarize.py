"""Differentiable binarization in float64 (DBNet paper, eq. 2)."""

from __future__ import annotations

import numpy as np


def _as_float64(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, any dtype or device
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function without overflow: exp is only taken of -|z|."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _gain(prob, thresh, k: float) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        return np.float64(k) * (_as_float64(prob) - _as_float64(thresh))


def db_binarize_reference(prob, thresh, k: float = 50.0) -> np.ndarray:
    """B = 1 / (1 + exp(-k (P - T))) in float64."""
    return _sigmoid(_gain(prob, thresh, k))


def db_binarize_grad_reference(prob, thresh, grad, k: float = 50.0):
    """(dL/dP, dL/dT) = (g k B (1 - B), -g k B (1 - B)) in float64, with
    B (1 - B) = sigmoid(z) sigmoid(-z) so that neither factor cancels."""
    z = _gain(prob, thresh, k)
    grad_prob = _as_float64(grad) * np.float64(k) * _sigmoid(z) * _sigmoid(-z)
    return grad_prob, -grad_prob
