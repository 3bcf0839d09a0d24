"""The engine's parts: data names, atomic writes, checkpoints and RNG states, the
LR schedule, the epoch sampler, and evaluation through the whole detection path."""

from __future__ import annotations

import json
import os
import pickle
import random

import numpy as np
import pytest
import torch

from dbnet_fast.data import EvalTransform, SynthConfig, SyntheticTextDataset
from dbnet_fast.engine import (
    EpochSampler,
    PolySchedule,
    build_model,
    evaluate,
    load_checkpoint,
    model_from_checkpoint,
    parse_data_spec,
    save_checkpoint,
)
from dbnet_fast.engine.atomic import atomic_write_json, atomic_write_text
from dbnet_fast.engine.checkpoint import rng_state, set_rng_state
from dbnet_fast.postprocess import DBPostProcessor

# --------------------------------------------------------------------------- data names


def test_parse_data_spec(tmp_path):
    assert parse_data_spec("synthetic").scheme == "synthetic"
    spec = parse_data_spec(f"icdar2015:{tmp_path}")
    assert (spec.scheme, spec.root) == ("icdar2015", tmp_path)
    assert parse_data_spec(f"totaltext:{tmp_path}").scheme == "totaltext"
    with pytest.raises(ValueError, match="unknown dataset 'coco'"):
        parse_data_spec("coco:/x")
    with pytest.raises(ValueError, match="needs a folder"):
        parse_data_spec("icdar2015")
    with pytest.raises(ValueError, match="takes no path"):
        parse_data_spec("synthetic:/x")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        parse_data_spec(f"totaltext:{tmp_path / 'missing'}")


# --------------------------------------------------------------------------- atomic writes


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    path = tmp_path / "sub" / "result.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert os.listdir(path.parent) == ["result.json"]


def test_atomic_write_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "x.txt"
    atomic_write_text(path, "old")
    with pytest.raises(TypeError):
        atomic_write_json(path, {"not json": object()})
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["x.txt"]


# --------------------------------------------------------------------------- checkpoints


def _tiny_model():
    torch.manual_seed(0)
    return build_model("resnet18", inner_channels=32)


def test_checkpoint_round_trip(tmp_path):
    model = _tiny_model().train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    schedule = PolySchedule(optimizer, total_steps=10)
    schedule.step(3)
    sum(v.mean() for v in model(torch.randn(2, 3, 64, 64)).values()).backward()
    optimizer.step()
    path = save_checkpoint(tmp_path / "last.pt", model, optimizer=optimizer, scheduler=schedule,
                           step=4, epoch=1, epoch_step=2, elapsed=12.5,
                           config={"size": (64, 64), "data": "synthetic", "path": tmp_path})
    state = load_checkpoint(path)
    assert (state["step"], state["epoch"], state["epoch_step"], state["elapsed"]) == (4, 1, 2, 12.5)
    assert state["config"] == {"size": [64, 64], "data": "synthetic", "path": str(tmp_path)}
    assert state["model_config"]["inner_channels"] == 32
    restored = model_from_checkpoint(state)
    assert not restored.training
    for (name, a), b in zip(model.state_dict().items(), restored.state_dict().values()):
        assert torch.equal(a, b), name
    optimizer2 = torch.optim.SGD(restored.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    optimizer2.load_state_dict(state["optimizer"])
    momentum = [optimizer.state[p]["momentum_buffer"] for p in model.parameters()]
    momentum2 = [optimizer2.state[p]["momentum_buffer"] for p in restored.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(momentum, momentum2))
    schedule2 = PolySchedule(optimizer2, total_steps=10)
    schedule2.load_state_dict(state["scheduler"])
    assert schedule2.last_lr == schedule.last_lr
    assert optimizer2.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]


def test_rng_state_restores_every_generator():
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.gauss(0, 1)  # leaves a cached Gaussian in Python's generator
    np.random.standard_normal()
    state = rng_state()
    first = (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(),
             np.random.standard_normal(), torch.rand(3).tolist())
    for _ in range(5):
        random.random(), np.random.rand(), torch.rand(1)
    set_rng_state(state)
    again = (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(),
             np.random.standard_normal(), torch.rand(3).tolist())
    assert again == first


def test_checkpoint_loads_safely_only(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo should-not-run",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "dbnet_fast.checkpoint/1", "x": Evil()}, path)
    with pytest.raises(ValueError, match="holds objects other than tensors"):
        load_checkpoint(path)
    other = tmp_path / "other.pt"
    torch.save({"state": torch.zeros(1)}, other)
    with pytest.raises(ValueError, match="not a dbnet_fast checkpoint"):
        load_checkpoint(other)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(pickle.dumps([1, 2], protocol=2))
    with pytest.raises(ValueError):
        load_checkpoint(tmp_path / "junk.pt")


# --------------------------------------------------------------------------- schedule, sampler


def _optimizer(lr=0.007):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr, momentum=0.9)


def test_poly_schedule_by_step():
    optimizer = _optimizer()
    schedule = PolySchedule(optimizer, total_steps=100, power=0.9)
    for step in (0, 1, 50, 99, 100, 150):
        lr = schedule.step(step)
        expected = 0.007 * max(0.0, 1 - step / 100) ** 0.9
        assert lr == pytest.approx(expected, rel=1e-12, abs=1e-15)
        assert optimizer.param_groups[0]["lr"] == lr


