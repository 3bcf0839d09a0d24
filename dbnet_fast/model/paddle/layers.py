"""Layers shared by PaddleOCR's detectors: learnable affine, hard sigmoid,
squeeze-excitation and the residual-SE conv of the RSE necks.

Every module that holds exported weights has ``onnx_layers()``: its leaf
layers in the order the export's nodes hold their weights
(:mod:`~dbnet_fast.model.paddle.onnx_weights` pairs the two).
"""

from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn


class LearnableAffine(nn.Module):
    """y = scale * x + bias with one learnable scalar each (PP-LCNetV3's
    "learnable affine block"; the export keeps them as Mul / Add by constants)."""

    def __init__(self, scale: float = 1.0, bias: float = 0.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([float(scale)]))
        self.bias = nn.Parameter(torch.tensor([float(bias)]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x + self.bias


class HardSigmoid(nn.Module):
    """clamp(slope * x + 0.5, 0, 1). The backbones' SE use slope 1/6 (as
    ``nn.Hardsigmoid``), the RSE necks Paddle's default slope 0.2."""

    def __init__(self, slope: float):
        super().__init__()
        self.slope = float(slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x * self.slope + 0.5, 0.0, 1.0)

    def extra_repr(self) -> str:
        return f"slope={self.slope:g}"


class SqueezeExcite(nn.Module):
    """x * hardsigmoid(conv(relu(conv(global average pool(x))))), channels
    reduced by ``reduction`` in between; with ``residual``, x + that (the
    "RSE" layers of the necks)."""

    def __init__(self, channels: int, reduction: int = 4, slope: float = 1.0 / 6.0,
                 residual: bool = False):
        super().__init__()
        self.reduce = nn.Conv2d(channels, channels // reduction, 1)
        self.expand = nn.Conv2d(channels // reduction, channels, 1)
        self.gate = HardSigmoid(slope)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        s = self.gate(self.expand(F.relu(self.reduce(s))))
        return x + x * s if self.residual else x * s

    def onnx_layers(self) -> Iterator[nn.Module]:
        yield from (self.reduce, self.expand, self.gate)


class RSELayer(nn.Module):
    """Conv k x k without bias, then a residual :class:`SqueezeExcite`
    (reduction 4, hard-sigmoid slope 0.2): y = c + c * se(c)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size,
                              padding=kernel_size // 2, bias=False)
        self.se = SqueezeExcite(out_channels, reduction=4, slope=0.2, residual=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.se(self.conv(x))

    def onnx_layers(self) -> Iterator[nn.Module]:
        yield self.conv
        yield from self.se.onnx_layers()


class SamePadConv2d(nn.Conv2d):
    """A stride-1 conv with Paddle's ``padding="SAME"`` for an even kernel: the
    k - 1 padding rows and columns all at the bottom and right (ONNX
    ``auto_pad=SAME_UPPER``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size[0] - 1
        return super().forward(F.pad(x, (0, k, 0, k)))
