"""The training loop: :class:`TrainConfig` and :func:`train`.

The defaults are MhLiao/DB's reference recipe: SGD, lr 0.007, momentum 0.9,
weight decay 1e-4, poly decay ``lr = 0.007 * (1 - step / total) ** 0.9``,
640 x 640 crops with the full augmentation, batch 16 (per process, or
``global_batch_size`` divided by the number of processes). Named recipes
(:mod:`dbnet_fast.engine.recipes`, ``TrainConfig.from_recipe``) set many values at once.

Outputs under ``config.out`` (only the main process writes):

- ``config.json``: the configuration;
- ``metrics.jsonl``: one JSON object per ``log_every`` steps: step, epoch, lr,
  loss and its terms (means over the window and the processes), images/s (all
  processes), the share of the window spent waiting for data, elapsed seconds;
  a final ``{"event": "eval", ...}`` line holds the evaluation;
- ``last.pt``: the checkpoint, every ``checkpoint_every`` steps and at the end
  (atomic; see :mod:`dbnet_fast.engine.checkpoint`);
- ``eval.json``: precision, recall, H-mean on the held-out set after training.

``resume=True`` continues from ``out/last.pt`` exactly where it stopped: model,
optimizer, schedule, step, epoch and position in the epoch, random generators
(with ``num_workers=0`` or any worker count: samples are seeded by index).

Multi-process: run under ``torchrun`` (see :mod:`dbnet_fast.engine.distributed`);
each process reads its own share of every epoch, gradients are averaged by
DistributedDataParallel, and all processes agree on the learning rate and on
when to stop.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import random
import time
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from dbnet_fast.data import DBTargetBuilder, collate
from dbnet_fast.data.transforms import CROP_SAMPLERS, check_input_size
from dbnet_fast.engine import distributed as dist_utils
from dbnet_fast.engine.atomic import atomic_write_json, atomic_write_text
from dbnet_fast.engine.checkpoint import (
    PPOCR_ARCHS,
    build_model,
    initialise,
    load_checkpoint,
    model_config,
    save_checkpoint,
    set_rng_state,
    unwrap,
)
from dbnet_fast.engine.data import (
    AUGMENTS,
    HELD_OUT,
    eval_dataset,
    parse_data_spec,
    synth_config,
    train_dataset,
)
from dbnet_fast.engine.evaluate import evaluate
from dbnet_fast.engine import precision as precisions
from dbnet_fast.engine.recipes import IF_AVAILABLE, RECIPES, recipe_values
from dbnet_fast.engine.schedule import EpochSampler, PolySchedule, ThreadTuner
from dbnet_fast.model import BACKBONES, NECKS, DBLoss
from dbnet_fast.model.weights import WeightsUnavailable
from dbnet_fast.postprocess import DBPostProcessor

ARCHS = BACKBONES + PPOCR_ARCHS
OPTIMIZERS = ("sgd", "adamw")
# Settings that must not change when resuming: they decide the data order or the model.
RESUME_FIXED = ("data", "arch", "init", "neck", "dcn", "inner_channels", "image_size", "batch_size",
                "seed", "augment", "synth_images", "synth_size", "synth_preset", "optimizer",
                "skip_bad", "crop_sampler", "shrink_ratio", "thresh_min", "thresh_max")


@dataclass
class TrainConfig:
    """Everything :func:`train` needs; the defaults are the reference recipe.

    Length (at least one): ``epochs``, ``max_steps``, ``time_budget_min``
    (minutes of training; the run stops cleanly after the step that crosses
    it, then saves and evaluates). With several, the first reached ends it.
    ``batch_size`` is per process; ``global_batch_size``, when set, replaces it by
    itself divided by the number of processes (which must divide it).
    :meth:`from_recipe` starts from a named recipe (``recipe`` records its name).
    """

    data: str = "synthetic"
    # the evaluation set ("FORMAT:PATH"); None: data's own held-out split (HELD_OUT)
    eval_data: str | None = None
    # leave malformed label records out (listed and counted) instead of stopping
    skip_bad: bool = False
    arch: str = "resnet18"
    neck: str = "fpn"
    dcn: bool = False
    inner_channels: int = 256
    # ImageNet backbone weights: True, False or "if_available" (used when they can be had,
    # else a warning, random weights and a note in config.json; the recipes' choice)
    pretrained_backbone: bool | str = False
    # starting weights: "ppocr-v4" (PaddleOCR's, with arch "ppocr-v4") or a checkpoint path
    init: str | None = None
    image_size: int = 640
    batch_size: int = 16
    global_batch_size: int | None = None
    epochs: int | None = None
    max_steps: int | None = None
    time_budget_min: float | None = None
    optimizer: str = "sgd"
    lr: float = 0.007
    momentum: float = 0.9
    weight_decay: float = 1e-4
    power: float = 0.9
    warmup_steps: int = 0
    # mixed precision: True / False, or "auto" (chosen by measured step times; the demo)
    amp: bool | str = False
    augment: str = "full"
    # the training crop: "ours" or "mhliao" (MhLiao/DB's RandomCropData, see TrainTransform)
    crop_sampler: str = "ours"
    # label maps (DBTargetBuilder): shrink ratio, threshold map range
    shrink_ratio: float = 0.4
    thresh_min: float = 0.3
    thresh_max: float = 0.7
    out: str = "runs/train"
    resume: bool = False
    # replace the run already in ``out`` (without it, or ``resume``, such a folder is refused)
    overwrite: bool = False
    checkpoint_every: int = 500
    log_every: int = 10
    num_workers: int = 2
    seed: int = 0
    device: str = "auto"
    # torch intra-op threads of the training process: None leaves torch's setting,
    # an int sets it, "auto" picks 1 .. cores by measured step time (ThreadTuner)
    threads: int | str | None = None
    # synthetic data: training images per epoch, render size (default image_size), preset
    synth_images: int = 20000
    synth_size: int | None = None
    synth_preset: str = "default"
    # evaluation after training (held-out synthetic "val" images, or the test split)
    evaluate: bool = True
    eval_images: int = 100
    eval_batch_size: int = 1
    # exact (height, width) of the evaluation images (multiples of 32); None: the data's
    # short-side resize
    eval_size: tuple[int, int] | None = None
    thresh: float = 0.3
    box_thresh: float = 0.6
    unclip_ratio: float = 1.5
    progress: bool = True
    # the recipe these values started from (set by from_recipe; a record)
    recipe: str | None = None

    def __post_init__(self):
        self.validate()

    @classmethod
    def from_recipe(cls, name: str, **overrides) -> TrainConfig:
        """The recipe ``name`` of :data:`~dbnet_fast.engine.recipes.RECIPES`, with
        ``overrides`` (any fields) on top; a ``batch_size`` without
        ``global_batch_size`` replaces the recipe's global batch."""
        return cls(**recipe_values(name, overrides))

    def validate(self) -> None:
        """Raises ValueError naming the first bad setting."""
        spec = parse_data_spec(self.data)
        if self.eval_data is not None:
            parse_data_spec(self.eval_data)
        elif self.evaluate and spec.scheme not in HELD_OUT:
            raise ValueError(f"data {self.data} is one split: give the evaluation labels with "
                             f"eval_data (--eval-data FORMAT:PATH) or turn evaluation off "
                             f"(--no-eval)")
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if self.init in PPOCR_ARCHS and self.arch != self.init:
            raise ValueError(f"init '{self.init}' needs arch '{self.init}', got {self.arch!r}")
        if self.init not in (None, *PPOCR_ARCHS) and not self.resume and not Path(self.init).is_file():
            raise FileNotFoundError(f"init checkpoint {self.init} does not exist")
        if self.neck not in NECKS:
            raise ValueError(f"neck must be one of {NECKS}, got {self.neck!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.augment not in AUGMENTS:
            raise ValueError(f"augment must be one of {AUGMENTS}, got {self.augment!r}")
        if self.crop_sampler not in CROP_SAMPLERS:
            raise ValueError(f"crop_sampler must be one of {tuple(CROP_SAMPLERS)}, got "
                             f"{self.crop_sampler!r}")
        if self.recipe is not None and self.recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {tuple(RECIPES)}, got {self.recipe!r}")
        if self.pretrained_backbone not in (True, False, IF_AVAILABLE):
            raise ValueError(f"pretrained_backbone must be True, False or {IF_AVAILABLE!r}, got "
                             f"{self.pretrained_backbone!r}")
        if not 0 < self.shrink_ratio < 1:
            raise ValueError(f"shrink_ratio must be in (0, 1), got {self.shrink_ratio}")
        if not 0 <= self.thresh_min < self.thresh_max <= 1:
            raise ValueError(f"thresh_min and thresh_max must satisfy 0 <= thresh_min < "
                             f"thresh_max <= 1, got {self.thresh_min}, {self.thresh_max}")
        if self.eval_size is not None:
            self.eval_size = check_input_size(self.eval_size, "eval_size")
        synth_config(self.synth_preset)
        for name in ("image_size", "batch_size", "checkpoint_every", "log_every", "synth_images",
                     "eval_images", "eval_batch_size"):
            _positive_int(self, name)
        for name in ("epochs", "max_steps", "synth_size", "global_batch_size"):
            if getattr(self, name) is not None:
                _positive_int(self, name)
        if self.image_size % 32:
            raise ValueError(f"image_size must be a multiple of 32, got {self.image_size}")
        if self.batch_size * (self.image_size // 32) ** 2 < 2:
            raise ValueError(f"image_size {self.image_size} with batch_size {self.batch_size} "
                             "leaves one value per channel at stride 32, which BatchNorm cannot "
                             "train on: use image_size >= 64 or batch_size >= 2")
        if self.synth_size is not None and self.synth_size < 32:
            raise ValueError(f"synth_size must be >= 32, got {self.synth_size}")
        if self.time_budget_min is not None and not (
                math.isfinite(self.time_budget_min) and self.time_budget_min > 0):
            raise ValueError(f"time_budget_min must be > 0 minutes, got {self.time_budget_min}")
        if self.epochs is None and self.max_steps is None and self.time_budget_min is None:
            raise ValueError("give the length of training: epochs, max_steps or time_budget_min")
        for name in ("lr", "power"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {getattr(self, name)}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.warmup_steps < 0 or self.num_workers < 0 or self.seed < 0:
            raise ValueError("warmup_steps, num_workers and seed must be >= 0")
        if self.threads is not None and self.threads != "auto" and (
                isinstance(self.threads, bool) or not isinstance(self.threads, int)
                or self.threads < 1):
            raise ValueError(f"threads must be None, 'auto' or an int >= 1, got {self.threads!r}")
        if self.amp not in (True, False, "auto"):
            raise ValueError(f"amp must be True, False or 'auto', got {self.amp!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        self.postprocessor()  # checks thresh, box_thresh, unclip_ratio (as every command does)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def postprocessor(self) -> DBPostProcessor:
        return DBPostProcessor(thresh=self.thresh, box_thresh=self.box_thresh,
                               unclip_ratio=self.unclip_ratio)


def per_process_batch(config: TrainConfig, world_size: int) -> int:
    """The batch of each of ``world_size`` processes: ``global_batch_size / world_size``
    when it is set (a ValueError unless it divides evenly), else ``batch_size``."""
    total = config.global_batch_size
    if total is None:
        return config.batch_size
    if total % world_size:
        raise ValueError(f"global_batch_size {total} is not divisible by the {world_size} "
                         f"processes: use a multiple of {world_size}, or another process count")
    return total // world_size


def build_train_model(config: TrainConfig) -> tuple[torch.nn.Module, str | None]:
    """The model of ``config`` and, when ``pretrained_backbone="if_available"`` found
    no ImageNet weights, the warning said (the backbone then starts from random weights)."""
    def build(pretrained):
        return build_model(config.arch, config.neck, config.dcn,
                           inner_channels=config.inner_channels, pretrained_backbone=pretrained)

    if config.pretrained_backbone != IF_AVAILABLE:
        return build(config.pretrained_backbone), None
    try:
        return build(True), None
    except WeightsUnavailable as error:
        note = (f"no ImageNet weights for the {config.arch} backbone, so it starts from RANDOM "
                f"weights and the recipe's results are not to be expected ({error})")
        warnings.warn(note, stacklevel=2)
        return build(False), note


def _positive_int(config, name):
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def seed_everything(seed: int) -> None:
    """Seeds Python's, NumPy's global and torch's generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


class _Logger:
    """metrics.jsonl and the tqdm bar of the main process (no-ops elsewhere)."""

    def __init__(self, out: Path, enabled: bool, progress: bool, total: int | None,
                 initial: int, resume_step: int | None):
        self.enabled = enabled
        self.path = out / "metrics.jsonl"
        self.bar = None
        if not enabled:
            return
        if resume_step is not None and self.path.exists():
            # drop records past the checkpoint: the resumed run writes them again
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= resume_step
                    and "event" not in json.loads(line)]
            atomic_write_text(self.path, "".join(line + "\n" for line in kept))
        elif resume_step is None:
            atomic_write_text(self.path, "")
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc="train", unit="step",
                            dynamic_ncols=True)

    def record(self, values: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(values) + "\n")
            f.flush()

    def advance(self, postfix: dict | None = None) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)

    def write(self, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _Window:
    """Loss terms, step count and data-wait time since the last metrics record."""

    KEYS = ("loss", "loss_bce", "loss_dice", "loss_l1")

    def __init__(self):
        self.reset(time.perf_counter())

    def reset(self, now: float) -> None:
        self.sums = dict.fromkeys(self.KEYS, 0.0)
        self.steps, self.start, self.data_wait = 0, now, 0.0

    def add(self, terms: dict[str, float]) -> None:
        for key in self.KEYS:
            self.sums[key] += terms[key]
        self.steps += 1

    def record(self, ctx, *, step: int, epoch: int, lr: float, global_batch: int,
               elapsed: float) -> dict:
        """The metrics record of the window (loss means over it and over the processes)."""
        now = time.perf_counter()
        means = dist_utils.all_reduce_mean(ctx, torch.tensor(
            [self.sums[k] / self.steps for k in self.KEYS], dtype=torch.float64)).tolist()
        seconds = now - self.start
        record = {"step": step, "epoch": epoch, "lr": lr,
                  **{k: round(v, 6) for k, v in zip(self.KEYS, means)},
                  "images_per_s": round(self.steps * global_batch / seconds, 3),
                  "data_wait": round(self.data_wait / seconds, 4),
                  "threads": torch.get_num_threads(), "elapsed_s": round(elapsed, 2)}
        self.reset(now)
        return record


RUN_FILES = ("last.pt", "config.json", "metrics.jsonl", "eval.json")


def _claim_out(out: Path, config: TrainConfig) -> None:
    """Makes sure starting a run in ``out`` loses nothing: a folder that holds an
    earlier run is refused unless the run continues it (``resume``) or replaces
    it (``overwrite``: its run files are removed first, so a failure of the new
    run cannot leave a mix of the two)."""
    if config.resume:
        return
    found = [name for name in RUN_FILES if (out / name).exists()]
    if not found:
        return
    if not config.overwrite:
        raise FileExistsError(f"{out} holds an earlier run ({', '.join(found)}); pass --resume "
                              "to continue it, --overwrite to replace it, or another --out")
    for name in found:
        (out / name).unlink()


def _check_resume(saved: dict, config: TrainConfig, world_size: int) -> None:
    changed = [name for name in RESUME_FIXED
               if name in saved and saved[name] != getattr(config, name)]
    if changed:
        detail = ", ".join(f"{n}: {saved[n]!r} -> {getattr(config, n)!r}" for n in changed)
        raise ValueError(f"resume: these settings differ from the checkpoint's ({detail}); "
                         "they must match to continue the same run")
    if saved.get("world_size", 1) != world_size:
        raise ValueError(f"resume: the checkpoint was written by {saved.get('world_size', 1)} "
                         f"processes, this run has {world_size}")


def train(config: TrainConfig) -> dict:
    """Trains a DBNet as ``config`` says.

    Returns a summary dict: ``step``, ``epoch``, ``elapsed_s``, ``stopped_by``
    ("max_steps", "epochs" or "time_budget"), ``checkpoint`` (path), ``device``,
    ``eval`` (the final evaluation, None if skipped or not the main process) and
    ``model`` (the trained model, unwrapped, in training mode)."""
    config.validate()
    ctx = dist_utils.setup(config.device)
    try:
        return _train(config, ctx)
    finally:
        dist_utils.cleanup(ctx)


def _train(config: TrainConfig, ctx: dist_utils.DistContext) -> dict:
    device = ctx.device
    config = dataclasses.replace(config, batch_size=per_process_batch(config, ctx.world_size))
    out = Path(config.out)
    checkpoint_path = out / "last.pt"
    if ctx.is_main:
        _claim_out(out, config)
    spec = parse_data_spec(config.data)
    seed_everything(config.seed)

    model, backbone_warning = build_train_model(config)
    if not (config.resume and checkpoint_path.is_file()):  # a resumed run has its own weights
        initialise(model, config.init)
    model = model.to(device).train()
    loss_fn = DBLoss(k=model.k)
    optimizer = make_optimizer(config, model)

    dataset = train_dataset(spec, image_size=config.image_size, augment=config.augment,
                            seed=config.seed, synth_images=config.synth_images,
                            synth_size=config.synth_size, synth_preset=config.synth_preset,
                            skip_bad=config.skip_bad, crop_sampler=config.crop_sampler,
                            builder=DBTargetBuilder(shrink_ratio=config.shrink_ratio,
                                                    thresh_min=config.thresh_min,
                                                    thresh_max=config.thresh_max))
    precision = choose_precision(config, model, loss_fn, dataset, device)
    amp = precision["amp"]
    scaler = torch.amp.GradScaler("cuda") if amp and device.type == "cuda" else None
    global_batch = config.batch_size * ctx.world_size
    steps_per_epoch = len(dataset) // global_batch
    if steps_per_epoch == 0:
        raise ValueError(f"the training set has {len(dataset)} images, fewer than one batch of "
                         f"{global_batch} (batch_size {config.batch_size} x {ctx.world_size} "
                         "processes)")
    limits = [n for n in (config.max_steps,
                          config.epochs * steps_per_epoch if config.epochs else None) if n]
    total_steps = min(limits) if limits else None
    budget_s = config.time_budget_min * 60.0 if config.time_budget_min is not None else None
    schedule = PolySchedule(optimizer, total_steps, budget_s, config.power, config.warmup_steps)

    step = epoch = epoch_step = 0
    elapsed_before = 0.0
    saved_config = dict(config.to_dict(), world_size=ctx.world_size)
    if config.pretrained_backbone == IF_AVAILABLE:
        saved_config["pretrained_backbone_loaded"] = backbone_warning is None
    if backbone_warning is not None:
        saved_config["warnings"] = [backbone_warning]
    if config.resume:
        if not checkpoint_path.is_file():
            raise FileNotFoundError(f"resume: no checkpoint at {checkpoint_path}")
        state = load_checkpoint(checkpoint_path, map_location=device)
        _check_resume(state["config"], config, ctx.world_size)
        unwrap(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["scheduler"])
        if scaler is not None and state["scaler"]:
            scaler.load_state_dict(state["scaler"])
        step, epoch, epoch_step = state["step"], state["epoch"], state["epoch_step"]
        elapsed_before = state["elapsed"]
        set_rng_state(state["rng"])
        del state

    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "config.json", saved_config)
    net = model
    if ctx.distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    logger = _Logger(out, ctx.is_main, config.progress, total_steps, step,
                     step if config.resume else None)
    neck = model_config(model)["neck"]
    logger.write(f"training DBNet-{config.arch} ({neck}) on {spec}: {len(dataset)} images "
                 f"of {config.image_size}, batch {config.batch_size} x {ctx.world_size}, "
                 f"{steps_per_epoch} steps/epoch, device {device}, {precision['precision']} "
                 f"({precision['why']})"
                 + (f", resumed at step {step}" if config.resume else ""))
    if backbone_warning is not None:
        logger.write(f"WARNING: {backbone_warning}")
    skipped = getattr(dataset, "skipped", [])
    if skipped:
        shown = "; ".join(f"{path} {why}" for path, why in skipped[:3])
        logger.write(f"left out {len(skipped)} unreadable images or bad records: {shown}"
                     + (f"; ... ({len(skipped) - 3} more)" if len(skipped) > 3 else ""))

    def checkpoint():
        if ctx.is_main:
            save_checkpoint(checkpoint_path, model, optimizer=optimizer, scheduler=schedule,
                            scaler=scaler, step=step, epoch=epoch, epoch_step=epoch_step,
                            elapsed=elapsed, config=saved_config)

    tuner = None
    if config.threads == "auto":
        cores = torch.get_num_threads()
        tuner = ThreadTuner({1, max(1, cores // 2), cores})
    elif config.threads is not None:
        torch.set_num_threads(config.threads)

    start = time.perf_counter()
    elapsed = elapsed_before
    window = _Window()
    stopped_by = None
    try:
        while stopped_by is None:
            dataset.set_epoch(epoch)
            sampler = EpochSampler(len(dataset), config.batch_size, config.seed, epoch, ctx.rank,
                                   ctx.world_size, start_batch=epoch_step)
            loader = torch.utils.data.DataLoader(
                dataset, batch_size=config.batch_size, sampler=sampler, drop_last=True,
                num_workers=config.num_workers, collate_fn=collate,
                pin_memory=device.type == "cuda",
                generator=torch.Generator().manual_seed(config.seed))
            batches = iter(loader)
            while True:
                # every process uses the same clock (the slowest) for the schedule and the stop
                elapsed = elapsed_before + time.perf_counter() - start
                if budget_s is not None and ctx.distributed:
                    elapsed = _max_over(ctx, elapsed)
                if total_steps is not None and step >= total_steps:
                    stopped_by = "max_steps" if total_steps == config.max_steps else "epochs"
                    break
                if budget_s is not None and elapsed >= budget_s:
                    stopped_by = "time_budget"
                    break
                waited = time.perf_counter()
                batch = next(batches, None)
                window.data_wait += time.perf_counter() - waited
                if batch is None:  # the epoch's batches are used up (epoch advanced below)
                    break
                lr = schedule.step(step, elapsed)
                if tuner is not None:
                    torch.set_num_threads(tuner.next_threads())
                began = time.perf_counter()
                window.add(_train_step(net, loss_fn, optimizer, scaler, batch, device, amp))
                if tuner is not None:
                    tuner.record(time.perf_counter() - began)
                step += 1
                epoch_step += 1
                if epoch_step == steps_per_epoch:
                    epoch, epoch_step = epoch + 1, 0
                if step % config.log_every == 0 or step == total_steps:
                    record = window.record(ctx, step=step, epoch=epoch, lr=lr,
                                           global_batch=global_batch,
                                           elapsed=elapsed_before + time.perf_counter() - start)
                    logger.record(record)
                    postfix = {"loss": f"{record['loss']:.3f}",
                               "img/s": f"{record['images_per_s']:.2f}"}
                    if budget_s is not None:
                        postfix["left"] = f"{max(0.0, budget_s - record['elapsed_s']) / 60:.1f} min"
                    logger.advance(postfix)
                else:
                    logger.advance()
                if step % config.checkpoint_every == 0:
                    elapsed = elapsed_before + time.perf_counter() - start
                    checkpoint()
            del batches, loader
    except (Exception, KeyboardInterrupt) as error:
        # keep the steps done: the last finished step is saved, then the run ends
        elapsed = elapsed_before + time.perf_counter() - start
        saved = None
        try:
            checkpoint()
            saved = checkpoint_path if ctx.is_main else None
        except Exception as save_error:  # noqa: BLE001 - report the first error, not this
            logger.write(f"(could not save the checkpoint: {save_error})")
        logger.close()
        raise TrainingStopped(step, saved, error) from error

    elapsed = elapsed_before + time.perf_counter() - start
    if tuner is not None:
        torch.set_num_threads(tuner.current)
    checkpoint()
    logger.close()
    logger.write(f"stopped by {stopped_by} at step {step} (epoch {epoch}) after "
                 f"{elapsed / 60:.1f} min; checkpoint {checkpoint_path}")
    summary = {"step": step, "epoch": epoch, "elapsed_s": elapsed, "stopped_by": stopped_by,
               "checkpoint": str(checkpoint_path), "device": str(device), "eval": None,
               "precision": precision, "model": model}
    if config.evaluate and ctx.is_main:
        summary["eval"] = run_final_eval(config, model, device, out, step, amp)
        logger.record({"event": "eval", "step": step, **summary["eval"]})
    dist_utils.barrier(ctx)
    return summary


def choose_precision(config: TrainConfig, model, loss_fn, dataset, device,
                     steps: int = 3) -> dict:
    """The precision of the training steps: ``{"amp": bool, "precision": name, "why":
    reason}`` (plus ``"step_s"``, the measured seconds per step, for ``amp="auto"``).

    ``amp=True`` is float16 autocast on CUDA, bfloat16 on a CPU where it is fast
    (else float32, with a warning: :func:`resolve_amp`). ``amp="auto"`` on the CPU
    times ``steps`` training steps (after one warm-up) of a copy of the model on
    one batch in each precision, taken in turn, and keeps the faster (by median); bfloat16 is not timed where
    one convolution already shows it more than twice as slow (a step could take
    a minute there)."""
    names = {False: "float32", True: "float16" if device.type == "cuda" else "bfloat16"}
    if config.amp is not True and config.amp != "auto":
        return {"amp": False, "precision": "float32", "why": "amp off"}
    if device.type == "cuda":
        return {"amp": True, "precision": "float16", "why": "CUDA autocast with a GradScaler"}
    if config.amp is True:
        amp = precisions.resolve_amp(device, True, "train --amp")
        return {"amp": amp, "precision": names[amp],
                "why": precisions.cpu_bf16_is_fast()[1]}
    speedup = precisions.bf16_speedup()
    if speedup < 0.5:
        return {"amp": False, "precision": "float32",
                "why": f"{precisions.describe_cpu()}; a bfloat16 convolution ran "
                       f"{speedup:.2f}x float32's speed, so bfloat16 steps were not timed"}
    batch = collate([dataset[i] for i in range(min(config.batch_size, len(dataset)))])
    trials = {}
    for amp in (False, True):
        trial = copy.deepcopy(model)
        trials[amp] = (trial, make_optimizer(config, trial))
    times = {False: [], True: []}
    # a warm-up step each, then the two in turn: a change of machine load in the
    # middle of the measurement falls on both alike
    for round_ in range(steps + 1):
        for amp, (trial, optimizer) in trials.items():
            began = time.perf_counter()
            _train_step(trial, loss_fn, optimizer, None, batch, device, amp)
            if round_:
                times[amp].append(time.perf_counter() - began)
    del trials
    step_s = {names[amp]: sorted(t)[len(t) // 2] for amp, t in times.items()}
    amp = step_s["bfloat16"] < 0.95 * step_s["float32"]
    return {"amp": amp, "precision": names[amp], "step_s": step_s,
            "why": f"{precisions.describe_cpu()}; measured {step_s['float32']:.3f} s per step in "
                   f"float32, {step_s['bfloat16']:.3f} s in bfloat16"}


class TrainingStopped(RuntimeError):
    """Training ended early by an error or Ctrl-C (``cause``), after ``step`` finished
    steps; ``checkpoint`` holds them (None if it could not be written), so the run
    continues with ``resume=True``."""

    def __init__(self, step: int, checkpoint: Path | None, cause: BaseException):
        self.step, self.checkpoint, self.cause = step, checkpoint, cause
        # a DataLoader worker's error carries its traceback as text: keep the last line
        lines = [line for line in str(cause).strip().splitlines() if line.strip()]
        what = "interrupted (Ctrl-C)" if isinstance(cause, KeyboardInterrupt) else \
            f"{type(cause).__name__}: {lines[-1].strip() if lines else ''}"
        kept = (f"the {step} finished steps are saved in {checkpoint}: fix the cause and "
                "continue with --resume (same --out and settings)" if checkpoint is not None
                else "no checkpoint could be written")
        super().__init__(f"training stopped at step {step}, {what}; {kept}")


def _max_over(ctx, value: float) -> float:
    """The largest ``value`` over the processes."""
    if not ctx.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return float(t.item())


def _train_step(net, loss_fn, optimizer, scaler, batch, device, amp) -> dict[str, float]:
    images = batch["image"].to(device, non_blocking=True)
    targets = {k: batch[k].to(device, non_blocking=True)
               for k in ("shrink_map", "shrink_mask", "thresh_map", "thresh_mask")}
    with precisions.autocast(device, amp):
        outputs = net(images)
    total, terms = loss_fn(outputs, targets)
    if not torch.isfinite(total):
        raise FloatingPointError(f"the loss is {float(total)} (terms: "
                                 f"{ {k: float(v) for k, v in terms.items()} }); lower the "
                                 "learning rate")
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(total).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        total.backward()
        optimizer.step()
    return {"loss": float(total.detach()), **{k: float(v.detach()) for k, v in terms.items()}}


def run_final_eval(config: TrainConfig, model, device, out: Path, step: int,
                   amp: bool = False) -> dict:
    """Evaluates ``model`` on ``config``'s held-out set, writes ``out/eval.json``."""
    spec = parse_data_spec(config.eval_data or config.data)
    dataset = eval_dataset(spec, seed=config.seed, synth_images=config.eval_images,
                           synth_size=config.synth_size or config.image_size,
                           synth_preset=config.synth_preset, skip_bad=config.skip_bad,
                           size=config.eval_size)
    metrics = evaluate(unwrap(model), dataset, config.postprocessor(), device,
                       config.eval_batch_size, amp=amp, progress=config.progress)
    result = {"data": str(spec), "split": "val" if spec.scheme == "synthetic" else "test",
              "step": step, "checkpoint": str(out / "last.pt"),
              "size": config.eval_size,
              "postprocess": {"thresh": config.thresh, "box_thresh": config.box_thresh,
                              "unclip_ratio": config.unclip_ratio}, **metrics}
    atomic_write_json(out / "eval.json", result)
    print(f"eval on {result['images']} held-out images ({result['data']}, {result['split']}): "
          f"precision {metrics['precision']:.4f}  recall {metrics['recall']:.4f}  "
          f"H-mean {metrics['hmean']:.4f}", flush=True)
    return result
