"""Evaluation: a model + post-processor over a dataset, scored with the ICDAR 2015
IoU protocol (:func:`dbnet_fast.metrics.evaluate_detections`).

Two ways in: :func:`evaluate_checkpoint` (a training checkpoint, through the
training's evaluation pipeline, :func:`evaluate`) and :func:`evaluate_model`
(a pretrained PaddleOCR detector through :class:`~dbnet_fast.predict.DBPredictor`
at its own inference settings, so the figures are those of ``dbnet-fast
detect``). Both run the model once per image and post-process its map once per
setting of a ``sweep`` (:func:`sweep_grid`) as it comes, so a sweep needs no
more memory than one setting and gives, per setting, exactly what a separate
run at that setting gives. :data:`PRESETS` names MhLiao/DB's own test settings.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from pathlib import Path

import numpy as np
import torch

from dbnet_fast.data import collate, unscale_polygons
from dbnet_fast.data.transforms import check_input_size
from dbnet_fast.engine.precision import autocast, resolve_amp
from dbnet_fast.metrics import INVALID_MODES, evaluate_detections
from dbnet_fast.postprocess import DBPostProcessor, Detections


def _mhliao(height: int, width: int, box_thresh: float) -> dict:
    """MhLiao/DB's ICDAR 2015 test: ``cv2.resize`` to exactly width x height (its
    base_ic15.yaml: ``Resize {width: 1280, height: 736}``, ``keep_ratio: False``)
    and its SegDetectorRepresenter (thresh 0.3, unclip 1.5, quads scored by the
    mean under the box, no dilation, 1000 candidates, min side 3)."""
    return {"size": (height, width),
            "postprocess": {"thresh": 0.3, "box_thresh": box_thresh, "unclip_ratio": 1.5,
                            "max_candidates": 1000, "output": "quad", "score_mode": "fast",
                            "use_dilation": False, "min_size": 3.0}}


PRESETS = {
    "db-r18": _mhliao(736, 1280, 0.55),
    "db-r50": _mhliao(736, 1280, 0.6),
    "db-r50-1152": _mhliao(1152, 2048, 0.6),
}
"""MhLiao/DB's ICDAR 2015 evaluation settings (its README's eval.py commands):
DBNet-R18 at 1280 x 736 with ``--box_thresh 0.55`` (82.3 H-mean), R50 at 1280 x
736 and at 2048 x 1152 (the commented size in base_ic15.yaml) with 0.6 (85.4 and
87.2). Explicit settings override a preset's."""
SWEEPABLE = ("thresh", "box_thresh", "unclip_ratio")
"""The post-processing settings :func:`sweep_grid` can vary."""


def sweep_grid(base: DBPostProcessor, sweep: dict | None = None) -> list[DBPostProcessor]:
    """``base`` with every combination of the ``sweep`` values, the first key
    varying slowest: ``{"box_thresh": [0.5, 0.6]}`` -> two post-processors. None or
    empty -> ``[base]``. Keys: :data:`SWEEPABLE`; values: non-empty sequences of
    distinct numbers, checked as :class:`DBPostProcessor` checks them."""
    if not sweep:
        return [base]
    if not isinstance(sweep, dict):
        raise TypeError(f"sweep must be a dict of setting -> values, got {type(sweep).__name__}")
    unknown = set(sweep) - set(SWEEPABLE)
    if unknown:
        raise ValueError(f"sweep: unknown settings {sorted(unknown)}; known: {SWEEPABLE}")
    for name, values in sweep.items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or not values:
            raise ValueError(f"sweep: {name} needs a non-empty list of values, got {values!r}")
        if len(set(values)) != len(values):
            raise ValueError(f"sweep: {name} repeats a value: {list(values)}")
    names = list(sweep)
    return [dataclasses.replace(base, **dict(zip(names, values)))
            for values in itertools.product(*(sweep[n] for n in names))]


def _overrides(preset: str | None, size, thresh, box_thresh, unclip_ratio):
    """(input size, post-processing settings) a preset and explicit settings ask for;
    explicit ones win."""
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"preset must be one of {tuple(PRESETS)}, got {preset!r}")
    chosen = PRESETS.get(preset, {})
    post = dict(chosen.get("postprocess", {}))
    post.update({name: value for name, value in (("thresh", thresh), ("box_thresh", box_thresh),
                                                 ("unclip_ratio", unclip_ratio))
                 if value is not None})
    return (size if size is not None else chosen.get("size")), post


