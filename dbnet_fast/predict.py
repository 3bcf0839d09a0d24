"""DBPredictor: images of any sizes in, one :class:`~dbnet_fast.postprocess.Detections`
per image out, in original-image pixels.

Each image is resized for the model (:func:`~dbnet_fast.data.transforms.inference_size`:
a limit on a side, multiples of 32, bilinear as PaddleOCR and MhLiao/DB) and
normalised as the model expects (its ``input_norm``). Images are grouped into
batches, the model and the post-processing run on the predictor's device, and
boxes are scaled back to each original image.

Batching: images whose padded model input has the same size share a batch.
An image's padding depends on that image alone (bottom and right, up to the
next multiple of ``pad_to``, zeros after normalisation: the mean colour), never
on the other images of the batch, so an image gives the same boxes alone and
in any batch (the maps agree to float rounding, about 1e-5, as the convolution
kernels differ with the batch size). Padding to the largest image of each batch
would not: global pooling (squeeze-excitation in PP-LCNetV3 and MobileNetV3)
and the convolutions near the edge would see the other images' padding.

- ``pad_to=32`` (default): no padding beyond the resize's multiple of 32, so the
  maps are exactly the model's on each image (PaddleOCR's results). Photos from
  one camera, scans and video frames share a few sizes, so batches stay full.
- ``pad_to=128`` (or any multiple of 32): fewer distinct sizes, fuller batches
  when every image has its own size; each map is cropped back to its image
  before post-processing, so boxes stay in place, but the model sees the
  padding, which can move scores near the bottom and right edges.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import weakref
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np
import torch

from dbnet_fast.data.transforms import check_input_size, inference_size, normalize
from dbnet_fast.engine.checkpoint import PPOCR_ARCHS, unwrap
from dbnet_fast.engine.precision import autocast, resolve_amp
from dbnet_fast.fold import fold_batchnorm
from dbnet_fast.postprocess import DBPostProcessor, Detections, postprocess_padded

COLORS = ("bgr", "rgb")
PPOCR_MODELS = PPOCR_ARCHS
"""``model_or_checkpoint`` names of PaddleOCR's pretrained detectors (ppocr-v4, ...)."""
IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")

# PaddleOCR's inference settings; a checkpoint's own thresholds replace these.
# Shrinking large images only suits any model at the scale it was trained at.
_DEFAULTS = {"limit_side_len": 960, "limit_type": "max", "thresh": 0.3, "box_thresh": 0.6,
             "unclip_ratio": 1.5}


class ImageReadError(ValueError):
    """An image file that is missing or that OpenCV cannot decode."""


@dataclass
class PreparedImage:
    """One image ready for the model: ``tensor`` (3, h, w) float32 normalised,
    ``size`` the original (H, W)."""

    tensor: torch.Tensor
    size: tuple[int, int]


def read_image(path) -> np.ndarray:
    """An image file as an (H, W, 3) uint8 BGR array (grey and alpha images converted);
    :class:`ImageReadError` naming the file when it is missing or unreadable."""
    path = Path(path)
    _check_regular_file(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)  # imdecode: non-ASCII paths work too
    except OSError as error:
        raise ImageReadError(f"{path}: cannot read it ({error.strerror or error})") from None
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except cv2.error as error:  # e.g. more pixels than OpenCV allows
        raise ImageReadError(f"{path}: OpenCV cannot decode it ({str(error).strip()})") from error
    if image is None:
        raise ImageReadError(f"{path}: not an image OpenCV can decode")
    return image


_FILE_KINDS = ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"),
               (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"))


def _check_regular_file(path: Path) -> None:
    """:class:`ImageReadError` saying why ``path`` is not a regular file (or a link to
    one). Only stats it: opening a FIFO would wait for a writer."""
    try:
        mode = path.stat().st_mode
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise ImageReadError(f"{path}: symbolic link loop") from None
        if path.is_symlink():  # the link itself is there, not what it points to
            raise ImageReadError(f"{path}: broken symbolic link (to {os.readlink(path)})") \
                from None
        if error.errno == errno.ENOENT:
            raise ImageReadError(f"{path}: no such file") from None
        raise ImageReadError(f"{path}: cannot read it ({error.strerror or error})") from None
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _FILE_KINDS if test(mode)), "unknown kind")
        raise ImageReadError(f"{path}: not a regular file ({kind})")


