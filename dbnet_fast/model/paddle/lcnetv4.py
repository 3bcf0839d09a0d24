"""PP-LCNetV4 "small" in its detection form: the backbone of PP-OCRv6 small.

Read from the export (PaddleOCR names the layers PP-LCNetV4): every conv is
in its inference form, its BatchNorm and (for the re-parameterisable
depthwise convs) its parallel branches folded into one conv with a bias.

- stem (:class:`StemBlock`, stride 4): 3x3/2 conv + ReLU to 24 channels; two
  branches, a 2x2 max pool and two 2x2 convs (24 -> 12 -> 24, ReLU), both
  with Paddle's "SAME" padding (bottom / right); concatenated (48), a 3x3/2
  conv (48 -> 24) and a 1x1 conv (24 -> 48), each with ReLU;
- four stages of :class:`LCNetV4Block` (a depthwise 3x3 "token mixer",
  optional squeeze-excitation, then a 1x1 expand x2, GELU, 1x1 compress
  "channel mixer", residual where the shape is kept) at strides 4, 8, 16,
  32 with 48, 96, 192 and 384 channels, all four leaving for the neck.
"""

from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from dbnet_fast.model.paddle.layers import SamePadConv2d, SqueezeExcite

# per stage, blocks of (depthwise kernel, in channels, out channels, stride, SE)
STAGES: tuple[tuple[tuple[int, int, int, int, bool], ...], ...] = (
    ((3, 48, 48, 1, True), (3, 48, 48, 1, False)),
    ((3, 48, 96, 2, False), (3, 96, 96, 1, True), (3, 96, 96, 1, False)),
    ((3, 96, 192, 2, False), (3, 192, 192, 1, True), (3, 192, 192, 1, False),
     (3, 192, 192, 1, True), (3, 192, 192, 1, False)),
    ((3, 192, 384, 2, False), (3, 384, 384, 1, True), (3, 384, 384, 1, False)),
)
STEM_CHANNELS = (24, 48)
"""The stem's middle and output channels."""
EXPAND_RATIO = 2
OUT_CHANNELS = tuple(stage[-1][2] for stage in STAGES)


def _conv_relu(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                                   padding=(kernel_size - 1) // 2), nn.ReLU(inplace=True))


class StemBlock(nn.Module):
    """(B, 3, H, W) -> (B, 48, H/4, W/4); see the module documentation."""

    def __init__(self, mid_channels: int = STEM_CHANNELS[0], out_channels: int = STEM_CHANNELS[1]):
        super().__init__()
        self.stem1 = _conv_relu(3, mid_channels, 3, stride=2)
        self.stem2a = nn.Sequential(SamePadConv2d(mid_channels, mid_channels // 2, 2),
                                    nn.ReLU(inplace=True))
        self.stem2b = nn.Sequential(SamePadConv2d(mid_channels // 2, mid_channels, 2),
                                    nn.ReLU(inplace=True))
        self.stem3 = _conv_relu(2 * mid_channels, mid_channels, 3, stride=2)
        self.stem4 = _conv_relu(mid_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem1(x)
        # 2x2 max pool, stride 1, "SAME": padded at the bottom and right with -inf
        pooled = F.max_pool2d(F.pad(x, (0, 1, 0, 1), value=float("-inf")), 2, stride=1)
        x = torch.cat([pooled, self.stem2b(self.stem2a(x))], dim=1)
        return self.stem4(self.stem3(x))

    def onnx_layers(self) -> Iterator[nn.Module]:
        for block in (self.stem1, self.stem2a, self.stem2b, self.stem3, self.stem4):
            yield block[0]


class LCNetV4Block(nn.Module):
    """Depthwise k x k conv (stride 1 or 2), optional :class:`SqueezeExcite`
    (slope 1/6), then 1x1 expand (x2), GELU, 1x1 compress; y = t + mix(t)
    where t is the depthwise output and the shape is kept (stride 1, same
    channels), else y = mix(t)."""

    def __init__(self, kernel_size: int, in_channels: int, out_channels: int,
                 stride: int, se: bool):
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, kernel_size, stride,
                                   padding=(kernel_size - 1) // 2, groups=in_channels)
        self.se = SqueezeExcite(in_channels) if se else None
        hidden = in_channels * EXPAND_RATIO
        self.expand = nn.Conv2d(in_channels, hidden, 1)
        self.act = nn.GELU()
        self.compress = nn.Conv2d(hidden, out_channels, 1)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.depthwise(x)
        if self.se is not None:
            x = self.se(x)
        mixed = self.compress(self.act(self.expand(x)))
        return x + mixed if self.residual else mixed

    def onnx_layers(self) -> Iterator[nn.Module]:
        yield self.depthwise
        if self.se is not None:
            yield from self.se.onnx_layers()
        yield from (self.expand, self.compress)


class PPLCNetV4(nn.Module):
    """PP-LCNetV4 small, detection form (see :data:`STAGES`).

    Forward: (B, 3, H, W) -> four maps at strides 4, 8, 16, 32 with
    :data:`OUT_CHANNELS` (48, 96, 192, 384) channels.
    """

    def __init__(self):
        super().__init__()
        self.stem = StemBlock()
        self.stages = nn.ModuleList(
            nn.Sequential(*(LCNetV4Block(*block) for block in stage)) for stage in STAGES
        )
        self.out_channels = OUT_CHANNELS

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features

    def onnx_layers(self) -> Iterator[nn.Module]:
        yield from self.stem.onnx_layers()
        for stage in self.stages:
            for block in stage:
                yield from block.onnx_layers()
