"""Backbones giving four feature levels at strides 4, 8, 16 and 32.

- ``resnet18`` / ``resnet50``: torchvision ResNets; the levels are the outputs
  of ``layer1`` .. ``layer4`` (channels 64/128/256/512 and 256/512/1024/2048).
  ``dcn=True`` turns the 3x3 conv of every block in ``layer2`` .. ``layer4``
  (the paper's stages conv3-conv5) into a modulated deformable conv, as the
  DBNet paper and MhLiao/DB do (``conv2`` of a BasicBlock or a Bottleneck).
- ``mobilenet_v3_large``: torchvision MobileNetV3-Large; the levels are the
  ends of its stride-4/8/16/32 stages (``features[0:4]``, ``[4:7]``,
  ``[7:13]``, ``[13:17]``; channels 24/40/112/960). No deformable variant.
"""

from __future__ import annotations

import torch
from torch import nn

from dbnet_fast.model.weights import load_state_dict

BACKBONES = ("resnet18", "resnet50", "mobilenet_v3_large")


def _torchvision():
    """torchvision, imported where these backbones need it. It is not a dependency of
    the package: it must be the build made for the installed torch (pip would pick
    PyPI's, which fails to load beside a +cpu or other torch), and the PP-OCR
    models, the ops and the post-processing do without it."""
    try:
        import torchvision
        import torchvision.ops  # loads its native operators: fails if built for another torch
    except (ImportError, RuntimeError) as error:
        raise ImportError(
            f"the ResNet / MobileNetV3 backbones need torchvision built for the installed torch "
            f"{torch.__version__} (install it from the same index as torch, e.g. for torch "
            "2.14.1: pip install torchvision==0.29.1); importing it failed: "
            f"{type(error).__name__}: {error}") from error
    return torchvision


