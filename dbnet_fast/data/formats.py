"""The label formats people train detectors with: one Dataset class each.

``open_dataset(format, path, split=..., transform=..., seed=..., skip_bad=...)``
(what ``--data FORMAT:PATH`` builds) or the classes below. Relative image
paths resolve against the folder holding the label file, as each tool writes
them; the candidates tried are listed per format, and a missing image is an
error naming the record.

==========  ==================================================================
paddleocr   PaddleOCR detection lists (``SimpleDataSet``) and PPOCRLabel's
            ``Label.txt``: one line per image, ``<image path>\\t<JSON list of
            {"transcription": ..., "points": [[x, y], ...]}>``. ``"###"`` and
            ``"*"`` transcriptions and ``"difficult": true`` are don't-care.
            The path is relative to the label file's folder, or, when its
            first part is that folder's own name (PPOCRLabel's
            ``<folder>/<file>`` keys with ``Label.txt`` inside the folder), to
            the folder above. Several files: ``a.txt,b.txt*0.5``: each file's
            ``*RATIO`` in (0, 1] keeps ``round(lines * ratio)`` of its lines,
            drawn once with the dataset's seed (PaddleOCR's ``label_file_list``
            / ``ratio_list``).
mmocr       MMOCR 1.x ``textdet_*.json``: ``metainfo`` (``task_name`` textdet
            when given) and ``data_list`` of ``{img_path, height, width,
            instances: [{polygon: [x1, y1, ...], bbox: [x1, y1, x2, y2],
            ignore}]}``; ``bbox`` is used when ``polygon`` is missing or empty.
            ``img_path`` is relative to the JSON's folder (mmocr's data_root).
doctr       docTR's detection layout: a folder with ``images/`` and
            ``labels.json`` (``{image name: {img_dimensions, img_hash,
            polygons: [[[x, y], ...], ...]}}``; ``polygons`` may also map class
            names to lists; ``img_dimensions`` may be (H, W) or (W, H)). docTR
            has no don't-care flag: every polygon is text.
cocotext    COCO-Text v2 (``cocotext.v2.json``: ``imgs``, ``anns`` with
            ``mask`` polygons or ``bbox`` [x, y, w, h]). ``split`` picks the
            images whose ``set`` is "train" (training) or "val" (evaluation).
            Don't-care: ``legibility`` other than "legible" or ``language``
            other than "english" (the English-word protocol the published
            COCO-Text detection numbers use). Images: ``file_name`` in the
            JSON's folder or its ``train2014/``. Images without words are
            kept as negatives (mmocr's converter leaves them out).
textocr     TextOCR (``TextOCR_0.1_{train,val}.json``: ``imgs``, ``anns`` with
            ``points`` [x1, y1, ...] and ``bbox``); ``utf8_string`` "." marks
            illegible text, don't-care. Images: ``file_name`` (``train/<id>.jpg``)
            in the JSON's folder, or ``<id>.jpg`` in its ``train_images/``.
ctw1500     SCUT-CTW1500: a folder of per-image label files, training XML
            (``<image file="0001.jpg"><box><label>..</label><segs>x1,y1,...
            </segs></box></image>``) or test text (``x1,y1,...,xn,yn,####text``
            per line, or the original 32 numbers ``xmin,ymin,xmax,ymax`` + 14
            offsets from (xmin, ymin)). ``###`` text is don't-care. Images:
            beside the labels, in the sibling ``text_image/``, or mmocr's
            ``imgs/<label folder name>/``; the XML names its image, a text file
            ``<stem>.<image suffix>``.
labelme     LabelMe: one JSON per image (a folder of them, or one file):
            ``shapes`` of ``shape_type`` "polygon" or "rectangle" (two
            corners), ``imagePath`` relative to the JSON, ``imageHeight`` /
            ``imageWidth``. Don't-care: label "###" or "*", or a shape flag
            ``difficult`` / ``ignore`` set.
==========  ==================================================================

Checks, the same for every format: points are finite numbers (an even count
for flat lists), polygons of any point count (rectangles become their four
corners); a declared image size must match the image; a point farther outside
the image than ``OUTSIDE_TOLERANCE`` of its side (a label for another image or
another resolution; smaller overshoots are clipped by the transforms) is an
error; an image listed twice is an error. A malformed record raises
:class:`LabelError` naming the file and line (or record) and what was wrong;
with ``skip_bad=True`` the image's record is left out instead (an image
trained with part of its words would teach that the rest is background) and
listed in ``dataset.skipped`` with the reason, never dropped silently.
Polygons with fewer than 3 distinct points are counted in ``dataset.dropped``;
unreadable images are left out and listed in ``dataset.skipped``, as for
:class:`~dbnet_fast.data.ICDAR2015Dataset`. ``dataset.sizes`` holds each image's
(H, W), read from its header.

:func:`dbnet_fast.engine.prelabel.write_labels` writes detections as files
these loaders (and ICDAR2015Dataset) read back.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ElementTree
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from dbnet_fast.data.datasets import (
    IMAGE_SUFFIXES,
    MAX_COORDINATE,
    Annotation,
    LabelledImages,
    _add,
    _read_lines,
    image_problem,
)

FORMATS = ("paddleocr", "mmocr", "doctr", "cocotext", "textocr", "ctw1500", "labelme")
OUTSIDE_TOLERANCE = 0.1
"""A point may lie outside the image by this fraction of the image's side."""
PADDLE_IGNORE = ("###", "*")
SPLITS = ("train", "test")


