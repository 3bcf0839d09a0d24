"""The DB head, used twice: once for the probability map, once for the threshold map."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DBHead(nn.Module):
    """Conv3x3 (C -> C/4, no bias), BN, ReLU, ConvTranspose 2x2/2 (C/4 -> C/4),
    BN, ReLU, ConvTranspose 2x2/2 (C/4 -> 1): logits at 4x the input resolution.

    ``batch_norm=False`` gives the inference form that some exports hold (each
    BN folded into the conv before it, so that conv has a bias): Conv3x3 with
    bias, ReLU, ConvTranspose, ReLU, ConvTranspose. Loading such weights into
    BN layers instead would change the function in training mode (batch
    statistics replace the folded ones).

    The last transposed conv runs outside autocast in float32 (float64 for a
    float64 model), whatever the dtype of the rest of the network, so that the
    logits, and the sigmoid / binarization / loss computed from them, keep full
    precision under AMP.

    Forward: (B, C, H/4, W/4) -> logits (B, 1, H, W), float32 (or float64).
    """

    def __init__(self, in_channels: int = 256, batch_norm: bool = True):
        super().__init__()
        if in_channels < 4 or in_channels % 4 != 0:
            raise ValueError(f"DBHead: in_channels must be a positive multiple of 4, "
                             f"got {in_channels}")
        mid = in_channels // 4
        norm = (lambda: nn.BatchNorm2d(mid)) if batch_norm else nn.Identity
        layers = [nn.Conv2d(in_channels, mid, 3, padding=1, bias=not batch_norm), norm(),
                  nn.ReLU(inplace=True), nn.ConvTranspose2d(mid, mid, 2, stride=2), norm(),
                  nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*(m for m in layers if not isinstance(m, nn.Identity)))
        self.out = nn.ConvTranspose2d(mid, 1, 2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        dtype = torch.float64 if self.out.weight.dtype == torch.float64 else torch.float32
        with torch.autocast(device_type=y.device.type, enabled=False):
            return F.conv_transpose2d(y.to(dtype), self.out.weight.to(dtype),
                                      self.out.bias.to(dtype), stride=2)


def init_weights(module: nn.Module) -> None:
    """DBNet's initialisation of its neck and heads (MhLiao/DB's): He-normal
    convolutions with zero bias, BatchNorm weight 1 and bias 1e-4; use with
    ``module.apply``."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.constant_(module.bias, 1e-4)
