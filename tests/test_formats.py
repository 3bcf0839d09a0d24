"""Label formats (dbnet_fast.data.formats): each loader gives back the exact polygons
and don't-care flags of small datasets written in its format from synthetic images;
malformed records are errors naming file and line/record, or skipped and counted."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from dbnet_fast.data.formats import (
    FORMATS,
    LabelError,
    PaddleOCRDataset,
    image_size,
    open_dataset,
)
from dbnet_fast.data.synthetic import SynthConfig, render_sample

SIZES = [(96, 128), (128, 96), (112, 112)]
MIXED = SynthConfig(ignore_prob=0.4)  # don't-care words in most images


def synthetic_images(folder: Path, count: int = 3, seed: int = 0, suffix: str = ".png"):
    """Writes ``count`` synthetic images; returns [(path, polygons, ignore, texts)]."""
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for i in range(count):
        image, polygons, ignore, texts = render_sample(seed + i, size=SIZES[i % len(SIZES)],
                                                       config=MIXED)
        path = folder / f"img_{i}{suffix}"
        cv2.imwrite(str(path), image)
        samples.append((path, [np.asarray(p, np.float32) for p in polygons], list(ignore),
                        list(texts)))
    assert any(any(s[2]) for s in samples) and any(not all(s[2]) for s in samples)
    return samples


def flat(polygon) -> list[float]:
    return [float(v) for v in np.asarray(polygon).reshape(-1)]


def pairs(polygon) -> list[list[float]]:
    return [[float(x), float(y)] for x, y in np.asarray(polygon)]


# --------------------------------------------------------------------- writers, one per format


def write_paddleocr(root: Path):
    samples = synthetic_images(root / "imgs")
    lines = []
    for i, (path, polygons, ignore, texts) in enumerate(samples):
        words = []
        for j, (p, ig, t) in enumerate(zip(polygons, ignore, texts)):
            word = {"transcription": t if not ig else ("###" if j % 2 else "*"),
                    "points": pairs(p)}
            if i == 0 and not ig:  # PPOCRLabel's flag, on a care word: turns it don't-care
                word["difficult"] = j == 0
                ignore[j] = j == 0
            words.append(word)
        lines.append(f"imgs/{path.name}\t{json.dumps(words)}")
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    return root / "train.txt", samples


def write_mmocr(root: Path):
    samples = synthetic_images(root / "textdet_imgs" / "train")
    data_list = []
    for path, polygons, ignore, _ in samples:
        h, w = cv2.imread(str(path)).shape[:2]
        instances = [{"polygon": flat(p), "bbox": [*map(float, p.min(0)), *map(float, p.max(0))],
                      "bbox_label": 0, "ignore": bool(ig)} for p, ig in zip(polygons, ignore)]
        data_list.append({"img_path": f"textdet_imgs/train/{path.name}", "height": h, "width": w,
                          "seg_map": "", "instances": instances})
    file = root / "textdet_train.json"
    file.write_text(json.dumps({"metainfo": {"dataset_type": "TextDetDataset",
                                             "task_name": "textdet",
                                             "category": [{"id": 0, "name": "text"}]},
                                "data_list": data_list}))
    return file, samples


def write_doctr(root: Path):
    samples = synthetic_images(root / "images")
    labels = {}
    for k, (path, polygons, ignore, _) in enumerate(samples):
        h, w = cv2.imread(str(path)).shape[:2]
        labels[path.name] = {"img_dimensions": [h, w] if k % 2 else [w, h], "img_hash": "x",
                             "polygons": [pairs(p) for p in polygons]}
        ignore[:] = [False] * len(ignore)  # docTR has no don't-care
    (root / "labels.json").write_text(json.dumps(labels))
    return root, samples


def write_coco_style(root: Path, kind: str):
    samples = synthetic_images(root / ("train2014" if kind == "cocotext" else "train_images"),
                               suffix=".jpg")
    imgs, anns = {}, {}
    for i, (path, polygons, ignore, texts) in enumerate(samples):
        h, w = cv2.imread(str(path)).shape[:2]
        key = str(100 + i) if kind == "cocotext" else f"id{i}"
        name = path.name if kind == "cocotext" else f"train/{path.name}"
        imgs[key] = {"id": int(key) if kind == "cocotext" else key, "set": "train",
                     "width": w, "height": h, "file_name": name}
        for j, (p, ig, t) in enumerate(zip(polygons, ignore, texts)):
            ann = {"image_id": imgs[key]["id"], "id": f"{key}_{j}",
                   "bbox": [float(p[:, 0].min()), float(p[:, 1].min()),
                            float(np.ptp(p[:, 0])), float(np.ptp(p[:, 1]))]}
            if kind == "cocotext":
                ann.update(mask=flat(p), utf8_string=t, **{"class": "machine printed"},
                           legibility="illegible" if ig and j % 2 else "legible",
                           language="not english" if ig and not j % 2 else "english")
            else:
                ann.update(points=flat(p), utf8_string="." if ig else t)
            anns[f"{key}_{j}"] = ann
    if kind == "cocotext":  # a val image (the other split) that training must not read
        imgs["999"] = {"id": 999, "set": "val", "width": 10, "height": 10, "file_name": "none.jpg"}
    file = root / f"{kind}.json"
    file.write_text(json.dumps({"imgs": imgs, "anns": anns, "imgToAnns": {}}))
    return file, samples


def write_ctw1500(root: Path, split: str):
    samples = synthetic_images(root / "text_image", suffix=".jpg")
    labels = root / "labels"
    labels.mkdir()
    for path, polygons, ignore, texts in samples:
        texts = ["###" if ig else t.replace("#", "") or "w" for ig, t in zip(ignore, texts)]
        if split == "train":
            boxes = "".join(
                f'<box height="1" left="0" top="0" width="1"><label>{t}</label>'
                f'<segs>{",".join(repr(v) for v in flat(p))}</segs></box>'
                for p, t in zip(polygons, texts))
            (labels / f"{path.stem}.xml").write_text(
                f'<Annotations><image file="{path.name}">{boxes}</image></Annotations>')
        else:
            (labels / f"{path.stem}.txt").write_text("".join(
                f'{",".join(repr(v) for v in flat(p))},####{t}\n' for p, t in zip(polygons, texts)))
    return labels, samples


def write_labelme(root: Path):
    samples = synthetic_images(root)
    for path, polygons, ignore, _ in samples:
        h, w = cv2.imread(str(path)).shape[:2]
        shapes = [{"label": "###" if ig else "text", "points": pairs(p), "group_id": None,
                   "shape_type": "polygon", "flags": {}} for p, ig in zip(polygons, ignore)]
        (root / f"{path.stem}.json").write_text(json.dumps(
            {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": path.name,
             "imageData": None, "imageHeight": h, "imageWidth": w}))
    return root, samples


WRITERS = {"paddleocr": write_paddleocr, "mmocr": write_mmocr, "doctr": write_doctr,
           "cocotext": lambda root: write_coco_style(root, "cocotext"),
           "textocr": lambda root: write_coco_style(root, "textocr"),
           "ctw1500": lambda root: write_ctw1500(root, "train"),
           "labelme": write_labelme}


def assert_same(dataset, samples):
    assert len(dataset) == len(samples)
    by_name = {Path(p).name: i for i, p in enumerate(dataset.image_paths)}
    for path, polygons, ignore, _ in samples:
        a = dataset.annotations[by_name[path.name]]
        assert len(a.polygons) == len(polygons)
        for got, want in zip(a.polygons, polygons):
            assert got.dtype == np.float32 and np.array_equal(got, want)
        assert a.ignore == ignore
    assert dataset.skipped == [] and dataset.dropped == 0


@pytest.mark.parametrize("format", FORMATS)
def test_loader_gives_back_the_polygons_and_flags(tmp_path, format):
    path, samples = WRITERS[format](tmp_path)
    dataset = open_dataset(format, path, split="train")
    assert_same(dataset, samples)
    record = dataset.load(0)
    assert record["image"].shape[:2] == dataset.sizes[0]


def test_ctw1500_test_text_files_and_the_curve_format(tmp_path):
    labels, samples = write_ctw1500(tmp_path, "test")
    assert_same(open_dataset("ctw1500", labels, split="test"), samples)
    # the original 32-number lines: the circumscribed box, then 14 offsets from its corner
    (tmp_path / "curve").mkdir()
    cv2.imwrite(str(tmp_path / "curve" / "0001.jpg"), np.zeros((60, 80, 3), np.uint8))
    offsets = np.array([[i, (i * 7) % 5] for i in range(14)], np.float64)
    (tmp_path / "curve" / "0001.txt").write_text(
        ",".join(str(v) for v in [10, 20, 40, 30, *offsets.reshape(-1)]) + "\n")
    got = open_dataset("ctw1500", tmp_path / "curve").annotations[0].polygons[0]
    assert np.array_equal(got, (offsets + [10, 20]).astype(np.float32))


def test_cocotext_split_reads_only_that_set(tmp_path):
    file, samples = write_coco_style(tmp_path, "cocotext")
    with pytest.raises(LabelError, match=r"imgs\['999'\].*none.jpg.*not found"):
        open_dataset("cocotext", file, split="test")  # the val image is missing on disk
    assert len(open_dataset("cocotext", file, split="train")) == len(samples)


def test_paddleocr_ppocrlabel_layout_and_rectangles(tmp_path):
    folder = tmp_path / "my_images"
    cv2.imwrite(str(folder.mkdir() or folder / "a.jpg"), np.zeros((50, 70, 3), np.uint8))
    (folder / "Label.txt").write_text(
        'my_images/a.jpg\t[{"transcription": "", "points": [[1, 2], [30, 2], [30, 20], [1, 20]], '
        '"difficult": false}, {"transcription": "x", "points": [[5, 5], [9, 5], [9, 9], [7, 11], '
        '[5, 9]], "difficult": true}]\n')
    dataset = open_dataset("paddleocr", folder / "Label.txt")
    assert dataset.annotations[0].ignore == [False, True]
    assert [len(p) for p in dataset.annotations[0].polygons] == [4, 5]

    # LabelMe rectangles (two corners, any order) become their four corners
    data = {"shapes": [{"label": "t", "points": [[30, 20], [1, 2]], "shape_type": "rectangle"}],
            "imagePath": "a.jpg", "imageHeight": 50, "imageWidth": 70}
    (folder / "a.json").write_text(json.dumps(data))
    polygon = open_dataset("labelme", folder / "a.json").annotations[0].polygons[0]
    assert np.array_equal(polygon, [[1, 2], [30, 2], [30, 20], [1, 20]])


def test_paddleocr_several_files_with_ratios(tmp_path):
    first, samples = write_paddleocr(tmp_path / "a")
    lines = []
    for k in range(10):
        cv2.imwrite(str(tmp_path / f"b{k}.png"), np.zeros((40, 40, 3), np.uint8))
        lines.append(f"b{k}.png\t[]")
    (tmp_path / "b.txt").write_text("\n".join(lines))
    spec = f"{first},{tmp_path / 'b.txt'}*0.5"
    one = PaddleOCRDataset(spec, seed=3)
    names = [p.name for p in one.image_paths]
    assert len(one) == len(samples) + 5 and names == [p.name for p in
                                                      PaddleOCRDataset(spec, seed=3).image_paths]
    assert names != [p.name for p in PaddleOCRDataset(spec, seed=4).image_paths]
    for bad in ("*0.5", f"{first}*0", f"{first}*1.5", f"{first}*x"):
        with pytest.raises(ValueError, match="paddleocr"):
            PaddleOCRDataset(bad)


# --------------------------------------------------------------------- malformed input


def one_image(folder: Path, height=40, width=60, name="a.png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / name), np.zeros((height, width, 3), np.uint8))
    return folder / name


GOOD = '[{"transcription": "a", "points": [[1, 1], [20, 1], [20, 9], [1, 9]]}]'


@pytest.mark.parametrize("line, message", [
    ("a.png " + GOOD, r"train.txt:2: expected '<image path><TAB><JSON list>'"),
    ("a.png\t[{\"points\": [[1, 1], [2, 2]", r"train.txt:2: the labels are not valid JSON"),
    ("a.png\t{}", r"train.txt:2: the labels must be a list"),
    ("a.png\t[{\"transcription\": \"a\"}]", r"train.txt:2: label 0 has no 'points'"),
    ("a.png\t[{\"points\": [[1, \"x\"], [2, 2], [3, 1]]}]", r"train.txt:2.*finite numbers"),
    ("a.png\t[{\"points\": [1, 2, 3, 4, 5, 6]}]", r"train.txt:2.*list of \[x, y\] pairs"),
    ("gone.png\t[]", r"train.txt:2: image 'gone.png' not found"),
    ("a.png\t[{\"points\": [[1, 1], [90, 1], [90, 9]]}]", r"train.txt:2: polygon 0.*outside"),
    ("a.png\t[{\"points\": [[1, 1], [9, 1], [9, 1e30]]}]", r"train.txt:2: polygon 0.*2\^24"),
    ("b.png\t[]", r"train.txt:2: image .*b.png is already listed at .*train.txt:1"),
])
def test_paddleocr_malformed_lines_name_file_and_line(tmp_path, line, message):
    one_image(tmp_path)
    one_image(tmp_path, name="b.png")
    (tmp_path / "train.txt").write_text(f"b.png\t{GOOD}\n{line}\n")
    with pytest.raises(LabelError, match=message):
        open_dataset("paddleocr", tmp_path / "train.txt")
    dataset = open_dataset("paddleocr", tmp_path / "train.txt", skip_bad=True)
    assert len(dataset) == 1 and len(dataset.skipped) == 1
    assert dataset.skipped[0][0].endswith("train.txt:2")


def test_declared_size_must_match_the_image(tmp_path):
    one_image(tmp_path)
    record = {"img_path": "a.png", "height": 60, "width": 40, "instances": []}
    (tmp_path / "t.json").write_text(json.dumps({"data_list": [record]}))
    with pytest.raises(LabelError, match=r"data_list\[0\]: the labels give the image size 60 x "
                                         r"40 .* is 40 x 60"):
        open_dataset("mmocr", tmp_path / "t.json")


@pytest.mark.parametrize("format, write, message", [
    ("mmocr", lambda d: (d / "t.json").write_text('{"data_list": [{"img_path": "a.png", '
                                                 '"instances": [{"polygon": [1, 2, 3]}]}]}'),
     r"data_list\[0\].instances\[0\]: polygon must be a flat list"),
    ("mmocr", lambda d: (d / "t.json").write_text('{"metainfo": {"task_name": "textrecog"}, '
                                                 '"data_list": []}'), r"not 'textdet'"),
    ("mmocr", lambda d: (d / "t.json").write_text('{"data_list": [\n{"img_path": "a.png",}]}'),
     r"t.json:2: not valid JSON"),
    ("doctr", lambda d: (d / "labels.json").write_text('{"a.png": {"polygons": [[[1, 2]], 3]}}'),
     r"'a.png': polygon 1: points must be a list"),
    ("labelme", lambda d: (d / "a.json").write_text(
        '{"imagePath": "a.png", "shapes": [{"points": [[1, 2]], "shape_type": "circle"}]}'),
     r"a.json: shapes\[0\]: shape_type 'circle'"),
    ("labelme", lambda d: (d / "a.json").write_text(
        '{"imagePath": "a.png", "shapes": [{"points": [[1, 2], [3, 4], [5, 6]], '
        '"shape_type": "rectangle"}]}'), r"a rectangle needs 2 corners"),
    ("ctw1500", lambda d: (d / "a.xml").write_text('<Annotations><image file="a.png"><box>'
                                                  '<segs>1,2,3</segs></box></image>'),
     r"a.xml:1: not valid XML"),
    ("ctw1500", lambda d: (d / "a.txt").write_text("1,2,3,4,5,####x\n"),
     r"a.txt:1: expected x1,y1"),
    ("textocr", lambda d: (d / "t.json").write_text(
        '{"imgs": {"i": {"file_name": "a.png", "width": 60, "height": 40}}, '
        '"anns": {"k": {"image_id": "j", "points": [1, 2, 3, 4, 5, 6]}}}'),
     r"anns\['k'\]: image_id 'j' is not in imgs"),
    ("cocotext", lambda d: (d / "t.json").write_text(
        '{"imgs": {"1": {"file_name": "a.png", "width": 60, "height": 40, "set": "train"}}, '
        '"anns": {"k": {"image_id": 1, "bbox": [1, 2, 3]}}}'), r"anns\['k'\]: bbox must be 4"),
])
def test_malformed_files_name_the_record(tmp_path, format, write, message):
    one_image(tmp_path / "images" if format == "doctr" else tmp_path)
    write(tmp_path)
    path = {"mmocr": tmp_path / "t.json", "textocr": tmp_path / "t.json",
            "cocotext": tmp_path / "t.json"}.get(format, tmp_path)
    with pytest.raises(LabelError, match=message):
        open_dataset(format, path)
    try:
        dataset = open_dataset(format, path, skip_bad=True)
    except (LabelError, FileNotFoundError) as error:
        # a whole-file problem still raises; a bad record is left out, then nothing is left
        assert re.search(message, str(error)) or "no usable images" in str(error)
        return
    assert len(dataset.skipped) >= 1  # counted, never silent


def test_unreadable_images_are_left_out_and_listed(tmp_path):
    one_image(tmp_path)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    (tmp_path / "train.txt").write_text("a.png\t[]\nbroken.png\t[]\n")
    dataset = open_dataset("paddleocr", tmp_path / "train.txt")
    assert len(dataset) == 1 and dataset.skipped[0][0].endswith("broken.png")
    assert image_size(tmp_path / "a.png") == (40, 60)


def test_degenerate_polygons_are_counted(tmp_path):
    one_image(tmp_path)
    (tmp_path / "train.txt").write_text(
        'a.png\t[{"points": [[1, 1], [1, 1], [5, 5]]}, {"points": [[1, 1], [9, 1], [9, 9]]}]\n')
    dataset = open_dataset("paddleocr", tmp_path / "train.txt")
    assert dataset.dropped == 1 and len(dataset.annotations[0].polygons) == 1


def test_unknown_format_and_bad_split(tmp_path):
    with pytest.raises(ValueError, match="unknown label format 'yolo'"):
        open_dataset("yolo", tmp_path)
    with pytest.raises(ValueError, match="split must be"):
        open_dataset("labelme", tmp_path, split="val")
    with pytest.raises(FileNotFoundError, match="mmocr: label file .* does not exist"):
        open_dataset("mmocr", tmp_path / "none.json")


def test_huge_numbers_are_errors_not_crashes(tmp_path):
    one_image(tmp_path)
    huge = "1" + "0" * 400  # a JSON integer beyond any float
    (tmp_path / "t.txt").write_text(f'a.png\t[{{"points": [[1, 1], [9, 1], [9, {huge}]]}}]\n')
    with pytest.raises(LabelError, match=r"t.txt:1.*finite numbers"):
        open_dataset("paddleocr", tmp_path / "t.txt")