def _truth(polygons, ignore) -> list:
    return [(np.asarray(p, np.float64), bool(ig)) for p, ig in zip(polygons, ignore)]


def _original_size(batch: dict, b: int, valid) -> tuple[int, int]:
    if "shape" in batch:
        h, w = (int(v) for v in batch["shape"][b])
        return h, w
    return int(valid[0]), int(valid[1])


@torch.no_grad()
def batch_maps(model, batch: dict, device, amp: bool = False) -> list[tuple[torch.Tensor, tuple]]:
    """``(map, original size)`` of each image of a collated batch: the (h, w) float32
    probability map on the CPU cropped to the image's own size (``valid_size``:
    batches of mixed sizes are padded), the size from the sample's ``shape``."""
    images = batch["image"].to(device, non_blocking=True)
    with autocast(device, amp):
        prob = model(images)
    # scored on the host: the CPU pipeline is PaddleOCR's exactly (the CUDA one drops holes)
    prob = prob.float().cpu()
    height, width = prob.shape[-2:]
    valid = batch.get("valid_size")
    out = []
    for b in range(prob.shape[0]):
        h, w = (int(v) for v in valid[b]) if valid is not None else (height, width)
        out.append((prob[b, 0, :h, :w], _original_size(batch, b, (h, w))))
    return out


def predict_batch(model, batch: dict, postprocessor: DBPostProcessor, device,
                  amp: bool = False) -> list[Detections]:
    """Detections of a collated batch in original-image pixels (:func:`batch_maps`
    post-processed)."""
    return [postprocessor(prob[None], sizes=[size])[0]
            for prob, size in batch_maps(model, batch, device, amp)]


def _ground_truth(batch: dict, b: int) -> list:
    polygons = batch["polygons"][b]
    if "scale" in batch:  # back from the resized image to the original
        polygons = unscale_polygons(polygons, batch["scale"][b])
    return _truth(polygons, batch["ignore"][b])


def _as_polygons(detections: Detections) -> list[np.ndarray]:
    return [np.asarray(box, np.float64) for box in detections.boxes]


def _score(stream, postprocessors: list[DBPostProcessor], invalid: str, total: int,
           progress: bool) -> list[dict]:
    """Scores ``(map, original size, ground truth)`` items with every post-processor:
    one metrics dict each (:func:`evaluate_detections` without ``per_image``, plus
    ``images``, ``seconds`` and ``images_per_s`` of the whole pass)."""
    found: list[list] = [[] for _ in postprocessors]
    truths = []
    bar = _progress(total, progress)
    start = time.perf_counter()
    try:
        for prob, size, truth in stream:
            for boxes, postprocessor in zip(found, postprocessors):
                boxes.append(_as_polygons(postprocessor(prob[None], sizes=[size])[0]))
            truths.append(truth)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    results = []
    for boxes in found:
        metrics = evaluate_detections(boxes, truths, invalid=invalid)
        metrics.pop("per_image")
        metrics.update(images=len(truths), seconds=seconds, images_per_s=len(truths) / seconds)
        results.append(metrics)
    return results


def _check_run(batch_size, invalid: str) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"evaluate: batch_size must be a positive int, got {batch_size!r}")
    if invalid not in INVALID_MODES:
        raise ValueError(f"evaluate: invalid must be one of {INVALID_MODES}, got {invalid!r}")


def evaluate(model: torch.nn.Module, dataset, postprocessor: DBPostProcessor | None = None,
             device="cpu", batch_size: int = 1, *, amp: bool = False, num_workers: int = 0,
             progress: bool = False, invalid: str = "skip") -> dict:
    """Precision, recall and H-mean of ``model`` on ``dataset``.

    Args:
        model: a DBNet (switched to eval mode here; its mode is restored after).
        dataset: samples with ``image``, ``polygons``, ``ignore`` and (as
            :class:`~dbnet_fast.data.EvalTransform` gives) ``shape`` / ``scale``;
            ground truth is mapped back to original pixels with ``scale``.
        postprocessor: a :class:`DBPostProcessor` (default: thresh 0.3,
            box_thresh 0.6, unclip_ratio 1.5).
        device: where the model runs.
        batch_size: images per forward pass (mixed sizes are padded).
        amp: autocast (float16 on CUDA; bfloat16 on the CPU where it is fast there,
            else float32 with a warning: :func:`~dbnet_fast.engine.precision.resolve_amp`).
        invalid: ``"skip"`` (MhLiao/DB's and PaddleOCR's evaluators) or ``"repair"``
            invalid polygons (:func:`~dbnet_fast.metrics.evaluate_detections`).

    Returns:
        :func:`~dbnet_fast.metrics.evaluate_detections`' dict without ``per_image``,
        (its ``protocol`` says how it was computed), plus ``images``, ``left_out``
        (the dataset's ``skipped``), ``seconds`` and ``images_per_s``.
    """
    if postprocessor is None:
        postprocessor = DBPostProcessor(thresh=0.3, box_thresh=0.6, unclip_ratio=1.5)
    return _evaluate_many(model, dataset, [postprocessor], device, batch_size, amp=amp,
                          num_workers=num_workers, progress=progress, invalid=invalid)[0]


