"""What an adversarial pass over training, evaluation and DBPredictor found
(issue 22): nothing lost, a clear error that names the option or file, never
a traceback for a user mistake. The ops' cases are in test_reliability_ops.py,
detect's in test_reliability_detect.py."""

from __future__ import annotations

import importlib
import json
import threading

import cv2
import numpy as np
import pytest
import torch

from dbnet_fast.cli import main
from dbnet_fast.data.datasets import ICDAR2015Dataset, parse_icdar2015
from dbnet_fast.engine import TrainConfig, build_model, load_checkpoint, train
from dbnet_fast.engine.checkpoint import model_from_checkpoint, save_checkpoint
from dbnet_fast.predict import DBPredictor

train_module = importlib.import_module("dbnet_fast.engine.train")


def tiny(out, **changes) -> TrainConfig:
    settings = dict(data="synthetic", arch="resnet18", inner_channels=32, image_size=64,
                    batch_size=2, max_steps=2, synth_images=6, num_workers=0, out=str(out),
                    log_every=1, checkpoint_every=1, evaluate=False, progress=False)
    settings.update(changes)
    return TrainConfig(**settings)


# ------------------------------------------------------------------ 1. an earlier run in --out


def test_train_refuses_a_folder_holding_a_run(tmp_path):
    train(tiny(tmp_path))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(FileExistsError, match=r"holds an earlier run.*--resume.*--overwrite"):
        train(tiny(tmp_path, max_steps=1))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # untouched


def test_train_cli_refusal_is_one_line(tmp_path, capsys):
    train(tiny(tmp_path))
    argv = ["train", "--data", "synthetic", "--image-size", "64", "--batch-size", "2",
            "--max-steps", "1", "--synth-images", "4", "--workers", "0", "--out", str(tmp_path),
            "--no-eval", "--no-progress", "--inner-channels", "32"]
    assert main(argv) == 2
    assert "holds an earlier run" in capsys.readouterr().err


