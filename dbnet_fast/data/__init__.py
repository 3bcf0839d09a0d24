"""Data pipeline: datasets (synthetic, ICDAR 2015, Total-Text, and the label formats of
:mod:`dbnet_fast.data.formats`: PaddleOCR, MMOCR, docTR, COCO-Text, TextOCR, CTW1500,
LabelMe), augmentation, label building for DataLoader workers, batching.

Typical training loader (reproducible for any ``num_workers``; see
:mod:`dbnet_fast.data.seeding`)::

    from dbnet_fast.data import SyntheticTextDataset, TrainTransform, collate

    data = SyntheticTextDataset(4000, size=(320, 320), seed=0, split="train",
                                transform=TrainTransform(size=320))
    loader = torch.utils.data.DataLoader(
        data, batch_size=8, shuffle=True, num_workers=2, collate_fn=collate,
        generator=torch.Generator().manual_seed(0))
    for epoch in range(epochs):
        data.set_epoch(epoch)
        for batch in loader: ...
"""

from dbnet_fast.data.datasets import (
    ICDAR2015Dataset,
    TotalTextDataset,
    parse_icdar2015,
    parse_total_text,
)
from dbnet_fast.data.formats import FORMATS, LabelError, open_dataset
from dbnet_fast.data.seeding import sample_rng
from dbnet_fast.data.synthetic import SynthConfig, SyntheticTextDataset, render_sample
from dbnet_fast.data.targets import DBTargetBuilder
from dbnet_fast.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    EvalTransform,
    TrainTransform,
    collate,
    normalize,
    unscale_polygons,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LabelError",
    "DBTargetBuilder",
    "EvalTransform",
    "FORMATS",
    "ICDAR2015Dataset",
    "SynthConfig",
    "SyntheticTextDataset",
    "TotalTextDataset",
    "TrainTransform",
    "collate",
    "normalize",
    "open_dataset",
    "parse_icdar2015",
    "parse_total_text",
    "render_sample",
    "sample_rng",
    "unscale_polygons",
]
