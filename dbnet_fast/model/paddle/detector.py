"""PPOCRDet: a PaddleOCR mobile detector as a native PyTorch DBNet."""

from __future__ import annotations

import math
import numbers
from typing import Iterator

import numpy as np
import torch
from torch import nn

from dbnet_fast.model.dbnet import db_outputs
from dbnet_fast.model.head import DBHead, init_weights
from dbnet_fast.model.paddle.lcnetv3 import PPLCNetV3
from dbnet_fast.model.paddle.lcnetv4 import PPLCNetV4
from dbnet_fast.model.paddle.necks import RSEFPN
from dbnet_fast.model.paddle.zoo import MODELS
from dbnet_fast.normalization import IMAGENET_MEAN, IMAGENET_STD, PPOCR_MEAN, PPOCR_STD

STRIDE = 32
"""Input height and width must be multiples of this (the coarsest feature stride)."""
NECK_CHANNELS = 96
INPUT_NORMS = ("ppocr", "imagenet")
LARGE_KERNEL = 7
"""The depthwise kernel of PP-OCRv6 small's RepLK-FPN (its config: dilated_kernel_size 7)."""


class PPOCRDet(nn.Module):
    """A PaddleOCR detector by name (:data:`~dbnet_fast.model.paddle.zoo.MODELS`):

    - ``"ppocr-v4"``, ``"ppocr-v5"`` (PP-OCRv4 / v5 mobile): PP-LCNetV3 x0.75
      (:class:`~dbnet_fast.model.paddle.lcnetv3.PPLCNetV3`), RSE-FPN, DB head
      with its BatchNorm layers;
    - ``"ppocr-v6-small"``: PP-LCNetV4 small
      (:class:`~dbnet_fast.model.paddle.lcnetv4.PPLCNetV4`), RepLK-FPN (7x7),
      DB head in its folded form (``DBHead(batch_norm=False)``, as exported).

    Same forward contract as :class:`~dbnet_fast.model.dbnet.DBNet`:

    - images (B, 3, H, W) float, H and W positive multiples of 32, BGR and
      normalised as :func:`ppocr_normalize` does;
    - training mode: a dict of (B, 1, H, W) tensors ``prob_logits``,
      ``thresh_logits`` (raw logits for :class:`~dbnet_fast.model.loss.DBLoss`),
      ``prob``, ``thresh`` (their sigmoids) and ``binary`` =
      ``db_binarize(prob, thresh, k)``;
    - eval mode: the probability map (B, 1, H, W) alone (PP-OCR's output;
      the threshold head is not run). ``prob_logits(images)`` gives the
      pre-sigmoid map in any mode.

    Built by itself it is randomly initialised;
    :func:`~dbnet_fast.model.paddle.load_ppocr_det` loads the pretrained
    weights (all but ``thresh_head``, which the inference exports lack and
    which keeps DBNet's initialisation).

    ``input_norm``: ``"ppocr"`` takes PP-OCR's inputs (above); ``"imagenet"``
    takes DBNet's (RGB, ImageNet mean and std, as dbnet_fast's data pipeline
    uses) and converts them to PP-OCR's first (a channel flip and an affine
    map), so the pretrained weights fine-tune with the usual trainer.
    """

    def __init__(self, name: str = "ppocr-v4", k: float = 50.0, input_norm: str = "ppocr"):
        super().__init__()
        if name not in MODELS:
            raise ValueError(f"PPOCRDet: name must be one of {tuple(MODELS)}, got {name!r}")
        if isinstance(k, bool) or not isinstance(k, numbers.Real) or not math.isfinite(k) or k <= 0:
            raise ValueError(f"k must be a finite positive number, got {k!r}")
        if input_norm not in INPUT_NORMS:
            raise ValueError(f"input_norm must be one of {INPUT_NORMS}, got {input_norm!r}")
        self.name, self.k, self.input_norm = name, float(k), input_norm
        self.onnx_path: str | None = None  # set by load_ppocr_det
        # PP-OCR input = imagenet input * scale + shift, per BGR channel (from RGB reversed)
        std = torch.tensor(IMAGENET_STD[::-1]).view(1, 3, 1, 1)
        mean = torch.tensor(IMAGENET_MEAN[::-1]).view(1, 3, 1, 1)
        self.register_buffer("_imagenet_scale", std / PPOCR_STD, persistent=False)
        self.register_buffer("_imagenet_shift", (mean - PPOCR_MEAN) / PPOCR_STD, persistent=False)
        if MODELS[name].arch == "lcnetv3-rsefpn":
            self.backbone = PPLCNetV3()
            self.neck = RSEFPN(self.backbone.out_channels, NECK_CHANNELS)
            self.prob_head = DBHead(NECK_CHANNELS)
        else:
            self.backbone = PPLCNetV4()
            self.neck = RSEFPN(self.backbone.out_channels, NECK_CHANNELS, "large_kernel",
                               LARGE_KERNEL)
            self.prob_head = DBHead(NECK_CHANNELS, batch_norm=False)
        self.thresh_head = DBHead(NECK_CHANNELS)
        self.thresh_head.apply(init_weights)  # as DBNet's (MhLiao/DB)

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images)
        if self.input_norm == "imagenet":
            images = images.flip(1) * self._imagenet_scale.to(images.dtype) \
                + self._imagenet_shift.to(images.dtype)
        return self.neck(self.backbone(images))

    def prob_logits(self, images: torch.Tensor) -> torch.Tensor:
        """The probability head's logits (B, 1, H, W), float32 (float64 model: float64)."""
        return self.prob_head(self._features(images))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor] | torch.Tensor:
        fused = self._features(images)
        return db_outputs(fused, self.prob_head, self.thresh_head, self.k, self.training)

    def onnx_layers(self) -> Iterator[nn.Module]:
        """The layers that hold exported weights, in the export's node order
        (:mod:`~dbnet_fast.model.paddle.onnx_weights` pairs them with the graph)."""
        yield from self.backbone.onnx_layers()
        yield from self.neck.onnx_layers()
        yield from (m for m in self.prob_head.body if not isinstance(m, nn.ReLU))
        yield self.prob_head.out

    def extra_repr(self) -> str:
        return f"name={self.name!r}, input_norm={self.input_norm!r}, onnx_path={self.onnx_path!r}"


