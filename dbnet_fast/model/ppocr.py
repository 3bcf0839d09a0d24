"""PaddleOCR's PP-OCRv4 mobile text detector as a native PyTorch DBNet.

The network (PaddleOCR, Apache-2.0) is a DBNet with

- backbone: PP-LCNetV3 at scale 0.75 in its detection form (:class:`PPLCNetV3`):
  a 3x3 stride-2 stem conv + BN, then depthwise-separable blocks
  (:class:`LCNetV3Block`) whose convs are "learnable re-parameterisable"
  layers (:class:`RepConv`), some with squeeze-and-excitation
  (:class:`SqueezeExcite`); the features at strides 4, 8, 16 and 32 leave
  through 1x1 convs (12, 18, 42 and 360 channels);
- neck: RSE-FPN (:class:`RSEFPN`): residual-SE 1x1 lateral convs to 96
  channels, top-down nearest upsample-and-add, residual-SE 3x3 convs to 24
  channels, everything upsampled to stride 4 and concatenated (96 channels);
- head: the DB head (:class:`~dbnet_fast.model.head.DBHead` with 96 input
  channels, the same layers as dbnet_fast's DBNet).

:func:`load_ppocr_det` builds it and loads the pretrained weights from the
inference export ``ch_PP-OCRv4_det_infer.onnx`` that ships inside the PyPI
package rapidocr-onnxruntime 1.4.4 (``onnx`` is only needed while loading, see
:mod:`dbnet_fast.model.ppocr_onnx`). The export is the re-parameterised
inference form: each multi-branch conv + BN group of PP-LCNetV3 is one conv
with a bias there, and so it is here (:class:`RepConv`); the stem and the head
keep their BatchNorm layers. The export has no threshold branch; the model adds
one (a DB head, freshly initialised) so that it trains with
:class:`~dbnet_fast.model.loss.DBLoss` like :class:`~dbnet_fast.model.dbnet.DBNet`.

Inputs follow PP-OCR: BGR images, normalised as (x / 255 - 0.5) / 0.5, height
and width multiples of 32 (:func:`ppocr_preprocess` does the resize and the
normalisation of PaddleOCR's detection inference).
"""

from __future__ import annotations

import importlib.util
import math
import numbers
import os
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dbnet_fast.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from dbnet_fast.model.head import DBHead
from dbnet_fast.model.dbnet import db_outputs

STRIDE = 32
"""Input height and width must be multiples of this (the coarsest feature stride)."""

ONNX_FILE = "ch_PP-OCRv4_det_infer.onnx"
"""The file name of the detector inside rapidocr_onnxruntime/models."""

RAPIDOCR_PACKAGE = "rapidocr_onnxruntime"

# PP-LCNetV3 x0.75, detection form, channels as exported (after scaling and
# rounding to multiples of 8): per stage, blocks of
# (depthwise kernel, in channels, out channels, stride, squeeze-excitation).
LCNETV3_STAGES: tuple[tuple[tuple[int, int, int, int, bool], ...], ...] = (
    ((3, 16, 32, 1, False),),
    ((3, 32, 48, 2, False), (3, 48, 48, 1, False)),
    ((3, 48, 96, 2, False), (3, 96, 96, 1, False)),
    ((3, 96, 192, 2, False),) + ((5, 192, 192, 1, False),) * 4,
    ((5, 192, 384, 2, True), (5, 384, 384, 1, True), (5, 384, 384, 1, False),
     (5, 384, 384, 1, False)),
)
STEM_CHANNELS = 16
OUT_STAGES = (1, 2, 3, 4)
"""Indices into LCNETV3_STAGES whose outputs feed the neck (strides 4, 8, 16, 32)."""
OUT_CHANNELS = (12, 18, 42, 360)
"""Channels of the backbone's 1x1 output convs (PaddleOCR: int(c * 0.75) of 16, 24, 56, 480)."""
NECK_CHANNELS = 96

PPOCR_MEAN = 0.5
PPOCR_STD = 0.5
INPUT_NORMS = ("ppocr", "imagenet")


# --------------------------------------------------------------------------- layers


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
    """clamp(slope * x + 0.5, 0, 1). PP-LCNetV3's SE uses slope 1/6 (as
    ``nn.Hardsigmoid``), the RSE-FPN neck Paddle's default slope 0.2."""

    def __init__(self, slope: float):
        super().__init__()
        self.slope = float(slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x * self.slope + 0.5, 0.0, 1.0)

    def extra_repr(self) -> str:
        return f"slope={self.slope:g}"


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
        """Leaf layers in the order the export's nodes hold their weights."""
        yield self.conv
        yield self.affine
        if self.act_affine is not None:
            yield self.act_affine


