"""Evaluation: a model + post-processor over a dataset, scored with the ICDAR 2015
IoU protocol (:func:`dbnet_fast.metrics.evaluate_detections`)."""

from __future__ import annotations

import time

import numpy as np
import torch

from dbnet_fast.data import collate, unscale_polygons
from dbnet_fast.engine.precision import autocast, resolve_amp
from dbnet_fast.metrics import INVALID_MODES, evaluate_detections
from dbnet_fast.postprocess import DBPostProcessor, Detections, postprocess_padded


def _original_size(batch: dict, b: int, valid) -> tuple[int, int]:
    if "shape" in batch:
        h, w = (int(v) for v in batch["shape"][b])
        return h, w
    return int(valid[0]), int(valid[1])


@torch.no_grad()
def predict_batch(model, batch: dict, postprocessor: DBPostProcessor, device,
                  amp: bool = False) -> list[Detections]:
    """Detections of a collated batch in original-image pixels.

    Each image's probability map is cropped to its own size (``valid_size``:
    batches of mixed sizes are padded) and post-processed with the original
    size from the sample's ``shape``, so boxes come back in original pixels."""
    images = batch["image"].to(device, non_blocking=True)
    with autocast(device, amp):
        prob = model(images)
    height, width = prob.shape[-2:]
    valid = batch.get("valid_size")
    shapes = [tuple(int(v) for v in valid[b]) if valid is not None else (height, width)
              for b in range(prob.shape[0])]
    sizes = [_original_size(batch, b, shapes[b]) for b in range(prob.shape[0])]
    # scored on the host: the CPU pipeline is PaddleOCR's exactly (the CUDA one drops holes)
    return postprocess_padded(postprocessor, prob.float().cpu(), shapes, sizes)


def _ground_truth(batch: dict, b: int) -> list:
    polygons = batch["polygons"][b]
    if "scale" in batch:  # back from the resized image to the original
        polygons = unscale_polygons(polygons, batch["scale"][b])
    return [(np.asarray(p, np.float64), bool(ig)) for p, ig in zip(polygons, batch["ignore"][b])]


def _as_polygons(detections: Detections) -> list[np.ndarray]:
    return [np.asarray(box, np.float64) for box in detections.boxes]


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
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"evaluate: batch_size must be a positive int, got {batch_size!r}")
    if len(dataset) == 0:
        raise ValueError("evaluate: the dataset is empty")
    if invalid not in INVALID_MODES:
        raise ValueError(f"evaluate: invalid must be one of {INVALID_MODES}, got {invalid!r}")
    if getattr(model, "input_norm", "imagenet") != "imagenet":
        raise ValueError(f"evaluate: the dataset gives ImageNet-normalised RGB images but the "
                         f"model takes input_norm={model.input_norm!r} (PPOCRDet: build it with "
                         f"input_norm='imagenet')")
    device = torch.device(device)
    amp = resolve_amp(device, amp, "eval --amp")
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False,
                                         num_workers=num_workers, collate_fn=collate)
    was_training = model.training
    model.eval()
    predictions, truths = [], []
    start = time.perf_counter()
    bar = _progress(len(dataset), progress)
    try:
        for batch in loader:
            for b, found in enumerate(predict_batch(model, batch, postprocessor, device, amp)):
                predictions.append(_as_polygons(found))
                truths.append(_ground_truth(batch, b))
            if bar is not None:
                bar.update(len(batch["image"]))
    finally:
        model.train(was_training)
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    metrics = evaluate_detections(predictions, truths, invalid=invalid)
    metrics.pop("per_image")
    # images or label records the dataset left out (unreadable, or malformed with skip_bad)
    metrics.update(images=len(truths), left_out=len(getattr(dataset, "skipped", [])),
                   seconds=seconds, images_per_s=len(truths) / seconds)
    return metrics


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="eval", unit="img", dynamic_ncols=True)


def evaluate_checkpoint(checkpoint, data: str | None = None, out=None, *,
                        images: int | None = None, synth_size: int | None = None,
                        synth_preset: str | None = None, short_side: int | None = None,
                        max_side: int | None = None, batch_size: int = 1, device: str = "auto",
                        amp: bool = False, thresh: float | None = None,
                        box_thresh: float | None = None, unclip_ratio: float | None = None,
                        progress: bool = False, invalid: str = "skip",
                        skip_bad: bool = False) -> dict:
    """Evaluates a training checkpoint (``dbnet-fast eval``) and writes the result as JSON.

    Settings left as None come from the checkpoint's training configuration
    (the evaluation data, the synthetic size and preset, the post-processing
    thresholds); synthetic evaluation uses held-out ``"val"`` images. A label
    format's ``data`` is evaluated as given (COCO-Text: its "val" set);
    ``skip_bad`` leaves malformed label records out. ``out`` defaults to
    ``<checkpoint folder>/<checkpoint name>_eval.json``. Returns the result dict.
    """
    from pathlib import Path

    from dbnet_fast.engine.atomic import atomic_write_json
    from dbnet_fast.engine.checkpoint import load_checkpoint, model_from_checkpoint
    from dbnet_fast.engine.data import HELD_OUT, eval_dataset, parse_data_spec
    from dbnet_fast.engine.distributed import resolve_device

    checkpoint = Path(checkpoint)
    state = load_checkpoint(checkpoint)
    trained = state.get("config", {})
    if data is None:
        data = trained.get("eval_data") or trained.get("data", "synthetic")
        if parse_data_spec(data).scheme not in HELD_OUT and not trained.get("eval_data"):
            raise ValueError(f"the checkpoint was trained on {data}, which holds no test split: "
                             f"name the evaluation labels with --data FORMAT:PATH")
    spec = parse_data_spec(data)
    device = resolve_device(device)
    model = model_from_checkpoint(state, device)
    del state
    size = synth_size or trained.get("synth_size") or trained.get("image_size", 640)
    dataset = eval_dataset(spec, seed=int(trained.get("seed", 0)),
                           synth_images=images if images is not None else
                           int(trained.get("eval_images", 100)),
                           synth_size=int(size),
                           synth_preset=synth_preset or trained.get("synth_preset", "default"),
                           short_side=short_side, max_side=max_side, skip_bad=skip_bad)
    settings = {"thresh": trained.get("thresh", 0.3) if thresh is None else thresh,
                "box_thresh": trained.get("box_thresh", 0.6) if box_thresh is None else box_thresh,
                "unclip_ratio": trained.get("unclip_ratio", 1.5) if unclip_ratio is None
                else unclip_ratio}
    postprocessor = DBPostProcessor(**settings)  # checks them (the one place for every command)
    metrics = evaluate(model, dataset, postprocessor, device, batch_size, amp=amp,
                       progress=progress, invalid=invalid)
    result = {"data": str(spec), "split": "val" if spec.scheme == "synthetic" else "test",
              "checkpoint": str(checkpoint), "postprocess": settings, **metrics}
    out = Path(out) if out is not None else checkpoint.with_name(checkpoint.stem + "_eval.json")
    atomic_write_json(out, result)
    result["out"] = str(out)
    return result
