"""Real text-detection datasets: ICDAR 2015 and Total-Text, from their files.

ICDAR 2015 (:class:`ICDAR2015Dataset`), ``split`` "train" or "test"; the first
layout found under ``root`` is used::

    root/train_images/img_1.jpg          root/test_images/img_1.jpg
    root/train_gts/gt_img_1.txt          root/test_gts/gt_img_1.txt
      (MhLiao/DB's layout names training files root/train_gts/img_1.jpg.txt)
  or the original archive names:
    root/ch4_training_images/            root/ch4_test_images/
    root/ch4_training_localization_transcription_gt/
                                         root/Challenge4_Test_Task1_GT/
  or root/<split>/images/ + root/<split>/gts/,
  or root/images/ + root/gts/ (a root holding one split; ``split`` then only
  picks the seed stream).

  When ``root/<split>_list.txt`` exists (MhLiao/DB's ``train_list.txt`` and
  ``test_list.txt``: one image file name per line), only the listed images are
  read, in list order; a listed image that is missing raises FileNotFoundError
  naming the list and line.

  Image ``<stem>.<ext>`` has ground truth ``gt_<stem>.txt`` or ``<stem>.<ext>.txt``
  (MhLiao/DB's training files, ``img_1.jpg.txt``): UTF-8 (a BOM is
  allowed), one word per line ``x1,y1,x2,y2,x3,y3,x4,y4,transcription``
  (integers or decimals; the transcription is everything after the eighth
  comma, commas included, and may be missing); ``###`` marks a word to ignore.
  Blank lines are skipped.

Total-Text (:class:`TotalTextDataset`), ``split`` "train" or "test" (folder
names match case-insensitively)::

    root/Images/Train/img11.jpg          root/Images/Test/img1.jpg
    root/gt/Train/poly_gt_img11.txt      root/gt/Test/poly_gt_img1.txt
  (``gts/`` or ``Groundtruth/Text/`` instead of ``gt/`` also work), or
    root/train_images/ + root/train_gts/ (and test_...).

  A ground-truth file is found as ``poly_gt_<stem>.txt``, ``gt_<stem>.txt``,
  ``<stem>.txt`` or ``<image name>.txt`` (e.g. ``img11.jpg.txt``). Two formats,
  told apart by the file's first non-blank line:

  - the legacy text format, one record per word, which may span several lines
    (long arrays wrap)::

        x: [[115 503 494 115]], y: [[322 346 426 404]], ornt: [u'c'], transcriptions: [u'nauGHTY']

    a ``#`` transcription (or ``#`` orientation) marks a word to ignore;
  - one polygon per line ``x1,y1,x2,y2,...,xn,yn,transcription``: the
    coordinates are the longest even run of leading numbers that leaves at
    least one field, the transcription the rest (so ``...,12,2015`` reads the
    word "2015"; a transcription that itself starts with two comma-separated
    numbers cannot be told apart from one more point). ``#`` or ``###`` ignore.

Rules for both: a line that cannot be parsed raises ValueError naming the file
and line, and so does a coordinate beyond +-2^24 (float32 holds integers exactly
up to there; no image is that large); a polygon with fewer than 3 distinct
points has no area, so it is dropped (neither learnt nor evaluated) and counted
in ``dataset.dropped``. Images that are empty or not an image file (by their
first bytes) are left out when the dataset is built and listed in
``dataset.skipped`` (path, reason), so training never draws them.
Images are read with OpenCV as BGR, pixels as stored (EXIF orientation is not
applied: annotations refer to the stored pixels).

Samples: ``dataset.load(i)`` gives the raw record (``image`` uint8 (H, W, 3)
BGR, ``polygons`` list of float32 (N, 2), ``ignore``, ``texts``, ``path``);
``dataset[i]`` gives ``transform(image, polygons, ignore, rng=...)`` plus
``texts``, or the raw record when ``transform`` is None. The rng is a pure
function of (seed, epoch, i): see :mod:`dbnet_fast.data.seeding`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from dbnet_fast.data.seeding import sample_rng

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MAX_COORDINATE = float(2 ** 24)
# The first bytes of the formats of IMAGE_SUFFIXES (WebP: RIFF....WEBP).
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")
IGNORE_ICDAR = ("###",)
IGNORE_TOTALTEXT = ("#", "###")


@dataclass
class Annotation:
    """The words of one image: float32 (N_i, 2) polygons, ignore flags, transcriptions."""

    polygons: list
    ignore: list
    texts: list
    dropped: int = 0


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 ({error})") from None
    # a BOM may also start later lines when files were concatenated
    return [line.lstrip("\ufeff").rstrip("\r") for line in text.split("\n")]


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def _add(annotation: Annotation, points, text: str, ignore: bool, where: str):
    polygon = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if polygon.size and np.abs(polygon).max() > MAX_COORDINATE:
        raise ValueError(f"{where}: coordinate {np.abs(polygon).max():g} is beyond "
                         f"+-{MAX_COORDINATE:.0f} (2^24): not a pixel position")
    if len(np.unique(polygon, axis=0)) < 3:
        annotation.dropped += 1
        return
    annotation.polygons.append(polygon.astype(np.float32))
    annotation.ignore.append(bool(ignore))
    annotation.texts.append(text)


def parse_icdar2015(path) -> Annotation:
    """Words of an ICDAR 2015 ground-truth file (format in the module documentation)."""
    path = Path(path)
    out = Annotation([], [], [])
    for lineno, line in enumerate(_read_lines(path), 1):
        if not line.strip():
            continue
        fields = line.split(",", 8)
        numbers = [_number(f.strip()) for f in fields[:8]]
        if len(fields) < 8 or any(v is None for v in numbers):
            raise ValueError(f"{path}:{lineno}: expected x1,y1,...,x4,y4,transcription "
                             f"with 8 finite numbers, got {line.strip()!r}")
        text = fields[8].strip() if len(fields) > 8 else ""
        _add(out, numbers, text, text in IGNORE_ICDAR, f"{path}:{lineno}")
    return out


_LEGACY = re.compile(
    r"x:\s*\[\[(?P<x>[^\]]*)\]\]\s*,\s*y:\s*\[\[(?P<y>[^\]]*)\]\]\s*,"
    r"\s*ornt:\s*\[(?P<ornt>[^\]]*)\]\s*,\s*transcriptions:\s*\[(?P<text>.*)\]\s*",
    re.DOTALL,
)


def _literal(text: str) -> str:
    """u'abc' / 'abc' / "abc" -> abc (Python 2 repr strings in Total-Text files)."""
    text = text.strip()
    if text[:1] in "uU" and text[1:2] in ("'", '"'):
        text = text[1:]
    if len(text) >= 2 and text[0] == text[-1] and text[0] in ("'", '"'):
        text = text[1:-1]
    return text


def _numbers(text: str, where: str) -> list[float]:
    values = [_number(v) for v in re.split(r"[\s,]+", text.strip()) if v]
    if any(v is None for v in values):
        raise ValueError(f"{where}: coordinates must be finite numbers, got {text.strip()!r}")
    return values


def _parse_legacy(path: Path, lines: list[str], out: Annotation):
    records = []  # (first line number, text)
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if line.lstrip().startswith("x:"):
            records.append([lineno, line.strip()])
        elif records:
            records[-1][1] += " " + line.strip()
        else:
            raise ValueError(f"{path}:{lineno}: expected a record starting with 'x:', got "
                             f"{line.strip()!r}")
    for lineno, record in records:
        where = f"{path}:{lineno}"
        match = _LEGACY.fullmatch(record)
        if match is None:
            raise ValueError(f"{where}: expected 'x: [[...]], y: [[...]], ornt: [...], "
                             f"transcriptions: [...]', got {record[:120]!r}")
        xs, ys = _numbers(match["x"], where), _numbers(match["y"], where)
        if len(xs) != len(ys):
            raise ValueError(f"{where}: {len(xs)} x coordinates but {len(ys)} y coordinates")
        text = _literal(match["text"])
        ornt = _literal(match["ornt"])
        _add(out, np.stack([xs, ys], 1) if xs else np.zeros((0, 2)), text,
             text in IGNORE_TOTALTEXT or ornt == "#", where)


def _parse_csv_polygons(path: Path, lines: list[str], out: Annotation):
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = line.split(",")
        numeric = 0
        while numeric < len(fields) and _number(fields[numeric].strip()) is not None:
            numeric += 1
        count = min(numeric, len(fields) - 1)
        count -= count % 2
        if count < 2:
            raise ValueError(f"{path}:{lineno}: expected x1,y1,...,xn,yn,transcription, "
                             f"got {line.strip()!r}")
        points = [float(f) for f in fields[:count]]
        text = ",".join(fields[count:]).strip()
        _add(out, points, text, text in IGNORE_TOTALTEXT, f"{path}:{lineno}")


def parse_total_text(path) -> Annotation:
    """Words of a Total-Text ground-truth file, legacy or one-line-per-polygon format."""
    path = Path(path)
    lines = _read_lines(path)
    out = Annotation([], [], [])
    first = next((line for line in lines if line.strip()), "")
    if first.lstrip().startswith("x:"):
        _parse_legacy(path, lines, out)
    else:
        _parse_csv_polygons(path, lines, out)
    return out


# ----------------------------------------------------------------------------- folders


def _child(folder: Path, name: str) -> Path | None:
    """``folder/name`` matched case-insensitively (a relative path of several parts too)."""
    for part in Path(name).parts:
        if not folder.is_dir():
            return None
        exact = folder / part
        if exact.is_dir():
            folder = exact
            continue
        lowered = part.lower()
        found = [p for p in folder.iterdir() if p.is_dir() and p.name.lower() == lowered]
        if not found:
            return None
        folder = found[0]
    return folder


def _first_layout(root: Path, layouts, who: str):
    for images, gts in layouts:
        a, b = _child(root, images), _child(root, gts)
        if a is not None and b is not None:
            return a, b
    tried = "; ".join(f"{i} + {g}" for i, g in layouts)
    raise FileNotFoundError(f"{who}: no known layout under {root} (tried {tried})")


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def image_problem(path: Path) -> str | None:
    """Why ``path`` cannot be an image (empty, unreadable, not an image format by its
    first bytes), or None. Cheap: reads 12 bytes, decodes nothing."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if not head:
        return "is empty"
    if not head.startswith(_SIGNATURES) or (head.startswith(b"RIFF") and head[8:12] != b"WEBP"):
        return "is not an image file (unknown format)"
    return None