class LabelError(ValueError):
    """A malformed label record; the message names the file and line or record."""


def _number(value, where: str) -> float:
    try:  # float(): JSON integers may be too large for a float
        number = float(value) if not isinstance(value, bool) and isinstance(
            value, (int, float)) else math.nan
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise LabelError(f"{where}: coordinates must be finite numbers, got {value!r:.40}")
    return number


def _pairs(points, where: str) -> np.ndarray:
    """[[x, y], ...] -> (N, 2) float64."""
    if not isinstance(points, list) or not all(isinstance(p, list) and len(p) == 2
                                               for p in points):
        raise LabelError(f"{where}: points must be a list of [x, y] pairs, got {points!r:.80}")
    return np.array([[_number(x, where), _number(y, where)] for x, y in points]).reshape(-1, 2)


def _flat(values, where: str, what: str = "polygon") -> np.ndarray:
    """[x1, y1, x2, y2, ...] -> (N, 2) float64."""
    if not isinstance(values, list) or len(values) % 2 or len(values) < 6:
        raise LabelError(f"{where}: {what} must be a flat list of at least 3 x, y pairs, "
                         f"got {values!r:.80}")
    return np.array([_number(v, where) for v in values]).reshape(-1, 2)


def _rectangle(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def _box(values, where: str, xywh: bool) -> np.ndarray:
    if not isinstance(values, list) or len(values) != 4:
        raise LabelError(f"{where}: bbox must be 4 numbers, got {values!r:.80}")
    x, y, a, b = (_number(v, where) for v in values)
    return _rectangle(x, y, x + a, y + b) if xywh else _rectangle(x, y, a, b)


def _read_json(path: Path):
    try:
        return json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        raise LabelError(f"{path}: not UTF-8 ({error})") from None
    except json.JSONDecodeError as error:
        raise LabelError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None


def _expect(value, kind, where: str, what: str):
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise LabelError(f"{where}: {what} must be a {names}, got {value!r:.80}")
    return value


def image_size(path: Path) -> tuple[int, int] | None:
    """(H, W) of the image as stored (no EXIF rotation), or None when OpenCV, which
    training reads with, cannot read it. The header (PIL) first: no decoding."""
    try:
        with Image.open(path) as image:
            width, height = image.size
        return height, width
    except Exception:  # noqa: BLE001 - PIL raises many kinds (and refuses huge images)
        pass
    image = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    return None if image is None else image.shape[:2]


class FormatDataset(LabelledImages):
    """Images and polygons read from one of :data:`FORMATS` (see the module
    documentation); subclasses implement :meth:`_read`."""

    def __init__(self, path, split: str = "train", transform=None, seed: int = 0,
                 skip_bad: bool = False):
        if split not in SPLITS:
            raise ValueError(f"{self.name}: split must be 'train' or 'test', got {split!r}")
        self._setup(transform, seed)
        self.split = split
        self.skip_bad = bool(skip_bad)
        self.sizes: list[tuple[int, int]] = []
        self._listed: dict[Path, str] = {}
        self._read(path)
        if not self.image_paths:
            reasons = f"; left out {len(self.skipped)}: {self.skipped[0][0]}: " \
                      f"{self.skipped[0][1]}" if self.skipped else ""
            raise FileNotFoundError(f"{self.name}: no usable images in {path}{reasons}")

    def _read(self, path) -> None:
        raise NotImplementedError

    @contextmanager
    def _record(self, where: str):
        """Runs the parsing of one image's record: a LabelError raises, or with
        ``skip_bad`` leaves the record out and lists it."""
        try:
            yield
        except LabelError as error:
            if not self.skip_bad:
                raise
            self.skipped.append((where, str(error)))

    def _image(self, where: str, relative, folders, fallback_name: bool = False) -> Path:
        """The image file ``relative`` in the first of ``folders`` holding it."""
        text = _expect(relative, str, where, "the image path")
        if not text.strip():
            raise LabelError(f"{where}: empty image path")
        name = Path(text.replace("\\", "/"))
        tried = [name] if name.is_absolute() else [Path(f) / name for f in folders]
        if fallback_name:
            tried += [Path(f) / name.name for f in folders]
        for candidate in tried:
            if candidate.is_file():
                return candidate
        raise LabelError(f"{where}: image {text!r} not found (looked for "
                         f"{', '.join(str(c) for c in dict.fromkeys(tried))})")

    def _add_image(self, where: str, path: Path, words, declared=None) -> None:
        """Checks and keeps one image: ``words`` a list of ((N, 2) points, text, ignore)."""
        first = self._listed.get(path.resolve())
        if first is not None:
            raise LabelError(f"{where}: image {path} is already listed at {first}")
        problem = image_problem(path)
        size = image_size(path) if problem is None else None
        if problem is None and size is None:
            problem = "cannot be decoded (broken or truncated image header)"
        if problem is not None:
            self.skipped.append((str(path), problem))
            return
        height, width = size
        if declared is not None and tuple(declared) != (height, width):
            raise LabelError(f"{where}: the labels give the image size {declared[0]} x "
                             f"{declared[1]} (H x W) but {path} is {height} x {width}")
        annotation = Annotation([], [], [])
        for index, (points, text, ignore) in enumerate(words):
            what = f"{where}: polygon {index}"
            _check_inside(points, height, width, what)
            try:
                _add(annotation, points, text, ignore, what)
            except ValueError as error:  # beyond MAX_COORDINATE
                raise LabelError(str(error)) from None
        self._listed[path.resolve()] = where
        self.image_paths.append(path)
        self.annotations.append(annotation)
        self.sizes.append((height, width))
        self.dropped += annotation.dropped


def _check_inside(points: np.ndarray, height: int, width: int, where: str) -> None:
    if not points.size:
        return
    if np.abs(points).max() > MAX_COORDINATE:
        return  # _add names it
    slack = OUTSIDE_TOLERANCE * np.array([width, height])
    low, high = points.min(0), points.max(0)
    if (low < -slack).any() or (high > np.array([width, height]) + slack).any():
        raise LabelError(f"{where}: points reach ({low[0]:g}, {low[1]:g}) - ({high[0]:g}, "
                         f"{high[1]:g}), outside the {width} x {height} (W x H) image by more "
                         f"than {OUTSIDE_TOLERANCE:.0%} of its side (labels of another image "
                         f"or resolution, or x and y swapped?)")


def _existing(path, what: str, folder: bool | None = None) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    if folder is True and not path.is_dir():
        raise FileNotFoundError(f"{what} {path} is not a folder")
    if folder is False and not path.is_file():
        raise FileNotFoundError(f"{what} {path} is not a file")
    return path


# ----------------------------------------------------------------------------- PaddleOCR


def parse_paddle_files(text: str) -> list[tuple[Path, float]]:
    """``"a.txt,b.txt*0.5"`` -> [(a.txt, 1.0), (b.txt, 0.5)]; checks that the files exist."""
    files = []
    for part in str(text).split(","):
        name, star, ratio = part.strip().rpartition("*") if "*" in part else (part.strip(), "", "")
        value = 1.0
        if star:
            try:
                value = float(ratio)
            except ValueError:
                value = math.nan
            if not 0.0 < value <= 1.0:
                raise ValueError(f"paddleocr: the ratio of {name} must be a number in (0, 1], "
                                 f"got {ratio!r}")
        if not name:
            raise ValueError(f"paddleocr: empty label file name in {text!r}")
        files.append((_existing(name, "paddleocr: label file", folder=False), value))
    return files


class PaddleOCRDataset(FormatDataset):
    """PaddleOCR / PPOCRLabel detection labels; ``path`` one label file or
    ``"a.txt,b.txt*RATIO"`` (module documentation)."""

    name = "PaddleOCRDataset"

    def _read(self, path) -> None:
        rng = np.random.default_rng(self.seed)
        for label_file, ratio in parse_paddle_files(path):
            lines = [(n, line) for n, line in enumerate(_read_lines(label_file), 1)
                     if line.strip()]
            if ratio < 1.0:
                keep = rng.choice(len(lines), size=round(len(lines) * ratio), replace=False)
                lines = [lines[i] for i in sorted(keep)]
            for lineno, line in lines:
                where = f"{label_file}:{lineno}"
                with self._record(where):
                    self._line(line, where, label_file.parent)

    def _line(self, line: str, where: str, folder: Path) -> None:
        image, tab, labels = line.partition("\t")
        if not tab:
            raise LabelError(f"{where}: expected '<image path><TAB><JSON list>', got "
                             f"{line.strip()[:80]!r}")
        try:
            items = json.loads(labels)
        except json.JSONDecodeError as error:
            raise LabelError(f"{where}: the labels are not valid JSON ({error.msg} at column "
                             f"{len(image) + 1 + error.colno})") from None
        _expect(items, list, where, "the labels")
        parts = Path(image.strip().replace("\\", "/")).parts
        search = [folder] + ([folder.parent] if parts and parts[0] == folder.name else [])
        path = self._image(where, image.strip(), search)
        words = []
        for i, item in enumerate(items):
            _expect(item, dict, where, f"label {i}")
            if "points" not in item:
                raise LabelError(f"{where}: label {i} has no 'points'")
            text = item.get("transcription", "")
            text = text if isinstance(text, str) else str(text)
            difficult = item.get("difficult", False)
            _expect(difficult, bool, where, f"label {i} 'difficult'")
            words.append((_pairs(item["points"], f"{where}: label {i}"), text,
                          difficult or text in PADDLE_IGNORE))
        self._add_image(where, path, words)


# ----------------------------------------------------------------------------- MMOCR


class MMOCRDataset(FormatDataset):
    """MMOCR 1.x text-detection JSON (``textdet_train.json`` / ``textdet_test.json``)."""

    name = "MMOCRDataset"

    def _read(self, path) -> None:
        path = _existing(path, "mmocr: label file", folder=False)
        data = _read_json(path)
        _expect(data, dict, str(path), "the file")
        metainfo = _expect(data.get("metainfo", {}), dict, str(path), "metainfo")
        task = metainfo.get("task_name", "textdet")
        if task != "textdet":
            raise LabelError(f"{path}: metainfo.task_name is {task!r}, not 'textdet' "
                             "(a recognition or spotting file?)")
        items = _expect(data.get("data_list"), list, str(path), "data_list")
        for index, item in enumerate(items):
            where = f"{path}: data_list[{index}]"
            with self._record(where):
                _expect(item, dict, where, "the record")
                image = self._image(where, item.get("img_path"), [path.parent])
                declared = None
                if "height" in item or "width" in item:
                    declared = (_expect(item.get("height"), int, where, "height"),
                                _expect(item.get("width"), int, where, "width"))
                words = []
                for i, instance in enumerate(_expect(item.get("instances", []), list, where,
                                                     "instances")):
                    at = f"{where}.instances[{i}]"
                    _expect(instance, dict, at, "the instance")
                    if instance.get("polygon"):
                        points = _flat(instance["polygon"], at)
                    elif "bbox" in instance:
                        points = _box(instance["bbox"], at, xywh=False)
                    else:
                        raise LabelError(f"{at}: neither 'polygon' nor 'bbox'")
                    ignore = _expect(instance.get("ignore", False), bool, at, "ignore")
                    words.append((points, "", ignore))
                self._add_image(where, image, words, declared)


# ----------------------------------------------------------------------------- docTR


class DocTRDataset(FormatDataset):
    """docTR's detection folder: ``images/`` + ``labels.json``."""

    name = "DocTRDataset"

    def _read(self, path) -> None:
        path = _existing(path, "doctr: folder or labels.json")
        labels = path / "labels.json" if path.is_dir() else path
        if not labels.is_file():
            raise FileNotFoundError(f"doctr: no labels.json in {path}")
        data = _read_json(labels)
        _expect(data, dict, str(labels), "the file")
        folders = [labels.parent / "images"]
        for name, entry in data.items():
            where = f"{labels}: {name!r}"
            with self._record(where):
                _expect(entry, dict, where, "the record")
                image = self._image(where, name, folders)
                polygons = entry.get("polygons")
                groups = polygons.values() if isinstance(polygons, dict) else [polygons]
                words = []
                for group in groups:
                    for i, polygon in enumerate(_expect(group, list, where, "polygons")):
                        at = f"{where}: polygon {i}"
                        if isinstance(polygon, list) and len(polygon) == 4 and \
                                not isinstance(polygon[0], list):
                            words.append((_box(polygon, at, xywh=False), "", False))
                        else:
                            words.append((_pairs(polygon, at), "", False))
                declared = entry.get("img_dimensions")
                if declared is not None:
                    if not isinstance(declared, list) or len(declared) != 2:
                        raise LabelError(f"{where}: img_dimensions must be [a, b], got "
                                         f"{declared!r:.80}")
                    size = image_size(image)
                    if size is not None and sorted(size) == sorted(declared):
                        declared = size  # docTR writes either order
                self._add_image(where, image, words, declared)


# ----------------------------------------------------------------------------- COCO-style


class _CocoStyleDataset(FormatDataset):
    """One JSON with ``imgs`` and ``anns`` (COCO-Text v2, TextOCR)."""

    def _images_of(self, imgs: dict, where: str) -> list:
        raise NotImplementedError

    def _word(self, ann: dict, where: str):
        raise NotImplementedError

    def _folders(self, folder: Path) -> list[Path]:
        raise NotImplementedError

    def _read(self, path) -> None:
        path = _existing(path, f"{self.name}: label file", folder=False)
        data = _read_json(path)
        _expect(data, dict, str(path), "the file")
        imgs = _expect(data.get("imgs"), dict, str(path), "imgs")
        anns = _expect(data.get("anns"), dict, str(path), "anns")
        by_image: dict[str, list] = {}
        for key, ann in anns.items():
            where = f"{path}: anns[{key!r}]"
            with self._record(where):
                _expect(ann, dict, where, "the annotation")
                image_id = str(ann.get("image_id"))
                if image_id not in imgs:
                    raise LabelError(f"{where}: image_id {ann.get('image_id')!r} is not in imgs")
                by_image.setdefault(image_id, []).append((key, ann))
        for key in self._images_of(imgs, str(path)):
            where = f"{path}: imgs[{key!r}]"
            with self._record(where):
                info = _expect(imgs[key], dict, where, "the image record")
                image = self._image(where, info.get("file_name"), self._folders(path.parent),
                                    fallback_name=True)
                declared = (_expect(info.get("height"), int, where, "height"),
                            _expect(info.get("width"), int, where, "width"))
                words = [self._word(ann, f"{path}: anns[{k!r}]")
                         for k, ann in by_image.get(key, [])]
                self._add_image(where, image, words, declared)


class COCOTextDataset(_CocoStyleDataset):
    """COCO-Text v2 (``cocotext.v2.json``); ``split`` "train" reads the ``set``
    "train" images, "test" the "val" ones (COCO-Text's test labels are not public)."""

    name = "COCOTextDataset"

    def _images_of(self, imgs, where):
        wanted = "train" if self.split == "train" else "val"
        return [k for k, info in imgs.items() if isinstance(info, dict)
                and info.get("set") == wanted]

    def _folders(self, folder):
        return [folder, folder / "train2014"]

    def _word(self, ann, where):
        mask = ann.get("mask")
        points = _flat(mask, where, "mask") if mask else _box(ann.get("bbox"), where, xywh=True)
        legible = ann.get("legibility", "legible") == "legible"
        english = ann.get("language", "english") == "english"
        return points, str(ann.get("utf8_string", "")), not (legible and english)


class TextOCRDataset(_CocoStyleDataset):
    """TextOCR (``TextOCR_0.1_train.json`` / ``_val.json``): every image of the file."""

    name = "TextOCRDataset"

    def _images_of(self, imgs, where):
        return list(imgs)

    def _folders(self, folder):
        return [folder, folder / "train_images"]

    def _word(self, ann, where):
        points = ann.get("points")
        points = _flat(points, where, "points") if points else \
            _box(ann.get("bbox"), where, xywh=True)
        text = str(ann.get("utf8_string", ""))
        return points, text, text == "."


# ----------------------------------------------------------------------------- CTW1500


def _numbers_text(text: str, where: str) -> list[float]:
    values = []
    for field in text.replace("\n", ",").split(","):
        if field.strip():
            try:
                values.append(float(field))
            except ValueError:
                raise LabelError(f"{where}: expected numbers, got {field.strip()!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise LabelError(f"{where}: coordinates must be finite numbers")
    return values


class CTW1500Dataset(FormatDataset):
    """SCUT-CTW1500: a folder of per-image XML (training) or text (test) label files."""

    name = "CTW1500Dataset"

    def _read(self, path) -> None:
        folder = _existing(path, "ctw1500: label folder", folder=True)
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".xml", ".txt"))
        if not files:
            raise FileNotFoundError(f"ctw1500: no .xml or .txt label files in {folder}")
        self._folders = [folder, folder.parent / "text_image",
                         folder.parent.parent / "imgs" / folder.name]
        for file in files:
            with self._record(str(file)):
                if file.suffix.lower() == ".xml":
                    self._xml(file)
                else:
                    self._text(file)

    def _xml(self, file: Path) -> None:
        try:
            root = ElementTree.fromstring(file.read_bytes())
        except ElementTree.ParseError as error:
            raise LabelError(f"{file}:{error.position[0]}: not valid XML ({error})") from None
        images = root.findall("image") if root.tag != "image" else [root]
        if len(images) != 1:
            raise LabelError(f"{file}: expected one <image> element, found {len(images)}")
        element = images[0]
        where = f"{file}: <image>"
        image = self._image(where, element.get("file"), self._folders)
        words = []
        for i, box in enumerate(element.findall("box")):
            at = f"{file}: box {i}"
            segs = box.findtext("segs")
            if segs is None:
                raise LabelError(f"{at}: no <segs> polygon")
            values = _numbers_text(segs, at)
            if len(values) % 2 or len(values) < 6:
                raise LabelError(f"{at}: <segs> must hold at least 3 x, y pairs, got "
                                 f"{len(values)} numbers")
            text = (box.findtext("label") or "").strip()
            words.append((np.array(values).reshape(-1, 2), text, text == "###"))
        self._add_image(where, image, words)

    def _text(self, file: Path) -> None:
        words = []
        for lineno, line in enumerate(_read_lines(file), 1):
            if not line.strip():
                continue
            at = f"{file}:{lineno}"
            coordinates, separator, text = line.partition("####")
            values = _numbers_text(coordinates.rstrip().rstrip(","), at)
            if not separator and len(values) == 32:  # box + 14 offsets from its corner
                x0, y0 = values[0], values[1]
                points = np.array(values[4:]).reshape(-1, 2) + [x0, y0]
            elif len(values) % 2 == 0 and len(values) >= 6:
                points = np.array(values).reshape(-1, 2)
            else:
                raise LabelError(f"{at}: expected x1,y1,...,xn,yn,####text (n >= 3) or the 32 "
                                 f"numbers of the curve format, got {len(values)} numbers")
            text = text.strip()
            words.append((points, text, text == "###"))
        image = None
        for suffix in IMAGE_SUFFIXES + tuple(s.upper() for s in IMAGE_SUFFIXES):
            try:
                image = self._image(str(file), file.stem + suffix, self._folders)
                break
            except LabelError:
                continue
        if image is None:
            raise LabelError(f"{file}: no image {file.stem}.* in "
                             f"{', '.join(str(f) for f in self._folders)}")
        self._add_image(str(file), image, words)


