"""``dbnet-fast check-data`` and ``detect --labels`` through the command line: the
summary's counts and problems, the exit code, the pictures; pre-labels read back by
the loaders give the detections."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from dbnet_fast.cli import main
from dbnet_fast.data import ICDAR2015Dataset
from dbnet_fast.data.formats import open_dataset
from dbnet_fast.data.synthetic import SynthConfig, render_sample
from dbnet_fast.engine.prelabel import write_labels
from test_formats import write_labelme, write_paddleocr


def check(capsys, *args) -> tuple[int, dict]:
    code = main(["check-data", *map(str, args), "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_clean_dataset_passes(tmp_path, capsys):
    file, samples = write_paddleocr(tmp_path)
    code, summary = check(capsys, "--data", f"paddleocr:{file}")
    assert code == 0 and summary["ok"] and summary["problems"] == []
    assert summary["images"] == len(samples)
    assert summary["polygons"] == sum(len(s[1]) for s in samples)
    assert summary["dont_care"] == sum(sum(s[2]) for s in samples)
    for name in ("trained_share", "text_share"):
        spread = summary[name]
        assert 0 <= spread["min"] <= spread["median"] <= spread["max"] <= 1
    assert summary["text_share"]["min"] > 0  # every image has care text


def write_image(folder: Path, name: str, height=100, width=200) -> None:
    cv2.imwrite(str(folder / name), np.full((height, width, 3), 255, np.uint8))


def words(*polygons, ignore=()) -> str:
    return json.dumps([{"transcription": "###" if i in ignore else "w", "points": p}
                       for i, p in enumerate(polygons)])


def test_problems_and_warnings_are_found_and_named(tmp_path, capsys):
    for name in ("a.png", "b.png", "c.png", "d.png"):
        write_image(tmp_path, name)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    big = [[10, 10], [150, 10], [150, 60], [10, 60]]
    lines = [
        f"a.png\t{words(big)}",                                          # 1 fine
        f"missing.png\t{words(big)}",                                    # 2 missing image
        "b.png\t[{\"points\": [[1, 2]]",                                 # 3 malformed JSON
        f"broken.png\t{words(big)}",                                     # 4 unreadable
        f"c.png\t{words([[10, 10], [90, 10], [10, 60], [90, 60]], [[0, 0], [1, 0], [1, 1]])}",
        f"d.png\t{words([[-3, 5], [60, 5], [60, 40], [-3, 40]], [[5, 5], [5, 5], [9, 9]])}",
        f"e.png\t{words([[400, 10], [500, 10], [500, 60]])}",            # 7 far outside
    ]
    write_image(tmp_path, "e.png")
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    code, summary = check(capsys, "--data", f"paddleocr:{tmp_path / 'train.txt'}")
    assert code == 1 and not summary["ok"]
    problems = {p["where"].rsplit("/", 1)[-1]: p["message"] for p in summary["problems"]}
    assert "not found" in problems["train.txt:2"]
    assert "not valid JSON" in problems["train.txt:3"]
    assert "outside" in problems["train.txt:7"]
    assert any(w.endswith("broken.png") for w in problems)
    assert summary["counts"]["left_out"] == 4 and len(problems) == 4
    kinds = {p["where"].rsplit("/", 1)[-1]: p["kind"] for p in summary["problems"]}
    assert kinds == {"train.txt:2": "missing image", "train.txt:3": "malformed record",
                     "train.txt:7": "malformed record", "broken.png": "unreadable image"}
    # what loads: a, c, d
    assert summary["images"] == 3 and summary["polygons"] == 4
    counts = summary["counts"]
    assert counts["self_intersecting"] == 1  # c's bow-tie
    assert counts["degenerate"] == 1         # d's repeated point: dropped by the loader
    assert counts["outside"] == 1            # d's x = -3
    assert counts["tiny"] == 1               # c's one-pixel triangle at 640 / 200 = 3.2x
    text = main(["check-data", "--data", f"paddleocr:{tmp_path / 'train.txt'}"])
    out = capsys.readouterr().out
    assert text == 1 and "PROBLEM missing image" in out and "4 problems" in out


def test_tiny_depends_on_the_training_size(tmp_path, capsys):
    write_image(tmp_path, "a.png", 1000, 1000)
    (tmp_path / "t.txt").write_text(f"a.png\t{words([[10, 10], [200, 10], [200, 20], [10, 20]])}")
    _, small = check(capsys, "--data", f"paddleocr:{tmp_path / 't.txt'}", "--image-size", 320)
    _, large = check(capsys, "--data", f"paddleocr:{tmp_path / 't.txt'}", "--image-size", 1024)
    assert small["counts"]["tiny"] == 1 and large["counts"]["tiny"] == 0  # 10 px x 0.32 / 1.024
    assert small["ok"] and large["ok"]  # a warning, not a problem


def test_dont_care_only_and_whole_file_problems(tmp_path, capsys):
    write_image(tmp_path, "a.png")
    most = [[0, 0], [190, 0], [190, 99], [0, 99]]
    (tmp_path / "t.txt").write_text(f"a.png\t{words(most, ignore=(0,))}")
    code, summary = check(capsys, "--data", f"paddleocr:{tmp_path / 't.txt'}")
    assert code == 1 and summary["problems"][0]["kind"] == "no care text"
    assert summary["counts"]["low_trained_share"] == 1 and summary["trained_share"]["max"] < 0.1
    (tmp_path / "m.json").write_text("{\"data_list\": [")
    code, summary = check(capsys, "--data", f"mmocr:{tmp_path / 'm.json'}")
    assert code == 1 and summary["images"] == 0
    assert summary["problems"][0]["kind"] == "labels" and "not valid JSON" in \
        summary["problems"][0]["message"]


def test_pictures_show_the_polygons(tmp_path, capsys):
    folder, samples = write_labelme(tmp_path / "data")
    code, summary = check(capsys, "--data", f"labelme:{folder}", "--pictures", tmp_path / "pics",
                          "--picture-count", 2)
    assert code == 0 and len(summary["pictures"]) == 2
    for picture in summary["pictures"]:
        image = cv2.imread(picture)
        name = Path(picture).stem.split("_", 1)[1]
        original = cv2.imread(str(folder / f"{name}.png"))
        assert image.shape == original.shape
        changed = (image != original).any(axis=2)
        sample = next(s for s in samples if s[0].stem == name)
        x, y = np.round(sample[1][0][0]).astype(int)  # a corner of the first polygon is drawn
        assert changed[max(0, y - 1):y + 2, max(0, x - 1):x + 2].any()


def test_bad_arguments(tmp_path, capsys):
    assert main(["check-data", "--data", "synthetic"]) == 2
    assert "generated, not read" in capsys.readouterr().err
    assert main(["check-data", "--data", f"labelme:{tmp_path / 'none'}"]) == 2
    assert "does not exist" in capsys.readouterr().err


# --------------------------------------------------------------------- pre-labelling round trips


@pytest.fixture(scope="module")
def detected(tmp_path_factory):
    """Synthetic images detected by PP-OCRv4 (``detect --labels paddleocr``), and the
    same detections written in the other label formats."""
    root = tmp_path_factory.mktemp("prelabel")
    images = root / "photos"
    images.mkdir()
    for i in range(3):
        image = render_sample(40 + i, size=(256, 320), config=SynthConfig.easy())[0]
        cv2.imwrite(str(images / f"p{i}.png"), image)
    out = root / "detect"
    code = main(["detect", str(images), "--model", "ppocr-v4", "--out", str(out),
                 "--labels", "paddleocr", "--no-pictures", "--workers", "0", "--device", "cpu",
                 "--no-progress"])
    assert code == 0
    records = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("p*.json"))}
    assert len(records) == 3 and sum(r["count"] for r in records.values()) > 0
    # the other formats from the same records, as detect writes them (one model load)
    outs = {"paddleocr": out}
    for fmt in ("mmocr", "icdar2015"):
        outs[fmt] = root / fmt
        write_labels(fmt, list(records.values()), outs[fmt])
    return images, outs, records


def _by_image(dataset) -> dict:
    return {Path(p).stem: a for p, a in zip(dataset.image_paths, dataset.annotations)}


def test_paddleocr_label_txt_opens_from_the_image_folder(detected):
    images, outs, records = detected
    label = outs["paddleocr"] / "Label.txt"
    assert all(line.startswith("photos/p") for line in label.read_text().splitlines())
    shutil.copy(label, images / "Label.txt")  # where PPOCRLabel reads it
    try:
        loaded = _by_image(open_dataset("paddleocr", images / "Label.txt"))
    finally:
        (images / "Label.txt").unlink()
    for stem, record in records.items():
        want = [np.round(np.asarray(d["points"])) for d in record["detections"]]
        got = loaded[stem]
        assert [np.asarray(p, np.float64).tolist() for p in got.polygons] == \
            [w.tolist() for w in want if len(np.unique(w, axis=0)) >= 3]
        assert not any(got.ignore) and all(t == "" for t in got.texts)


def test_mmocr_prelabels_read_back(detected):
    _, outs, records = detected
    loaded = _by_image(open_dataset("mmocr", outs["mmocr"] / "textdet_prelabel.json"))
    for stem, record in records.items():
        want = [np.asarray(d["points"], np.float32) for d in record["detections"]]
        assert len(loaded[stem].polygons) == len(want)
        for got, w in zip(loaded[stem].polygons, want):
            assert np.array_equal(got, w)


def test_icdar2015_prelabels_read_back(detected):
    images, outs, records = detected
    root = outs["icdar2015"]
    shutil.copytree(images, root / "images", dirs_exist_ok=True)
    loaded = _by_image(ICDAR2015Dataset(root, "train"))
    for stem, record in records.items():
        want = [np.round(np.asarray(d["points"])) for d in record["detections"]]
        assert [p.tolist() for p in loaded[stem].polygons] == [w.tolist() for w in want]


def test_labels_option_is_checked(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["detect", str(tmp_path), "--model", "ppocr-v4", "--labels", "yolo"])
    assert "invalid choice" in capsys.readouterr().err


# --------------------------------------------------------------------- train and eval on own data


def test_train_and_eval_on_label_formats(tmp_path, capsys):
    from test_formats import write_mmocr

    train_file, _ = write_paddleocr(tmp_path / "train")
    test_file, test_samples = write_mmocr(tmp_path / "test")
    tiny = ["--image-size", "64", "--batch-size", "2", "--max-steps", "1", "--inner-channels",
            "32", "--workers", "0", "--no-progress"]
    assert main(["train", "--data", f"paddleocr:{train_file}", *tiny,
                 "--out", str(tmp_path / "no")]) == 2
    assert "--eval-data FORMAT:PATH" in capsys.readouterr().err
    with train_file.open("a") as f:
        f.write("imgs/img_0.png [no tab]\n")  # line 4
    both = ["--data", f"paddleocr:{train_file}", "--eval-data", f"mmocr:{test_file}", *tiny]
    assert main(["train", *both, "--out", str(tmp_path / "bad")]) == 2
    assert "train.txt:4: expected '<image path><TAB><JSON list>'" in capsys.readouterr().err
    out = tmp_path / "run"
    assert main(["train", *both, "--skip-bad", "--out", str(out)]) == 0
    assert "left out 1 unreadable images or bad records: " in capsys.readouterr().out
    result = json.loads((out / "eval.json").read_text())
    assert result["data"] == f"mmocr:{test_file}" and result["images"] == len(test_samples)
    assert result["protocol"]["invalid"] == "skip" and result["protocol"]["iou_threshold"] == 0.5
    assert result["gt_care"] == sum(len(s[1]) - sum(s[2]) for s in test_samples)
    # eval: the run's evaluation data by default; --invalid repair is written down
    assert main(["eval", "--checkpoint", str(out / "last.pt"), "--invalid", "repair",
                 "--short-side", "128", "--no-progress", "--out", str(tmp_path / "e.json")]) == 0
    again = json.loads((tmp_path / "e.json").read_text())
    assert again["data"] == result["data"] and again["protocol"]["invalid"] == "repair"
    assert again["gt_care"] == result["gt_care"]
    # a run without evaluation data: eval asks for it rather than score the training images
    import torch

    state = torch.load(out / "last.pt", weights_only=True)
    state["config"]["eval_data"] = None
    torch.save(state, tmp_path / "bare.pt")
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(tmp_path / "bare.pt"), "--no-progress"]) == 2
    assert "holds no test split" in capsys.readouterr().err
