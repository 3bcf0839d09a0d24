"""Differentiable binarization in float64 (DBNet paper, eq. 2)."""

from __future__ import annotations

import numpy as np

from dbnet_fast.reference._arrays import as_float64, sigmoid


def _gain(prob, thresh, k: float) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        return np.float64(k) * (as_float64(prob) - as_float64(thresh))


def db_binarize_reference(prob, thresh, k: float = 50.0) -> np.ndarray:
    """B = 1 / (1 + exp(-k (P - T))) in float64."""
    return sigmoid(_gain(prob, thresh, k))


def db_binarize_grad_reference(prob, thresh, grad, k: float = 50.0):
    """(dL/dP, dL/dT) = (g k B (1 - B), -g k B (1 - B)) in float64, with
    B (1 - B) = sigmoid(z) sigmoid(-z) so that neither factor cancels."""
    z = _gain(prob, thresh, k)
    grad_prob = as_float64(grad) * np.float64(k) * sigmoid(z) * sigmoid(-z)
    return grad_prob, -grad_prob