def list_images(inputs: Iterable) -> list[Path]:
    """Files and folders (their images, sorted, not recursive) -> image paths.

    A path that does not exist raises FileNotFoundError. Files given explicitly are
    kept whatever their suffix, and so are broken links; in folders, every entry
    with an image suffix that is not a folder (links, FIFOs, ...). Reading reports
    the ones that are not images."""
    paths = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            paths += sorted(p for p in item.iterdir()
                            if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir())
        elif item.exists() or item.is_symlink():
            paths.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such file or folder")
    return paths


def load_model(model_or_checkpoint, device="cpu"):
    """A module, a name of :data:`PPOCR_MODELS` or a checkpoint path -> ``(model on
    device, post-processing defaults from its training configuration)``. A module is
    unwrapped from DDP and moved to ``device`` (in place, as ``.to`` does), nothing
    more: you may still train it. A model loaded here from a name or a file is our
    own copy, for inference only: its BatchNorms are folded into the convolutions
    (:func:`~dbnet_fast.fold.fold_batchnorm`; same maps, less work)."""
    from dbnet_fast.engine.checkpoint import load_checkpoint, model_from_checkpoint

    if isinstance(model_or_checkpoint, torch.nn.Module):
        model = unwrap(model_or_checkpoint).to(device)
        return model, _model_defaults(model)
    if isinstance(model_or_checkpoint, str) and model_or_checkpoint in PPOCR_MODELS:
        from dbnet_fast.model import load_ppocr_det

        model = load_ppocr_det(model_or_checkpoint).to(device).eval()
        defaults = _model_defaults(model)
    elif isinstance(model_or_checkpoint, (str, os.PathLike)):
        state = load_checkpoint(model_or_checkpoint)
        model = model_from_checkpoint(state, device)
        trained = state.get("config", {})
        defaults = _model_defaults(model)
        defaults.update({k: trained[k] for k in ("thresh", "box_thresh", "unclip_ratio")
                         if isinstance(trained.get(k), (int, float))})
    else:
        raise TypeError(f"DBPredictor: model_or_checkpoint must be a torch.nn.Module, one of "
                        f"{PPOCR_MODELS} or a checkpoint path, got "
                        f"{type(model_or_checkpoint).__name__}")
    fold_batchnorm(model)
    return model, defaults


def _model_defaults(model: torch.nn.Module) -> dict:
    """A PaddleOCR detector's own inference settings (its ``name`` in the zoo), else
    :data:`_DEFAULTS`."""
    from dbnet_fast.model.paddle.zoo import MODELS

    name = getattr(model, "name", None)
    return dict(MODELS[name].settings) if isinstance(name, str) and name in MODELS \
        else dict(_DEFAULTS)


def normalize_input(bgr: np.ndarray, input_norm: str) -> torch.Tensor:
    """(H, W, 3) uint8 BGR -> (3, H, W) float32 as a model with ``input_norm`` expects."""
    if input_norm == "imagenet":
        return normalize(bgr)
    if input_norm == "ppocr":
        from dbnet_fast.model import ppocr_normalize

        return ppocr_normalize(bgr)[0]
    raise ValueError(f"unknown model input_norm {input_norm!r}")


