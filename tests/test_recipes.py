"""Named recipes (``train --recipe db-ic15-r18``), the global batch, and ImageNet weights used
when present and loudly missed when not (issue 23, items 1 and 2)."""

from __future__ import annotations

import json

import pytest
import torch

import dbnet_fast.engine
from dbnet_fast.cli import main
from dbnet_fast.engine import TrainConfig, train
from dbnet_fast.engine.evaluate import evaluate_checkpoint
from dbnet_fast.engine.recipes import RECIPES
from dbnet_fast.engine.train import per_process_batch
from dbnet_fast.model import weights


def test_recipe_is_mhliao_ic15_r18_and_overrides_win():
    c = TrainConfig.from_recipe("db-ic15-r18", data="synthetic")
    assert (c.recipe, c.arch, c.neck, c.dcn, c.pretrained_backbone) == (
        "db-ic15-r18", "resnet18", "fpn", True, "if_available")
    assert (c.optimizer, c.lr, c.momentum, c.weight_decay, c.power, c.epochs) == (
        "sgd", 0.007, 0.9, 1e-4, 0.9, 1200)
    assert (c.global_batch_size, c.image_size, c.crop_sampler, c.augment) == (
        16, 640, "mhliao", "full")
    assert (c.shrink_ratio, c.thresh_min, c.thresh_max) == (0.4, 0.3, 0.7)
    assert (c.eval_size, c.thresh, c.box_thresh, c.unclip_ratio) == ((736, 1280), 0.3, 0.55, 1.5)
    c = TrainConfig.from_recipe("db-ic15-r18", data="synthetic", lr=0.01, dcn=False)
    assert (c.lr, c.dcn, c.momentum) == (0.01, False, 0.9)
    # a per-process batch replaces the recipe's global one
    c = TrainConfig.from_recipe("db-ic15-r18", data="synthetic", batch_size=4)
    assert (c.batch_size, c.global_batch_size) == (4, None)
    with pytest.raises(ValueError, match="recipe must be one of"):
        TrainConfig.from_recipe("db-ic15-r50", data="synthetic")
    with pytest.raises(ValueError, match="recipe must be one of"):
        TrainConfig(data="synthetic", epochs=1, recipe="nope")
    assert all(r.differences for r in RECIPES.values())


def test_global_batch_is_divided_by_the_world_size():
    c = TrainConfig(data="synthetic", epochs=1, global_batch_size=16)
    assert [per_process_batch(c, w) for w in (1, 2, 4, 8)] == [16, 8, 4, 2]
    with pytest.raises(ValueError, match="global_batch_size 16 is not divisible by the 3"):
        per_process_batch(c, 3)
    assert per_process_batch(TrainConfig(data="synthetic", epochs=1, batch_size=5), 3) == 5
    with pytest.raises(ValueError, match="global_batch_size must be a positive int"):
        TrainConfig(data="synthetic", epochs=1, global_batch_size=0)


@pytest.fixture
def captured(monkeypatch):
    """The TrainConfig `dbnet-fast train` builds, without training."""
    seen = []

    def fake_train(config):
        seen.append(config)
        return {"eval": None}

    monkeypatch.setattr(dbnet_fast.engine, "train", fake_train)
    return seen


def test_cli_recipe_with_explicit_flags(captured, tmp_path):
    out = str(tmp_path / "run")
    # --box-thresh 0.6 is also argparse's default: given explicitly, it still wins
    assert main(["train", "--recipe", "db-ic15-r18", "--out", out, "--box-thresh", "0.6",
                 "--no-dcn", "--workers", "0", "--max-steps", "5"]) == 0
    c = captured[-1]
    assert (c.recipe, c.box_thresh, c.dcn, c.num_workers, c.max_steps) == (
        "db-ic15-r18", 0.6, False, 0, 5)
    assert (c.lr, c.epochs, c.global_batch_size, c.crop_sampler, c.eval_size) == (
        0.007, 1200, 16, "mhliao", (736, 1280))
    assert c.out == out and c.thresh == 0.3 and c.unclip_ratio == 1.5
    assert main(["train", "--recipe", "db-ic15-r18", "--batch-size", "4"]) == 0
    assert (captured[-1].batch_size, captured[-1].global_batch_size) == (4, None)
    # without a recipe: the flags alone, and the new ones reach the config
    assert main(["train", "--epochs", "1", "--global-batch-size", "8", "--crop-sampler",
                 "mhliao", "--eval-size", "640x352"]) == 0
    c = captured[-1]
    assert (c.recipe, c.dcn, c.global_batch_size, c.crop_sampler, c.eval_size) == (
        None, False, 8, "mhliao", (352, 640))


