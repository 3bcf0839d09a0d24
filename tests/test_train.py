"""The training loop: learning on a fixed batch, exact resume, time budget, the CLI
end to end, and DistributedDataParallel with two CPU processes (gloo)."""

from __future__ import annotations

import importlib
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dbnet_fast.cli import main
from dbnet_fast.data import SyntheticTextDataset, TrainTransform, collate
from dbnet_fast.engine import TrainConfig, build_model, load_checkpoint, train
from dbnet_fast.model import DBLoss

ROOT = Path(__file__).resolve().parent.parent
# the module (the package attribute `train` is the function)
train_module = importlib.import_module("dbnet_fast.engine.train")


def tiny(out, **changes) -> TrainConfig:
    """64 x 64 images, batch 2, a narrow neck: a step takes well under a second."""
    settings = dict(data="synthetic", arch="resnet18", inner_channels=32, image_size=64,
                    batch_size=2, max_steps=4, synth_images=6, num_workers=0, out=str(out),
                    log_every=1, checkpoint_every=2, evaluate=False, progress=False,
                    augment="full", lr=0.01)
    settings.update(changes)
    return TrainConfig(**settings)


def test_steps_reduce_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = build_model("resnet18", inner_channels=32).train()
    loss_fn = DBLoss(k=model.k)
    data = SyntheticTextDataset(2, size=64, seed=1, transform=TrainTransform(size=64))
    batch = collate([data[0], data[1]])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = [train_module._train_step(model, loss_fn, optimizer, None, batch,
                                       torch.device("cpu"), False)["loss"] for _ in range(10)]
    assert losses[-1] < 0.6 * losses[0], losses


def test_config_validation():
    with pytest.raises(ValueError, match="length of training"):
        TrainConfig()
    with pytest.raises(ValueError, match="unknown dataset"):
        TrainConfig(data="mnist", max_steps=1)
    with pytest.raises(ValueError, match="multiple of 32"):
        TrainConfig(image_size=100, max_steps=1)
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0, max_steps=1)
    with pytest.raises(ValueError, match="time_budget_min"):
        TrainConfig(time_budget_min=-1)
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="lamb", max_steps=1)
    reference = TrainConfig(max_steps=1)
    assert (reference.optimizer, reference.lr, reference.momentum, reference.weight_decay,
            reference.power, reference.image_size) == ("sgd", 0.007, 0.9, 1e-4, 0.9, 640)


def test_outputs_and_log(tmp_path):
    summary = train(tiny(tmp_path, max_steps=3, checkpoint_every=2))
    assert summary["step"] == 3 and summary["stopped_by"] == "max_steps"
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    for r in records:
        assert {"epoch", "lr", "loss", "loss_bce", "loss_dice", "loss_l1", "images_per_s",
                "elapsed_s"} <= set(r)
    # poly decay by step from the base rate
    assert records[0]["lr"] == pytest.approx(0.01)
    assert records[1]["lr"] == pytest.approx(0.01 * (1 - 1 / 3) ** 0.9)
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["step"] == 3 and state["epoch"] == 1 and state["epoch_step"] == 0
    assert json.loads((tmp_path / "config.json").read_text())["max_steps"] == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


class _Crash(Exception):
    pass


def test_resume_continues_exactly(tmp_path, monkeypatch):
    # 3 steps per epoch, so the 5 steps cross an epoch boundary; the crash comes in
    # step 4, after the checkpoint of step 2: the run saves its 3 finished steps.
    straight = train(tiny(tmp_path / "a", max_steps=5))
    expected = _weights(straight["model"])

    real_step = train_module._train_step
    calls = []

    def crashing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise _Crash
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_module, "_train_step", crashing)
    with pytest.raises(train_module.TrainingStopped) as stopped:
        train(tiny(tmp_path / "b", max_steps=5))
    assert isinstance(stopped.value.cause, _Crash) and stopped.value.step == 3
    monkeypatch.setattr(train_module, "_train_step", real_step)
    # the failed run kept its 3 finished steps (not only the checkpoint of step 2)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["step"] == 3
    resumed = train(tiny(tmp_path / "b", max_steps=5, resume=True))
    assert resumed["step"] == 5 and resumed["epoch"] == 1
    got = _weights(resumed["model"])
    for name, value in expected.items():
        assert torch.equal(got[name], value), name
    # the log of the resumed run continues the first one, and equals the straight run's
    log_a = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    log_b = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log_b] == [1, 2, 3, 4, 5]
    assert [(r["loss"], r["lr"]) for r in log_a] == [(r["loss"], r["lr"]) for r in log_b]


def test_resume_refuses_other_settings(tmp_path):
    train(tiny(tmp_path, max_steps=2))
    with pytest.raises(ValueError, match="batch_size"):
        train(tiny(tmp_path, max_steps=4, batch_size=3, resume=True))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(tiny(tmp_path / "empty", max_steps=2, resume=True))