def test_poly_schedule_warmup_and_time_budget():
    schedule = PolySchedule(_optimizer(0.01), total_steps=1000, warmup_steps=10)
    assert schedule.step(0) == pytest.approx(0.01 * 0.1 * (1 - 0 / 1000) ** 0.9)
    assert schedule.step(4) == pytest.approx(0.01 * 0.5 * (1 - 4 / 1000) ** 0.9)
    assert schedule.step(10) == pytest.approx(0.01 * (1 - 10 / 1000) ** 0.9)
    timed = PolySchedule(_optimizer(0.01), budget_s=60.0)
    assert timed.step(5, elapsed=30.0) == pytest.approx(0.01 * 0.5**0.9)
    assert timed.step(5, elapsed=90.0) == 0.0
    both = PolySchedule(_optimizer(0.01), total_steps=10, budget_s=60.0)
    assert both.progress(5, elapsed=6.0) == 0.5 and both.progress(1, elapsed=45.0) == 0.75
    with pytest.raises(ValueError):
        PolySchedule(_optimizer(), total_steps=None, budget_s=None)


def test_epoch_sampler_shards_and_resumes():
    length, batch, world = 23, 2, 3
    shards = [EpochSampler(length, batch, seed=5, epoch=1, rank=r, world_size=world).indices()
              for r in range(world)]
    steps = length // (batch * world)
    assert all(len(s) == steps * batch for s in shards)
    joined = torch.cat(shards)
    assert len(set(joined.tolist())) == len(joined)  # no index twice across processes
    again = EpochSampler(length, batch, seed=5, epoch=1, rank=1, world_size=world).indices()
    assert torch.equal(again, shards[1])
    other_epoch = EpochSampler(length, batch, seed=5, epoch=2, rank=1, world_size=world).indices()
    assert not torch.equal(other_epoch, shards[1])
    tail = EpochSampler(length, batch, seed=5, epoch=1, rank=1, world_size=world, start_batch=2)
    assert torch.equal(tail.indices(), shards[1][2 * batch:])
    assert len(tail) == (steps - 2) * batch
    with pytest.raises(ValueError):
        EpochSampler(length, batch, rank=3, world_size=3)


# --------------------------------------------------------------------------- evaluation


class OracleModel(torch.nn.Module):
    """Returns, in order, the given probability maps (one per image): evaluation of a
    perfect detector exercises post-processing, rescaling and the metric."""

    def __init__(self, maps):
        super().__init__()
        self.maps = list(maps)
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, images):
        out = torch.stack([self.maps.pop(0) for _ in range(images.shape[0])])
        assert out.shape[-2:] == images.shape[-2:]
        return out


def _oracle_set(short_side):
    config = SynthConfig.easy(words=(3, 5), text_height=(18.0, 30.0), ignore_prob=0.0)
    transform = EvalTransform(short_side=short_side)  # with label maps, for the oracle
    data = SyntheticTextDataset(6, size=(160, 224), seed=3, split="val", transform=transform,
                                config=config)
    maps = [data[i]["shrink_map"][None] for i in range(len(data))]
    data.transform = EvalTransform(short_side=short_side, targets=False)
    return data, maps


@pytest.mark.parametrize("short_side", [None, 96, 224])
def test_evaluate_perfect_maps_in_original_pixels(short_side):
    data, maps = _oracle_set(short_side)
    metrics = evaluate(OracleModel(maps), data, DBPostProcessor(box_thresh=0.5), "cpu")
    # the shrunk text regions, unclipped by 1.5, give back the words: near-perfect scores
    # only if the boxes are mapped back to the original image size
    assert metrics["images"] == 6 and metrics["gt_care"] > 12
    assert metrics["hmean"] > 0.9, metrics
    assert metrics["precision"] > 0.9 and metrics["recall"] > 0.9


def test_evaluate_batched_equals_single():
    data, maps = _oracle_set(96)
    one = evaluate(OracleModel(maps), data, DBPostProcessor(box_thresh=0.5), "cpu", batch_size=1)
    data, maps = _oracle_set(96)
    three = evaluate(OracleModel(maps), data, DBPostProcessor(box_thresh=0.5), "cpu",
                     batch_size=3)
    assert (one["matched"], one["det_care"]) == (three["matched"], three["det_care"])


def test_evaluate_untrained_model_is_sane():
    model = _tiny_model()
    data = SyntheticTextDataset(3, size=64, seed=0, split="val",
                                transform=EvalTransform(targets=False))
    metrics = evaluate(model, data, DBPostProcessor(), "cpu", batch_size=2)
    assert model.training  # mode restored
    for key in ("precision", "recall", "hmean"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["images"] == 3 and metrics["gt_care"] >= 1
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(model, data, DBPostProcessor(), "cpu", batch_size=0)


def test_thread_tuner_follows_the_load():
    """Simulated step times: 2 threads are fast when idle and slow under load,
    1 thread is the same either way; the tuner must track the faster."""
    from dbnet_fast.engine.schedule import ThreadTuner

    tuner = ThreadTuner([1, 2], period=20)
    chosen = []
    for step in range(150):
        loaded = 30 <= step < 90
        threads = tuner.next_threads()
        tuner.record(0.28 if threads == 1 else (1.0 if loaded else 0.15))
        chosen.append(threads)
    assert chosen[0] == 2
    assert chosen[15:30].count(2) >= 12  # idle: mostly 2 threads (probes excepted)
    assert chosen[40:90].count(1) >= 40  # loaded: switched to 1 (periodic probes excepted)
    assert chosen[120:].count(2) >= 25  # idle again: back to 2 after a periodic probe
    with pytest.raises(ValueError):
        ThreadTuner([0])
