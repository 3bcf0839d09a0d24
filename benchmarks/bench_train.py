"""Training throughput on the CPU.

- The data pipeline (synthetic 640 x 640 scene text, MhLiao/DB augmentation,
  the four label maps, normalisation) per sample on one thread, as one
  DataLoader worker runs it: label maps from our op (DBTargetBuilder) against
  the same pipeline with the float64 NumPy + pyclipper + OpenCV reference
  targets (MhLiao/DB's algorithm).
- One training step of DBNet-R18 at 640 x 640, batch 2 (forward, DB loss,
  backward, SGD step), float32 and bfloat16 autocast, on all threads.

Images/s is 1 / the per-image time (batch 2 for the step). A pipeline sample
that takes a small fraction of a step's time per image means the data loader
is not what limits training (report.py prints both groups). The pipeline's
"no label maps (floor)" row is the same pipeline without label maps: its
ratio (below 1) is the share of the floor's speed that the pipeline keeps
with our label maps.
"""

from __future__ import annotations

import pytest
import torch

from common import one_thread, rounds
from dbnet_fast.data import SynthConfig, SyntheticTextDataset, TrainTransform, collate
from dbnet_fast.engine import build_model
from dbnet_fast.engine.precision import cpu_bf16_is_fast, describe_cpu
from dbnet_fast.model import DBLoss

pytest.importorskip("pyclipper")
from dbnet_fast.reference import db_targets_reference  # noqa: E402

SIZE = 640
SAMPLES = 8  # samples per timed round of the pipeline
KEYS = ("shrink_map", "shrink_mask", "thresh_map", "thresh_mask")


class ReferenceTargets:
    """A drop-in for DBTargetBuilder that builds the label maps with the reference."""

    def __call__(self, polygons, size, ignore=None):
        maps = db_targets_reference(polygons, size, ignore)
        return tuple(torch.from_numpy(maps[key]) for key in KEYS)


def _time(benchmark, fn, *, op, variant, role, group, n_rounds):
    fn()  # warm-up
    benchmark.group = group
    benchmark.extra_info.update(op=op, variant=variant, role=role, inner=1)
    benchmark.pedantic(fn, rounds=n_rounds, warmup_rounds=0)


# the generator's default mix (3-8 words tried per image) and a dense one, closer to
# ICDAR 2015's busier images (20-30 words tried, smaller text)
MIXES = {"default": SynthConfig(), "dense": SynthConfig(words=(20, 30), text_height=(10.0, 40.0))}


@pytest.mark.parametrize("variant", ["dbnet_fast", "reference", "no label maps (floor)"])
@pytest.mark.parametrize("mix", list(MIXES))
@pytest.mark.parametrize("device", ["cpu"])  # named so that report.py --device selects it
def bench_data_pipeline(benchmark, device, mix, variant):
    transform = TrainTransform(size=SIZE, targets=variant != "no label maps (floor)")
    if variant == "reference":
        transform.builder = ReferenceTargets()
    data = SyntheticTextDataset(SAMPLES, size=(SIZE, SIZE), seed=0, transform=transform,
                                config=MIXES[mix])

    def pipeline():  # what a DataLoader worker does per sample: render, augment, label, normalise
        for i in range(SAMPLES):
            data[i]

    role = "ours" if variant == "dbnet_fast" else "baseline"
    group = (f"data pipeline cpu, one thread: {SAMPLES} synthetic samples {SIZE}x{SIZE}, {mix} "
             "(render, augment, label maps, normalise)")
    _time(benchmark, one_thread(pipeline), op="data pipeline", variant=variant, role=role,
          group=group, n_rounds=rounds())


@pytest.mark.parametrize("variant", ["float32", "bfloat16 autocast"])
@pytest.mark.parametrize("device", ["cpu"])
def bench_train_step(benchmark, device, variant):
    amp = variant != "float32"
    if amp:
        fast, why = cpu_bf16_is_fast()
        if not fast:  # oneDNN's fallback: a step would take minutes, and nobody runs it
            pytest.skip(f"bfloat16 is slow on this CPU ({why})")
    torch.manual_seed(0)
    model = build_model("resnet18").train()
    loss_fn = DBLoss(k=model.k)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.007, momentum=0.9, weight_decay=1e-4)
    data = SyntheticTextDataset(2, size=(SIZE, SIZE), seed=0, transform=TrainTransform(size=SIZE))
    batch = collate([data[0], data[1]])
    targets = {k: batch[k] for k in KEYS}

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            outputs = model(batch["image"])
        total, _ = loss_fn(outputs, targets)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

    role = "ours" if amp else "baseline"
    group = f"train step DBNet-R18 cpu ({describe_cpu()}), all threads: batch 2 at {SIZE}x{SIZE}"
    # slow (seconds per step): a few rounds are enough
    _time(benchmark, step, op="train step", variant=variant, role=role, group=group,
          n_rounds=min(rounds(), 3))
