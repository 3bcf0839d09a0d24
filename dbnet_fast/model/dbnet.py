"""DBNet / DBNet++: backbone, FPN (+ ASF), probability and threshold heads."""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from dbnet_fast.model.backbones import BACKBONES, build_backbone
from dbnet_fast.model.head import DBHead, init_weights
from dbnet_fast.model.necks import FPN, AdaptiveScaleFusion
from dbnet_fast.ops import db_binarize

NECKS = ("fpn", "asf")
STRIDE = 32
"""Input height and width must be multiples of this (the coarsest feature stride)."""


class DBNet(nn.Module):
    """DBNet (Liao et al., AAAI 2020) and, with ``neck="asf"``, DBNet++ (TPAMI 2022).

    Args:
        backbone: ``"resnet18"``, ``"resnet50"`` or ``"mobilenet_v3_large"``.
        dcn: modulated deformable 3x3 convs in ResNet stages conv3-conv5
            (``layer2`` .. ``layer4``), as "DB-ResNet-xx (DCN)" in the paper.
            Not available for MobileNetV3 (ValueError).
        neck: ``"fpn"`` (DBNet) or ``"asf"`` (DBNet++: FPN + Adaptive Scale Fusion).
        k: the amplifying factor of the differentiable binarization (50).
        pretrained_backbone: load torchvision's ImageNet weights for the backbone
            (from the torch hub cache; a RuntimeError that names the file if it is
            missing and cannot be downloaded).
        inner_channels: channels of the fused neck output (256 in the paper).

    Forward:
        images (B, 3, H, W), H and W positive multiples of 32, any float dtype.

        - training mode: a dict of (B, 1, H, W) float32 tensors (float64 for a
          float64 model): ``prob_logits``, ``thresh_logits`` (raw logits, for
          :class:`~dbnet_fast.model.loss.DBLoss`), ``prob``, ``thresh`` (their
          sigmoids) and ``binary`` = ``db_binarize(prob, thresh, k)``;
        - eval mode: the probability map (B, 1, H, W) alone (the threshold head
          is not run).

        The head's last layer, the sigmoids and the binarization run in float32
        with autocast disabled, so the outputs are float32 under AMP.

    Initialisation: torchvision's for the backbone (or ImageNet weights); in
    the neck and heads, as MhLiao/DB: Kaiming-normal conv weights (fan-in,
    ReLU gain), zero conv biases, BatchNorm weight 1 and bias 1e-4.
    """

    input_norm = "imagenet"
    """Inputs are RGB, normalised with the ImageNet mean and std (:func:`dbnet_fast.data.normalize`)."""

    def __init__(
        self,
        backbone: str = "resnet18",
        dcn: bool = False,
        neck: str = "fpn",
        k: float = 50.0,
        pretrained_backbone: bool = False,
        inner_channels: int = 256,
    ):
        super().__init__()
        if not isinstance(backbone, str) or backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
        if not isinstance(neck, str) or neck not in NECKS:
            raise ValueError(f"neck must be one of {NECKS}, got {neck!r}")
        if not isinstance(dcn, bool):
            raise TypeError(f"dcn must be a bool, got {type(dcn).__name__}")
        if isinstance(k, bool) or not isinstance(k, numbers.Real) or not math.isfinite(k) or k <= 0:
            raise ValueError(f"k must be a finite positive number, got {k!r}")
        if (isinstance(inner_channels, bool) or not isinstance(inner_channels, int)
                or inner_channels <= 0 or inner_channels % 4 != 0):
            raise ValueError(f"inner_channels must be a positive multiple of 4, "
                             f"got {inner_channels!r}")
        self.k = float(k)
        self.backbone = build_backbone(backbone, dcn=dcn, pretrained=pretrained_backbone)
        fpn = FPN(self.backbone.out_channels, inner_channels)
        if neck == "asf":
            self.neck = nn.Sequential(fpn, AdaptiveScaleFusion(inner_channels))
        else:
            self.neck = fpn
        self.prob_head = DBHead(inner_channels)
        self.thresh_head = DBHead(inner_channels)
        for module in (self.neck, self.prob_head, self.thresh_head):
            module.apply(init_weights)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor] | torch.Tensor:
        _check_images(images)
        fused = self.neck(self.backbone(images))
        return db_outputs(fused, self.prob_head, self.thresh_head, self.k, self.training)


def db_outputs(fused: torch.Tensor, prob_head: nn.Module, thresh_head: nn.Module, k: float,
               training: bool) -> dict[str, torch.Tensor] | torch.Tensor:
    """The DB output contract from the fused features: in eval the probability
    map (B, 1, H, W); in training the dict of logits, prob, thresh and binary,
    the sigmoids and the binarization in float32 outside autocast."""
    prob_logits = prob_head(fused)  # float32 logits (the head leaves autocast)
    device_type = prob_logits.device.type
    if not training:
        with torch.autocast(device_type=device_type, enabled=False):
            return torch.sigmoid(prob_logits)
    thresh_logits = thresh_head(fused)
    with torch.autocast(device_type=device_type, enabled=False):
        prob = torch.sigmoid(prob_logits)
        thresh = torch.sigmoid(thresh_logits)
        binary = db_binarize(prob, thresh, k)
    return {"prob_logits": prob_logits, "thresh_logits": thresh_logits,
            "prob": prob, "thresh": thresh, "binary": binary}


def _check_images(images) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"DBNet: images must be a torch.Tensor, got {type(images).__name__}")
    if torch.jit.is_tracing():
        return  # sizes are traced tensors there (ONNX export); checking them would warn
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"DBNet: images must have shape (B, 3, H, W), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"DBNet: images must be a floating-point tensor, got {images.dtype}")
    h, w = images.shape[-2:]
    if h == 0 or w == 0 or h % STRIDE or w % STRIDE:
        raise ValueError(
            f"DBNet: images height and width must be positive multiples of {STRIDE}, got "
            f"{h}x{w} (pad or resize, e.g. to {max(STRIDE, -(-h // STRIDE) * STRIDE)}x"
            f"{max(STRIDE, -(-w // STRIDE) * STRIDE)})"
        )
