"""The main job (``make demo`` / ``dbnet-fast demo``).

Trains DBNet-R18 from scratch (no pretrained weights) on synthetic scene text
for a fixed time on the CPU, evaluates it on held-out synthetic images with
the ICDAR 2015 IoU protocol, detects the text of one more held-out image and
draws the polygons into ``OUT/demo_detection.png``. Then it detects text in the
real images the package carries (``dbnet_fast/assets/real_maps.npz``) with PaddleOCR's pretrained PP-OCRv4 detector and with the
model it trained, and writes both pictures of each image into ``OUT/real/``.

The recipe (:func:`demo_config`) is tuned for a short CPU budget and differs
from the reference schedule that ``dbnet-fast train`` uses by default; see
:data:`DEMO_RECIPE` and README's "Training" section for what was measured.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from dbnet_fast.assets import real_maps_path
from dbnet_fast.data import EvalTransform, SyntheticTextDataset, collate
from dbnet_fast.engine.atomic import atomic_write_image, atomic_write_json
from dbnet_fast.engine.checkpoint import load_checkpoint, model_from_checkpoint
from dbnet_fast.engine.data import synth_config
from dbnet_fast.engine.evaluate import predict_batch
from dbnet_fast.engine.precision import describe_cpu
from dbnet_fast.engine.train import TrainConfig, train

DEMO_BUDGET_MIN = 12.0
# Fewer steps than this and the recipe has not converged (README, "Training"): the
# H-mean then tells how far training got on this machine, not what the model reaches.
MIN_MEANINGFUL_STEPS = 300
# Short-budget recipe (see the module documentation); every other setting is TrainConfig's.
DEMO_RECIPE = {
    "data": "synthetic",
    "arch": "resnet18",
    # a 128-channel FPN (MhLiao/DB: 256): 1.7x faster steps at 192 px (the neck and head
    # run at stride 4), and so 1.7x more of them in the budget; 660 steps of it reached
    # H-mean 0.98 where 400 steps of the 256-channel model (the same time) reached 0.95
    "inner_channels": 128,
    "image_size": 192,  # synthetic images rendered at 192 x 192 ...
    "synth_preset": "easy",  # ... with SynthConfig.easy() (larger, straighter words)
    "augment": "none",  # every image is new: no augmentation needed
    "batch_size": 8,
    "optimizer": "adamw",  # converges much faster from scratch than SGD at lr 0.007
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "warmup_steps": 50,
    "power": 0.9,  # poly decay over the time budget
    # bfloat16 autocast where measured faster (CPUs with native bfloat16: about 1.5x),
    # else float32 (without native bfloat16 it is tens of times slower)
    "amp": "auto",
    "threads": "auto",  # 1 or 2 threads, whichever is faster under the current load
    "checkpoint_every": 200,
    "log_every": 20,
    "thresh": 0.3,
    "box_thresh": 0.4,  # chosen on other held-out images (val seed 7), not the reported ones
    "unclip_ratio": 1.5,
}


def demo_config(out="runs/demo", time_budget_min: float = DEMO_BUDGET_MIN,
                eval_images: int = 100, num_workers: int = 1, seed: int = 0,
                progress: bool = True) -> TrainConfig:
    """The :class:`TrainConfig` of the demo: :data:`DEMO_RECIPE` plus these settings."""
    return TrainConfig(**DEMO_RECIPE, out=str(out), time_budget_min=time_budget_min,
                       eval_images=eval_images, num_workers=num_workers, seed=seed,
                       progress=progress, overwrite=True)  # each demo run replaces the last


def draw_detections(image: np.ndarray, polygons, truths=(), zoom: int = 3,
                    legend: bool = True) -> np.ndarray:
    """A copy of the BGR ``image`` enlarged ``zoom`` times with the ground-truth
    polygons in thin blue (don't-care ones grey) and the detected ones in red on
    a white halo, and a legend strip below (``legend``)."""
    canvas = cv2.resize(image, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC)

    def points(polygon):
        p = (np.asarray(polygon, np.float64) + 0.5) * zoom - 0.5
        return np.round(p).astype(np.int32).reshape(-1, 1, 2)

    for polygon in polygons:
        cv2.polylines(canvas, [points(polygon)], True, (255, 255, 255), 5, cv2.LINE_AA)
        cv2.polylines(canvas, [points(polygon)], True, (0, 0, 230), 2, cv2.LINE_AA)
    for polygon, ignore in truths:  # on top, thin: visible inside the detections
        colour = (160, 160, 160) if ignore else (255, 100, 0)
        cv2.polylines(canvas, [points(polygon)], True, colour, 1, cv2.LINE_AA)
    if legend:
        strip = np.full((24, canvas.shape[1], 3), 255, np.uint8)
        cv2.putText(strip, f"detected: {len(polygons)} (red)", (4, 16),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 230), 1, cv2.LINE_AA)
        cv2.putText(strip, "ground truth (blue)", (canvas.shape[1] // 2 + 8, 16),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 100, 0), 1, cv2.LINE_AA)
        canvas = np.vstack([canvas, strip])
    return canvas


def detect_one(checkpoint, out_png, *, index: int, size: int, preset: str, seed: int = 0,
               box_thresh: float = 0.6, device="cpu") -> dict:
    """Detects the text of held-out synthetic image ``index`` (split ``"val"``) with the
    model of ``checkpoint`` and writes the picture to ``out_png`` (atomically)."""
    from dbnet_fast.postprocess import DBPostProcessor

    state = load_checkpoint(checkpoint)
    model = model_from_checkpoint(state, device)
    dataset = SyntheticTextDataset(index + 1, size=size, seed=seed, split="val",
                                   transform=EvalTransform(targets=False),
                                   config=synth_config(preset))
    image, polygons, ignore, _ = dataset.render(index)
    batch = collate([dataset[index]])
    found = predict_batch(model, batch, DBPostProcessor(box_thresh=box_thresh),
                          torch.device(device))[0]
    boxes = [box.numpy() for box in found.boxes]
    picture = draw_detections(image, boxes, list(zip(polygons, ignore)))
    atomic_write_image(out_png, picture)
    return {"image": f"synthetic val #{index}", "words": int(sum(not i for i in ignore)),
            "detections": len(boxes), "picture": str(out_png)}


def real_images(path=None) -> dict[str, np.ndarray]:
    """The real images of ``real_maps.npz`` (BGR; the package's copy unless ``path``
    is given), by name."""
    data = np.load(real_maps_path() if path is None else path)
    return {str(n): cv2.imdecode(data[f"image_{n}"], cv2.IMREAD_COLOR) for n in data["names"]}


def detect_real(models: dict, images: dict[str, np.ndarray], out_dir) -> dict:
    """Runs each model (name -> DBPredictor source) on the images and writes
    ``out_dir/<image>_<model>.png``; returns {model: {image: detections}}."""
    from dbnet_fast.predict import DBPredictor

    counts = {}
    for label, source in models.items():
        predictor = DBPredictor(source, device="cpu", batch_size=1)
        found = predictor(list(images.values()))
        counts[label] = {}
        for (name, image), detections in zip(images.items(), found):
            boxes = [box.numpy() for box in detections.boxes]
            atomic_write_image(Path(out_dir) / f"{name}_{label}.png",
                               draw_detections(image, boxes, zoom=1, legend=False))
            counts[label][name] = len(detections)
    return counts


def _demo_real(checkpoint, out_dir) -> dict:
    """:func:`detect_real` with the default pretrained detector (DEFAULT_MODEL) and
    the trained model (the trained model alone, with a note, when the pretrained
    detector is not installed)."""
    from dbnet_fast.model.paddle import default_onnx_path
    from dbnet_fast.model.paddle.zoo import DEFAULT_MODEL

    images = real_images()
    models = {"dbnet-r18-demo": str(checkpoint)}
    try:
        default_onnx_path(DEFAULT_MODEL)
        import onnx  # noqa: F401 - load_ppocr_det reads the weights with it
        models = {DEFAULT_MODEL: DEFAULT_MODEL, **models}
    except (FileNotFoundError, ImportError) as error:
        print(f"({DEFAULT_MODEL} is not installed, real images with the trained model only: "
              f"{error})")
    counts = detect_real(models, images, out_dir)
    for label, per_image in counts.items():
        text = ", ".join(f"{name} {count}" for name, count in per_image.items())
        print(f"real images, {label}: {text} text regions")
    return {"folder": str(out_dir), "detections": counts}


def _picture_index(config: TrainConfig, first: int, min_words: int = 3, tries: int = 20) -> int:
    """The first held-out image from ``first`` on (after the evaluated ones) with at least
    ``min_words`` words to read: chosen by its ground truth alone, not by the detections."""
    dataset = SyntheticTextDataset(first + tries, size=config.synth_size or config.image_size,
                                   seed=config.seed, split="val",
                                   config=synth_config(config.synth_preset))
    for index in range(first, first + tries):
        _, _, ignore, _ = dataset.render(index)
        if sum(not i for i in ignore) >= min_words:
            return index
    return first


def run_demo(out="runs/demo", time_budget_min: float = DEMO_BUDGET_MIN, eval_images: int = 100,
             num_workers: int = 1, seed: int = 0, progress: bool = True) -> dict:
    """Trains, evaluates and draws (see the module documentation); prints and returns
    the summary (also written to ``OUT/demo.json``)."""
    started = time.perf_counter()
    out = Path(out)
    config = demo_config(out, time_budget_min, eval_images, num_workers, seed, progress)
    print(f"dbnet-fast demo: DBNet-R18 from scratch on synthetic text, {time_budget_min:g} min "
          f"of training on {torch.get_num_threads()} CPU threads, then evaluation on "
          f"{eval_images} held-out images", flush=True)
    summary = train(config)
    metrics = summary["eval"]
    picture = detect_one(summary["checkpoint"], out / "demo_detection.png",
                         index=_picture_index(config, first=eval_images),
                         size=config.synth_size or config.image_size, preset=config.synth_preset,
                         seed=seed, box_thresh=config.box_thresh, device=summary["device"])
    too_short = summary["step"] < MIN_MEANINGFUL_STEPS
    result = {
        "recipe": {**DEMO_RECIPE, "time_budget_min": time_budget_min},
        "cpu": describe_cpu(),
        "precision": summary["precision"],
        "steps": summary["step"],
        "too_short": too_short,
        "images_seen": summary["step"] * config.batch_size,
        "train_minutes": summary["elapsed_s"] / 60,
        "total_minutes": (time.perf_counter() - started) / 60,
        "eval": {k: metrics[k] for k in ("precision", "recall", "hmean", "matched", "gt_care",
                                         "det_care", "images")},
        "detection": picture,
    }
    try:  # optional extra: never lose the training result to it
        result["real_images"] = _demo_real(summary["checkpoint"], out / "real")
    except Exception as error:  # noqa: BLE001
        print(f"(the real-image detections failed: {type(error).__name__}: {error})")
        result["real_images"] = {"error": f"{type(error).__name__}: {error}"}
    atomic_write_json(out / "demo.json", result)
    print(f"\nH-mean {metrics['hmean']:.4f} (precision {metrics['precision']:.4f}, recall "
          f"{metrics['recall']:.4f}) on {metrics['images']} held-out synthetic images, after "
          f"{result['steps']} steps ({result['images_seen']} images, "
          f"{result['train_minutes']:.1f} min of training; "
          f"{result['total_minutes']:.1f} min in all)")
    print(f"detections drawn in {picture['picture']} ({picture['detections']} boxes for "
          f"{picture['words']} words)")
    print(f"precision: {summary['precision']['precision']} ({summary['precision']['why']})")
    if too_short:
        rate = result["steps"] / max(result["train_minutes"], 1e-9)
        print(f"\nNOTE: training was too short to mean anything: {result['steps']} steps in "
              f"{result['train_minutes']:.1f} min ({rate:.0f} steps/min), where the recipe needs "
              f"at least {MIN_MEANINGFUL_STEPS} to converge. The H-mean above is how far it got "
              f"on this machine, not the model's result: run `dbnet-fast demo --time-budget "
              f"{max(1, math.ceil(1.2 * MIN_MEANINGFUL_STEPS / max(rate, 1e-9)))}` (minutes) "
              "on this machine, or on a quieter one.")
    return result
