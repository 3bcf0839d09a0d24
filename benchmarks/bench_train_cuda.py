"""Training on one device (the GPU run's training questions, scripts/gpu_check.sh):

1. ``train``: images/s of a whole training step (forward, DB loss, backward,
   SGD step) of DBNet-R18 and DBNet++ R50 (ASF) at 640 x 640, batch 16, in
   float32, bfloat16 autocast and float16 autocast with a GradScaler; our fused
   ``db_loss`` (DBLoss) against the same model with the loss as MhLiao/DB writes
   it (bench_loss.peer_loss: eager BCE + OHEM by topk, Dice, L1, host syncs),
   and the share of the step spent in the loss (the loss's forward and backward
   timed alone on the step's map shapes).
2. ``labels``: the label maps of those batches made three ways while DBNet-R18
   trains on them: C++ in the DataLoader workers, ``db_targets_batch(...,
   device=<the training device>)`` in the training process, the float64 NumPy
   reference in the workers; the time the step waits for the loader and the
   share of the step that the wait costs (against the step on a fixed batch).
3. ``graph``: the step (fused loss) captured in a CUDA graph and replayed,
   against the same step run eagerly, whether the replayed losses agree with
   eager ones, whether the loss waits for the host, and the reference loss's
   capture attempt (it syncs, so it cannot be captured).

Device-agnostic, so that the dry run exercises the same code: ``--device cpu
--tiny --emulated`` runs every section on the CPU at 32 x 32, batch 2 (DBNet++
R50 in float32 only), with our ops' CUDA launchers and kernels on the host (dbnet_fast.testing.emulated_cuda);
only the lines marked "CUDA only" (the graph capture, the sync debug mode, the
CUDA streams) are left out there, and the static-buffer step they capture is run
eagerly instead. Results go to --json after every row (atomically), so a run
stopped at its time limit keeps what it measured.

    python benchmarks/bench_train_cuda.py --device cuda --json out/train.json
    python benchmarks/bench_train_cuda.py --device cpu --tiny --emulated --json out/train.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # common, bench_loss, report

from bench_loss import peer_loss  # noqa: E402
from dbnet_fast.data import SyntheticTextDataset, TrainTransform, collate  # noqa: E402
from dbnet_fast.data.targets import DBTargetBuilder  # noqa: E402
from dbnet_fast.engine import build_model  # noqa: E402
from dbnet_fast.model import DBLoss  # noqa: E402
from dbnet_fast.model.loss import TARGET_KEYS  # noqa: E402
from dbnet_fast.ops import db_targets_batch  # noqa: E402
from report import machine_description  # noqa: E402

MODELS = {"DBNet-R18": {"backbone": "resnet18", "neck": "fpn"},
          "DBNet++ R50": {"backbone": "resnet50", "neck": "asf"}}
PRECISIONS = {"float32": None, "bfloat16 autocast": torch.bfloat16,
              "float16 autocast + GradScaler": torch.float16}
FUSED, REFERENCE = "db_loss (fused)", "reference (MhLiao/DB, eager)"
LABELS = ("C++ in DataLoader workers", "db_targets_batch in the training process",
          "NumPy reference in DataLoader workers")
SECTIONS = ("train", "labels", "graph")


@dataclass(frozen=True)
class Sizes:
    size: int       # image side
    batch: int
    warmup: int     # untimed steps first (allocator, cuDNN's algorithm search)
    steps: int      # timed steps (the median is reported)
    workers: int    # DataLoader workers


def full_sizes() -> Sizes:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return Sizes(size=640, batch=16, warmup=3, steps=10, workers=max(1, cores - 1))  # one core trains


# the dry run: every code path once (CPU float16 convolutions are slow, emulated kernels more so)
TINY = Sizes(size=32, batch=2, warmup=0, steps=1, workers=2)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn, sizes: Sizes, device: torch.device) -> float:
    for _ in range(sizes.warmup):
        fn()
    times = []
    for _ in range(sizes.steps):
        sync(device)
        began = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def reference_loss(outputs, targets):
    """MhLiao/DB's loss on the model's logits (its binary map recomputed eagerly)."""
    maps = [targets[key].unsqueeze(1) for key in TARGET_KEYS]
    return peer_loss(outputs["prob_logits"], outputs["thresh_logits"], *maps)


class Trainer:
    """One model, optimizer, precision and loss; ``step(images, targets)`` trains once."""

    def __init__(self, model: str, precision: str, loss: str, device: torch.device, seed: int = 0):
        torch.manual_seed(seed)
        self.model = build_model(**MODELS[model]).to(device).train()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.007, momentum=0.9,
                                         weight_decay=1e-4)
        self.device, self.amp = device, PRECISIONS[precision]
        self.scaler = torch.amp.GradScaler(device.type) if self.amp == torch.float16 else None
        fused = DBLoss(k=self.model.k)
        self.loss = (lambda outputs, targets: fused(outputs, targets)[0]) if loss == FUSED \
            else reference_loss

    def forward_loss(self, images, targets):
        # no autocast weight cache: a CUDA graph must not keep casts made at capture
        with torch.autocast(self.device.type, dtype=self.amp or torch.float32,
                            enabled=self.amp is not None, cache_enabled=False):
            outputs = self.model(images)
        return self.loss(outputs, targets)  # float32 maps, outside autocast as in training

    def step(self, images, targets):
        total = self.forward_loss(images, targets)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(total).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            total.backward()
            self.optimizer.step()
        return total.detach()


def fixed_batch(sizes: Sizes, device: torch.device, seed: int = 0):
    data = SyntheticTextDataset(sizes.batch, size=(sizes.size, sizes.size), seed=seed,
                                transform=TrainTransform(size=sizes.size))
    batch = collate([data[i] for i in range(sizes.batch)])
    return batch["image"].to(device), {key: batch[key].to(device) for key in TARGET_KEYS}


def loss_alone_seconds(trainer: Trainer, targets, sizes: Sizes, device: torch.device) -> float:
    """The loss's forward and backward on logits of the step's shape (float32, as the model gives)."""
    shape = targets["shrink_map"].unsqueeze(1).shape
    generator = torch.Generator().manual_seed(1)
    logits = {name: (torch.randn(shape, generator=generator) * 4).to(device).requires_grad_(True)
              for name in ("prob_logits", "thresh_logits")}

    def forward_backward():
        torch.autograd.grad(trainer.loss(logits, targets), list(logits.values()))

    return median_seconds(forward_backward, sizes, device)


class Results:
    """The rows measured so far, rewritten to ``path`` (atomically) after each."""

    def __init__(self, path: Path | None, sizes: Sizes, device: torch.device, emulated: bool):
        self.path = path
        self.data = {"machine": machine_description(), "device": str(device), "emulated": emulated,
                     "sizes": asdict(sizes), **{section: [] for section in SECTIONS}, "errors": []}

    def add(self, section: str, row: dict) -> None:
        self.data[section].append(row)
        if "error" in row:
            self.data["errors"].append(f"{section}: {row['error']}")
        self.save()

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2))
        tmp.replace(self.path)


def guarded(fn, results: Results, section: str, row: dict) -> None:
    """Runs fn(row) (which fills the row), recording any failure in the row: one
    failing configuration (say, out of memory) must not cost the others."""
    try:
        fn(row)
    except Exception as error:  # reported in the row, the summary and the exit code
        row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        traceback.print_exc()
    results.add(section, row)
    print(json.dumps(row), flush=True)


def free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


# --- 1. the step table --------------------------------------------------------------

def train_table(results: Results, sizes: Sizes, device, ops_context) -> None:
    images, targets = fixed_batch(sizes, device)
    for model in MODELS:
        for precision in PRECISIONS:
            if sizes == TINY and model != "DBNet-R18" and precision != "float32":
                continue  # the dry run: each code path once (float16 ResNet-50 takes minutes on a CPU)
            for loss in (FUSED, REFERENCE):
                def measure(row, model=model, precision=precision, loss=loss):
                    trainer = Trainer(model, precision, loss, device)
                    with ops_context():
                        step = median_seconds(lambda: trainer.step(images, targets), sizes, device)
                        alone = loss_alone_seconds(trainer, targets, sizes, device)
                    row.update(ms_per_step=step * 1e3, images_per_s=sizes.batch / step,
                               loss_ms=alone * 1e3, loss_share=alone / step)

                guarded(measure, results, "train", {"model": model, "precision": precision, "loss": loss})
                free(device)


# --- 2. label maps for the batch: does the step wait for data? -------------------------

class ReferenceBuilder:
    """A DBTargetBuilder stand-in that makes the maps with the float64 NumPy reference."""

    def __call__(self, polygons, size, ignore=None):
        from dbnet_fast.reference import db_targets_reference  # needs pyclipper and OpenCV

        maps = db_targets_reference(polygons, size, ignore)
        return tuple(torch.from_numpy(maps[key]) for key in TARGET_KEYS)


def loader(variant: str, sizes: Sizes, device: torch.device, batches: int):
    if variant == LABELS[0]:
        transform = TrainTransform(size=sizes.size, builder=DBTargetBuilder())
    elif variant == LABELS[1]:
        transform = TrainTransform(size=sizes.size, targets=False)
    else:
        transform = TrainTransform(size=sizes.size, builder=ReferenceBuilder())
    data = SyntheticTextDataset(batches * sizes.batch, size=(sizes.size, sizes.size), seed=1,
                                transform=transform)
    return torch.utils.data.DataLoader(data, batch_size=sizes.batch, num_workers=sizes.workers,
                                       collate_fn=collate, pin_memory=device.type == "cuda",
                                       prefetch_factor=4)


def fed_training(results: Results, sizes: Sizes, device, ops_context) -> None:
    """DBNet-R18 with the fused loss in the fastest precision of the step table
    (the one that asks most of the loader) trains on batches from the loader."""
    measured = [r for r in results.data["train"] if r["model"] == "DBNet-R18" and r["loss"] == FUSED
                and "error" not in r]
    precision = min(measured, key=lambda r: r["ms_per_step"])["precision"] if measured else "float32"
    fixed = next((r["ms_per_step"] for r in measured if r["precision"] == precision), None)
    for variant in LABELS:
        def measure(row, variant=variant):
            trainer = Trainer("DBNet-R18", precision, FUSED, device)
            batches = loader(variant, sizes, device, sizes.warmup + sizes.steps)
            stream = iter(batches)  # the workers fork here, before any emulation is switched on
            waits, labels, steps = [], [], []
            with ops_context():
                for i in range(sizes.warmup + sizes.steps):
                    sync(device)
                    began = time.perf_counter()
                    batch = next(stream)
                    got = time.perf_counter()
                    images = batch["image"].to(device, non_blocking=True)
                    if variant == LABELS[1]:
                        maps = db_targets_batch(batch["polygons"], (sizes.size, sizes.size),
                                                batch["ignore"], device=device)
                        targets = dict(zip(TARGET_KEYS, maps))
                    else:
                        targets = {key: batch[key].to(device, non_blocking=True) for key in TARGET_KEYS}
                    sync(device)
                    labelled = time.perf_counter()
                    trainer.step(images, targets)
                    sync(device)
                    if i >= sizes.warmup:
                        waits.append(got - began)
                        labels.append(labelled - got)
                        steps.append(time.perf_counter() - began)
            step = statistics.median(steps)
            row.update(precision=precision, wait_ms=statistics.median(waits) * 1e3,
                       in_process_ms=statistics.median(labels) * 1e3, ms_per_step=step * 1e3,
                       images_per_s=sizes.batch / step, fixed_batch_ms=fixed)
            if fixed is not None:
                row["step_lost_to_data"] = max(0.0, 1 - fixed / (step * 1e3))

        guarded(measure, results, "labels", {"labels": variant, "workers": sizes.workers})
        free(device)


# --- 3. the step in a CUDA graph ------------------------------------------------------

def loss_waits_for_host(trainer: Trainer, targets, emulated: bool):
    """Whether the loss's forward and backward wait for the host. CUDA: run under
    torch's sync debug mode "error" (a synchronising call raises; its message is
    kept). Emulated: the
    syncs and copies its CUDA launchers made. Plain CPU: unknown (None)."""
    shape = targets["shrink_map"].unsqueeze(1).shape
    logits = {name: torch.randn(shape, device=trainer.device, requires_grad=True)
              for name in ("prob_logits", "thresh_logits")}

    def forward_backward():
        trainer.loss(logits, targets).backward()

    if trainer.device.type == "cuda":  # CUDA only
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            forward_backward()
            return False
        except RuntimeError as error:  # the synchronising call, named
            return f"True: {str(error).splitlines()[0][:120]}"
        finally:
            torch.cuda.set_sync_debug_mode("default")
    if emulated:
        from dbnet_fast.testing import emulated_cuda

        with emulated_cuda() as record:
            record()
            forward_backward()
            done = record()
        return done["syncs"] + done["copies"] > 0
    return None


class GraphedStep:
    """The training step on static input buffers, captured once in a CUDA graph and
    replayed (on the CPU, the very same static-buffer step is called eagerly)."""

    def __init__(self, trainer: Trainer, images, targets, warmup: int):
        self.trainer = trainer
        self.images = images.clone()
        self.targets = {key: value.clone() for key, value in targets.items()}
        self.loss = None
        self.graph = None
        device = trainer.device
        if device.type == "cuda":  # CUDA only: warm up on a side stream, then capture
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                for _ in range(warmup):
                    trainer.step(self.images, self.targets)
            torch.cuda.current_stream(device).wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            trainer.optimizer.zero_grad(set_to_none=True)
            with torch.cuda.graph(self.graph):
                self.loss = trainer.step(self.images, self.targets)
        else:
            for _ in range(warmup):
                trainer.step(self.images, self.targets)

    def __call__(self, images, targets):
        self.images.copy_(images)
        for key, value in targets.items():
            self.targets[key].copy_(value)
        if self.graph is not None:
            self.graph.replay()
            return self.loss
        return self.trainer.step(self.images, self.targets)


AGREEMENT = 1e-2  # graphed against eager losses: reduction order may differ, a wrong buffer would not agree


def graph_rows(results: Results, sizes: Sizes, device, ops_context, emulated: bool) -> None:
    images, targets = fixed_batch(sizes, device)
    batches = [fixed_batch(sizes, device, seed=seed) for seed in (2, 3)]  # fresh data, same shapes
    for precision in ("float32", "bfloat16 autocast"):
        def measure(row, precision=precision):
            with ops_context():
                eager = Trainer("DBNet-R18", precision, FUSED, device)
                row["loss_waits_for_host"] = loss_waits_for_host(eager, targets, emulated)
                # the same weights and steps eagerly and graphed: the losses must agree
                for _ in range(sizes.warmup):
                    eager.step(images, targets)
                eager_losses = [float(eager.step(*batch)) for batch in batches]
                graphed = GraphedStep(Trainer("DBNet-R18", precision, FUSED, device), images, targets,
                                      sizes.warmup)
                graph_losses = [float(graphed(*batch)) for batch in batches]
                row["captured"] = graphed.graph is not None
                row["max_rel_diff"] = max(abs(a - b) / max(abs(a), 1e-12)
                                          for a, b in zip(eager_losses, graph_losses))
                if row["max_rel_diff"] > AGREEMENT:
                    raise AssertionError(f"graphed losses {graph_losses} differ from eager {eager_losses}")
                eager_s = median_seconds(lambda: eager.step(images, targets), sizes, device)
                graph_s = median_seconds(lambda: graphed(images, targets), sizes, device)
            row.update(eager_ms=eager_s * 1e3, graph_ms=graph_s * 1e3, gain=eager_s / graph_s,
                       images_per_s=sizes.batch / graph_s)

        guarded(measure, results, "graph", {"model": "DBNet-R18", "precision": precision, "loss": FUSED})
        free(device)
    if device.type == "cuda":  # CUDA only, and last: a failed capture ends this section
        def attempt(row):
            try:
                GraphedStep(Trainer("DBNet-R18", "float32", REFERENCE, device), images, targets, 1)
                row["captured"] = True
            except Exception as error:  # torch raises RuntimeError or its AcceleratorError
                row["captured"] = False
                row["why_not"] = str(error).splitlines()[0][:160]
            torch.cuda.synchronize()

        guarded(attempt, results, "graph", {"model": "DBNet-R18", "precision": "float32",
                                            "loss": REFERENCE})


# --- the tables -----------------------------------------------------------------------

def _ms(value) -> str:
    return "" if value is None else f"{value:.2f}" if value < 100 else f"{value:.0f}"


def markdown(data: dict) -> str:
    """The three tables (with each error in its row) as markdown."""
    sizes = data["sizes"]
    where = f"{data['device']}{' (CUDA kernels emulated on the host)' if data.get('emulated') else ''}"
    lines = [f"Training on {where}, {sizes['size']}x{sizes['size']}, batch {sizes['batch']}, "
             f"median of {sizes['steps']} timed step(s); {data['machine']}", ""]
    lines += ["| model | precision | loss | ms/step | images/s | fused is x faster | loss ms | "
              "loss share of step |", "|---|---|---|---:|---:|---:|---:|---:|"]
    by_key = {(r["model"], r["precision"], r["loss"]): r for r in data["train"]}
    for r in data["train"]:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['precision']} | {r['loss']} | {r['error']} | | | | |")
            continue
        other = by_key.get((r["model"], r["precision"], REFERENCE), {})
        speedup = f"{other['ms_per_step'] / r['ms_per_step']:.2f}" \
            if r["loss"] == FUSED and "ms_per_step" in other else ""
        lines.append(f"| {r['model']} | {r['precision']} | {r['loss']} | {_ms(r['ms_per_step'])} | "
                     f"{r['images_per_s']:.1f} | {speedup} | {_ms(r['loss_ms'])} | {r['loss_share']:.1%} |")
    if data["labels"]:
        lines += ["", "| label maps (DBNet-R18, fused loss) | workers | precision | wait for loader ms | "
                  "labels in process ms | ms/step | images/s | step on a fixed batch ms | "
                  "step lost to data |", "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
        for r in data["labels"]:
            if "error" in r:
                lines.append(f"| {r['labels']} | {r['workers']} | {r['error']} | | | | | | |")
                continue
            lost = f"{r['step_lost_to_data']:.0%}" if "step_lost_to_data" in r else ""
            lines.append(f"| {r['labels']} | {r['workers']} | {r['precision']} | {_ms(r['wait_ms'])} | "
                         f"{_ms(r['in_process_ms'])} | {_ms(r['ms_per_step'])} | {r['images_per_s']:.1f} | "
                         f"{_ms(r['fixed_batch_ms'])} | {lost} |")
    if data["graph"]:
        lines += ["", "| step in a CUDA graph (DBNet-R18) | loss | captured | loss waits for host | "
                  "eager ms | graph ms | gain | graphed losses vs eager (max rel diff) |",
                  "|---|---|---|---|---:|---:|---:|---:|"]
        for r in data["graph"]:
            if "error" in r:
                lines.append(f"| {r['precision']} | {r['loss']} | {r['error']} | | | | | |")
            elif "eager_ms" not in r:  # the reference loss's capture attempt
                lines.append(f"| {r['precision']} | {r['loss']} | {r['captured']}: "
                             f"{r.get('why_not', '')} | | | | | |")
            else:
                lines.append(f"| {r['precision']} | {r['loss']} | {r['captured']} | "
                             f"{r['loss_waits_for_host']} | {_ms(r['eager_ms'])} | {_ms(r['graph_ms'])} | "
                             f"{r['gain']:.2f} | {r['max_rel_diff']:.1e} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--tiny", action="store_true", help="32x32, batch 2, one timed step (the dry run)")
    parser.add_argument("--emulated", action="store_true",
                        help="with --device cpu: our ops run their CUDA kernels on the host")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--json", type=Path, help="write the results here after every row")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here (the dry run is --device cpu --tiny --emulated)")
    if args.emulated and device.type != "cpu":
        parser.error("--emulated runs the CUDA kernels on the host: it needs --device cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: cuDNN measures its algorithms once
    if args.emulated:
        from dbnet_fast.testing import emulated_cuda

        ops_context = emulated_cuda
    else:
        ops_context = contextlib.nullcontext
    sizes = TINY if args.tiny else full_sizes()
    results = Results(args.json, sizes, device, args.emulated)
    results.save()
    if "train" in args.sections:
        train_table(results, sizes, device, ops_context)
    if "labels" in args.sections:
        fed_training(results, sizes, device, ops_context)
    if "graph" in args.sections:
        graph_rows(results, sizes, device, ops_context, args.emulated)
    print(markdown(results.data))
    return 1 if results.data["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
