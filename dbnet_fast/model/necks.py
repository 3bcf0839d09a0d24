"""Necks: the FPN of DBNet and DBNet++'s Adaptive Scale Fusion (ASF).

Both output a (B, inner_channels, H/4, W/4) map for the DB heads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FPN(nn.Module):
    """DBNet's feature pyramid (MhLiao/DB's SegDetector neck).

    Each level i (stride 4, 8, 16, 32) gets a 1x1 lateral conv to
    ``inner_channels``; top-down, each coarser map is upsampled (nearest) and
    added to the next finer one; a 3x3 conv then smooths each of the four maps
    to ``inner_channels // 4``, they are upsampled (nearest) to stride 4 and
    concatenated, coarsest first (stride 32, 16, 8, 4), as in MhLiao/DB.

    Forward: four maps (B, C_i, H/s_i, W/s_i) -> (B, inner_channels, H/4, W/4).
    Convs have no bias (MhLiao/DB); initialisation is done by the DBNet model.
    """

    def __init__(self, in_channels: tuple[int, ...] | list[int], inner_channels: int = 256):
        super().__init__()
        if len(in_channels) != 4:
            raise ValueError(f"FPN: in_channels must list 4 levels, got {len(in_channels)}")
        if inner_channels % 4 != 0:
            raise ValueError(f"FPN: inner_channels must be a multiple of 4, got {inner_channels}")
        self.lateral = nn.ModuleList(nn.Conv2d(c, inner_channels, 1, bias=False)
                                     for c in in_channels)
        self.smooth = nn.ModuleList(
            nn.Conv2d(inner_channels, inner_channels // 4, 3, padding=1, bias=False)
            for _ in in_channels
        )
        self.out_channels = inner_channels

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        if len(features) != 4:
            raise ValueError(f"FPN: expected 4 feature maps, got {len(features)}")
        laterals = [conv(f) for conv, f in zip(self.lateral, features)]
        # Top-down: from the stride-32 level down to stride 4.
        merged = [laterals[3]]
        for lateral in reversed(laterals[:3]):
            merged.append(lateral + F.interpolate(merged[-1], size=lateral.shape[-2:],
                                                  mode="nearest"))
        merged.reverse()  # strides 4, 8, 16, 32 again
        size = merged[0].shape[-2:]
        levels = [
            F.interpolate(conv(m), size=size, mode="nearest") if i else conv(m)
            for i, (conv, m) in enumerate(zip(self.smooth, merged))
        ]
        return torch.cat(levels[::-1], dim=1)


class AdaptiveScaleFusion(nn.Module):
    """DBNet++'s Adaptive Scale Fusion over the concatenated FPN levels.

    With X the concatenation of N levels (N * C channels, C each):

    1. S = Conv3x3(X), N * C -> ``C_s = N * C // 4`` channels (a plain conv
       with bias, as the paper and MhLiao/DB's code);
    2. spatial attention: a = sigmoid(Conv1x1(ReLU(Conv3x3(mean_c(S))))), one
       (B, 1, H, W) map, added to every channel: S' = S + a;
    3. scale (channel) attention: A = sigmoid(Conv1x1(S')), (B, N, H, W),
       one weight map per level;
    4. output = concat_i(A_i * X_i), (B, N * C, H, W).

    Forward: (B, N * C, H, W) -> (B, N * C, H, W). :meth:`attention` gives A.
    """

    def __init__(self, channels: int = 256, levels: int = 4):
        super().__init__()
        if channels % levels != 0:
            raise ValueError(f"AdaptiveScaleFusion: channels ({channels}) must be a multiple "
                             f"of levels ({levels})")
        self.levels = levels
        inner = max(channels // 4, 1)
        self.reduce = nn.Conv2d(channels, inner, 3, padding=1)
        self.spatial = nn.Sequential(
            nn.Conv2d(1, 1, 3, padding=1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(1, 1, 1, bias=False),
            nn.Sigmoid(),
        )
        self.scale = nn.Conv2d(inner, levels, 1, bias=True)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Per-level weights in (0, 1): (B, N * C, H, W) -> (B, N, H, W)."""
        s = self.reduce(x)
        s = s + self.spatial(s.mean(dim=1, keepdim=True))
        return torch.sigmoid(self.scale(s))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.attention(x)
        b, c, h, w = x.shape
        per_level = x.reshape(b, self.levels, c // self.levels, h, w)
        return (per_level * weights.unsqueeze(2)).reshape(b, c, h, w)
