"""The DB loss in float64 (MhLiao/DB's L = 5 L_s + 1 L_b + 10 L_t), with its
gradients written out by hand, as the oracle of the fused op.

OHEM as the reference: every positive pixel plus the
min(#negatives, floor(ratio #positives)) negatives with the largest BCE, by a
sort here; the gradient at a tie at the k-th value is shared evenly.
"""

from __future__ import annotations

import math

import numpy as np

from dbnet_fast.reference._arrays import as_float64, sigmoid


def _flat64(x) -> np.ndarray:
    return as_float64(x).reshape(-1)


def db_loss_reference(
    prob_logits,
    thresh_logits,
    shrink_map,
    shrink_mask,
    thresh_map,
    thresh_mask,
    *,
    k: float = 50.0,
    bce_weight: float = 5.0,
    dice_weight: float = 1.0,
    l1_weight: float = 10.0,
    ohem_ratio: float = 3.0,
    eps: float = 1e-6,
    grad_terms=(1.0, 0.0, 0.0, 0.0),
):
    """Returns ``(terms, grad_prob_logits, grad_thresh_logits)``: ``terms`` a dict of
    floats (total, bce, dice, l1); the gradients (float64, the logits' shape) of
    ``sum(grad_terms[i] * [total, bce, dice, l1][i])``."""
    shape = tuple(prob_logits.shape)
    xp, xt = _flat64(prob_logits), _flat64(thresh_logits)
    gt, m, tm, tmask = (_flat64(a) for a in (shrink_map, shrink_mask, thresh_map, thresh_mask))

    p, t = sigmoid(xp), sigmoid(xt)
    b = sigmoid(k * (p - t))
    loss = np.logaddexp(0.0, xp) - gt * xp  # BCE of sigmoid(xp) against gt

    positive = (gt > 0.5) & (m > 0.5)
    negative = (gt <= 0.5) & (m > 0.5)
    n_pos, n_neg = int(positive.sum()), int(negative.sum())
    selected = min(n_neg, math.floor(n_pos * ohem_ratio))
    negative_losses = np.sort(loss[negative])[::-1]
    share = positive.astype(np.float64)
    if selected > 0:
        tau = negative_losses[selected - 1]
        above = negative & (loss > tau)
        tied = negative & (loss == tau)
        share[above] = 1.0
        share[tied] = (selected - above.sum()) / tied.sum()
    bce = (loss[positive].sum() + negative_losses[:selected].sum()) / (n_pos + selected + eps)

    intersection = (b * gt * m).sum()
    union = (b * m).sum() + (gt * m).sum() + eps
    dice = 1.0 - 2.0 * intersection / union
    l1 = (np.abs(t - tm) * tmask).sum() / (tmask.sum() + eps)
    total = bce_weight * bce + dice_weight * dice + l1_weight * l1

    g_total, g_bce, g_dice, g_l1 = (float(g) for g in grad_terms)
    w_bce = g_total * bce_weight + g_bce
    w_dice = g_total * dice_weight + g_dice
    w_l1 = g_total * l1_weight + g_l1
    d_b = w_dice * (-2.0 * m * (gt * union - intersection) / union**2)
    d_z = d_b * b * (1.0 - b)  # dB/dz
    grad_prob = w_bce * share * (p - gt) / (n_pos + selected + eps) + d_z * k * p * (1.0 - p)
    grad_thresh = (w_l1 * np.sign(t - tm) * tmask / (tmask.sum() + eps) - d_z * k) * t * (1.0 - t)
    terms = {"total": total, "bce": bce, "dice": dice, "l1": l1}
    return terms, grad_prob.reshape(shape), grad_thresh.reshape(shape)
