"""The whole DB loss as one fused op: sigmoids, binarization, BCE with OHEM,
Dice and masked L1, forward and backward, with no host synchronisation.

The forward runs a few passes over the maps (pixel math and sums, a radix
select of the OHEM threshold, the sum above it); everything stays on the
device. The backward recomputes the pixel math in one pass.
"""

from __future__ import annotations

import torch

from dbnet_fast.ops._checks import (
    check_finite_scalar,
    check_float_tensor,
    check_same_layout,
    check_tensor,
)
from dbnet_fast.ops._native import _C

STATS_SIZE = _C.loss_stats_size()
TERMS = ("total", "bce", "dice", "l1")


@torch.library.custom_op("dbnet_fast::db_loss", mutates_args=())
def _loss(
    prob_logits: torch.Tensor,
    thresh_logits: torch.Tensor,
    shrink_map: torch.Tensor,
    shrink_mask: torch.Tensor,
    thresh_map: torch.Tensor,
    thresh_mask: torch.Tensor,
    k: float,
    bce_weight: float,
    dice_weight: float,
    l1_weight: float,
    ohem_ratio: float,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return _C.loss_forward(prob_logits, thresh_logits, shrink_map, shrink_mask, thresh_map,
                           thresh_mask, k, bce_weight, dice_weight, l1_weight, ohem_ratio, eps)


@_loss.register_fake
def _loss_fake(prob_logits, *args):
    wide = prob_logits.dtype == torch.float64
    return (
        prob_logits.new_empty((len(TERMS),), dtype=torch.float64 if wide else torch.float32),
        prob_logits.new_empty(prob_logits.shape, dtype=torch.int64 if wide else torch.int32),
        prob_logits.new_empty((STATS_SIZE,), dtype=torch.float64),
    )


@torch.library.custom_op("dbnet_fast::db_loss_backward", mutates_args=())
def _loss_backward(
    grad_terms: torch.Tensor,
    prob_logits: torch.Tensor,
    thresh_logits: torch.Tensor,
    shrink_map: torch.Tensor,
    shrink_mask: torch.Tensor,
    thresh_map: torch.Tensor,
    thresh_mask: torch.Tensor,
    keys: torch.Tensor,
    stats: torch.Tensor,
    k: float,
    bce_weight: float,
    dice_weight: float,
    l1_weight: float,
    ohem_ratio: float,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    return _C.loss_backward(grad_terms, prob_logits, thresh_logits, shrink_map, shrink_mask,
                            thresh_map, thresh_mask, keys, stats, k, bce_weight, dice_weight,
                            l1_weight, ohem_ratio, eps)


@_loss_backward.register_fake
def _loss_backward_fake(grad_terms, prob_logits, *args):
    return prob_logits.new_empty(prob_logits.shape), prob_logits.new_empty(prob_logits.shape)


def _save_for_backward(ctx, inputs, output):
    _, keys, stats = output
    ctx.save_for_backward(*inputs[:6], keys, stats)
    ctx.config = inputs[6:]
    ctx.mark_non_differentiable(keys, stats)


def _loss_grad(ctx, grad_terms, grad_keys, grad_stats):
    maps_and_selection = ctx.saved_tensors
    grad_prob, grad_thresh = _loss_backward(grad_terms, *maps_and_selection, *ctx.config)
    return (grad_prob, grad_thresh) + (None,) * (4 + len(ctx.config))


_loss.register_autograd(_loss_grad, setup_context=_save_for_backward)


def db_loss(
    prob_logits: torch.Tensor,
    thresh_logits: torch.Tensor,
    shrink_map: torch.Tensor,
    shrink_mask: torch.Tensor,
    thresh_map: torch.Tensor,
    thresh_mask: torch.Tensor,
    *,
    k: float = 50.0,
    bce_weight: float = 5.0,
    dice_weight: float = 1.0,
    l1_weight: float = 10.0,
    ohem_ratio: float = 3.0,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The DB loss of MhLiao/DB in one fused op, from the two logit maps.

    With P = sigmoid(prob_logits), T = sigmoid(thresh_logits) and
    Bin = sigmoid(k (P - T)):

    - ``bce``: binary cross-entropy of P against ``shrink_map`` (from the logits,
      stably) with online hard negative mining: every positive pixel
      (``shrink_map > 0.5`` inside ``shrink_mask > 0.5``) plus the
      ``min(#negatives, floor(ohem_ratio * #positives))`` negatives with the
      largest loss, summed and divided by their count + eps. The selection is
      exact (the sum above the k-th value plus the tied share at it); at ties
      the gradient is split evenly among the tied pixels.
    - ``dice``: ``1 - 2 sum(Bin gt m) / (sum(Bin m) + sum(gt m) + eps)`` with
      gt = shrink_map, m = shrink_mask.
    - ``l1``: ``sum(|T - thresh_map| thresh_mask) / (sum(thresh_mask) + eps)``.
    - total = bce_weight bce + dice_weight dice + l1_weight l1.

    All sums run over the whole batch, as in the reference code.

    Args:
        prob_logits, thresh_logits: the head's logits, (B, 1, H, W) or (B, H, W)
            (any shape, the same for all six maps), float16 / bfloat16 / float32
            (math in float32) or float64 (math in float64), on the CPU or CUDA.
        shrink_map, shrink_mask, thresh_map, thresh_mask: the label maps
            (any real dtype, converted to float32 or, for float64 logits, float64).
            Maps and masks are 0/1 in DBNet; values in [0, 1] are weights and
            class membership is decided at 1/2.
        k, bce_weight, dice_weight, l1_weight, ohem_ratio, eps: finite numbers
            (the reference's values by default); ohem_ratio and eps >= 0.

    Returns:
        ``(total, terms)``: 0-dim float32 tensors (float64 for float64 logits),
        ``terms`` a dict with ``bce``,
        ``dice`` and ``l1``. Gradients flow to both logit maps (not to the
        labels). Nothing is read back to the host, so the op runs inside CUDA
        graphs and under ``torch.compile(fullgraph=True)``.
    """
    op = "db_loss"
    # (meta tensors: shapes only, as torch.compile traces)
    check_float_tensor(op, "prob_logits", prob_logits, meta=True)
    check_float_tensor(op, "thresh_logits", thresh_logits, meta=True)
    check_same_layout(op, "prob_logits", prob_logits, "thresh_logits", thresh_logits)
    target_dtype = torch.float64 if prob_logits.dtype == torch.float64 else torch.float32
    targets = []
    for name, target in [("shrink_map", shrink_map), ("shrink_mask", shrink_mask),
                         ("thresh_map", thresh_map), ("thresh_mask", thresh_mask)]:
        if check_tensor(op, name, target, meta=True).is_complex():
            raise TypeError(f"{op}: {name} must be a real tensor, got {target.dtype}")
        if target.shape != prob_logits.shape:
            raise ValueError(
                f"{op}: {name} must have the shape of prob_logits {tuple(prob_logits.shape)}, "
                f"got {tuple(target.shape)}"
            )
        if target.device != prob_logits.device:
            raise ValueError(
                f"{op}: {name} must be on the device of prob_logits ({prob_logits.device}), "
                f"got {target.device}"
            )
        targets.append(target.detach().to(target_dtype))
    scalars = {}
    for name, value in [("k", k), ("bce_weight", bce_weight), ("dice_weight", dice_weight),
                        ("l1_weight", l1_weight), ("ohem_ratio", ohem_ratio), ("eps", eps)]:
        scalars[name] = check_finite_scalar(op, name, value)
    for name in ("ohem_ratio", "eps"):
        if scalars[name] < 0:
            raise ValueError(f"{op}: {name} must be >= 0, got {scalars[name]}")
    terms, _, _ = _loss(prob_logits, thresh_logits, *targets, *scalars.values())
    return terms[0], {"bce": terms[1], "dice": terms[2], "l1": terms[3]}
