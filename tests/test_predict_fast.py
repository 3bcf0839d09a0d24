"""DBPredictor's fast paths: BatchNorm folding (exact against the unfolded model),
a many-image call running each image at its own input size, tiles for large
images (a word across a tile border is one box), compiled inference."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from dbnet_fast.fold import fold_batchnorm, foldable_pairs
from dbnet_fast.postprocess import DBPostProcessor
from dbnet_fast.predict import CHUNK_BATCHES, PPOCR_MODELS, DBPredictor, Tiling


def _randomise_batchnorm(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) * 2 + 0.1)
            if m.affine:
                m.weight.data.copy_(torch.randn(m.num_features, generator=g))
                m.bias.data.copy_(torch.randn(m.num_features, generator=g))


class _Tricky(nn.Module):
    """Pairs that must fold and pairs that must not."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4, affine=False)
        self.conv3, self.bn3 = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)  # conv3 output used twice
        self.shared_bn = nn.BatchNorm2d(4)
        self.conv4 = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x))
        y = self.conv3(x)
        x = self.bn3(y) + y
        return self.shared_bn(self.conv4(x)) + self.shared_bn(x)


def test_fold_batchnorm_is_exact_in_float64_and_skips_unsafe_pairs():
    model = _Tricky().double().eval()
    _randomise_batchnorm(model)
    assert foldable_pairs(model) == [("conv1", "bn1"), ("conv2", "bn2")]
    folded = copy.deepcopy(model)
    assert fold_batchnorm(folded) == 2
    assert isinstance(folded.bn1, nn.Identity) and isinstance(folded.bn3, nn.BatchNorm2d)
    x = torch.randn(2, 3, 17, 23, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-12, atol=1e-12)


def test_fold_batchnorm_on_dbnet_r18_same_maps():
    from dbnet_fast.engine.checkpoint import build_model

    model = build_model("resnet18").double().eval()
    _randomise_batchnorm(model, 1)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    folded = copy.deepcopy(model)
    count = fold_batchnorm(folded)  # the input check of DBNet.forward: searched inside
    assert count >= n_bn - 2, (count, n_bn)  # the head's BatchNorms after ConvTranspose stay
    x = torch.randn(1, 3, 64, 96, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("source", [*PPOCR_MODELS, "checkpoint"])
def test_models_loaded_by_name_or_file_are_folded(source, tmp_path):
    """DBPredictor (through load_model) folds every model it loads itself: no
    foldable pair is left and the maps are the unfolded model's."""
    from dbnet_fast.engine.checkpoint import build_model, save_checkpoint
    from dbnet_fast.model.paddle import is_installed, load_ppocr_det

    if source == "checkpoint":
        unfolded = build_model("resnet18")
        with torch.no_grad():  # running statistics of real activations (random ones blow up)
            for seed in range(3):
                unfolded(torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(seed)))
        unfolded.eval()
        source = save_checkpoint(tmp_path / "m.pt", unfolded, rng=False)
    elif not is_installed(source):
        pytest.skip(f"{source}'s weights are not installed")
    else:
        unfolded = load_ppocr_det(source)
    pairs = foldable_pairs(unfolded)
    assert pairs
    loaded = DBPredictor(source, "cpu").model
    assert foldable_pairs(loaded) == []
    assert all(isinstance(loaded.get_submodule(bn), nn.Identity) for _, bn in pairs)
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), unfolded(x), rtol=1e-4, atol=1e-5)


class _LocalInk(nn.Module):
    """A stand-in detector whose map is local (dark pixels -> high probability),
    so tiles stitched from it must give exactly the whole image's map."""

    input_norm = "imagenet"

    def forward(self, x):
        return torch.sigmoid(-20 * (x.mean(1, keepdim=True) + 1.0))


def _page(height=1500, width=2300) -> np.ndarray:
    page = np.full((height, width, 3), 255, np.uint8)
    page[700:740, 420:1500] = 0  # across several tile borders (512 tiles, 128 overlap)
    page[490:530, 1600:1700] = 0  # across a horizontal border
    page[100:130, 100:300] = 0  # inside one tile
    return page


def test_tiles_merge_a_word_across_borders_into_one_box():
    page = _page()
    tiled = DBPredictor(_LocalInk(), "cpu", tiles=512, tile_overlap=128, batch_size=4)
    windows = tiled.tiling.windows(*page.shape[:2])
    assert len(windows) > 4
    found = tiled(page)[0]
    # the whole page's map at once, post-processed by the same post-processor
    x = tiled.prepare(page).tensor[None]
    with torch.no_grad():
        whole = tiled.postprocessor(_LocalInk()(x)[:, 0], sizes=[page.shape[:2]])[0]
    assert len(found) == len(whole) == 3
    torch.testing.assert_close(found.boxes, whole.boxes)
    torch.testing.assert_close(found.scores, whole.scores)
    long_word = found.boxes[found.boxes[:, :, 0].max(1).values > 1400][0]
    assert long_word[:, 0].min() < 425 and long_word[:, 0].max() > 1495  # one box, whole word


