"""ICDAR 2015 read from files written here as the real ones are: the original archive layout
and MhLiao/DB's, ground truth with a UTF-8 BOM and Windows line endings (issue 23, item 5)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dbnet_fast.data import ICDAR2015Dataset

# (polygon, transcription) per word; "###" is don't-care; a transcription may hold commas
WORDS = {
    "img_1": [([[377, 117], [463, 117], [465, 130], [378, 130]], "Genaxis Theatre"),
              ([[374, 155], [409, 155], [409, 170], [374, 170]], "###"),
              ([[10.5, 20], [30, 20], [30.25, 40], [10, 40]], "Hello, world,again")],
    "img_2": [([[1, 2], [50, 2], [50, 30], [1, 30]], "[06]")],
    "img_10": [([[5, 5], [60, 6], [61, 25], [4, 24]], "###"),
               ([[100, 40], [180, 40], [180, 70], [100, 70]], "1,000")],
}
ORIGINAL = {"train": ("ch4_training_images", "ch4_training_localization_transcription_gt"),
            "test": ("ch4_test_images", "Challenge4_Test_Task1_GT")}


def height(stem) -> int:
    """Each image its own height, so a record shows which image it read."""
    return 72 + 8 * list(WORDS).index(stem)


def gt_bytes(words) -> bytes:
    lines = [",".join(f"{v:g}" for v in np.ravel(polygon)) + f",{text}" for polygon, text in words]
    return b"\xef\xbb\xbf" + "".join(line + "\r\n" for line in lines).encode("utf-8")


def write_split(root, images_dir, gts_dir, gt_name, stems):
    (root / images_dir).mkdir(parents=True, exist_ok=True)
    (root / gts_dir).mkdir(parents=True, exist_ok=True)
    for stem in stems:
        image = np.full((height(stem), 96, 3), 30, np.uint8)
        assert cv2.imwrite(str(root / images_dir / f"{stem}.jpg"), image)
        (root / gts_dir / gt_name(stem)).write_bytes(gt_bytes(WORDS[stem]))


def check(dataset, stems):
    assert [p.name for p in dataset.image_paths] == [f"{s}.jpg" for s in stems]
    for i, stem in enumerate(stems):
        record = dataset.load(i)
        assert record["image"].shape == (height(stem), 96, 3)
        assert record["texts"] == [text for _, text in WORDS[stem]]
        assert record["ignore"] == [text == "###" for _, text in WORDS[stem]]
        for got, (polygon, _) in zip(record["polygons"], WORDS[stem]):
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, np.asarray(polygon, np.float32))


@pytest.mark.parametrize("split", ["train", "test"])
def test_original_layout(tmp_path, split):
    stems = ["img_1", "img_10", "img_2"]  # sorted file names
    write_split(tmp_path, *ORIGINAL[split], lambda s: f"gt_{s}.txt", stems)
    check(ICDAR2015Dataset(tmp_path, split), stems)


@pytest.mark.parametrize("split", ["train", "test"])
def test_mhliao_layout_reads_the_list_in_its_order(tmp_path, split):
    # MhLiao/DB: train_gts/img_1.jpg.txt, test_gts/gt_img_1.txt, <split>_list.txt
    gt_name = (lambda s: f"{s}.jpg.txt") if split == "train" else (lambda s: f"gt_{s}.txt")
    write_split(tmp_path, f"{split}_images", f"{split}_gts", gt_name, ["img_1", "img_10", "img_2"])
    (tmp_path / f"{split}_list.txt").write_bytes(b"img_2.jpg\r\nimg_1.jpg\r\n\r\n")
    check(ICDAR2015Dataset(tmp_path, split), ["img_2", "img_1"])  # img_10 is not listed
    (tmp_path / f"{split}_list.txt").unlink()
    check(ICDAR2015Dataset(tmp_path, split), ["img_1", "img_10", "img_2"])  # no list: all


def test_listed_image_missing_names_list_and_line(tmp_path):
    write_split(tmp_path, "train_images", "train_gts", lambda s: f"{s}.jpg.txt", ["img_1"])
    (tmp_path / "train_list.txt").write_text("img_1.jpg\nimg_7.jpg\n")
    with pytest.raises(FileNotFoundError, match=r"train_list\.txt:2: .*img_7\.jpg"):
        ICDAR2015Dataset(tmp_path, "train")


@pytest.mark.parametrize("layout", ["original", "mhliao"])
def test_malformed_line_names_file_and_line(tmp_path, layout):
    images, gts = ORIGINAL["train"] if layout == "original" else ("train_images", "train_gts")
    name = "gt_img_2.txt" if layout == "original" else "img_2.jpg.txt"
    write_split(tmp_path, images, gts, lambda s: f"gt_{s}.txt" if layout == "original"
                else f"{s}.jpg.txt", ["img_1", "img_2"])
    good = gt_bytes(WORDS["img_2"])
    (tmp_path / gts / name).write_bytes(good + b"1,2,3,4,5,6,7,word\r\n")  # seven numbers
    with pytest.raises(ValueError, match=rf"{name.replace('.', '[.]')}:2: expected"):
        ICDAR2015Dataset(tmp_path, "train")


def test_holdout_split_reads_back_as_the_original(tmp_path):
    """scripts/ic15_split.py: the held-out and training lists are a partition of the
    training images, and each image's words read back through the PaddleOCR loader as
    ICDAR2015Dataset reads them (don't-care kept as don't-care)."""
    import importlib.util
    from pathlib import Path

    from dbnet_fast.data.formats import open_dataset

    script = Path(__file__).resolve().parents[1] / "scripts" / "ic15_split.py"
    spec = importlib.util.spec_from_file_location("ic15_split", script)
    ic15_split = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ic15_split)
    stems = ["img_1", "img_10", "img_2"]
    write_split(tmp_path / "ic15", *ORIGINAL["train"], lambda s: f"gt_{s}.txt", stems)
    for stem in stems:  # large enough for the words: the PaddleOCR loader checks bounds
        image = np.full((200, 480, 3), 30, np.uint8)
        assert cv2.imwrite(str(tmp_path / "ic15" / ORIGINAL["train"][0] / f"{stem}.jpg"), image)
    assert ic15_split.main([str(tmp_path / "ic15"), "--out", str(tmp_path / "lists"),
                            "--holdout", "1"]) == 0
    parts = {name: open_dataset("paddleocr", str(tmp_path / "lists" / f"{name}.txt"))
             for name in ("train", "val")}
    assert (len(parts["train"]), len(parts["val"])) == (2, 1)
    seen = []
    for dataset in parts.values():
        for i, path in enumerate(dataset.image_paths):
            stem = Path(path).stem
            seen.append(stem)
            record = dataset.load(i)
            assert record["ignore"] == [text == "###" for _, text in WORDS[stem]]
            for got, (polygon, _) in zip(record["polygons"], WORDS[stem]):
                np.testing.assert_allclose(got, np.asarray(polygon, np.float32), atol=1e-3)
    assert sorted(seen) == sorted(stems)
    with pytest.raises(SystemExit):  # nothing left to train on
        ic15_split.main([str(tmp_path / "ic15"), "--out", str(tmp_path / "x"), "--holdout", "3"])
