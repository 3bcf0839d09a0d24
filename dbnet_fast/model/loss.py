"""The DB loss as an ``nn.Module`` around the fused op :func:`dbnet_fast.ops.db_loss`."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from dbnet_fast.ops import db_loss

TARGET_KEYS = ("shrink_map", "shrink_mask", "thresh_map", "thresh_mask")


class DBLoss(nn.Module):
    """L = bce_weight L_s + dice_weight L_b + l1_weight L_t (MhLiao/DB: 5, 1, 10).

    - L_s: BCE of the probability map against ``shrink_map`` inside
      ``shrink_mask``, with OHEM (all positives, the ``ohem_ratio`` x as many
      hardest negatives);
    - L_b: Dice of the binary map sigmoid(k (P - T)) against ``shrink_map``
      inside ``shrink_mask``;
    - L_t: masked L1 of the threshold map against ``thresh_map`` inside
      ``thresh_mask``.

    Everything is computed by the fused op from the two logit maps (the binary
    map is recomputed there with this module's ``k``, which should equal the
    model's). 16-bit logits are cast to float32 first and the op runs with
    autocast disabled, so the loss is float32 under AMP (float64 logits give a
    float64 loss).

    Forward:
        outputs: the DBNet training dict; ``prob_logits`` and ``thresh_logits``
            (B, 1, H, W) are used.
        batch: a mapping with ``shrink_map``, ``shrink_mask``, ``thresh_map``,
            ``thresh_mask``, each (B, H, W) or (B, 1, H, W), any real dtype.

    Returns:
        ``(total, {"loss_bce": L_s, "loss_dice": L_b, "loss_l1": L_t})``, 0-dim
        tensors; gradients flow from all of them to the logits.
    """

    def __init__(
        self,
        k: float = 50.0,
        ohem_ratio: float = 3.0,
        bce_weight: float = 5.0,
        dice_weight: float = 1.0,
        l1_weight: float = 10.0,
        eps: float = 1e-6,
    ):
        super().__init__()
        self.k, self.ohem_ratio, self.eps = k, ohem_ratio, eps
        self.bce_weight, self.dice_weight, self.l1_weight = bce_weight, dice_weight, l1_weight
        # Let the op validate the numbers now rather than at the first batch.
        probe = torch.zeros(1, 1, 1, 1)
        db_loss(probe, probe, probe, probe, probe, probe, **self._options())

    def _options(self) -> dict[str, float]:
        return {"k": self.k, "bce_weight": self.bce_weight, "dice_weight": self.dice_weight,
                "l1_weight": self.l1_weight, "ohem_ratio": self.ohem_ratio, "eps": self.eps}

    def forward(
        self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits = []
        for name in ("prob_logits", "thresh_logits"):
            if name not in outputs:
                raise KeyError(f"DBLoss: outputs has no {name!r} (is the model in training mode?)")
            x = outputs[name]
            if not isinstance(x, torch.Tensor) or not x.is_floating_point():
                raise TypeError(f"DBLoss: outputs[{name!r}] must be a floating-point tensor")
            logits.append(x.float() if x.dtype in (torch.float16, torch.bfloat16) else x)
        prob_logits, thresh_logits = logits
        shape = prob_logits.shape
        targets = []
        for name in TARGET_KEYS:
            if name not in batch:
                raise KeyError(f"DBLoss: batch has no {name!r}")
            target = batch[name]
            if not isinstance(target, torch.Tensor):
                raise TypeError(f"DBLoss: batch[{name!r}] must be a torch.Tensor, "
                                f"got {type(target).__name__}")
            if target.dim() == len(shape) - 1 and len(shape) == 4 and shape[1] == 1:
                target = target.unsqueeze(1)  # (B, H, W) -> (B, 1, H, W)
            if target.shape != shape:
                raise ValueError(f"DBLoss: batch[{name!r}] has shape {tuple(batch[name].shape)}; "
                                 f"expected {tuple(shape)} or (B, H, W) for logits {tuple(shape)}")
            targets.append(target.to(prob_logits.device))
        with torch.autocast(device_type=prob_logits.device.type, enabled=False):
            total, terms = db_loss(prob_logits, thresh_logits, *targets, **self._options())
        return total, {"loss_bce": terms["bce"], "loss_dice": terms["dice"],
                       "loss_l1": terms["l1"]}

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={value}" for name, value in self._options().items())
