"""dbnet-fast eval --model (pretrained detectors through DBPredictor), the
post-processing sweep, the exact --size resize and MhLiao/DB's presets, on a few
synthetic images the tests write in ICDAR 2015's original layout."""

from __future__ import annotations

import importlib
import json

import cv2
import numpy as np
import pytest
import torch

from dbnet_fast.cli import main
from dbnet_fast.data import EvalTransform, SynthConfig, render_sample
from dbnet_fast.metrics import evaluate_detections
from dbnet_fast.model.paddle import is_installed

evaluation = importlib.import_module("dbnet_fast.engine.evaluate")  # the package exports a function
needs_v4 = pytest.mark.skipif(not is_installed("ppocr-v4"),
                              reason="rapidocr-onnxruntime is not installed (make build)")
SIZE = (160, 256)  # small images: the model runs fast on a busy 2-core machine


@pytest.fixture(scope="module")
def icdar(tmp_path_factory):
    """3 synthetic images (straight words only) as ICDAR 2015's test split:
    ch4_test_images/img_N.png, Challenge4_Test_Task1_GT/gt_img_N.txt (integer quads,
    '###' for don't-care). Returns (root, image paths, ground truth per image)."""
    root = tmp_path_factory.mktemp("icdar2015")
    images, gts = root / "ch4_test_images", root / "Challenge4_Test_Task1_GT"
    images.mkdir()
    gts.mkdir()
    config = SynthConfig(curved_prob=0.0, text_height=(16.0, 36.0), clutter=(0, 2))
    paths, truths = [], []
    for i in range(1, 4):
        image, polygons, ignore, texts = render_sample(100 + i, SIZE, config)
        quads = [np.round(np.asarray(p, np.float64)) for p in polygons]
        lines = [",".join(str(int(v)) for v in q.reshape(-1)) + "," + ("###" if ig else text)
                 for q, ig, text in zip(quads, ignore, texts)]
        (gts / f"gt_img_{i}.txt").write_text("\n".join(lines) + "\n")
        path = images / f"img_{i}.png"
        assert cv2.imwrite(str(path), image)
        paths.append(path)
        truths.append([(q, bool(ig)) for q, ig in zip(quads, ignore)])
    return root, paths, truths


def _eval(argv, out) -> dict:
    assert main(["eval", *argv, "--no-progress", "--out", str(out)]) == 0
    return json.loads(out.read_text())


COUNTS = ("precision", "recall", "hmean", "matched", "gt_care", "det_care")


@needs_v4
def test_eval_model_equals_the_predictor_scored_in_the_test(icdar, tmp_path):
    from dbnet_fast.model.paddle.zoo import MODELS
    from dbnet_fast.predict import DBPredictor

    root, paths, truths = icdar
    result = _eval(["--model", "ppocr-v4", "--data", f"icdar2015:{root}"], tmp_path / "e.json")
    found = DBPredictor("ppocr-v4", device="cpu", batch_size=1)(paths)
    expected = evaluate_detections([d.boxes.numpy() for d in found], truths)
    assert expected["hmean"] > 0.3  # the detector finds the words: the comparison means something
    assert {k: result[k] for k in COUNTS} == {k: expected[k] for k in COUNTS}
    settings = MODELS["ppocr-v4"].settings
    assert result["resize"] == {k: settings[k] for k in ("limit_side_len", "limit_type")}
    assert all(result["postprocess"][k] == settings[k]
               for k in ("thresh", "box_thresh", "unclip_ratio"))
    assert (result["model"], result["split"], result["images"]) == ("ppocr-v4", "test", 3)
    assert result["protocol"]["invalid"] == "skip" and result["images_per_s"] > 0
    assert "sweep" not in result


@needs_v4
def test_sweep_equals_separate_runs(icdar, tmp_path, capsys):
    root = icdar[0]
    data = ["--model", "ppocr-v4", "--data", f"icdar2015:{root}"]
    swept = _eval([*data, "--sweep-box-thresh", "0.3,0.8", "--sweep-unclip", "1.5,2.5"],
                  tmp_path / "sweep.json")
    assert "best of 4 settings" in capsys.readouterr().out
    rows = swept["sweep"]
    assert [(r["box_thresh"], r["unclip_ratio"]) for r in rows] == [
        (0.3, 1.5), (0.3, 2.5), (0.8, 1.5), (0.8, 2.5)]
    assert len({(r["matched"], r["det_care"]) for r in rows}) > 1  # the settings matter here
    for i, row in enumerate(rows):
        alone = _eval([*data, "--box-thresh", str(row["box_thresh"]), "--unclip-ratio",
                       str(row["unclip_ratio"])], tmp_path / f"{i}.json")
        assert {k: alone[k] for k in COUNTS} == {k: row[k] for k in COUNTS}
    best = max(rows, key=lambda r: r["hmean"])
    assert swept["best"] == best and swept["hmean"] == best["hmean"]
    assert swept["postprocess"]["box_thresh"] == best["box_thresh"]


