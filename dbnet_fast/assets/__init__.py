"""Data files the package carries (see README.md in this folder for provenance).

Tests, benchmarks and the demo read the real PP-OCRv4 maps and images from here,
never from outside the repository: a user's clone or an installed wheel has
nothing beside it.
"""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent
REAL_MAPS = ASSETS / "real_maps.npz"


def real_maps_path() -> Path:
    """The bundled ``real_maps.npz`` (real PP-OCRv4 probability maps, the model
    inputs they came from and PaddleOCR's boxes for them); raises
    ``FileNotFoundError`` with the path when the package was installed without it."""
    if not REAL_MAPS.is_file():
        raise FileNotFoundError(f"{REAL_MAPS} is missing: the package data was not installed "
                                "(reinstall dbnet_fast from its wheel or source checkout)")
    return REAL_MAPS
