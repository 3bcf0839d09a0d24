"""``dbnet-fast detect``: text detection over files and folders.

For each image ``OUT/<name>.json`` (the image's path and size, the model, the
polygons in original pixels and their scores) and ``OUT/<name>.png`` (the
image with the polygons drawn). ``<name>`` is the file's stem; images with the
same stem get ``-1``, ``-2``, ... in the order listed.

Images that cannot be read (broken links and FIFOs too) are reported and
skipped; the run goes on and :func:`detect_files` says how many failed (the
command then exits non-zero).

An image's files are written as soon as its batch has run, the JSON last, so a
JSON on disk means a finished image. Ctrl-C stops the run after the image being
written; the summary counts what is on disk and says ``"interrupted": true``.
Memory does not grow with the image sizes beyond a few originals: the workers
hand over only the prepared (resized) images, and each original is read again
for its picture, then dropped.

Under ``torchrun`` every process takes the images ``rank, rank + world_size,
...`` of the sorted list (all processes list the same inputs), runs on its own
device (``cuda:LOCAL_RANK`` on GPUs) and writes the outputs of its images
itself, plus ``OUT/summary.rank<R>.json``; no image is done twice or lost, and
nothing is merged by hand. The processes then add up their counts so every
one of them returns (and exits with) the same verdict.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from dbnet_fast.engine.atomic import atomic_write_image, atomic_write_json
from dbnet_fast.engine.prelabel import LABEL_FILES, LABEL_FORMATS, write_labels
from dbnet_fast.predict import (IMAGE_SUFFIXES, DBPredictor, ImageReadError, PreparedImage,
                                Preprocessor, list_images)

SUMMARY_NAME = re.compile(r"summary\.rank\d+")
"""Names of the per-process summaries, which no image output may take."""
RESERVED_NAMES = tuple(Path(name).stem.casefold() for name in LABEL_FILES)
CHUNK_BATCHES = 4
"""Prepared images gathered before running, in batches: shape grouping works within a chunk."""


@dataclass
class _Loaded:
    index: int
    prepared: PreparedImage | None = None  # the resized image only: originals are large
    error: str | None = None


def _read_error(path: Path, error: Exception) -> str:
    if isinstance(error, ImageReadError):
        return str(error)  # it names the file
    return f"{path}: {type(error).__name__}: {error}"


class _Images(torch.utils.data.Dataset):
    """Reads and prepares images in DataLoader workers; errors come back as values."""

    def __init__(self, paths: Sequence[Path], preprocess: Preprocessor, indices: Sequence[int]):
        self.paths, self.preprocess, self.indices = paths, preprocess, indices

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        index = self.indices[i]
        try:
            return _Loaded(index, self.preprocess(self.paths[index]))
        except Exception as error:  # noqa: BLE001 - one bad image must not end the run
            return _Loaded(index, error=_read_error(self.paths[index], error))


def _as_is(item):
    return item


def output_names(paths: Sequence[Path]) -> list[str]:
    """One output name per input: the stem, or ``stem-k`` with the smallest k >= 1
    that no earlier input took. Names are compared case-folded (case-insensitive
    file systems) and never take the run's ``summary.rank<R>`` names or the label
    files' (``--labels``)."""
    taken: set[str] = set()
    names = []
    for path in paths:
        name, k = path.stem, 0
        while name.casefold() in taken or SUMMARY_NAME.fullmatch(name.casefold()) \
                or name.casefold() in RESERVED_NAMES:
            k += 1
            name = f"{path.stem}-{k}"
        taken.add(name.casefold())
        names.append(name)
    return names


def detection_record(path, size, detections, model: str, output: str) -> dict:
    """The JSON of one image: polygons as lists of [x, y] in original pixels."""
    boxes = detections.boxes
    return {
        "image": str(path), "height": int(size[0]), "width": int(size[1]), "model": model,
        "output": output, "count": len(detections),
        "detections": [{"points": np.asarray(box, np.float64).round(2).tolist(),
                        "score": round(float(score), 5)}
                       for box, score in zip(boxes, detections.scores.tolist())],
    }