def _evaluate_many(model, dataset, postprocessors, device, batch_size, *, amp=False,
                   num_workers=0, progress=False, invalid="skip") -> list[dict]:
    """:func:`evaluate` at every post-processor, the model run once per image."""
    _check_run(batch_size, invalid)
    if len(dataset) == 0:
        raise ValueError("evaluate: the dataset is empty")
    if getattr(model, "input_norm", "imagenet") != "imagenet":
        raise ValueError(f"evaluate: the dataset gives ImageNet-normalised RGB images but the "
                         f"model takes input_norm={model.input_norm!r} (PPOCRDet: build it with "
                         f"input_norm='imagenet')")
    device = torch.device(device)
    amp = resolve_amp(device, amp, "eval --amp")
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False,
                                         num_workers=num_workers, collate_fn=collate)

    def stream():
        for batch in loader:
            for b, (prob, size) in enumerate(batch_maps(model, batch, device, amp)):
                yield prob, size, _ground_truth(batch, b)

    was_training = model.training
    model.eval()
    try:
        results = _score(stream(), postprocessors, invalid, len(dataset), progress)
    finally:
        model.train(was_training)
    for metrics in results:
        # images or label records the dataset left out (unreadable, or malformed with skip_bad)
        metrics["left_out"] = len(getattr(dataset, "skipped", []))
    return results


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="eval", unit="img", dynamic_ncols=True)


def _first(dataset, images: int | None):
    """The first ``images`` images of a real dataset (all when None), keeping its
    ``skipped`` list."""
    if images is None or images >= len(dataset):
        return dataset
    if isinstance(images, bool) or not isinstance(images, int) or images < 1:
        raise ValueError(f"images must be a positive int, got {images!r}")
    subset = torch.utils.data.Subset(dataset, range(images))
    subset.skipped = getattr(dataset, "skipped", [])
    return subset


def _write_result(result: dict, postprocessors: list[DBPostProcessor], metrics: list[dict],
                  sweep: dict | None, out: Path) -> dict:
    """``result`` with the best setting's metrics (highest H-mean, the first of
    ties) and all its post-processing settings, plus ``sweep`` (one row per
    setting) and ``best`` (its row) when several were scored; written to ``out``."""
    from dbnet_fast.engine.atomic import atomic_write_json

    best = max(range(len(metrics)), key=lambda i: metrics[i]["hmean"])
    result.update(postprocess=dataclasses.asdict(postprocessors[best]), **metrics[best])
    if len(postprocessors) > 1:
        rows = [{**{name: getattr(post, name) for name in sweep},
                 **{key: found[key] for key in ("precision", "recall", "hmean", "matched",
                                                "gt_care", "det_care")}}
                for post, found in zip(postprocessors, metrics)]
        result.update(sweep=rows, best=rows[best])
    atomic_write_json(out, result)
    result["out"] = str(out)
    return result