def test_overwrite_replaces_the_run_whole(tmp_path, monkeypatch):
    train(tiny(tmp_path))
    old = tmp_path / "eval.json"
    old.write_text("{}")  # a file of the old run that the new one would not rewrite

    def failing(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(train_module, "_train_step", failing)
    with pytest.raises(train_module.TrainingStopped):
        train(tiny(tmp_path, overwrite=True))
    # nothing of the old run is left beside the new run's files
    assert not old.exists()
    assert json.loads((tmp_path / "config.json").read_text())["overwrite"] is True
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 0


# ------------------------------------------------------------------ 2. DBPredictor and threads


def test_predictor_from_several_threads_keeps_the_model_as_it_was():
    torch.manual_seed(0)
    model = build_model("resnet18", inner_channels=32).train()  # training mode on purpose
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    predictor = DBPredictor(model, "cpu", batch_size=2)
    images = [np.full((96 + 32 * i, 128, 3), 255, np.uint8) for i in range(3)]
    expected = [d.scores.tolist() for d in predictor(images)]
    results, errors = [], []

    def call():
        try:
            results.append([d.scores.tolist() for d in predictor(images)])
        except Exception as error:  # noqa: BLE001 - collected for the assertion
            errors.append(error)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == [expected] * 4
    assert model.training  # the user's mode is back
    for name, value in model.named_buffers():
        assert torch.equal(value, buffers[name]), name  # BatchNorm statistics untouched


# ------------------------------------------------------------------ 3. unreadable images


def _icdar(root, count=4, bad=()):
    for i in range(1, count + 1):
        image = root / "train_images" / f"img_{i}.jpg"
        image.parent.mkdir(parents=True, exist_ok=True)
        if i in bad:
            image.write_bytes(b"" if i % 2 else b"this is not a JPEG at all")
        else:
            cv2.imwrite(str(image), np.full((80, 96, 3), 200, np.uint8))
        gt = root / "train_gts" / f"gt_img_{i}.txt"
        gt.parent.mkdir(parents=True, exist_ok=True)
        gt.write_text("10,10,60,10,60,30,10,30,word\n")


def test_unreadable_images_are_left_out_and_reported(tmp_path):
    _icdar(tmp_path, bad=(2, 3))
    dataset = ICDAR2015Dataset(tmp_path, "train")
    assert len(dataset) == 2
    assert [(p.rsplit("/", 1)[1], why) for p, why in dataset.skipped] == [
        ("img_2.jpg", "is not an image file (unknown format)"), ("img_3.jpg", "is empty")]


def test_a_failure_during_training_keeps_the_steps_done(tmp_path, capsys):
    """A sample that fails when drawn (here: an image broken after the dataset was
    built) ends the run with a checkpoint of the finished steps and one message."""
    _icdar(tmp_path / "data", count=4)
    argv = ["train", "--data", f"icdar2015:{tmp_path / 'data'}", "--image-size", "64",
            "--batch-size", "2", "--max-steps", "4", "--workers", "0", "--out",
            str(tmp_path / "run"), "--no-eval", "--no-progress", "--inner-channels", "32",
            "--checkpoint-every", "100", "--augment", "none"]
    real_load = ICDAR2015Dataset.load
    calls = []

    def load(self, index):
        calls.append(index)
        if len(calls) > 4:  # the second epoch: 2 steps done
            raise OSError(f"icdar2015: cannot read image {self.image_paths[index]}")
        return real_load(self, index)

    mp = pytest.MonkeyPatch()
    mp.setattr(ICDAR2015Dataset, "load", load)
    try:
        code = main(argv)
    finally:
        mp.undo()
    err = capsys.readouterr().err
    assert code == 1
    assert "training stopped at step 2, OSError: icdar2015: cannot read image" in err
    assert "--resume" in err and "Traceback" not in err
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 2


def test_ctrl_c_during_training_saves_and_exits_130(tmp_path, monkeypatch, capsys):
    real_step = train_module._train_step
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_module, "_train_step", interrupted)
    argv = ["train", "--data", "synthetic", "--image-size", "64", "--batch-size", "2",
            "--max-steps", "5", "--synth-images", "6", "--workers", "0", "--out",
            str(tmp_path), "--no-eval", "--no-progress", "--inner-channels", "32"]
    assert main(argv) == 130
    assert "interrupted (Ctrl-C)" in capsys.readouterr().err
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 1


# ------------------------------------------------------------------ 9. huge ground truth