def detect_files(inputs: Sequence, out, model: str, *, device: str = "auto",
                 batch_size: int | None = None,
                 output: str = "quad", limit_side_len: int | None = None,
                 limit_type: str | None = None, pad_to: int = 32, thresh: float | None = None,
                 box_thresh: float | None = None, unclip_ratio: float | None = None,
                 amp: bool = False, pictures: bool = True, workers: int | None = None,
                 progress: bool = True, labels: str | None = None, tiles: int | None = None,
                 compile: bool = False, trim_memory: bool = True) -> dict:
    """Detects text in images (files, or folders of them) and writes the outputs
    described in the module documentation. ``model``: a checkpoint path or
    ``"ppocr-v4"``. Returns the counts of all processes: ``images``, ``done``,
    ``failed``, ``detections``, ``seconds``, and this process's ``errors``;
    ``interrupted`` (Ctrl-C): then the counts are this process's alone.
    ``labels``: also write the detections as label files of that format
    (:func:`dbnet_fast.engine.prelabel.write_labels`; the main process, from the
    images' JSON of this run), named in the result's ``labels``. ``tiles``,
    ``compile``: as :class:`~dbnet_fast.predict.DBPredictor`'s. ``workers``:
    image-reading processes; None: :func:`reading_workers`."""
    from dbnet_fast.engine import distributed

    paths = list(dict.fromkeys(_resolve(p) for p in list_images(inputs)))  # each file once
    if not paths:
        raise ValueError(f"detect: no images in {[str(i) for i in inputs]} (folders are read "
                         f"one level deep, files ending in {', '.join(IMAGE_SUFFIXES)})")
    if labels is not None and labels not in LABEL_FORMATS:
        raise ValueError(f"detect: labels must be one of {LABEL_FORMATS}, got {labels!r}")
    out = Path(out)
    names = output_names(paths)
    _check_outputs_spare_inputs(paths, names, out)
    ctx = distributed.setup(device)
    try:
        options = {k: v for k, v in (("thresh", thresh), ("box_thresh", box_thresh),
                                     ("unclip_ratio", unclip_ratio)) if v is not None}
        predictor = DBPredictor(model, ctx.device, limit_side_len=limit_side_len,
                                limit_type=limit_type, batch_size=batch_size, pad_to=pad_to,
                                amp=amp, postprocess={**options, "output": output},
                                tiles=tiles, compile=compile, trim_memory=trim_memory)
        if workers is None:
            workers = reading_workers(ctx.device)
        out.mkdir(parents=True, exist_ok=True)
        started = time.time()
        mine = list(range(ctx.rank, len(paths), ctx.world_size))
        counts, errors = _detect_shard(predictor, paths, names, mine, out, str(model), output,
                                       pictures, workers, progress and ctx.is_main)
        atomic_write_json(out / f"summary.rank{ctx.rank}.json",
                          {"rank": ctx.rank, "world_size": ctx.world_size,
                           "device": str(ctx.device), **counts, "errors": errors})
        totals = [counts["done"], counts["failed"], counts["detections"]]
        if not counts["interrupted"]:  # else the others may be stopped too: no waiting for them
            totals = distributed.all_reduce_sum(ctx, torch.tensor(totals)).tolist()
        done, failed, found = totals
        written = None
        if labels is not None and ctx.is_main:
            written = str(write_labels(labels, _records_of_run(out, names, paths, started), out))
    finally:
        distributed.cleanup(ctx)
    return {"images": len(paths), "done": done, "failed": failed, "detections": found,
            "seconds": counts["seconds"], "errors": errors, "out": str(out),  # this process's
            "interrupted": counts["interrupted"], "rank": ctx.rank, "world_size": ctx.world_size,
            "labels": written}