def _listed_images(folder: Path, list_file: Path) -> list[Path]:
    """The images ``list_file`` names (one file name per line, blank lines skipped),
    in its order, from ``folder``."""
    out = []
    for lineno, line in enumerate(_read_lines(list_file), 1):
        name = line.strip()
        if not name:
            continue
        image = folder / name
        if not image.is_file():
            raise FileNotFoundError(f"{list_file}:{lineno}: listed image {image} does not exist")
        out.append(image)
    return out


def _gt_file(folder: Path, image: Path, patterns) -> Path | None:
    for pattern in patterns:
        candidate = folder / pattern.format(stem=image.stem, name=image.name)
        if candidate.is_file():
            return candidate
    return None


class LabelledImages(torch.utils.data.Dataset):
    """Images with word polygons: ``image_paths``, ``annotations`` (one
    :class:`Annotation` each), ``skipped`` ((path or record, reason) left out),
    ``dropped`` (polygons without area); the sample access of every dataset
    reading files (see the module documentation). Subclasses fill the lists."""

    name = "dataset"

    def _setup(self, transform, seed):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"{self.name}: seed must be an int >= 0, got {seed!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"{self.name}: transform must be callable or None")
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0
        self.image_paths, self.annotations, self.skipped = [], [], []
        self.dropped = 0

    def __len__(self):
        return len(self.image_paths)

    def set_epoch(self, epoch: int):
        """Selects the augmentation randomness of an epoch."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"{self.name}: epoch must be an int >= 0, got {epoch!r}")
        self.epoch = int(epoch)

    def _index(self, index):
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"{self.name}: index must be an int, got {type(index).__name__}")
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.name}: index {index} out of range for {len(self)} images")
        return int(index) % len(self)

    def load(self, index: int) -> dict:
        """The raw record of image ``index`` (no transform)."""
        index = self._index(index)
        path = self.image_paths[index]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if image is None:
            raise OSError(f"{self.name}: cannot read image {path}")
        a = self.annotations[index]
        return {"image": image, "polygons": [p.copy() for p in a.polygons],
                "ignore": list(a.ignore),
                "texts": list(a.texts), "path": str(path)}

    def __getitem__(self, index):
        index = self._index(index)
        record = self.load(index)
        if self.transform is None:
            return record
        rng = sample_rng(self.seed, self.epoch, index)
        sample = self.transform(record["image"], record["polygons"], record["ignore"], rng=rng)
        sample["texts"] = record["texts"]
        return sample


class _TextDataset(LabelledImages):
    """A folder of images and a folder of ground-truth files (ICDAR 2015, Total-Text)."""

    def __init__(self, root, split, transform, seed, layouts, gt_patterns, parser,
                 list_name=None):
        if split not in ("train", "test"):
            raise ValueError(f"{self.name}: split must be 'train' or 'test', got {split!r}")
        self._setup(transform, seed)
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.name}: root {self.root} is not a folder")
        self.split = split
        image_dir, gt_dir = _first_layout(self.root, layouts, self.name)
        list_file = self.root / list_name if list_name else None
        listed = list_file is not None and list_file.is_file()
        for image in _listed_images(image_dir, list_file) if listed else _images(image_dir):
            problem = image_problem(image)
            if problem is None:
                self.image_paths.append(image)
            else:
                self.skipped.append((str(image), problem))
        if not self.image_paths:
            raise FileNotFoundError(f"{self.name}: no readable images ({', '.join(IMAGE_SUFFIXES)})"
                                    f" in {image_dir}" + (f"; skipped {len(self.skipped)}: "
                                                          f"{self.skipped[0][0]} "
                                                          f"{self.skipped[0][1]}, ..."
                                                          if self.skipped else ""))
        self.gt_paths = []
        for image in self.image_paths:
            gt = _gt_file(gt_dir, image, gt_patterns)
            if gt is None:
                names = ", ".join(p.format(stem=image.stem, name=image.name) for p in gt_patterns)
                raise FileNotFoundError(f"{self.name}: no ground truth for {image} in {gt_dir} "
                                        f"(looked for {names})")
            self.gt_paths.append(gt)
            self.annotations.append(parser(gt))
        self.dropped = sum(a.dropped for a in self.annotations)


class ICDAR2015Dataset(_TextDataset):
    """ICDAR 2015 incidental scene text (quads). ``ICDAR2015Dataset(root, split="train",
    transform=None, seed=0)``; layout and format in the module documentation."""

    name = "ICDAR2015Dataset"

    def __init__(self, root, split: str = "train", transform=None, seed: int = 0):
        original = {"train": ("ch4_training_images", "ch4_training_localization_transcription_gt"),
                    "test": ("ch4_test_images", "Challenge4_Test_Task1_GT")}
        layouts = [(f"{split}_images", f"{split}_gts"), original.get(split, ("", "")),
                   (f"{split}/images", f"{split}/gts"), ("images", "gts")]
        super().__init__(root, split, transform, seed, layouts, ("gt_{stem}.txt", "{name}.txt"),
                         parse_icdar2015, list_name=f"{split}_list.txt")


class TotalTextDataset(_TextDataset):
    """Total-Text curved text (polygons). ``TotalTextDataset(root, split="train",
    transform=None, seed=0)``; layouts and formats in the module documentation."""

    name = "TotalTextDataset"

    def __init__(self, root, split: str = "train", transform=None, seed: int = 0):
        folder = split.capitalize() if isinstance(split, str) else split
        layouts = [(f"Images/{folder}", f"gt/{folder}"), (f"Images/{folder}", f"gts/{folder}"),
                   (f"Images/{folder}", f"Groundtruth/Text/{folder}"),
                   (f"{split}_images", f"{split}_gts")]
        patterns = ("poly_gt_{stem}.txt", "gt_{stem}.txt", "{stem}.txt", "{name}.txt")
        super().__init__(root, split, transform, seed, layouts, patterns, parse_total_text)