def test_icdar_coordinate_beyond_any_image_is_refused(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_text("1,1,9,1,9,9,1,9,ok\n1e30,1,9,1,9,9,1,9,huge\n")
    with pytest.raises(ValueError, match=r"gt.txt:2: coordinate 1e\+30 is beyond"):
        parse_icdar2015(path)


# ------------------------------------------------------------------ 10-12. messages


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("command", ["train", "eval"])
def test_device_cuda_without_cuda_is_one_line(command, tmp_path, capsys):
    checkpoint = save_checkpoint(tmp_path / "m.pt", build_model("resnet18", inner_channels=32))
    argv = {"train": ["train", "--max-steps", "1", "--out", str(tmp_path / "r")],
            "eval": ["eval", "--checkpoint", str(checkpoint)]}[command] + ["--device", "cuda"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--device cuda was asked for, but no CUDA device is available" in err
    assert "Traceback" not in err


def _checkpoint_file(tmp_path, **changes):
    state = torch.load(save_checkpoint(tmp_path / "good.pt",
                                       build_model("resnet18", inner_channels=32)),
                       weights_only=True)
    weights = dict(state["model"])
    if changes.pop("drop_key", False):
        weights.pop(next(iter(weights)))
    if changes.pop("bad_shape", False):
        name = "prob_head.0.weight" if "prob_head.0.weight" in weights else next(
            k for k, v in weights.items() if v.dim() == 4)
        weights[name] = torch.zeros(1, 1, 1, 1)
    state.update(model=weights, **changes)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    return path


@pytest.mark.parametrize("case, message", [
    ({"drop_key": True}, r"weights do not fit its model_config .*1 missing"),
    ({"bad_shape": True}, r"weights do not fit its model_config .*of another shape"),
    ({"config": [1, 2]}, r"config must be a dict"),
    ({"model_config": None}, r"model_config must be a dict"),
])
def test_bad_checkpoint_contents_are_named(case, message, tmp_path, capsys):
    path = _checkpoint_file(tmp_path, **case)
    assert main(["eval", "--checkpoint", str(path), "--images", "1"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    with pytest.raises(ValueError, match=message):
        model_from_checkpoint(load_checkpoint(path))


@pytest.mark.parametrize("content, message", [
    (b"", r"is empty \(0 bytes\)"),
    (b"PK\x03\x04 garbage that is no zip", r"is corrupt or not a torch checkpoint"),
    (None, r"holds objects other than tensors"),
])
def test_unloadable_checkpoint_files_are_named(content, message, tmp_path):
    path = tmp_path / "x.pt"
    if content is None:
        torch.save({"format": "dbnet_fast.checkpoint/1", "evil": threading.Lock}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as caught:
        load_checkpoint(path)
    assert "weights_only=False" not in str(caught.value)
    assert "weights_only" not in str(caught.value)


def test_checkpoint_folder_is_not_called_missing(tmp_path):
    save_checkpoint(tmp_path / "last.pt", build_model("resnet18", inner_channels=32))
    with pytest.raises(ValueError, match=r"is a folder, not a checkpoint file \(did you mean"):
        load_checkpoint(tmp_path)


def test_one_value_per_channel_names_both_options():
    with pytest.raises(ValueError, match=r"image_size 32 with batch_size 1 .*image_size >= 64"):
        TrainConfig(max_steps=1, image_size=32, batch_size=1)
    TrainConfig(max_steps=1, image_size=32, batch_size=2)  # fine


# ------------------------------------------------------------------ 8. thresholds, one check


@pytest.mark.parametrize("option, value", [("--thresh", "-1"), ("--thresh", "2"),
                                           ("--box-thresh", "2"), ("--box-thresh", "-0.5")])
def test_every_command_refuses_thresholds_out_of_range(option, value, tmp_path, capsys):
    checkpoint = save_checkpoint(tmp_path / "m.pt", build_model("resnet18", inner_channels=32))
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.full((40, 60, 3), 255, np.uint8))
    name = option.lstrip("-").replace("-", "_")
    commands = {
        "detect": ["detect", str(image), "--checkpoint", str(checkpoint), "--out",
                   str(tmp_path / "d"), "--workers", "0"],
        "eval": ["eval", "--checkpoint", str(checkpoint), "--images", "1"],
        "train": ["train", "--max-steps", "1", "--out", str(tmp_path / "t")],
    }
    for command, argv in commands.items():
        assert main(argv + [option, value]) == 2, command
        err = capsys.readouterr().err
        assert f"{name} must be in [0, 1], got {float(value)}" in err, (command, err)
        assert "Traceback" not in err


def test_a_checkpoint_with_a_bad_threshold_is_refused_by_detect_as_by_eval(tmp_path, capsys):
    checkpoint = save_checkpoint(tmp_path / "m.pt", build_model("resnet18", inner_channels=32),
                                 config={"thresh": -3.0})
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.full((40, 60, 3), 255, np.uint8))
    for argv in (["detect", str(image), "--checkpoint", str(checkpoint), "--out",
                  str(tmp_path / "d"), "--workers", "0"],
                 ["eval", "--checkpoint", str(checkpoint), "--images", "1"]):
        assert main(argv) == 2
        assert "thresh must be in [0, 1], got -3.0" in capsys.readouterr().err