class SqueezeExcite(nn.Module):
    """x * hardsigmoid(conv(relu(conv(global average pool(x))))), channels
    reduced by ``reduction`` in between; with ``residual``, x + that (the
    "RSE" layers of the neck)."""

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
    """PP-LCNetV3 x0.75, detection form (see :data:`LCNETV3_STAGES`).

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
            nn.Sequential(*(LCNetV3Block(*block) for block in stage)) for stage in LCNETV3_STAGES
        )
        stage_channels = [LCNETV3_STAGES[i][-1][2] for i in OUT_STAGES]
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


class RSEFPN(nn.Module):
    """The RSE-FPN neck of PP-OCRv4's detector.

    Forward: four maps (strides 4, 8, 16, 32; ``in_channels``) -> (B,
    out_channels, H/4, W/4): lateral :class:`RSELayer` 1x1 to ``out_channels``,
    top-down 2x nearest upsample-and-add, :class:`RSELayer` 3x3 to
    ``out_channels / 4`` per level, upsampled to stride 4 and concatenated
    coarsest first.
    """

    def __init__(self, in_channels=OUT_CHANNELS, out_channels: int = NECK_CHANNELS):
        super().__init__()
        self.lateral = nn.ModuleList(RSELayer(c, out_channels, 1) for c in in_channels)
        self.smooth = nn.ModuleList(RSELayer(out_channels, out_channels // 4, 3)
                                    for _ in in_channels)
        self.out_channels = out_channels

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        lateral = [layer(f) for layer, f in zip(self.lateral, features)]
        merged = [lateral[-1]]
        for f in reversed(lateral[:-1]):
            merged.append(f + F.interpolate(merged[-1], scale_factor=2.0, mode="nearest"))
        merged.reverse()  # finest first, as ``features``
        smoothed = [layer(m) for layer, m in zip(self.smooth, merged)]
        scales = [2 ** i for i in range(len(smoothed))]
        upsampled = [s if k == 1 else F.interpolate(s, scale_factor=float(k), mode="nearest")
                     for s, k in zip(smoothed, scales)]
        return torch.cat(upsampled[::-1], dim=1)

    def onnx_layers(self) -> Iterator[nn.Module]:
        # the export runs the coarsest level first, for both layer lists
        for layer in reversed(self.lateral):
            yield from layer.onnx_layers()
        for layer in reversed(self.smooth):
            yield from layer.onnx_layers()


def _head_onnx_layers(head: DBHead) -> Iterator[nn.Module]:
    yield from (m for m in head.body if not isinstance(m, nn.ReLU))
    yield head.out


def _init_head(module: nn.Module) -> None:
    """The threshold head's initialisation, as dbnet_fast's DBNet (MhLiao/DB)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.constant_(module.bias, 1e-4)


# --------------------------------------------------------------------------- model