@pytest.mark.parametrize("height,width", [(1500, 2300), (600, 3001), (513, 513), (4000, 97)])
def test_tiling_stitches_each_pixel_from_one_tile(height, width):
    tiling = Tiling(256, 64)
    windows = tiling.windows(height, width)
    full = torch.rand(height, width)
    padded = torch.nn.functional.pad(full, (0, 256, 0, 256))
    maps = [padded[t:b, l:r] for t, b, l, r in windows]
    assert all(m.shape == (tiling.span(height), tiling.span(width)) for m in maps)
    assert torch.equal(tiling.stitch(maps, windows, height, width), full)
    for length in (height, width):
        starts = tiling.starts(length)
        assert starts[0] == 0 and starts[-1] + tiling.span(length) >= length
        assert all(b - a <= 256 - 64 + 1 for a, b in zip(starts, starts[1:]))  # overlap kept


def test_tiles_leave_small_images_to_the_resize_policy():
    small = np.full((300, 400, 3), 200, np.uint8)
    plain = DBPredictor(_LocalInk(), "cpu", limit_side_len=320)
    tiled = DBPredictor(_LocalInk(), "cpu", limit_side_len=320, tiles=512)
    assert torch.equal(plain.prepare(small).tensor, tiled.prepare(small).tensor)
    assert tiled.model_inputs([tiled.prepare(small)]) == [(1, 256, 320)]


@pytest.mark.parametrize("kwargs,match", [({"tiles": 100}, "tiles"), ({"tiles": True}, "tiles"),
                                          ({"tiles": 512, "tile_overlap": 300}, "tile_overlap"),
                                          ({"tiles": 512, "tile_overlap": -1}, "tile_overlap"),
                                          ({"compile": "yes"}, "compile")])
def test_bad_tile_and_compile_settings_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        DBPredictor(_LocalInk(), "cpu", **kwargs)


class _Recorder(nn.Module):
    """Records the shape of every forward pass."""

    input_norm = "imagenet"

    def __init__(self):
        super().__init__()
        self.shapes = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        return torch.zeros(x.shape[0], 1, *x.shape[2:])


def test_many_images_in_one_call_run_as_they_would_one_by_one():
    """The structure behind 'a many-image call is never slower': every image runs
    at the input size it has alone, no pixel is added, batches only join images
    of one size, and the call prepares a bounded number of images at a time."""
    rng = np.random.default_rng(0)
    images = [np.zeros((int(rng.integers(32, 1500)), int(rng.integers(32, 1500)), 3), np.uint8)
              for _ in range(23)]
    images += [images[3]] * 5  # some sizes repeat: they share batches
    model = _Recorder()
    predictor = DBPredictor(model, "cpu", batch_size=2)
    for image in images:
        predictor([image])
    alone = model.shapes[:]
    model.shapes.clear()
    seen_runs = []
    run = predictor.run
    predictor.run = lambda prepared: seen_runs.append(len(prepared)) or run(prepared)
    predictor(images)
    together = model.shapes
    pixels = lambda shapes: sum(b * h * w for b, _, h, w in shapes)  # noqa: E731
    assert pixels(together) == pixels(alone)
    assert sorted((h, w) for b, _, h, w in together for _ in range(b)) == \
        sorted((h, w) for _, _, h, w in alone)
    assert len(together) < len(alone)
    assert max(seen_runs) <= predictor.batch_size * CHUNK_BATCHES
    assert sum(seen_runs) == len(images)


def test_compiled_predictor_gives_the_eager_boxes():
    page = _page(600, 900)
    eager = DBPredictor(_LocalInk(), "cpu")(page)[0]
    compiled = DBPredictor(_LocalInk(), "cpu", compile=True)
    for _ in range(2):  # the second call reuses the compiled graph
        found = compiled(page)[0]
        torch.testing.assert_close(found.boxes, eager.boxes)
        torch.testing.assert_close(found.scores, eager.scores)
    assert len(eager) == 1


def test_postprocessor_of_predictor_unchanged_by_tiles():
    assert DBPredictor(_LocalInk(), "cpu", tiles=512).postprocessor == \
        DBPostProcessor(thresh=0.3, box_thresh=0.6, unclip_ratio=1.5)


def test_detect_tiles_in_reading_workers_match_the_predictor(tmp_path):
    """detect's workers prepare large images at their own size for the tiles."""
    pytest.importorskip("rapidocr_onnxruntime")
    import json

    import cv2

    from dbnet_fast.engine.detect import detect_files

    page = np.full((700, 1100, 3), 255, np.uint8)
    cv2.putText(page, "tiles across borders", (60, 380), cv2.FONT_HERSHEY_SIMPLEX, 1.6,
                (0, 0, 0), 3)
    cv2.imwrite(str(tmp_path / "page.png"), page)
    result = detect_files([tmp_path / "page.png"], tmp_path / "out", "ppocr-v4", device="cpu",
                          tiles=512, pictures=False, workers=1, progress=False)
    assert result["done"] == 1 and result["failed"] == 0
    record = json.loads((tmp_path / "out" / "page.json").read_text())
    expected = DBPredictor("ppocr-v4", "cpu", tiles=512)(page)[0]
    assert record["count"] == len(expected) >= 1
    got = np.array([d["points"] for d in record["detections"]])
    np.testing.assert_allclose(got, expected.boxes.numpy(), atol=0.01)