def evaluate_checkpoint(checkpoint, data: str | None = None, out=None, *,
                        images: int | None = None, synth_size: int | None = None,
                        synth_preset: str | None = None, short_side: int | None = None,
                        max_side: int | None = None, size: tuple[int, int] | None = None,
                        preset: str | None = None, split: str = "test", batch_size: int = 1,
                        device: str = "auto", amp: bool = False, thresh: float | None = None,
                        box_thresh: float | None = None, unclip_ratio: float | None = None,
                        sweep: dict | None = None, progress: bool = False,
                        invalid: str = "skip", skip_bad: bool = False) -> dict:
    """Evaluates a training checkpoint (``dbnet-fast eval``) and writes the result as JSON.

    Settings left as None come from the checkpoint's training configuration
    (the evaluation data, the synthetic size and preset, the post-processing
    thresholds); synthetic evaluation uses held-out ``"val"`` images (``images``
    of them), real data its ``split`` (the first ``images`` when given). A label
    format's ``data`` is evaluated as given (COCO-Text: its "val" set);
    ``skip_bad`` leaves malformed label records out. Resize: the short side
    (:func:`~dbnet_fast.engine.data.eval_dataset`), or exactly ``size``
    (height, width; default: the run's ``eval_size`` when it had one, as a recipe does).
    ``preset``: one of :data:`PRESETS`, under explicit settings.
    ``sweep``: see :func:`sweep_grid`. ``out`` defaults to
    ``<checkpoint folder>/<checkpoint name>_eval.json``. Returns the result dict.
    """
    from dbnet_fast.engine.checkpoint import load_checkpoint, model_from_checkpoint
    from dbnet_fast.engine.data import HELD_OUT, eval_dataset, parse_data_spec
    from dbnet_fast.engine.distributed import resolve_device

    _check_run(batch_size, invalid)
    size, overrides = _overrides(preset, size, thresh, box_thresh, unclip_ratio)
    checkpoint = Path(checkpoint)
    state = load_checkpoint(checkpoint)
    trained = state.get("config", {})
    if data is None:
        data = trained.get("eval_data") or trained.get("data", "synthetic")
        if parse_data_spec(data).scheme not in HELD_OUT and not trained.get("eval_data"):
            raise ValueError(f"the checkpoint was trained on {data}, which holds no test split: "
                             f"name the evaluation labels with --data FORMAT:PATH")
    spec = parse_data_spec(data)
    if size is None and short_side is None and max_side is None and trained.get("eval_size"):
        size = check_input_size(trained["eval_size"], "the checkpoint's eval_size")  # as trained
    defaults = {"thresh": 0.3, "box_thresh": 0.6, "unclip_ratio": 1.5}
    defaults.update({k: trained[k] for k in defaults if k in trained})  # a bad one is refused
    # checks every setting before the model loads (the one place for every command)
    base = DBPostProcessor(**{**defaults, **overrides})
    postprocessors = sweep_grid(base, sweep)
    device = resolve_device(device)
    model = model_from_checkpoint(state, device)
    del state
    synthetic = spec.scheme == "synthetic"
    synth_size = synth_size or trained.get("synth_size") or trained.get("image_size", 640)
    dataset = eval_dataset(spec, seed=int(trained.get("seed", 0)),
                           synth_images=images if images is not None and synthetic else
                           int(trained.get("eval_images", 100)),
                           synth_size=int(synth_size),
                           synth_preset=synth_preset or trained.get("synth_preset", "default"),
                           short_side=short_side, max_side=max_side, skip_bad=skip_bad,
                           split=split, size=size)
    transform = dataset.transform
    if not synthetic:
        dataset = _first(dataset, images)
    metrics = _evaluate_many(model, dataset, postprocessors, device, batch_size, amp=amp,
                             progress=progress, invalid=invalid)
    result = {"data": str(spec), "split": "val" if synthetic else split,
              "checkpoint": str(checkpoint), "preset": preset,
              "resize": {"size": list(transform.size) if transform.size else None,
                         "short_side": transform.short_side, "max_side": transform.max_side},
              "batch_size": batch_size, "device": str(device), "amp": amp}
    out = Path(out) if out is not None else checkpoint.with_name(checkpoint.stem + "_eval.json")
    return _write_result(result, postprocessors, metrics, sweep, out)