def test_time_budget_stops_training(tmp_path):
    summary = train(tiny(tmp_path, max_steps=10_000, time_budget_min=0.03, checkpoint_every=1000))
    assert summary["stopped_by"] == "time_budget"
    assert 1 <= summary["step"] < 10_000
    assert summary["elapsed_s"] >= 0.03 * 60
    assert load_checkpoint(tmp_path / "last.pt")["step"] == summary["step"]


def test_cli_train_then_eval(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--data", "synthetic", "--image-size", "64", "--batch-size", "2",
                 "--max-steps", "2", "--inner-channels", "32", "--synth-images", "4",
                 "--eval-images", "2", "--workers", "0", "--no-progress", "--out", str(out)])
    assert code == 0
    for name in ("config.json", "metrics.jsonl", "last.pt", "eval.json"):
        assert (out / name).is_file(), name
    result = json.loads((out / "eval.json").read_text())
    assert result["images"] == 2 and 0 <= result["hmean"] <= 1 and result["split"] == "val"
    capsys.readouterr()
    code = main(["eval", "--checkpoint", str(out / "last.pt"), "--images", "2",
                 "--no-progress", "--out", str(tmp_path / "e.json")])
    assert code == 0
    printed = capsys.readouterr().out
    assert "precision" in printed and "H-mean" in printed
    again = json.loads((tmp_path / "e.json").read_text())
    assert {"precision", "recall", "hmean"} <= set(again)
    assert again["hmean"] == result["hmean"]  # same checkpoint, same held-out images


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "coco", "--max-steps", "1"], "unknown dataset 'coco'"),
    (["train", "--data", "icdar2015:/no/such/folder", "--max-steps", "1"], "does not exist"),
    (["train", "--image-size", "64"], "length of training"),
    (["eval", "--checkpoint", "/no/such.pt"], "does not exist"),
])
def test_cli_errors_name_the_problem(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_python_m_cli_help():
    result = subprocess.run([sys.executable, "-m", "dbnet_fast.cli", "train", "--help"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0 and "--time-budget" in result.stdout


# --------------------------------------------------------------------------- DDP


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    import os

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    summary = train(tiny(out, batch_size=1, max_steps=3, synth_images=8, device="cpu"))
    weights = {k: v for k, v in summary["model"].state_dict().items()}
    torch.save({"step": summary["step"], "weights": weights}, f"{out}/rank{rank}.pt")


def test_ddp_two_cpu_processes_gloo(tmp_path):
    torch.multiprocessing.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2,
                                join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert ranks[0]["step"] == ranks[1]["step"] == 3
    for name, value in ranks[0]["weights"].items():
        if name.endswith("running_mean") or name.endswith("running_var"):
            continue  # BatchNorm statistics are per process (no SyncBatchNorm)
        assert torch.equal(value, ranks[1]["weights"][name]), name
    # only rank 0 wrote the outputs, with the global images/s of both processes
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["step"] == 3 and state["config"]["world_size"] == 2
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]


def test_fine_tune_from_ppocr_v4(tmp_path):
    """--init ppocr-v4: PaddleOCR's weights are the start (all but the new threshold
    head), training moves them, and a checkpoint start (init=CKPT) continues from it."""
    pytest.importorskip("onnx")
    from dbnet_fast.engine.checkpoint import initialise
    from dbnet_fast.model import load_ppocr_det

    summary = train(tiny(tmp_path / "a", arch="ppocr-v4", init="ppocr-v4", max_steps=2,
                         lr=1e-3, optimizer="adamw"))
    trained = summary["model"].state_dict()
    pretrained = load_ppocr_det(input_norm="imagenet").state_dict()
    moved = [k for k in pretrained if k.endswith("weight") and not k.startswith("thresh_head")
             and not torch.equal(trained[k].cpu(), pretrained[k])]
    assert moved  # the weights trained
    start = build_model("ppocr-v4")
    initialise(start, "ppocr-v4")
    for name, value in start.state_dict().items():
        if not name.startswith("thresh_head."):
            assert torch.equal(value, pretrained[name]), name
    again = train(tiny(tmp_path / "b", arch="ppocr-v4", init=str(tmp_path / "a" / "last.pt"),
                       max_steps=1))
    assert again["step"] == 1
    # resuming does not need the init checkpoint any more (the run has its own)
    (tmp_path / "a" / "last.pt").rename(tmp_path / "moved.pt")
    resumed = train(tiny(tmp_path / "b", arch="ppocr-v4", init=str(tmp_path / "a" / "last.pt"),
                         max_steps=2, resume=True))
    assert resumed["step"] == 2
    with pytest.raises(ValueError, match="needs arch"):
        tiny(tmp_path / "c", init="ppocr-v4")
    with pytest.raises(FileNotFoundError, match="init checkpoint"):
        tiny(tmp_path / "c", init=str(tmp_path / "missing.pt"))