def reading_workers(device: torch.device) -> int:
    """The default number of image-reading processes, from the cores this
    process may use. On the CPU only the cores the model's threads leave free
    (at most 2): readers that share the model's cores slow the run (2 cores,
    100 images: 3.51 images/s without readers, 3.05 with 2, README). With a GPU
    the host only reads: up to 4, one core left to the main process."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else os.cpu_count() or 1
    if device.type == "cpu":
        return max(0, min(2, cores - torch.get_num_threads()))
    return max(0, min(4, cores - 1))


def _records_of_run(out: Path, names, paths, started: float) -> list[dict]:
    """The image JSONs this run wrote (all processes), in input order."""
    import json

    records = []
    for name, path in zip(names, paths):
        file = out / f"{name}.json"
        if file.is_file() and file.stat().st_mtime >= started - 1:  # not an earlier run's
            record = json.loads(file.read_text())
            if record.get("image") == str(path):
                records.append(record)
    return records


def _resolve(path: Path) -> Path:
    """The real path of an input; a broken link or a link loop has none, so its
    own path (folder resolved), for reading to report it."""
    try:
        return path.resolve(strict=True)
    except (OSError, RuntimeError):  # RuntimeError: a loop, before Python 3.13
        return path.parent.resolve() / path.name


def _check_outputs_spare_inputs(paths: Sequence[Path], names: Sequence[str], out: Path) -> None:
    """ValueError if an output file (JSON, PNG) would replace one of the inputs."""
    inputs = set(paths)
    folder = out.resolve()
    for name in names:
        for suffix in (".json", ".png"):
            if folder / f"{name}{suffix}" in inputs:
                raise ValueError(f"detect: the output {folder / (name + suffix)} would replace an "
                                 f"input image; choose another --out folder")


@contextmanager
def _interrupt_deferred():
    """Ctrl-C inside waits for the end of the block (raised then), so an image's
    files and its count are written together."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield  # only the main thread gets signals; a custom or ignored SIGINT stays so
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda *_: caught.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def _detect_shard(predictor, paths, names, indices, out, model, output, pictures, workers,
                  progress):
    from dbnet_fast.engine.demo import draw_detections

    # prepared images are small; the workers keep about one batch ready
    ahead = max(2, -(-predictor.batch_size // workers)) if workers > 0 else None
    loader = torch.utils.data.DataLoader(
        _Images(paths, predictor.preprocess, indices), batch_size=None, collate_fn=_as_is,
        num_workers=workers, prefetch_factor=ahead)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(indices), desc="detect", unit="img", dynamic_ncols=True)
    start = time.perf_counter()
    counts = {"done": 0, "failed": 0, "detections": 0, "interrupted": False}
    errors = []

    def fail(error: str):
        errors.append(error)
        counts["failed"] += 1
        print(f"dbnet-fast detect: skipped {error}", flush=True)

    def write(item: _Loaded, detections):
        path, name = paths[item.index], names[item.index]
        record = detection_record(path, item.prepared.size, detections, model, output)
        picture = None
        if pictures:
            try:  # read again: keeping the originals until their batch runs takes GBs
                original = predictor.preprocess.to_bgr(path)
            except Exception as error:  # noqa: BLE001 - e.g. removed meanwhile
                fail(_read_error(path, error))
                return
            picture = draw_detections(original, [b.numpy() for b in detections.boxes], zoom=1,
                                      legend=False)
            del original
        with _interrupt_deferred():
            if picture is not None:
                atomic_write_image(out / f"{name}.png", picture)
            atomic_write_json(out / f"{name}.json", record, indent=None)
            counts["done"] += 1
            counts["detections"] += len(detections)

    def flush(chunk: list[_Loaded]):
        prepared = [item.prepared for item in chunk]
        for batch in predictor.batches(prepared):  # each batch on disk before the next runs
            found = predictor.run([prepared[i] for i in batch])
            for i, detections in zip(batch, found):
                write(chunk[i], detections)
            if bar is not None:
                bar.update(len(batch))

    chunk: list[_Loaded] = []
    try:
        for item in loader:
            if item.error is not None:
                fail(item.error)
                if bar is not None:
                    bar.update(1)
                continue
            chunk.append(item)
            if len(chunk) >= predictor.batch_size * CHUNK_BATCHES:
                flush(chunk)
                chunk = []
        if chunk:
            flush(chunk)
    except KeyboardInterrupt:
        counts["interrupted"] = True  # what is on disk is complete and counted
    finally:
        if bar is not None:
            bar.close()
    counts["seconds"] = time.perf_counter() - start
    return counts, errors