# ----------------------------------------------------------------------------- LabelMe


class LabelMeDataset(FormatDataset):
    """LabelMe: one JSON per image (a folder of them, or a single file)."""

    name = "LabelMeDataset"
    ignore_labels = ("###", "*")

    def _read(self, path) -> None:
        path = _existing(path, "labelme: folder or file")
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        if not files:
            raise FileNotFoundError(f"labelme: no .json files in {path}")
        for file in files:
            with self._record(str(file)):
                self._file(file)

    def _file(self, file: Path) -> None:
        data = _read_json(file)
        where = str(file)
        _expect(data, dict, where, "the file")
        image = self._image(where, data.get("imagePath"), [file.parent], fallback_name=True)
        declared = None
        if "imageHeight" in data and "imageWidth" in data:
            declared = (_expect(data["imageHeight"], int, where, "imageHeight"),
                        _expect(data["imageWidth"], int, where, "imageWidth"))
        words = []
        for i, shape in enumerate(_expect(data.get("shapes", []), list, where, "shapes")):
            at = f"{file}: shapes[{i}]"
            _expect(shape, dict, at, "the shape")
            kind = shape.get("shape_type") or "polygon"
            points = _pairs(shape.get("points"), at)
            if kind == "rectangle":
                if len(points) != 2:
                    raise LabelError(f"{at}: a rectangle needs 2 corners, got {len(points)}")
                (x0, y0), (x1, y1) = points
                points = _rectangle(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
            elif kind != "polygon":
                raise LabelError(f"{at}: shape_type {kind!r} is not a text region (polygon or "
                                 "rectangle)")
            label = str(shape.get("label", ""))
            flags = shape.get("flags") or {}
            ignore = label in self.ignore_labels or bool(
                isinstance(flags, dict) and (flags.get("difficult") or flags.get("ignore")))
            words.append((points, label, ignore))
        self._add_image(where, image, words, declared)


DATASETS = {"paddleocr": PaddleOCRDataset, "mmocr": MMOCRDataset, "doctr": DocTRDataset,
            "cocotext": COCOTextDataset, "textocr": TextOCRDataset, "ctw1500": CTW1500Dataset,
            "labelme": LabelMeDataset}


def check_path(format: str, path: str) -> None:
    """Raises FileNotFoundError / ValueError when ``path`` cannot hold ``format``'s
    labels (without reading them): what ``--data`` checks up front."""
    if format not in DATASETS:
        raise ValueError(f"unknown label format {format!r} (known: {', '.join(FORMATS)})")
    if format == "paddleocr":
        parse_paddle_files(path)
    elif format == "ctw1500":
        _existing(path, "ctw1500: label folder", folder=True)
    elif format in ("mmocr", "cocotext", "textocr"):
        _existing(path, f"{format}: label file", folder=False)
    else:
        _existing(path, f"{format}: folder or file")


def open_dataset(format: str, path, split: str = "train", transform=None, seed: int = 0,
                 skip_bad: bool = False) -> FormatDataset:
    """The dataset of ``format`` (one of :data:`FORMATS`) at ``path``."""
    if format not in DATASETS:
        raise ValueError(f"unknown label format {format!r} (known: {', '.join(FORMATS)})")
    return DATASETS[format](path, split=split, transform=transform, seed=seed,
                            skip_bad=skip_bad)
