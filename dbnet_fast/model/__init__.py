"""DBNet / DBNet++ models and the DB loss.

- :class:`DBNet`: backbone (ResNet-18/50 with optional deformable convs,
  MobileNetV3-Large), FPN or FPN + Adaptive Scale Fusion neck, DB heads.
- :class:`PPOCRDet` / :func:`load_ppocr_det`: PaddleOCR's pretrained detectors
  (PP-OCRv4 / v5 mobile, PP-OCRv6 small) loaded from their ONNX exports
  (:mod:`dbnet_fast.model.paddle`).
- :class:`DBLoss`: the DB loss through the fused op :func:`dbnet_fast.ops.db_loss`.
"""

from dbnet_fast.model.backbones import BACKBONES, ModulatedDeformConv2d, build_backbone
from dbnet_fast.model.dbnet import NECKS, DBNet
from dbnet_fast.model.head import DBHead
from dbnet_fast.model.loss import DBLoss
from dbnet_fast.model.necks import FPN, AdaptiveScaleFusion
from dbnet_fast.model.paddle import PPOCRDet, load_ppocr_det, ppocr_normalize

__all__ = [
    "BACKBONES",
    "NECKS",
    "AdaptiveScaleFusion",
    "DBHead",
    "DBLoss",
    "DBNet",
    "FPN",
    "ModulatedDeformConv2d",
    "PPOCRDet",
    "build_backbone",
    "load_ppocr_det",
    "ppocr_normalize",
]
