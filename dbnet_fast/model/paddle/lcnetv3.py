"""PP-LCNetV3 x0.75 in its detection form: the backbone of PP-OCRv4 and
PP-OCRv5 mobile (the same layers; the two differ in their weights).

A 3x3 stride-2 stem conv + BN, then depthwise-separable blocks
(:class:`LCNetV3Block`) whose convs are "learnable re-parameterisable" layers
(:class:`RepConv`), some with squeeze-and-excitation; the features at strides
4, 8, 16 and 32 leave through 1x1 convs (12, 18, 42 and 360 channels).
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from dbnet_fast.model.paddle.layers import LearnableAffine, SqueezeExcite

# Channels as exported (after scaling by 0.75 and rounding to multiples of 8):
# per stage, blocks of (depthwise kernel, in channels, out channels, stride, SE).
STAGES: tuple[tuple[tuple[int, int, int, int, bool], ...], ...] = (
    ((3, 16, 32, 1, False),),
    ((3, 32, 48, 2, False), (3, 48, 48, 1, False)),
    ((3, 48, 96, 2, False), (3, 96, 96, 1, False)),
    ((3, 96, 192, 2, False),) + ((5, 192, 192, 1, False),) * 4,
    ((5, 192, 384, 2, True), (5, 384, 384, 1, True), (5, 384, 384, 1, False),
     (5, 384, 384, 1, False)),
)
STEM_CHANNELS = 16
OUT_STAGES = (1, 2, 3, 4)
"""Indices into STAGES whose outputs feed the neck (strides 4, 8, 16, 32)."""
OUT_CHANNELS = (12, 18, 42, 360)
"""Channels of the 1x1 output convs (PaddleOCR: int(c * 0.75) of 16, 24, 56, 480)."""


class RepConv(nn.Module):
    """PP-LCNetV3's learnable re-parameterisable layer in its inference form.

    At training time PaddleOCR runs several conv + BN branches (k x k, 1x1,
    identity BN) and sums them; for inference they are folded into a single
    conv with a bias (``conv``), which is what the export holds. Then a
    :class:`LearnableAffine` (``affine``); then, when ``act``, hardswish and a
    second learnable affine (``act_affine``). PaddleOCR drops the activation
    of stride-2 layers; so does :class:`LCNetV3Block`.

    Forward: (B, in_channels, H, W) -> (B, out_channels, H / stride, W / stride).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                              padding=(kernel_size - 1) // 2, groups=groups, bias=True)
        self.affine = LearnableAffine()
        self.act = nn.Hardswish() if act else None
        self.act_affine = LearnableAffine() if act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.affine(self.conv(x))
        if self.act is not None:
            x = self.act_affine(self.act(x))
        return x

    def onnx_layers(self) -> Iterator[nn.Module]:
        yield self.conv
        yield self.affine
        if self.act_affine is not None:
            yield self.act_affine


class LCNetV3Block(nn.Module):
    """Depthwise k x k :class:`RepConv` (no activation when stride 2), optional
    :class:`SqueezeExcite`, pointwise 1x1 :class:`RepConv` with activation."""

    def __init__(self, kernel_size: int, in_channels: int, out_channels: int,
                 stride: int, se: bool):
        super().__init__()
        self.depthwise = RepConv(in_channels, in_channels, kernel_size, stride,
                                 groups=in_channels, act=stride != 2)
        self.se = SqueezeExcite(in_channels) if se else None
        self.pointwise = RepConv(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.depthwise(x)
        if self.se is not None:
            x = self.se(x)
        return self.pointwise(x)

    def onnx_layers(self) -> Iterator[nn.Module]:
        yield from self.depthwise.onnx_layers()
        if self.se is not None:
            yield from self.se.onnx_layers()
        yield from self.pointwise.onnx_layers()


class PPLCNetV3(nn.Module):
    """PP-LCNetV3 x0.75, detection form (see :data:`STAGES`).

    Forward: (B, 3, H, W) -> four maps at strides 4, 8, 16, 32 with
    :data:`OUT_CHANNELS` (12, 18, 42, 360) channels.
    """

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, STEM_CHANNELS, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(STEM_CHANNELS),
        )
        self.stages = nn.ModuleList(
            nn.Sequential(*(LCNetV3Block(*block) for block in stage)) for stage in STAGES
        )
        stage_channels = [STAGES[i][-1][2] for i in OUT_STAGES]
        self.out_convs = nn.ModuleList(
            nn.Conv2d(c_in, c_out, 1) for c_in, c_out in zip(stage_channels, OUT_CHANNELS)
        )
        self.out_channels = OUT_CHANNELS

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        features = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in OUT_STAGES:
                features.append(x)
        return [conv(f) for conv, f in zip(self.out_convs, features)]

    def onnx_layers(self) -> Iterator[nn.Module]:
        yield from self.stem
        for stage in self.stages:
            for block in stage:
                yield from block.onnx_layers()
        yield from self.out_convs