class PPOCRDet(nn.Module):
    """PP-OCRv4 mobile detector: :class:`PPLCNetV3` + :class:`RSEFPN` + DB heads.

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

    Built by itself it is randomly initialised; :func:`load_ppocr_det` loads
    the pretrained weights (all but ``thresh_head``, which the inference
    export lacks and which keeps DBNet's initialisation).

    ``input_norm``: ``"ppocr"`` takes PP-OCR's inputs (above); ``"imagenet"``
    takes DBNet's (RGB, ImageNet mean and std, as dbnet_fast's data pipeline
    and :class:`~dbnet_fast.model.dbnet.DBNet` use) and converts them
    to PP-OCR's first (a channel flip and an affine map; float rounding aside the
    same maps), so the pretrained weights fine-tune with the usual trainer.
    """

    def __init__(self, k: float = 50.0, input_norm: str = "ppocr"):
        super().__init__()
        if isinstance(k, bool) or not isinstance(k, numbers.Real) or not math.isfinite(k) or k <= 0:
            raise ValueError(f"k must be a finite positive number, got {k!r}")
        if input_norm not in INPUT_NORMS:
            raise ValueError(f"input_norm must be one of {INPUT_NORMS}, got {input_norm!r}")
        self.k = float(k)
        self.input_norm = input_norm
        # PP-OCR input = imagenet input * scale + shift, per BGR channel (from RGB reversed)
        std = torch.tensor(IMAGENET_STD[::-1]).view(1, 3, 1, 1)
        mean = torch.tensor(IMAGENET_MEAN[::-1]).view(1, 3, 1, 1)
        self.register_buffer("_imagenet_scale", std / PPOCR_STD, persistent=False)
        self.register_buffer("_imagenet_shift", (mean - PPOCR_MEAN) / PPOCR_STD, persistent=False)
        self.backbone = PPLCNetV3()
        self.neck = RSEFPN(self.backbone.out_channels, NECK_CHANNELS)
        self.prob_head = DBHead(NECK_CHANNELS)
        self.thresh_head = DBHead(NECK_CHANNELS)
        self.thresh_head.apply(_init_head)

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
        (:mod:`dbnet_fast.model.ppocr_onnx` pairs them with the graph)."""
        yield from self.backbone.onnx_layers()
        yield from self.neck.onnx_layers()
        yield from _head_onnx_layers(self.prob_head)


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
            f"{h}x{w} (resize with ppocr_resize, or pad)"
        )


# --------------------------------------------------------------------------- loading


def default_onnx_path() -> str:
    """The path of ``ch_PP-OCRv4_det_infer.onnx`` in the installed
    rapidocr-onnxruntime (found without importing the package); FileNotFoundError
    saying how to get it when the package or the file is absent."""
    spec = importlib.util.find_spec(RAPIDOCR_PACKAGE)
    how = (f"install it with `pip install --no-deps rapidocr-onnxruntime==1.4.4` (the 4.7 MB "
           f"file {RAPIDOCR_PACKAGE}/models/{ONNX_FILE} ships in that wheel; PaddleOCR's "
           f"PP-OCRv4 mobile detector, Apache-2.0), or pass path= to a copy of the file")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"load_ppocr_det: the package {RAPIDOCR_PACKAGE} is not installed; "
                                f"{how}")
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, "models", ONNX_FILE)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"load_ppocr_det: {ONNX_FILE} is not in the installed "
                            f"{RAPIDOCR_PACKAGE} ({list(spec.submodule_search_locations)}); {how}")


def load_ppocr_det(path: str | os.PathLike | None = None, k: float = 50.0,
                   input_norm: str = "ppocr") -> PPOCRDet:
    """PP-OCRv4 mobile detector with PaddleOCR's pretrained weights, in eval mode.

    Args:
        path: the ONNX export ``ch_PP-OCRv4_det_infer.onnx``; None: the copy in
            the installed rapidocr-onnxruntime (:func:`default_onnx_path`).
        k: the DB amplifying factor used in training mode.
        input_norm: the input normalisation the module takes (see :class:`PPOCRDet`).

    Needs the ``onnx`` package (ImportError saying so otherwise). A missing file
    raises FileNotFoundError; a file that is not this model's export raises
    ValueError naming the first layer that does not match.
    """
    from dbnet_fast.model.ppocr_onnx import load_onnx_weights

    if path is None:
        path = default_onnx_path()
    elif not os.path.isfile(path):
        raise FileNotFoundError(
            f"load_ppocr_det: no file {os.fspath(path)!r}; {ONNX_FILE} ships in the wheel of "
            f"rapidocr-onnxruntime 1.4.4 (`pip install --no-deps rapidocr-onnxruntime==1.4.4`, "
            f"then call load_ppocr_det() without a path)")
    model = PPOCRDet(k=k, input_norm=input_norm)
    load_onnx_weights(model, os.fspath(path))
    return model.eval()


# --------------------------------------------------------------------------- preprocessing


def ppocr_resize(image: np.ndarray, limit_side_len: int = 960, limit_type: str = "max"):
    """Resize like PaddleOCR's detection inference (DetResizeForTest, type 0):
    the size of :func:`~dbnet_fast.data.transforms.inference_size` (``"max"``,
    ``"min"``, ``"resize_long"``; multiples of 32), ``cv2.resize`` bilinear.

    Args:
        image: (H, W, 3) uint8 (any dtype cv2.resize takes), BGR.
    Returns:
        ``(resized, (ratio_h, ratio_w))``: the resized image and the ratios
        new / original of each side.
    """
    import cv2

    from dbnet_fast.data.transforms import inference_size

    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"ppocr_resize: image must be an (H, W, 3) array, got "
                         f"{getattr(image, 'shape', type(image).__name__)}")
    h, w = image.shape[:2]
    if h == 0 or w == 0:
        raise ValueError(f"ppocr_resize: empty image {h}x{w}")
    if limit_type == "short":
        raise ValueError("ppocr_resize: limit_type must be 'max', 'min' or 'resize_long', "
                         "got 'short'")
    new_h, new_w = inference_size(h, w, limit_side_len, limit_type, STRIDE)
    resized = cv2.resize(image, (new_w, new_h))
    return resized, (new_h / h, new_w / w)


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


def ppocr_preprocess(image: np.ndarray, limit_side_len: int = 960, limit_type: str = "max"):
    """One BGR uint8 image (H, W, 3) -> ``(tensor (1, 3, H', W'), (H, W))``:
    :func:`ppocr_resize` then :func:`ppocr_normalize`; the original size is
    what :class:`~dbnet_fast.postprocess.DBPostProcessor` takes to scale the
    boxes back."""
    resized, _ = ppocr_resize(image, limit_side_len, limit_type)
    return ppocr_normalize(resized), (int(image.shape[0]), int(image.shape[1]))