def evaluate_model(model: str, data: str, out=None, *, split: str = "test",
                   images: int | None = None, synth_size: int = 640,
                   synth_preset: str = "default", limit_side_len: int | None = None,
                   limit_type: str | None = None, size: tuple[int, int] | None = None,
                   preset: str | None = None, batch_size: int = 1, device: str = "auto",
                   amp: bool = False, thresh: float | None = None,
                   box_thresh: float | None = None, unclip_ratio: float | None = None,
                   sweep: dict | None = None, progress: bool = False, invalid: str = "skip",
                   skip_bad: bool = False) -> dict:
    """Evaluates a pretrained PaddleOCR detector (``dbnet-fast eval --model``) and
    writes the result as JSON.

    ``model``: a name of :data:`~dbnet_fast.model.paddle.zoo.MODELS`. It runs
    through :class:`~dbnet_fast.predict.DBPredictor` at its own inference settings
    (resize policy and post-processing, the zoo's), so boxes are those of
    ``dbnet-fast detect``; ``limit_side_len`` / ``limit_type`` or an exact
    ``size`` (height, width), a ``preset`` (:data:`PRESETS`) and thresholds
    replace them. Ground truth is each image's raw record at original pixels.
    ``data``: as :func:`~dbnet_fast.engine.data.parse_data_spec`; ``split`` of
    real data ("test" or "train"), its first ``images`` when given; synthetic:
    ``images`` (default 100) held-out images of ``synth_size``. ``sweep``: see
    :func:`sweep_grid`. ``out`` defaults to ``runs/eval/<model>-<data>-<split>.json``.
    """
    from dbnet_fast.engine.data import eval_dataset, parse_data_spec
    from dbnet_fast.model.paddle.zoo import MODELS
    from dbnet_fast.predict import DBPredictor

    if model not in MODELS:
        raise ValueError(f"model must be one of {tuple(MODELS)}, got {model!r}")
    _check_run(batch_size, invalid)
    size, overrides = _overrides(preset, size, thresh, box_thresh, unclip_ratio)
    if size is not None and (limit_side_len is not None or limit_type is not None):
        raise ValueError("size (an exact resize, also a preset's) excludes limit_side_len and "
                         "limit_type")
    spec = parse_data_spec(data)
    synthetic = spec.scheme == "synthetic"
    dataset = eval_dataset(spec, synth_images=100 if images is None else images,
                           synth_size=synth_size, synth_preset=synth_preset, skip_bad=skip_bad,
                           split=split)  # its raw records are read, not its transform's
    if not synthetic:
        dataset = _first(dataset, images)
    names = {f.name for f in dataclasses.fields(DBPostProcessor)}
    own = {k: v for k, v in MODELS[model].settings.items() if k in names}
    base = DBPostProcessor(**{**own, **overrides})  # checked before the model loads
    postprocessors = sweep_grid(base, sweep)
    predictor = DBPredictor(model, device, limit_side_len=limit_side_len, limit_type=limit_type,
                            size=size, batch_size=batch_size, amp=amp, postprocess=base)
    metrics = _score(_predictor_stream(predictor, dataset), postprocessors, invalid,
                     len(dataset), progress)
    for found in metrics:
        found["left_out"] = len(getattr(dataset, "skipped", []))
    prep = predictor.preprocess
    resize = {"size": list(prep.size)} if prep.size else {
        "limit_side_len": prep.limit_side_len, "limit_type": prep.limit_type}
    result = {"data": str(spec), "split": "val" if synthetic else split, "model": model,
              "preset": preset, "resize": resize, "batch_size": batch_size,
              "device": str(predictor.device), "amp": predictor.amp}
    if out is None:
        out = Path("runs/eval") / f"{model}-{spec.scheme}-{result['split']}.json"
    return _write_result(result, postprocessors, metrics, sweep, Path(out))


def _raw_record(dataset, index: int):
    """(BGR image, ground truth at original pixels) of image ``index``."""
    from dbnet_fast.data import SyntheticTextDataset

    if isinstance(dataset, torch.utils.data.Subset):
        return _raw_record(dataset.dataset, dataset.indices[index])
    if isinstance(dataset, SyntheticTextDataset):
        image, polygons, ignore, _ = dataset.render(index)
        return image, _truth(polygons, ignore)
    record = dataset.load(index)
    return record["image"], _truth(record["polygons"], record["ignore"])


def _predictor_stream(predictor, dataset):
    """``(map, original size, ground truth)`` of every image, read and run a few
    batches at a time as ``DBPredictor.__call__`` does (:meth:`DBPredictor.maps`)."""
    from dbnet_fast.predict import CHUNK_BATCHES, release_freed_memory

    chunk = predictor.batch_size * CHUNK_BATCHES
    for start in range(0, len(dataset), chunk):
        records = [_raw_record(dataset, i) for i in range(start, min(len(dataset), start + chunk))]
        maps = predictor.maps([predictor.prepare(image) for image, _ in records])
        for (prob, size), (_, truth) in zip(maps, records):
            yield prob, size, truth
        del maps
        release_freed_memory()
