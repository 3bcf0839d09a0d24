"""Named training recipes: ``TrainConfig.from_recipe(NAME, **overrides)`` and
``dbnet-fast train --recipe NAME``. Values the caller gives override the recipe's; the
recipe's name and every value end up in the run's ``config.json``.

``db-ic15-r18`` is MhLiao/DB's ICDAR 2015 DBNet-R18
(``experiments/seg_detector/ic15_resnet18_deform_thre.yaml`` and ``base_ic15.yaml``):
ResNet-18 with modulated deformable convs in stages 3-5 from ImageNet weights, FPN of
256 channels, k = 50; SGD lr 0.007, momentum 0.9, weight decay 1e-4, poly decay 0.9
over 1,200 epochs; a global batch of 16 (divided by the number of processes); 640 x 640
crops: flip (p 0.5), rotation in +-10 degrees, scale 0.5-3.0, its crop sampler (at most
10 tries, sides >= 0.1 of the image, the whole image when no try succeeds); labels with
shrink ratio 0.4 and the threshold map in 0.3-0.7 (minimum text size 8); float32; the
final evaluation at exactly 1280 x 736 with thresh 0.3, box_thresh 0.55, unclip 1.5
(``eval --preset db-r18``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dbnet_fast.engine.evaluate import PRESETS

IF_AVAILABLE = "if_available"
"""``pretrained_backbone`` value: ImageNet weights when they can be had (torch hub cache,
else a download), otherwise a warning, random weights and a note in config.json."""


@dataclass(frozen=True)
class Recipe:
    """``values``: TrainConfig fields; ``differences``: where we knowingly differ from
    the recipe's source."""

    name: str
    source: str
    values: dict
    differences: tuple[str, ...] = field(default=())


def _final_eval(preset: str) -> dict:
    """TrainConfig's evaluation fields for one of MhLiao/DB's test settings (PRESETS)."""
    chosen = PRESETS[preset]
    post = chosen["postprocess"]
    return dict(evaluate=True, eval_size=chosen["size"], thresh=post["thresh"],
                box_thresh=post["box_thresh"], unclip_ratio=post["unclip_ratio"])


RECIPES = {r.name: r for r in [
    Recipe(
        name="db-ic15-r18",
        source="MhLiao/DB experiments/seg_detector/ic15_resnet18_deform_thre.yaml",
        values=dict(
            arch="resnet18", neck="fpn", dcn=True, inner_channels=256,
            pretrained_backbone=IF_AVAILABLE, image_size=640, global_batch_size=16,
            epochs=1200, max_steps=None, time_budget_min=None, optimizer="sgd", lr=0.007,
            momentum=0.9, weight_decay=1e-4, power=0.9, warmup_steps=0, amp=False,
            augment="full", crop_sampler="mhliao", shrink_ratio=0.4, thresh_min=0.3,
            thresh_max=0.7, **_final_eval("db-r18")),
        differences=(
            "input normalisation: RGB with ImageNet's mean and std; MhLiao/DB subtracts the RGB "
            "mean from the BGR image as cv2 reads it and divides by 255",
            "ImageNet weights: torchvision's resnet18 IMAGENET1K_V1 file (MhLiao/DB's code "
            "names resnet18-5c106cde.pth); without them the backbone starts from random weights "
            "(a warning, and config.json says so); the paper's 82.3 also starts from a model "
            "pre-trained on SynthText, which this recipe does not do",
            "deformable convs: the modulation is 2 sigmoid(m), starting at 1 (the plain conv); "
            "MhLiao/DB's sigmoid(m) starts at 0.5",
            "learning rate: poly decay per step, 0.007 (1 - step / total)^0.9; MhLiao/DB's "
            "changes per epoch, 0.007 (1 - epoch / 1201)^0.9",
            "augmentation: one affine warp of the image (flip, rotation, scale, crop composed) "
            "in place of imgaug's steps one after another; polygons cut by the crop are clipped "
            "to it (MhLiao/DB keeps them whole, putting labels on the padding)",
            "evaluation: once, on the test split after training; MhLiao/DB also validates "
            "every 4,500 steps",
        )),
]}


def recipe_values(name: str, overrides: dict) -> dict:
    """TrainConfig fields of recipe ``name`` with ``overrides`` on top, and ``recipe``.

    A ``batch_size`` given without ``global_batch_size`` replaces the recipe's global
    batch (it is per process)."""
    if name not in RECIPES:
        raise ValueError(f"recipe must be one of {tuple(RECIPES)}, got {name!r}")
    values = dict(RECIPES[name].values)
    if "batch_size" in overrides and "global_batch_size" not in overrides:
        values.pop("global_batch_size", None)
    values.update(overrides)
    values["recipe"] = name
    return values