@needs_v4
def test_size_is_the_exact_model_input_and_a_preset_sets_it(icdar, tmp_path, monkeypatch):
    from dbnet_fast.predict import DBPredictor

    seen = []
    forward = DBPredictor._forward
    monkeypatch.setattr(DBPredictor, "_forward",
                        lambda self, images: seen.append(tuple(images.shape)) or
                        forward(self, images))
    data = ["--model", "ppocr-v4", "--data", f"icdar2015:{icdar[0]}", "--images", "2"]
    result = _eval([*data, "--size", "192x96"], tmp_path / "size.json")
    assert seen == [(1, 3, 96, 192)] * 2 and result["resize"] == {"size": [96, 192]}
    seen.clear()
    result = _eval([*data, "--preset", "db-r18", "--unclip-ratio", "1.7"], tmp_path / "p.json")
    assert seen == [(1, 3, 736, 1280)] * 2 and result["preset"] == "db-r18"
    post = result["postprocess"]  # the preset's, but for the explicit setting
    assert (post["thresh"], post["box_thresh"], post["unclip_ratio"]) == (0.3, 0.55, 1.7)
    assert not post["use_dilation"] and post["score_mode"] == "fast" and post["output"] == "quad"


def test_checkpoint_size_and_sweep(icdar, tmp_path, monkeypatch):
    """A checkpoint takes --size and the sweep too (through the training's evaluation)."""
    from dbnet_fast.engine import build_model, save_checkpoint

    root = icdar[0]
    torch.manual_seed(0)
    checkpoint = save_checkpoint(tmp_path / "last.pt", build_model("resnet18", inner_channels=32),
                                 config={"data": f"icdar2015:{root}"})
    seen = []
    maps = evaluation.batch_maps
    monkeypatch.setattr(evaluation, "batch_maps", lambda model, batch, *a: seen.append(
        tuple(batch["image"].shape)) or maps(model, batch, *a))
    args = ["--checkpoint", str(checkpoint), "--size", "128x96"]
    swept = _eval([*args, "--sweep-thresh", "0.4,0.6"], tmp_path / "sweep.json")
    assert seen == [(1, 3, 96, 128)] * 3 and swept["resize"]["size"] == [96, 128]
    assert swept["gt_care"] == sum(not ig for truth in icdar[2] for _, ig in truth)
    for row in swept["sweep"]:
        alone = _eval([*args, "--thresh", str(row["thresh"])], tmp_path / "alone.json")
        assert {k: alone[k] for k in COUNTS} == {k: row[k] for k in COUNTS}


def test_exact_size_in_the_python_api(icdar):
    image = cv2.imread(str(icdar[1][0]))
    sample = EvalTransform(size=(96, 128), targets=False)(image)
    assert tuple(sample["image"].shape) == (3, 96, 128)
    assert sample["scale"].tolist() == pytest.approx([128 / SIZE[1], 96 / SIZE[0]])
    with pytest.raises(ValueError, match="excludes short_side"):
        EvalTransform(size=(96, 128), short_side=96)
    for bad in ((96, 100), (0, 128), (-32, 128), (96,), "96x128", (96.0, 128)):
        with pytest.raises(ValueError, match="size must be"):
            EvalTransform(size=bad)


@needs_v4
def test_predictor_size_checked(icdar):
    from dbnet_fast.predict import DBPredictor

    predictor = DBPredictor("ppocr-v4", device="cpu", size=(64, 96))
    assert tuple(predictor.prepare(str(icdar[1][0])).tensor.shape) == (3, 64, 96)
    with pytest.raises(ValueError, match="DBPredictor: size must be"):
        DBPredictor("ppocr-v4", device="cpu", size=(64, 90))
    with pytest.raises(ValueError, match="excludes tiles"):
        DBPredictor("ppocr-v4", device="cpu", size=(64, 96), tiles=256)


