"""Datasets named on the command line: ``synthetic``, ``icdar2015:PATH``, ``totaltext:PATH``,
and the label formats of :mod:`dbnet_fast.data.formats` as ``FORMAT:PATH`` (``paddleocr``,
``mmocr``, ``doctr``, ``cocotext``, ``textocr``, ``ctw1500``, ``labelme``).

:func:`parse_data_spec` checks the name; :func:`train_dataset` and
:func:`eval_dataset` build the training set (with augmentation and label
maps) and the evaluation set (resized for the model, no label maps; samples
carry ``shape`` and ``scale`` so predictions map back to original pixels).
The synthetic training and evaluation sets are disjoint (``split="train"``
and ``"val"`` draw from different seed sequences). A label file (or folder) in
one of the formats is one split; only COCO-Text's JSON holds both (its "train"
and "val" sets), so :data:`HELD_OUT` names the data that have their own test split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dbnet_fast.data import (
    DBTargetBuilder,
    EvalTransform,
    ICDAR2015Dataset,
    SynthConfig,
    SyntheticTextDataset,
    TotalTextDataset,
    TrainTransform,
)
from dbnet_fast.data.formats import FORMATS, check_path, open_dataset

SCHEMES = ("synthetic", "icdar2015", "totaltext", *FORMATS)
HELD_OUT = ("synthetic", "icdar2015", "totaltext", "cocotext")
"""Data whose evaluation split comes with them; the others need an evaluation set of their own."""
EVAL_SHORT_SIDE = {"icdar2015": 736, "totaltext": 800}
"""MhLiao/DB's test resize (short side); label formats use ICDAR 2015's."""
AUGMENTS = ("full", "light", "none")


def synth_config(preset: str) -> SynthConfig:
    """The synthetic generator's settings by name: ``"default"`` (the full mix),
    ``"easy"`` (:meth:`SynthConfig.easy`: larger, straighter words on calmer backgrounds)."""
    if preset == "default":
        return SynthConfig()
    if preset == "easy":
        return SynthConfig.easy()
    raise ValueError(f"synthetic preset must be 'default' or 'easy', got {preset!r}")


@dataclass(frozen=True)
class DataSpec:
    """A parsed ``--data`` value: ``scheme`` and, for real datasets, the ``root`` folder
    (for label formats the label file or folder, as given)."""

    scheme: str
    root: Path | None = None

    def __str__(self) -> str:
        return self.scheme if self.root is None else f"{self.scheme}:{self.root}"


def parse_data_spec(spec: str) -> DataSpec:
    """``"synthetic"``, ``"icdar2015:PATH"``, ``"totaltext:PATH"`` or ``"FORMAT:PATH"``
    -> :class:`DataSpec`.

    Raises ValueError for an unknown scheme or a missing path, FileNotFoundError
    when the path is not a folder (not the label file or folder the format reads).
    """
    known = f"synthetic, icdar2015:PATH, totaltext:PATH, or FORMAT:PATH with FORMAT one of " \
            f"{', '.join(FORMATS)}"
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"--data must be one of {known}; got {spec!r}")
    scheme, sep, path = spec.partition(":")
    if scheme not in SCHEMES:
        raise ValueError(f"--data: unknown dataset {scheme!r} in {spec!r} (known: {known})")
    if scheme == "synthetic":
        if sep:
            raise ValueError(f"--data: 'synthetic' takes no path, got {spec!r}")
        return DataSpec("synthetic")
    if not path:
        raise ValueError(f"--data: {scheme} needs a folder, e.g. {scheme}:/data/{scheme}")
    if scheme in FORMATS:
        try:
            check_path(scheme, path)
        except (ValueError, FileNotFoundError) as error:
            raise type(error)(f"--data {spec}: {error}") from None
        return DataSpec(scheme, Path(path))
    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"--data: the {scheme} folder {root} does not exist "
                                "(or is not a folder)")
    return DataSpec(scheme, root)


def train_transform(size: int, augment: str = "full", crop_sampler: str = "ours",
                    builder: DBTargetBuilder | None = None) -> TrainTransform:
    """MhLiao/DB's augmentation (``"full"``), a milder one (``"light"``: rotation within
    5 degrees, scale 0.75-1.5, crops of at least half a side) or none (``"none"``: the
    whole image fitted into the output square); ``crop_sampler`` and ``builder`` (the
    label maps) as :class:`TrainTransform`."""
    common = dict(size=size, crop_sampler=crop_sampler, builder=builder or DBTargetBuilder())
    if augment == "full":
        return TrainTransform(**common)
    if augment == "light":
        return TrainTransform(**common, max_rotation=5.0, scale_range=(0.75, 1.5),
                              min_crop_side_ratio=0.5)
    if augment == "none":
        return TrainTransform(**common, flip_prob=0.0, max_rotation=0.0, scale_range=(1.0, 1.0),
                              min_crop_side_ratio=1.0, max_tries=1)
    raise ValueError(f"augment must be one of {AUGMENTS}, got {augment!r}")


def train_dataset(spec: DataSpec, *, image_size: int, augment: str = "full", seed: int = 0,
                  synth_images: int = 20000, synth_size: int | None = None,
                  synth_preset: str = "default", skip_bad: bool = False,
                  crop_sampler: str = "ours", builder: DBTargetBuilder | None = None):
    """The training set of ``spec``: crops of ``image_size`` with label maps.

    Synthetic images are rendered at ``synth_size`` (default ``image_size``);
    ``skip_bad`` leaves malformed label records out (label formats);
    ``crop_sampler``, ``builder``: see :func:`train_transform`."""
    transform = train_transform(image_size, augment, crop_sampler, builder)
    if spec.scheme == "synthetic":
        return SyntheticTextDataset(synth_images, size=synth_size or image_size, seed=seed,
                                    split="train", transform=transform,
                                    config=synth_config(synth_preset))
    return real_dataset(spec, "train", transform, seed, skip_bad)


def real_dataset(spec: DataSpec, split: str, transform=None, seed: int = 0,
                 skip_bad: bool = False):
    """The ``split`` ("train" or "test") of a dataset read from files."""
    if spec.scheme == "icdar2015":
        return ICDAR2015Dataset(spec.root, split, transform=transform, seed=seed)
    if spec.scheme == "totaltext":
        return TotalTextDataset(spec.root, split, transform=transform, seed=seed)
    return open_dataset(spec.scheme, str(spec.root), split, transform=transform, seed=seed,
                        skip_bad=skip_bad)


def eval_dataset(spec: DataSpec, *, seed: int = 0, synth_images: int = 100,
                 synth_size: int = 640, synth_preset: str = "default",
                 short_side: int | None = None, max_side: int | None = None,
                 skip_bad: bool = False, split: str = "test",
                 size: tuple[int, int] | None = None):
    """The evaluation set of ``spec`` (no augmentation, no label maps).

    Synthetic: ``synth_images`` held-out images (the ``"val"`` split) of
    ``synth_size`` at scale 1. ICDAR 2015 / Total-Text: the ``split`` ("test" or
    "train"), the short side resized to ``short_side`` (default 736 and 800, as
    MhLiao/DB); label formats: the labels given (COCO-Text: its "val" set for
    "test"), short side 736. ``size`` (height, width): an exact resize instead
    (:class:`EvalTransform`)."""
    if spec.scheme == "synthetic":
        if split != "test":
            raise ValueError(f"split: synthetic evaluation uses held-out images; split must be "
                             f"'test', got {split!r}")
        transform = EvalTransform(short_side=short_side, max_side=max_side, targets=False,
                                  size=size)
        return SyntheticTextDataset(synth_images, size=synth_size, seed=seed, split="val",
                                    transform=transform, config=synth_config(synth_preset))
    if size is None:
        short_side = short_side or EVAL_SHORT_SIDE.get(spec.scheme, 736)
    transform = EvalTransform(short_side=short_side, max_side=max_side, targets=False, size=size)
    return real_dataset(spec, split, transform, seed, skip_bad)