@dataclass(frozen=True)
class Preprocessor:
    """Any accepted image -> :class:`PreparedImage`: read or convert to BGR, resize by
    the policy, normalise. Small and picklable: DataLoader workers get a copy.
    ``tile_size``: an image with a side over it keeps its own size (run in tiles).
    ``size``: (height, width), every image resized to exactly this instead of the
    policy (aspect not kept)."""

    limit_side_len: int = 960
    limit_type: str = "max"
    input_norm: str = "imagenet"
    color: str | None = None
    tile_size: int | None = None
    size: tuple[int, int] | None = None

    def __post_init__(self):
        inference_size(32, 32, self.limit_side_len, self.limit_type)  # validates both
        if self.size is not None:
            object.__setattr__(self, "size", check_input_size(self.size, "DBPredictor"))
            if self.tile_size is not None:
                raise ValueError("DBPredictor: size (an exact input size) excludes tiles")
        if self.color is not None and self.color not in COLORS:
            raise ValueError(f"DBPredictor: color must be None or one of {COLORS}, "
                             f"got {self.color!r}")
        normalize_input(np.zeros((1, 1, 3), np.uint8), self.input_norm)

    def to_bgr(self, image) -> np.ndarray:
        """Any accepted image (see :class:`DBPredictor`) -> (H, W, 3) uint8 BGR."""
        if isinstance(image, (str, os.PathLike)):
            return read_image(image)
        if isinstance(image, torch.Tensor):
            if image.dim() == 3:
                if image.shape[0] not in (1, 3, 4):
                    raise ValueError(f"DBPredictor: a 3-D image tensor must be (C, H, W) with C "
                                     f"1, 3 or 4 (as torchvision reads), got {tuple(image.shape)}")
                image = image.permute(1, 2, 0)
            array, color = image.detach().cpu().numpy(), self.color or "rgb"
        elif isinstance(image, np.ndarray):
            array, color = image, self.color or "bgr"
        else:
            raise TypeError(f"DBPredictor: an image must be a path, a NumPy array or a tensor, "
                            f"got {type(image).__name__}")
        if array.dtype != np.uint8:
            raise TypeError(f"DBPredictor: images must be uint8, got {array.dtype}")
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        if array.ndim == 2:
            array = np.repeat(array[:, :, None], 3, axis=2)
        elif array.ndim == 3 and array.shape[2] == 4:
            array = array[:, :, :3]  # alpha dropped
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"DBPredictor: an image must be (H, W), (H, W, 3) or (H, W, 4) "
                             f"(tensors (3, H, W)), got shape {tuple(image.shape)}")
        if array.shape[0] < 1 or array.shape[1] < 1:
            raise ValueError(f"DBPredictor: empty image of shape {tuple(image.shape)}")
        return np.ascontiguousarray(array[:, :, ::-1] if color == "rgb" else array)

    def __call__(self, image) -> PreparedImage:
        return self.from_bgr(self.to_bgr(image))

    def from_bgr(self, bgr: np.ndarray) -> PreparedImage:
        """An (H, W, 3) uint8 BGR array resized by the policy and normalised."""
        height, width = bgr.shape[:2]
        if self.tile_size is not None and max(height, width) > self.tile_size:
            return PreparedImage(normalize_input(bgr, self.input_norm), (height, width))
        h, w = self.size or inference_size(height, width, self.limit_side_len, self.limit_type)
        if (h, w) != (height, width):
            bgr = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_LINEAR)
        return PreparedImage(normalize_input(bgr, self.input_norm), (height, width))


_MODEL_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_MODEL_LOCKS_GUARD = threading.Lock()


def _model_lock(model: torch.nn.Module) -> threading.RLock:
    """The one lock of ``model`` (made on first use, gone with the model)."""
    with _MODEL_LOCKS_GUARD:
        return _MODEL_LOCKS.setdefault(model, threading.RLock())


