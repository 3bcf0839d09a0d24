"""README's Python blocks run as written (so an example cannot rot).

Each block runs in a fresh namespace holding small inputs for the names the
examples take as given (:func:`given`), in a folder holding the files they
name (``a.jpg``, ``runs/r18/last.pt``)."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)


def given() -> dict:
    """The inputs README's examples leave to the reader, made small."""
    generator = torch.Generator().manual_seed(0)
    word_0 = np.array([[8, 10], [50, 10], [50, 28], [8, 28]], np.float32)
    word_1 = np.array([[5, 34], [60, 38], [58, 54], [4, 50]], np.float32)

    def logits():
        return torch.randn(2, 1, 64, 64, generator=generator).requires_grad_()

    def dice_loss(binary, gt, mask):
        inter = (binary * gt * mask).sum()
        return 1 - 2 * inter / ((binary * mask).sum() + (gt * mask).sum() + 1e-6)

    prob = torch.zeros(2, 1, 64, 64)
    prob[:, :, 12:26, 10:48] = 0.9
    return {
        "prob_logits": logits(), "thresh_logits": logits(), "H": 64, "W": 64,
        "gt": (torch.rand(2, 1, 64, 64, generator=generator) > 0.5).float(),
        "mask": torch.ones(2, 1, 64, 64), "dice_loss": dice_loss,
        "polygons": [word_0, word_1], "ignore": [False, True],
        "polygons_0": [word_0], "polygons_1": [word_0, word_1],
        "prob": prob, "h0": 128, "w0": 128, "h1": 64, "w1": 96,
        "bgr_array": np.full((48, 80, 3), 255, np.uint8),
        "rgb_chw_uint8_tensor": torch.full((3, 40, 60), 255, dtype=torch.uint8),
    }


@pytest.fixture
def readme_folder(tmp_path, monkeypatch):
    from dbnet_fast.engine import build_model
    from dbnet_fast.engine.checkpoint import save_checkpoint

    image = np.full((64, 96, 3), 255, np.uint8)
    cv2.putText(image, "TEXT", (8, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 0, 0), 2)
    cv2.imwrite(str(tmp_path / "a.jpg"), image)
    (tmp_path / "runs" / "r18").mkdir(parents=True)
    save_checkpoint(tmp_path / "runs" / "r18" / "last.pt", build_model("resnet18",
                                                                         inner_channels=32))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index, readme_folder):
    exec(compile(BLOCKS[index], f"README.md python block {index + 1}", "exec"), given())
