"""ICDAR 2015 and Total-Text loaders on tiny fake datasets written to tmp_path."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from dbnet_fast.data import (
    EvalTransform,
    ICDAR2015Dataset,
    TotalTextDataset,
    TrainTransform,
    collate,
    parse_icdar2015,
    parse_total_text,
)


def write_image(path, height=48, width=64, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((height, width, 3), value, np.uint8)
    image[5:15, 5:30] = (255, 128, 0)
    assert cv2.imwrite(str(path), image)
    return image


def write_text(path, text, bom=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))


ICDAR_GT = (
    "377,117,463,117,465,130,378,130,Genaxis Theatre\r\n"
    "493,115,519,115,519,131,493,131,[06]\r\n"
    "\r\n"
    "374,155,409,155,409,170,374,170,###\r\n"
    "10.5,20,30,20,30,40,10,40,Hello, world,again\r\n"
)


def test_icdar2015_parser_bom_commas_ignore_floats(tmp_path):
    write_text(tmp_path / "gt_img_1.txt", ICDAR_GT, bom=True)
    a = parse_icdar2015(tmp_path / "gt_img_1.txt")
    assert a.texts == ["Genaxis Theatre", "[06]", "###", "Hello, world,again"]
    assert a.ignore == [False, False, True, False]
    np.testing.assert_array_equal(a.polygons[0], [[377, 117], [463, 117], [465, 130], [378, 130]])
    np.testing.assert_array_equal(a.polygons[3], [[10.5, 20], [30, 20], [30, 40], [10, 40]])
    assert all(p.dtype == np.float32 and p.shape == (4, 2) for p in a.polygons)


@pytest.mark.parametrize("line", [
    "1,2,3,4,5,6,7,text",          # seven numbers
    "1,2,3,4,5,x,7,8,text",        # not a number
    "1,2,3,4,5,6,7,nan,text",      # not finite
    "just words",
])
def test_icdar2015_malformed_line_names_file_and_line(tmp_path, line):
    write_text(tmp_path / "gt_img_2.txt", "1,1,9,1,9,9,1,9,ok\n\n" + line + "\n")
    with pytest.raises(ValueError, match=r"gt_img_2\.txt:3"):
        parse_icdar2015(tmp_path / "gt_img_2.txt")


def test_icdar2015_degenerate_quads_are_dropped(tmp_path):
    write_text(tmp_path / "gt.txt", "1,1,1,1,9,9,9,9,two points\n1,1,9,1,9,9,1,9,ok\n")
    a = parse_icdar2015(tmp_path / "gt.txt")
    assert a.texts == ["ok"] and a.dropped == 1


@pytest.mark.parametrize("layout", ["short", "original", "nested"])
def test_icdar2015_dataset_layouts(tmp_path, layout):
    names = {
        "short": ("train_images", "train_gts", "test_images", "test_gts"),
        "original": ("ch4_training_images", "ch4_training_localization_transcription_gt",
                     "ch4_test_images", "Challenge4_Test_Task1_GT"),
        "nested": ("train/images", "train/gts", "test/images", "test/gts"),
    }[layout]
    for images, gts, count in [(names[0], names[1], 3), (names[2], names[3], 2)]:
        for i in range(1, count + 1):
            write_image(tmp_path / images / f"img_{i}.jpg")
            write_text(tmp_path / gts / f"gt_img_{i}.txt", ICDAR_GT, bom=i == 1)
    train = ICDAR2015Dataset(tmp_path, "train")
    test = ICDAR2015Dataset(tmp_path, "test")
    assert len(train) == 3 and len(test) == 2
    record = train.load(0)
    assert record["image"].shape == (48, 64, 3) and record["image"].dtype == np.uint8
    assert record["path"].endswith("img_1.jpg")
    assert record["texts"][0] == "Genaxis Theatre" and record["ignore"][2]
    assert train[1]["texts"] == record["texts"]  # no transform: the raw record


def test_icdar2015_missing_ground_truth_and_bad_root(tmp_path):
    write_image(tmp_path / "train_images" / "img_1.jpg")
    write_image(tmp_path / "train_images" / "img_2.jpg")
    write_text(tmp_path / "train_gts" / "gt_img_1.txt", ICDAR_GT)
    with pytest.raises(FileNotFoundError, match="gt_img_2.txt"):
        ICDAR2015Dataset(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="layout"):
        ICDAR2015Dataset(tmp_path, "test")
    with pytest.raises(ValueError, match="split"):
        ICDAR2015Dataset(tmp_path, "val")
    with pytest.raises(FileNotFoundError, match="root"):
        ICDAR2015Dataset(tmp_path / "nowhere")


def test_icdar2015_dataset_with_transforms(tmp_path):
    for i in range(1, 5):
        write_image(tmp_path / "train_images" / f"img_{i}.png", 96, 128, value=40 * i)
        write_text(tmp_path / "train_gts" / f"gt_img_{i}.txt", "10,10,60,10,60,30,10,30,word\n")
    data = ICDAR2015Dataset(tmp_path, "train", transform=TrainTransform(size=64), seed=3)
    again = ICDAR2015Dataset(tmp_path, "train", transform=TrainTransform(size=64), seed=3)
    a, b = data[2], again[2]
    assert torch.equal(a["image"], b["image"]) and a["image"].shape == (3, 64, 64)
    assert a["texts"] == ["word"]
    data.set_epoch(1)
    assert not torch.equal(data[2]["image"], a["image"])  # a new epoch, new augmentation
    batch = collate([data[i] for i in range(4)])
    assert batch["image"].shape == (4, 3, 64, 64) and batch["thresh_map"].shape == (4, 64, 64)
    evaluation = ICDAR2015Dataset(tmp_path, "train", transform=EvalTransform(short_side=64))
    sample = evaluation[0]
    assert sample["image"].shape == (3, 64, 96) and sample["shape"].tolist() == [96, 128]


TT_LEGACY = (
    "x: [[115 503 494 115]], y: [[322 346 426 404]], ornt: [u'c'], transcriptions: [u'nauGHTY']\n"
    "x: [[ 80 114 155 203 248 288 326 359 367 332 293 251 211 169 129  98\n"
    "   69]], y: [[300 280 268 262 262 268 280 300 330 312 298 290 288 292 302 318\n"
    "  336]], ornt: [u'c'], transcriptions: [u\"don't\"]\n"
    "x: [[10 40 40 10]], y: [[10 10 20 20]], ornt: [u'#'], transcriptions: [u'#']\n"
    "x: [[5 6]], y: [[5 6]], ornt: [u'h'], transcriptions: [u'tiny']\n"
)


def test_total_text_legacy_parser(tmp_path):
    write_text(tmp_path / "poly_gt_img11.txt", TT_LEGACY, bom=True)
    a = parse_total_text(tmp_path / "poly_gt_img11.txt")
    assert a.texts == ["nauGHTY", "don't", "#"]
    assert a.ignore == [False, False, True]
    assert a.dropped == 1  # the two-point polygon
    np.testing.assert_array_equal(a.polygons[0], [[115, 322], [503, 346], [494, 426], [115, 404]])
    assert a.polygons[1].shape == (17, 2)
    np.testing.assert_array_equal(a.polygons[1][-1], [69, 336])
    np.testing.assert_array_equal(a.polygons[1][8], [367, 330])


@pytest.mark.parametrize("text, line, message", [
    ("x: [[1 2 3]], y: [[1 2]], ornt: [u'c'], transcriptions: [u'a']\n", 1, "2 y coordinates"),
    (("x: [[1 2 3]], y: [[1 2 3]], ornt: [u'c'], transcriptions: [u'a']\n"
     "x: [[1 2 q]], y: [[1 2 3]], ornt: [u'c'], transcriptions: [u'a']\n"), 2, "numbers"),
    (("x: [[1 2 3]], y: [[1 2 3]], ornt: [u'c'], transcriptions: [u'a']\n\n"
     "x: [[1 2 3]], why: [[1 2 3]]\n"), 3, "expected"),
])
def test_total_text_legacy_malformed(tmp_path, text, line, message):
    write_text(tmp_path / "poly_gt_img2.txt", text)
    with pytest.raises(ValueError, match=rf"poly_gt_img2\.txt:{line}: .*{message}"):
        parse_total_text(tmp_path / "poly_gt_img2.txt")


def test_total_text_one_line_format(tmp_path):
    write_text(tmp_path / "img3.jpg.txt", (
        "10,10,50,10,60,20,50,30,10,30,Hello, there\n"
        "1,1,9,1,9,9,1,9,2015\n"
        "1,1,9,1,9,9,1,9,#\n"
        "1,1,2,2,x\n"
    ))
    a = parse_total_text(tmp_path / "img3.jpg.txt")
    assert a.texts == ["Hello, there", "2015", "#"]
    assert a.ignore == [False, False, True]
    assert a.polygons[0].shape == (5, 2) and a.dropped == 1
    write_text(tmp_path / "bad.txt", "1,1,9,1,9,9,1,9,ok\nnothing here\n")
    with pytest.raises(ValueError, match=r"bad\.txt:2"):
        parse_total_text(tmp_path / "bad.txt")


def test_total_text_dataset_layout(tmp_path):
    for split, folder in [("train", "Train"), ("test", "Test")]:
        for stem in ("img11", "img12"):
            write_image(tmp_path / "Images" / folder / f"{stem}.jpg")
            write_text(tmp_path / "gt" / folder / f"poly_gt_{stem}.txt", TT_LEGACY)
    train = TotalTextDataset(tmp_path, "train")
    assert len(train) == 2 and train.dropped == 2
    record = train.load(1)
    assert record["path"].endswith("img12.jpg") and len(record["polygons"]) == 3
    test = TotalTextDataset(tmp_path, "test", transform=TrainTransform(size=64))
    sample = test[0]
    assert sample["image"].shape == (3, 64, 64) and sample["texts"][0] == "nauGHTY"


def test_total_text_case_insensitive_folders_and_simple_names(tmp_path):
    write_image(tmp_path / "images" / "train" / "img7.png")
    write_text(tmp_path / "Groundtruth" / "Text" / "train" / "img7.txt", "1,1,30,1,30,9,1,9,word\n")
    data = TotalTextDataset(tmp_path, "train")
    assert data.load(0)["texts"] == ["word"]