@needs_v4
@pytest.mark.parametrize("options", [dict(pad_to=64, batch_size=2), dict(tiles=128)])
def test_maps_post_processed_give_what_run_gives(icdar, options):
    """Padded batches (cropped back) and tiles (stitched) alike."""
    from dbnet_fast.predict import DBPredictor

    predictor = DBPredictor("ppocr-v4", device="cpu", **options)
    image = cv2.imread(str(icdar[1][0]))
    prepared = [predictor.prepare(image), predictor.prepare(image[:100, :200])]
    found = predictor.run(prepared)
    assert sum(len(d.boxes) for d in found) > 0
    for (prob, size), item, expected in zip(predictor.maps(prepared), prepared, found):
        assert size == item.size and tuple(prob.shape) == tuple(item.tensor.shape[1:])
        got = predictor.postprocessor(prob[None], sizes=[size])[0]
        torch.testing.assert_close(got.boxes, expected.boxes, rtol=0, atol=0)
        torch.testing.assert_close(got.scores, expected.scores, rtol=0, atol=0)


@pytest.mark.parametrize("argv, message", [
    (["--model", "ppocr-v9"], "argument --model: invalid choice: 'ppocr-v9'"),
    (["--model", "ppocr-v4", "--checkpoint", "x.pt"], "not allowed with argument"),
    (["--model", "ppocr-v4", "--sweep-box-thresh", "0.5,abc"], "argument --sweep-box-thresh"),
    (["--model", "ppocr-v4", "--sweep-box-thresh", "0.5,0.5"], "argument --sweep-box-thresh"),
    (["--model", "ppocr-v4", "--sweep-thresh", ""], "argument --sweep-thresh"),
    (["--model", "ppocr-v4", "--sweep-unclip", "1,nan"], "argument --sweep-unclip"),
    (["--model", "ppocr-v4", "--box-thresh", "0.5", "--sweep-box-thresh", "0.5,0.6"],
     "not allowed with argument"),
    (["--model", "ppocr-v4", "--size", "1280x730"], "argument --size: expected WIDTHxHEIGHT"),
    (["--model", "ppocr-v4", "--size", "0x736"], "argument --size"),
    (["--model", "ppocr-v4", "--size", "-1280x736"], "argument --size"),
    (["--model", "ppocr-v4", "--size", "1280"], "argument --size"),
    (["--model", "ppocr-v4", "--preset", "db-r101"], "argument --preset: invalid choice"),
])
def test_bad_arguments_refused_by_name(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["eval", *argv])
    assert stop.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--model", "ppocr-v4"], "--model needs --data"),
    (["--model", "ppocr-v4", "--data", "synthetic", "--short-side", "736"], "--short-side"),
    (["--checkpoint", "x.pt", "--limit-side-len", "960"], "--limit-side-len"),
    (["--model", "ppocr-v4", "--data", "synthetic", "--size", "1280x736", "--limit-type", "min"],
     "excludes limit_side_len"),
    (["--model", "ppocr-v4", "--data", "synthetic", "--sweep-box-thresh", "0.5,1.5"],
     "box_thresh must be"),
    (["--model", "ppocr-v4", "--data", "synthetic", "--split", "train"], "split must be 'test'"),
])
def test_bad_combinations_refused_by_name(argv, message, capsys, tmp_path):
    assert main(["eval", *argv, "--out", str(tmp_path / "e.json")]) == 2
    assert message in capsys.readouterr().err


def test_python_api_checks():
    from dbnet_fast.postprocess import DBPostProcessor

    with pytest.raises(ValueError, match="model must be one of"):
        evaluation.evaluate_model("ppocr-v9", "synthetic")
    with pytest.raises(ValueError, match="preset must be one of"):
        evaluation.evaluate_model("ppocr-v4", "synthetic", preset="db-r101")
    base = DBPostProcessor()
    grid = evaluation.sweep_grid(base, {"thresh": [0.2, 0.3], "box_thresh": [0.5, 0.6, 0.7]})
    assert [(p.thresh, p.box_thresh) for p in grid] == [
        (t, b) for t in (0.2, 0.3) for b in (0.5, 0.6, 0.7)]
    assert evaluation.sweep_grid(base, None) == [base]
    for sweep, message in (({"min_size": [1.0]}, "unknown settings"),
                           ({"thresh": []}, "non-empty"), ({"thresh": 0.3}, "non-empty"),
                           ({"thresh": [0.3, 0.3]}, "repeats"),
                           ({"unclip_ratio": [0.0]}, "unclip_ratio must be")):
        with pytest.raises(ValueError, match=message):
            evaluation.sweep_grid(base, sweep)
