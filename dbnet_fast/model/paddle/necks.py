"""The FPN necks of PaddleOCR's mobile detectors.

Both are residual-SE FPNs: lateral :class:`~dbnet_fast.model.paddle.layers.RSELayer`
1x1 convs to ``out_channels``, a top-down 2x nearest upsample-and-add, one
smoothing layer per level to ``out_channels / 4``, everything upsampled to
stride 4 and concatenated coarsest first. They differ in the smoothing layer:

- RSE-FPN (PP-OCRv4 / v5 mobile): an RSELayer 3x3 (``smooth="rse"``);
- RepLK-FPN (PP-OCRv6 small, after UniRepLKNet): :class:`LargeKernelSmooth`, a
  depthwise large-kernel conv (the inference form of a dilated re-param block:
  its dilated branches and BNs folded into one k x k conv with a bias), a 1x1
  conv and a residual SE (``smooth="large_kernel"``).
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dbnet_fast.model.paddle.layers import RSELayer, SqueezeExcite

SMOOTHS = ("rse", "large_kernel")


class LargeKernelSmooth(nn.Module):
    """Depthwise k x k conv with bias, 1x1 conv without bias (C -> out), then
    a residual SE (reduction 4, slope 0.2): y = p + p * se(p)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, kernel_size,
                                   padding=kernel_size // 2, groups=in_channels)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.se = SqueezeExcite(out_channels, reduction=4, slope=0.2, residual=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.se(self.pointwise(self.depthwise(x)))

    def onnx_layers(self) -> Iterator[nn.Module]:
        yield from (self.depthwise, self.pointwise)
        yield from self.se.onnx_layers()


class RSEFPN(nn.Module):
    """Forward: four maps (strides 4, 8, 16, 32; ``in_channels``) -> (B,
    out_channels, H/4, W/4). ``smooth``: "rse" (3x3 RSELayer) or
    "large_kernel" (:class:`LargeKernelSmooth` with ``kernel_size``)."""

    def __init__(self, in_channels: Sequence[int], out_channels: int, smooth: str = "rse",
                 kernel_size: int = 3):
        super().__init__()
        if smooth not in SMOOTHS:
            raise ValueError(f"RSEFPN: smooth must be one of {SMOOTHS}, got {smooth!r}")
        layer = RSELayer if smooth == "rse" else LargeKernelSmooth
        self.lateral = nn.ModuleList(RSELayer(c, out_channels, 1) for c in in_channels)
        self.smooth = nn.ModuleList(layer(out_channels, out_channels // 4, kernel_size)
                                    for _ in in_channels)
        self.out_channels = out_channels

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        lateral = [layer(f) for layer, f in zip(self.lateral, features)]
        merged = [lateral[-1]]
        for f in reversed(lateral[:-1]):
            merged.append(f + F.interpolate(merged[-1], scale_factor=2.0, mode="nearest"))
        merged.reverse()  # finest first, as ``features``
        smoothed = [layer(m) for layer, m in zip(self.smooth, merged)]
        upsampled = [s if i == 0 else F.interpolate(s, scale_factor=float(2 ** i), mode="nearest")
                     for i, s in enumerate(smoothed)]
        return torch.cat(upsampled[::-1], dim=1)

    def onnx_layers(self) -> Iterator[nn.Module]:
        # the exports run the coarsest level first, for both layer lists
        for layer in reversed(self.lateral):
            yield from layer.onnx_layers()
        for layer in reversed(self.smooth):
            yield from layer.onnx_layers()