class DBPredictor:
    """Batched text detection with a DB model (see the module documentation).

    Args:
        model_or_checkpoint: a DBNet / PPOCRDet module, ``"ppocr-v4"``,
            ``"ppocr-v5"``, ``"ppocr-v6-small"`` (PaddleOCR's pretrained detectors,
            :func:`~dbnet_fast.model.load_ppocr_det`; each with its own pipeline's
            settings as defaults, :data:`~dbnet_fast.model.paddle.zoo.MODELS`) or the
            path of a checkpoint written by ``dbnet-fast train``.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or a
            ``torch.device``; model and post-processing run there.
        limit_side_len, limit_type: the resize policy
            (:func:`~dbnet_fast.data.transforms.inference_size`). Default: a
            pretrained model's own setting, else the long side at most 960
            (PaddleOCR's inference setting).
        size: (height, width), both multiples of 32: every image resized to
            exactly this (aspect not kept) instead of the policy; MhLiao/DB
            tests ICDAR 2015 at (736, 1280). Excludes ``tiles``.
        batch_size: images per forward pass; None: 1 on the CPU, 8 on CUDA. On the
            CPU a batch runs slower per image than its images one by one (their
            activations leave the caches; PP-OCRv4, 40 mixed images, Zen 3: 10.4 s
            of forward passes in batches of up to 8 against 5.3 s one by one),
            and one image already keeps every core busy.
        pad_to: each input is padded to a multiple of this (a multiple of 32);
            images of the same padded size share batches (module documentation).
        amp: autocast: float16 on CUDA; bfloat16 on the CPU where the CPU computes
            it fast, else float32 with a warning
            (:func:`~dbnet_fast.engine.precision.resolve_amp`).
        color: channel order of NumPy arrays and tensors given to the call;
            None: BGR for arrays (as ``cv2.imread``), RGB for tensors (as
            ``torchvision.io.read_image``). Files are always read correctly.
        postprocess: a :class:`DBPostProcessor`, or a dict of its fields that
            update the defaults (a pretrained model's own settings; else thresh
            0.3, box_thresh 0.6, unclip_ratio 1.5, or a checkpoint's own training
            settings when it has them).

    Call: ``predictor(images)`` with one image or a list; each a path, an
    (H, W, 3) / (H, W) / (H, W, 4) uint8 NumPy array or a (3, H, W) / (H, W)
    uint8 tensor, or a (B, 3, H, W) uint8 tensor. Returns a list of Detections in the input order (a list
    also for a single image). Images are prepared and run ``CHUNK_BATCHES`` batches
    at a time, so a long list needs the memory of a few batches only, and each
    image runs at exactly the input size it has alone (:meth:`model_inputs`).

    Large images (``tiles``): an image with a side over ``tiles`` pixels is not
    shrunk; it runs at its own scale in overlapping ``tiles`` x ``tiles`` tiles
    (:class:`Tiling`), batched, whose maps are stitched into one map of the whole
    image before post-processing, so a word across a tile border is one box.
    Smaller images follow the resize policy as without tiles.

    ``compile=True``: the model runs under ``torch.compile`` (dynamic shapes);
    the first call of a run pays the compilation (see README for the figures).

    ``trim_memory`` (default True): after each call the C heap's freed memory
    goes back to the system (:func:`release_freed_memory`), so a long run of
    random sizes stays flat (``make soak``); the next call then faults its
    working set back in, which on the CPU costs about as much as a small
    model (PP-OCRv4, four images one by one: 1.11 s trimmed, 0.55 s not).
    ``trim_memory=False`` keeps the freed memory for reuse: for a run of
    images of few sizes, or where memory is plentiful (glibc then holds what
    fragmentation leaves: 385 MB more after 160 random-size images).
    """

    def __init__(self, model_or_checkpoint, device="auto", *, limit_side_len: int | None = None,
                 limit_type: str | None = None, batch_size: int | None = None, pad_to: int = 32,
                 amp: bool = False, color: str | None = None,
                 postprocess: DBPostProcessor | dict | None = None, tiles: int | None = None,
                 tile_overlap: int | None = None, compile: bool = False,
                 size: tuple[int, int] | None = None, trim_memory: bool = True):
        from dbnet_fast.engine.distributed import resolve_device

        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.model, defaults = load_model(model_or_checkpoint, self.device)  # folds its own
        # On the CPU oneDNN's convolutions run 1.2-1.6x faster on channels-last
        # (NHWC) tensors than on NCHW ones (PP-OCRv4, v6 small, R18, README); an
        # NHWC input selects them even for a module passed in, whose weights are
        # left as they are; our own copy is converted too (no reorder per call).
        self.memory_format = torch.channels_last if self.device.type == "cpu" \
            else torch.contiguous_format
        if not isinstance(model_or_checkpoint, torch.nn.Module):
            self.model.to(memory_format=self.memory_format)
        self.tiling = None if tiles is None else Tiling(tiles, tile_overlap)
        for name, flag in (("compile", compile), ("trim_memory", trim_memory)):
            if not isinstance(flag, bool):
                raise TypeError(f"DBPredictor: {name} must be True or False, got {flag!r}")
        self.trim_memory = trim_memory
        self.forward = compiled_forward(self.model) if compile else self.model
        self.preprocess = Preprocessor(
            defaults["limit_side_len"] if limit_side_len is None else limit_side_len,
            defaults["limit_type"] if limit_type is None else limit_type,
            getattr(self.model, "input_norm", "imagenet"), color,
            None if self.tiling is None else self.tiling.size, size)
        if batch_size is None:
            batch_size = 1 if self.device.type == "cpu" else 8
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"DBPredictor: batch_size must be a positive int or None, "
                             f"got {batch_size!r}")
        if isinstance(pad_to, bool) or not isinstance(pad_to, int) or pad_to < 32 or pad_to % 32:
            raise ValueError(f"DBPredictor: pad_to must be a positive multiple of 32, got {pad_to!r}")
        self.batch_size, self.pad_to = batch_size, pad_to
        self.amp = resolve_amp(self.device, bool(amp), "DBPredictor amp")  # what really runs
        self.postprocessor = self._postprocessor(postprocess, defaults)
        if self.device.type == "cuda" and self.postprocessor.score_mode == "slow" \
                and self.postprocessor.output == "quad":
            raise ValueError("DBPredictor: score_mode='slow' has no CUDA implementation; use "
                             "score_mode='fast' or device='cpu'")

    @staticmethod
    def _postprocessor(postprocess, defaults) -> DBPostProcessor:
        if isinstance(postprocess, DBPostProcessor):
            return postprocess
        names = {f.name for f in fields(DBPostProcessor)}
        settings = {k: v for k, v in defaults.items() if k in names}
        if postprocess is not None:
            if not isinstance(postprocess, dict):
                raise TypeError("DBPredictor: postprocess must be a DBPostProcessor, a dict or None, "
                                f"got {type(postprocess).__name__}")
            unknown = set(postprocess) - names
            if unknown:
                raise ValueError(f"DBPredictor: unknown postprocess settings {sorted(unknown)}; "
                                 f"known: {sorted(names)}")
            settings.update(postprocess)
        return DBPostProcessor(**settings)

    # ------------------------------------------------------------------ preparing

    def prepare(self, image) -> PreparedImage:
        """Reads / converts, resizes and normalises one image (:class:`Preprocessor`);
        with ``tiles``, an image too large for one tile is kept at its own size."""
        return self.preprocess(image)

    def is_tiled(self, item: PreparedImage) -> bool:
        return self.tiling is not None and max(item.tensor.shape[1:]) > self.tiling.size

    # ------------------------------------------------------------------ running

    def padded_size(self, item: PreparedImage) -> tuple[int, int]:
        """The model input size of ``item``: its size rounded up to multiples of ``pad_to``."""
        h, w = item.tensor.shape[1:]
        return -(-h // self.pad_to) * self.pad_to, -(-w // self.pad_to) * self.pad_to

    def batches(self, prepared: Sequence[PreparedImage]) -> list[list[int]]:
        """Indices into ``prepared`` grouped into the batches that will run."""
        groups: dict[tuple[int, int], list[int]] = {}
        tiled = []
        for i, item in enumerate(prepared):
            if self.is_tiled(item):
                tiled.append([i])  # its tiles make their own batches
            else:
                groups.setdefault(self.padded_size(item), []).append(i)
        return [g[i:i + self.batch_size] for _, g in sorted(groups.items())
                for i in range(0, len(g), self.batch_size)] + tiled

    def model_inputs(self, prepared: Sequence[PreparedImage]) -> list[tuple[int, int, int]]:
        """The (batch, height, width) of every forward pass :meth:`run` makes for
        ``prepared``: an image's own input size (or its tiles') whatever else is in
        the call."""
        shapes = []
        for indices in self.batches(prepared):
            if self.is_tiled(prepared[indices[0]]):
                windows = self.tiling.windows(*prepared[indices[0]].tensor.shape[1:])
                h, w = windows[0][1] - windows[0][0], windows[0][3] - windows[0][2]
                shapes += [(len(windows[i:i + self.batch_size]), h, w)
                           for i in range(0, len(windows), self.batch_size)]
            else:
                shapes.append((len(indices), *self.padded_size(prepared[indices[0]])))
        return shapes

    @torch.no_grad()
    def run(self, prepared: Sequence[PreparedImage]) -> list[Detections]:
        """Detections of prepared images, in their order. The model runs in eval
        mode; its mode is restored after (a model in training stays so).

        Safe to call from several threads: the switch to eval mode, the forward
        passes and the restore hold the model's lock (shared by every predictor
        of that model), so no call runs the model in another call's mode and
        BatchNorm statistics never change. Preparing images runs in parallel."""
        results: list[Detections | None] = [None] * len(prepared)

        def detect(indices, prob, shapes):
            found = postprocess_padded(self.postprocessor, prob, shapes,
                                       [prepared[i].size for i in indices])
            for i, detections in zip(indices, found):
                results[i] = detections

        self._each_batch(prepared, detect)
        return results

    @torch.no_grad()
    def maps(self, prepared: Sequence[PreparedImage]) -> list[tuple[torch.Tensor, tuple[int, int]]]:
        """The probability map of each prepared image, in their order, with its
        original (H, W): ``(map, size)``, ``map`` an (h, w) float32 view on the
        predictor's device cropped to the image's model input (padding and tiles
        removed). ``postprocessor(map[None], sizes=[size])`` gives what :meth:`run`
        gives, so one forward pass can be scored at many post-processing settings.
        Batches, tiles and locking as :meth:`run`."""
        results: list = [None] * len(prepared)

        def keep(indices, prob, shapes):
            for b, (i, (h, w)) in enumerate(zip(indices, shapes)):
                results[i] = (prob[b, 0, :h, :w], prepared[i].size)

        self._each_batch(prepared, keep)
        return results

    def _each_batch(self, prepared: Sequence[PreparedImage], consume) -> None:
        """Runs the model on every batch of ``prepared`` (eval mode, under the model's
        lock) and hands each to ``consume(indices, prob (B, 1, H, W), shapes)``,
        ``shapes[b]`` the part of map b that is image b's."""
        with _model_lock(self.model):
            was_training = self.model.training
            self.model.eval()
            try:
                for indices in self.batches(prepared):
                    items = [prepared[i] for i in indices]
                    if self.is_tiled(items[0]):
                        prob = self._stitched_map(items[0])[None, None]
                        consume(indices, prob, [tuple(prob.shape[-2:])])
                    else:
                        consume(indices, *self._batch_map(items))
            finally:
                self.model.train(was_training)

    def _batch_map(self, items: list[PreparedImage]) -> tuple[torch.Tensor, list]:
        shapes = [tuple(p.tensor.shape[1:]) for p in items]
        height, width = self.padded_size(items[0])  # the same for the whole batch
        if len(items) == 1 and shapes[0] == (height, width):
            images = items[0].tensor[None]  # nothing to pad: no copy
        else:
            images = torch.zeros(len(items), 3, height, width, dtype=torch.float32)
            for b, p in enumerate(items):
                images[b, :, :shapes[b][0], :shapes[b][1]] = p.tensor
        return self._forward(images), shapes

    def _forward(self, images: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.amp):
            images = images.to(self.device, non_blocking=True)
            return self.forward(images.contiguous(memory_format=self.memory_format)).float()

    def _stitched_map(self, item: PreparedImage) -> torch.Tensor:
        """The (H, W) map of one large image: its tiles through the model in batches,
        their maps stitched (:meth:`Tiling.stitch`)."""
        height, width = item.tensor.shape[1:]
        windows = self.tiling.windows(height, width)
        maps = []
        for i in range(0, len(windows), self.batch_size):
            tiles = torch.stack([self.tiling.cut(item.tensor, window)
                                 for window in windows[i:i + self.batch_size]])
            maps += list(self._forward(tiles)[:, 0])
        return self.tiling.stitch(maps, windows, height, width)

    def __call__(self, images) -> list[Detections]:
        if isinstance(images, torch.Tensor) and images.dim() == 4:
            images = list(images)  # a (B, 3, H, W) batch of equal-size images
        elif isinstance(images, (str, os.PathLike, np.ndarray, torch.Tensor)):
            images = [images]
        elif not isinstance(images, (list, tuple)):
            raise TypeError(f"DBPredictor: images must be an image (path, array, tensor) or a "
                            f"list or tuple of them, got {type(images).__name__}")
        results: list[Detections] = []
        chunk = self.batch_size * CHUNK_BATCHES
        for start in range(0, len(images), chunk):
            results += self.run([self.prepare(image) for image in images[start:start + chunk]])
        if self.trim_memory:
            release_freed_memory()
        return results


def _malloc_trim():
    try:
        import ctypes

        return ctypes.CDLL(None).malloc_trim  # glibc
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _malloc_trim()


def release_freed_memory() -> None:
    """Hands the C heap's free memory back to the system (glibc's malloc_trim).

    Images of ever new sizes leave freed blocks of ever new sizes; glibc keeps
    them, and its mmap threshold rises to 32 MB after large frees, so the
    resident memory of a long run climbed by about 30 MB per call of four large
    images (800 to 1,430 MB in 20 calls); trimmed after each call it stays flat
    (tests/test_soak.py). No-op without glibc."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


CHUNK_BATCHES = 4
"""Batches' worth of images prepared before running: size grouping works within one."""


def compiled_forward(model: torch.nn.Module):
    """``model`` under torch.compile with dynamic shapes (one graph for all sizes)."""
    return torch.compile(model, dynamic=True)


@dataclass(frozen=True)
class Tiling:
    """Overlapping square tiles of a large image and the stitching of their maps.

    Along each side of length ``L > size`` the tiles start at evenly spaced
    offsets, ``ceil((L - overlap) / (size - overlap))`` of them, the first at 0
    and the last ending at ``L``, so neighbours overlap by at least ``overlap``
    pixels; a side within ``size`` is one tile of that side rounded up to a
    multiple of 32 (zero padding after normalisation, the mean colour). Each
    pixel of the stitched map comes from the one tile it is deepest inside (the
    cut runs through the middle of each overlap), so every tile's map is used
    at least ``overlap / 2`` pixels away from its borders, where the model sees
    the context on both sides, and no pixel is counted twice.

    Args:
        size: tile side in pixels, a multiple of 32 (>= 64).
        overlap: pixels shared by neighbouring tiles, 0 <= overlap <= size / 2;
            None: size / 4. It should exceed the height of the largest text, so
            that the cut never passes a word's ends on both tiles' borders.
    """

    size: int
    overlap: int | None = None

    def __post_init__(self):
        size = self.size
        if isinstance(size, bool) or not isinstance(size, int) or size < 64 or size % 32:
            raise ValueError(f"DBPredictor: tiles must be a multiple of 32 of at least 64 "
                             f"(the tile side in pixels), got {size!r}")
        if self.overlap is None:
            object.__setattr__(self, "overlap", size // 4)
        overlap = self.overlap
        if isinstance(overlap, bool) or not isinstance(overlap, int) \
                or not 0 <= overlap <= size // 2:
            raise ValueError(f"DBPredictor: tile_overlap must be an int in [0, tiles / 2 = "
                             f"{size // 2}], got {overlap!r}")

    def starts(self, length: int) -> list[int]:
        if length <= self.size:
            return [0]
        count = -(-(length - self.overlap) // (self.size - self.overlap))
        count = max(count, 2)
        return [round(i * (length - self.size) / (count - 1)) for i in range(count)]

    def span(self, length: int) -> int:
        return self.size if length > self.size else -(-length // 32) * 32

    def windows(self, height: int, width: int) -> list[tuple[int, int, int, int]]:
        """(top, bottom, left, right) of each tile, row by row; bottom / right may
        pass the image on a side shorter than a tile (padded there)."""
        th, tw = self.span(height), self.span(width)
        return [(y, y + th, x, x + tw) for y in self.starts(height) for x in self.starts(width)]

    @staticmethod
    def cut(image: torch.Tensor, window) -> torch.Tensor:
        """The (3, size, size) tile of a (3, H, W) image, zero-padded past its edges."""
        top, bottom, left, right = window
        tile = image[:, top:bottom, left:right]
        if tile.shape[1:] != (bottom - top, right - left):
            tile = torch.nn.functional.pad(tile, (0, right - left - tile.shape[2],
                                                  0, bottom - top - tile.shape[1]))
        return tile

    def stitch(self, maps: Sequence[torch.Tensor], windows, height: int,
               width: int) -> torch.Tensor:
        """The (H, W) map of the image from the (size, size) maps of its tiles."""
        rows, cols = self._cuts(self.starts(height), height), self._cuts(self.starts(width), width)
        out = maps[0].new_empty(height, width)
        for tile_map, (top, _, left, _) in zip(maps, windows):
            r, c = self.starts(height).index(top), self.starts(width).index(left)
            (y0, y1), (x0, x1) = rows[r], cols[c]
            out[y0:y1, x0:x1] = tile_map[y0 - top:y1 - top, x0 - left:x1 - left]
        return out

    def _cuts(self, starts: list[int], length: int) -> list[tuple[int, int]]:
        """The part of the side each tile owns: cut in the middle of each overlap."""
        span = self.span(length)
        edges = [0] + [(starts[i] + span + starts[i + 1]) // 2 for i in range(len(starts) - 1)]
        return list(zip(edges, edges[1:] + [length]))