def test_cli_refuses_both_batch_flags(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--epochs", "1", "--batch-size", "4", "--global-batch-size", "8"])
    assert "not allowed with argument" in capsys.readouterr().err


def tiny_recipe(out, **changes):
    settings = dict(data="synthetic", image_size=64, global_batch_size=2, inner_channels=32,
                    epochs=None, max_steps=1, synth_images=4, num_workers=0, evaluate=False,
                    progress=False, log_every=1, out=str(out))
    settings.update(changes)
    return TrainConfig.from_recipe("db-ic15-r18", **settings)


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """An empty torch hub cache and no network."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def no_network(url, path, timeout):
        raise OSError("no network in this test")

    monkeypatch.setattr(weights, "_download", no_network)
    return tmp_path / "hub" / "checkpoints"


def test_recipe_without_imagenet_weights_says_so(tmp_path, empty_hub):
    with pytest.warns(UserWarning, match="RANDOM weights"):
        summary = train(tiny_recipe(tmp_path / "run", evaluate=True, eval_images=2,
                                    eval_size=(64, 96)))
    # the final evaluation at the exact size, with the recipe's post-processing
    result = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert result["size"] == [64, 96] and result["postprocess"]["box_thresh"] == 0.55
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["recipe"] == "db-ic15-r18" and saved["pretrained_backbone"] == "if_available"
    assert saved["pretrained_backbone_loaded"] is False
    assert "no ImageNet weights" in saved["warnings"][0] and "no network" in saved["warnings"][0]
    assert (saved["batch_size"], saved["global_batch_size"], saved["crop_sampler"]) == (
        2, 2, "mhliao")
    assert saved["dcn"] is True and saved["eval_size"] == [64, 96] and summary["step"] == 1
    # `dbnet-fast eval` of the checkpoint resizes as the run did, unless told otherwise
    again = evaluate_checkpoint(tmp_path / "run" / "last.pt", out=tmp_path / "again.json",
                                images=2, device="cpu")
    assert again["resize"]["size"] == [64, 96] and again["hmean"] == result["hmean"]
    other = evaluate_checkpoint(tmp_path / "run" / "last.pt", out=tmp_path / "other.json",
                                images=2, device="cpu", short_side=64)
    assert other["resize"] == {"size": None, "short_side": 64, "max_side": None}
    # asked for explicitly, missing weights stop the run instead
    with pytest.raises(RuntimeError, match="could not download"):
        train(tiny_recipe(tmp_path / "strict", pretrained_backbone=True))


def test_recipe_uses_imagenet_weights_when_cached(tmp_path, empty_hub):
    import torchvision

    reference = torchvision.models.resnet18(weights=None).state_dict()
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    empty_hub.mkdir(parents=True)
    torch.save(reference, empty_hub / url.rsplit("/", 1)[1])
    summary = train(tiny_recipe(tmp_path / "run", lr=0.0))
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["pretrained_backbone_loaded"] is True and "warnings" not in saved
    backbone = summary["model"].backbone
    # lr 0 leaves the loaded weights as they were (BatchNorm running stats do move)
    torch.testing.assert_close(backbone.stem[0].weight, reference["conv1.weight"])
    torch.testing.assert_close(backbone.layer3[0].conv2.weight, reference["layer3.0.conv2.weight"])
