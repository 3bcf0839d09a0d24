"""Atomic file writes: write a temporary file in the destination folder, then
``os.replace`` it over the destination, so a reader (or a crash) never sees a
half-written checkpoint, JSON file or picture."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()  # what open() would give a new file (mkstemp makes 0600)


def atomic_write(path, write: Callable[[object], None], binary: bool = True) -> Path:
    """Calls ``write(file)`` on a temporary file next to ``path`` and renames it to ``path``.

    The folder is created if needed. On any error the temporary file is removed
    and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        os.chmod(tmp, _MODE)
        options = {} if binary else {"encoding": "utf-8"}
        with os.fdopen(fd, "wb" if binary else "w", **options) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    """Writes ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(text), binary=False)


def atomic_write_json(path, value, indent: int | None = 2) -> Path:
    """Writes ``value`` as JSON (with a final newline) to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(value, indent=indent) + "\n")


def atomic_torch_save(path, obj) -> Path:
    """``torch.save(obj)`` to ``path`` atomically."""
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_image(path, image) -> Path:
    """Encodes an (H, W, 3) uint8 BGR array with OpenCV (format from the suffix of
    ``path``, e.g. ``.png``) and writes it atomically."""
    import cv2

    path = Path(path)
    ok, data = cv2.imencode(path.suffix or ".png", image)
    if not ok:
        raise ValueError(f"atomic_write_image: OpenCV cannot encode an image as {path.suffix!r}")
    return atomic_write(path, lambda f: f.write(data.tobytes()))
