"""Figures of README's table of pretrained detectors, per installed PaddleOCR
detector: exported parameters, zero-shot H-mean on held-out synthetic images
of the default mix, and the boxes DBPredictor finds on the bundled real images.
(CPU times come from benchmarks/bench_ppocr.py, the same models in one run.)

    python scripts/ppocr_table.py [--images 200] [--size 640] [--json out.json]
    python scripts/ppocr_table.py --finetuned runs/ft/last.pt --images 100 --size 256

Zero-shot: each model with its own post-processing settings, on the same
``size`` x ``size`` images (the synthetic set's own scale, no resize policy).
``--finetuned``: a checkpoint trained from a PaddleOCR detector (``train --init
NAME``) against that detector with no training, on the same held-out images,
at box_thresh 0.3 / 0.5 / 0.6 (thresh 0.3, unclip ratio 1.5).
"""

from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np
import torch

from dbnet_fast.assets import real_maps_path
from dbnet_fast.engine.data import eval_dataset, parse_data_spec
from dbnet_fast.engine.evaluate import evaluate
from dbnet_fast.model.paddle import MODELS, PPOCRDet, default_onnx_path, load_ppocr_det
from dbnet_fast.postprocess import DBPostProcessor
from dbnet_fast.predict import DBPredictor

REAL = ("skimage_page", "networkx_labels", "synth_document", "synth_scene")


def exported_parameters(model: PPOCRDet) -> int:
    """Numbers the export holds for the model (weights, biases, BN statistics)."""
    return sum(t.numel() for layer in model.onnx_layers()
               for name, t in list(layer.named_parameters(recurse=False))
               + list(layer.named_buffers(recurse=False)) if name != "num_batches_tracked")


def row(name: str, images: int, size: int) -> dict:
    spec = MODELS[name]
    pretrained = load_ppocr_det(name)
    imagenet = PPOCRDet(name, input_norm="imagenet")
    imagenet.load_state_dict(pretrained.state_dict())
    post = DBPostProcessor(**{k: v for k, v in spec.settings.items() if not k.startswith("limit")})
    dataset = eval_dataset(parse_data_spec("synthetic"), synth_images=images, synth_size=size)
    metrics = evaluate(imagenet, dataset, post)
    data = np.load(real_maps_path())
    predictor = DBPredictor(pretrained, device="cpu")
    start = time.perf_counter()
    found = predictor([cv2.imdecode(data[f"image_{n}"], cv2.IMREAD_COLOR) for n in REAL])
    return {"model": name, "title": spec.title, "parameters": exported_parameters(pretrained),
            "hmean": metrics["hmean"], "precision": metrics["precision"],
            "recall": metrics["recall"], "images": metrics["images"],
            "real_boxes": {n: len(d) for n, d in zip(REAL, found)},
            "real_seconds": time.perf_counter() - start,
            "published_hmean": spec.published_hmean, "published_source": spec.published_source}


def finetuned(checkpoint: str, images: int, size: int) -> None:
    from dbnet_fast.engine.checkpoint import load_checkpoint, model_from_checkpoint

    state = load_checkpoint(checkpoint)
    trained = model_from_checkpoint(state, "cpu")
    name = state["model_config"]["backbone"]
    start = PPOCRDet(name, input_norm="imagenet")
    start.load_state_dict(load_ppocr_det(name).state_dict())
    dataset = eval_dataset(parse_data_spec("synthetic"), synth_images=images, synth_size=size)
    for label, model in ((f"{name}, no training", start), (checkpoint, trained)):
        cells = []
        for box_thresh in (0.3, 0.5, 0.6):
            m = evaluate(model, dataset, DBPostProcessor(thresh=0.3, box_thresh=box_thresh,
                                                         unclip_ratio=1.5))
            cells.append(f"{m['hmean']:.3f} (P {m['precision']:.3f}, R {m['recall']:.3f})")
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--json")
    parser.add_argument("--finetuned", metavar="CKPT")
    parser.add_argument("--models", nargs="+", choices=tuple(MODELS), default=tuple(MODELS))
    args = parser.parse_args()
    if args.finetuned:
        finetuned(args.finetuned, args.images, args.size)
        return
    rows = []
    for name in args.models:
        try:
            default_onnx_path(name)
        except FileNotFoundError as error:
            print(f"{name}: skipped ({error})")
            continue
        rows.append(row(name, args.images, args.size))
        r = rows[-1]
        print(f"| {r['title']} (`{name}`) | {r['parameters']:,} | {r['hmean']:.3f} "
              f"(P {r['precision']:.3f}, R {r['recall']:.3f}) | "
              + ", ".join(f"{k} {v}" for k, v in r["real_boxes"].items()) + " |", flush=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=1)


if __name__ == "__main__":
    main()