def _check_images(images) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"PPOCRDet: images must be a torch.Tensor, got {type(images).__name__}")
    if torch.jit.is_tracing():
        return
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"PPOCRDet: images must have shape (B, 3, H, W), "
                         f"got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"PPOCRDet: images must be a floating-point tensor, got {images.dtype}"
                        " (normalise uint8 images with ppocr_normalize)")
    h, w = images.shape[-2:]
    if h == 0 or w == 0 or h % STRIDE or w % STRIDE:
        raise ValueError(
            f"PPOCRDet: images height and width must be positive multiples of {STRIDE}, got "
            f"{h}x{w} (resize them as DBPredictor does, or pad)"
        )


def ppocr_normalize(images) -> torch.Tensor:
    """BGR uint8 images (H, W, 3) or (B, H, W, 3), array or tensor -> float32
    (B, 3, H, W) tensor normalised as PP-OCR: (x / 255 - 0.5) / 0.5."""
    x = torch.as_tensor(np.ascontiguousarray(images) if isinstance(images, np.ndarray) else images)
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4 or x.shape[-1] != 3:
        raise ValueError(f"ppocr_normalize: images must be (H, W, 3) or (B, H, W, 3), "
                         f"got {tuple(x.shape)}")
    x = x.permute(0, 3, 1, 2).to(torch.float32)
    return ((x * (1.0 / 255.0) - PPOCR_MEAN) / PPOCR_STD).contiguous()