class ModulatedDeformConv2d(nn.Module):
    """A modulated deformable convolution (DCNv2) built from a plain ``nn.Conv2d``.

    It keeps the conv's weight and bias (so its state-dict keys are the conv's,
    and pretrained weights load unchanged) and adds ``offset_mask``, a conv with
    the same kernel, stride, padding and dilation that predicts, per output
    pixel, 2 offsets and 1 modulation logit for each of the kh * kw taps.
    ``offset_mask`` starts at zero and the modulation is ``2 sigmoid(logit)``,
    so at initialisation offsets are 0 and modulation is exactly 1: the module
    starts as the plain conv it replaces (MhLiao's ``sigmoid`` would start at
    one half of it).

    Shapes: (B, C_in, H, W) -> (B, C_out, H_out, W_out) as the original conv.
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if conv.groups != 1:
            raise ValueError(f"ModulatedDeformConv2d: conv.groups must be 1, got {conv.groups}")
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation
        self.taps = conv.kernel_size[0] * conv.kernel_size[1]
        self.weight = nn.Parameter(conv.weight.detach().clone())
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone())
        self.offset_mask = nn.Conv2d(
            conv.in_channels, 3 * self.taps, conv.kernel_size, stride=conv.stride,
            padding=conv.padding, dilation=conv.dilation, bias=True,
        )
        nn.init.zeros_(self.offset_mask.weight)
        nn.init.zeros_(self.offset_mask.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset, mask_logits = self.offset_mask(x).split([2 * self.taps, self.taps], dim=1)
        # torchvision's deform_conv2d has no 16-bit CPU kernel and no CPU autocast
        # rule: run it in float32 (float64 stays float64) outside autocast, as its
        # CUDA autocast rule does, and hand back the input's dtype.
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        with torch.autocast(device_type=x.device.type, enabled=False):
            mask = 2.0 * torch.sigmoid(mask_logits.to(dtype))
            bias = None if self.bias is None else self.bias.to(dtype)
            out = _torchvision().ops.deform_conv2d(x.to(dtype), offset.to(dtype), self.weight.to(dtype), bias,
                                stride=self.stride, padding=self.padding,
                                dilation=self.dilation, mask=mask)
        return out.to(x.dtype)

    def extra_repr(self) -> str:
        out_channels, in_channels, kh, kw = self.weight.shape
        return (f"{in_channels}, {out_channels}, kernel_size=({kh}, {kw}), stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}")


class ResNetBackbone(nn.Module):
    """A torchvision ResNet without its classifier.

    Forward: (B, 3, H, W) -> [C2, C3, C4, C5] at strides 4, 8, 16, 32 with
    ``out_channels`` channels.
    """

    def __init__(self, resnet: nn.Module, dcn: bool = False):  # a torchvision ResNet
        super().__init__()
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool)
        self.layer1, self.layer2 = resnet.layer1, resnet.layer2
        self.layer3, self.layer4 = resnet.layer3, resnet.layer4
        if dcn:
            for layer in (self.layer2, self.layer3, self.layer4):
                for block in layer:
                    # conv2 is the 3x3 conv of both BasicBlock and Bottleneck.
                    block.conv2 = ModulatedDeformConv2d(block.conv2)
        self.out_channels = tuple(
            _block_out_channels(layer[-1])
            for layer in (self.layer1, self.layer2, self.layer3, self.layer4)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c2 = self.layer1(self.stem(x))
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return [c2, c3, c4, c5]


def _block_out_channels(block: nn.Module) -> int:
    last_bn = block.bn3 if hasattr(block, "bn3") else block.bn2
    return last_bn.num_features


class MobileNetV3Backbone(nn.Module):
    """torchvision MobileNetV3-Large ``features`` cut at the stride-4/8/16/32 stage ends.

    Forward: (B, 3, H, W) -> four maps with ``out_channels`` = (24, 40, 112, 960).
    """

    CUTS = (0, 4, 7, 13, 17)

    def __init__(self, mobilenet: nn.Module):  # a torchvision MobileNetV3
        super().__init__()
        features = mobilenet.features
        self.stages = nn.ModuleList(
            features[start:stop] for start, stop in zip(self.CUTS[:-1], self.CUTS[1:])
        )
        self.out_channels = tuple(_last_out_channels(stage) for stage in self.stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = []
        for stage in self.stages:
            x = stage(x)
            levels.append(x)
        return levels


def _last_out_channels(stage: nn.Module) -> int:
    convs = [m for m in stage.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


def build_backbone(name: str, dcn: bool = False, pretrained: bool = False) -> nn.Module:
    """Build a backbone by name (one of :data:`BACKBONES`).

    Args:
        name: ``"resnet18"``, ``"resnet50"`` or ``"mobilenet_v3_large"``.
        dcn: deformable convs in ResNet stages conv3-conv5 (ResNets only).
        pretrained: load torchvision's ImageNet weights (``IMAGENET1K_V1``) from
            the torch hub cache, downloading them if missing (see
            :mod:`dbnet_fast.model.weights`); the deformable convs keep the
            pretrained 3x3 weights.

    Returns:
        a module whose forward maps (B, 3, H, W) to a list of four feature maps
        at strides 4, 8, 16, 32, with an ``out_channels`` tuple attribute.
    """
    models = _torchvision().models
    if name == "resnet18":
        net, weights = models.resnet18(weights=None), models.ResNet18_Weights.IMAGENET1K_V1
    elif name == "resnet50":
        net, weights = models.resnet50(weights=None), models.ResNet50_Weights.IMAGENET1K_V1
    elif name == "mobilenet_v3_large":
        if dcn:
            raise ValueError("dcn=True is only supported for ResNet backbones, "
                             "not backbone='mobilenet_v3_large'")
        net = models.mobilenet_v3_large(weights=None)
        weights = models.MobileNet_V3_Large_Weights.IMAGENET1K_V1
    else:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {name!r}")
    if pretrained:
        net.load_state_dict(load_state_dict(weights))
    if name == "mobilenet_v3_large":
        return MobileNetV3Backbone(net)
    return ResNetBackbone(net, dcn=dcn)
