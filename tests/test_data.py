"""Synthetic generator, transforms, collate and DataLoader reproducibility."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dbnet_fast.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    EvalTransform,
    SynthConfig,
    SyntheticTextDataset,
    TrainTransform,
    collate,
    normalize,
    render_sample,
    unscale_polygons,
)
from dbnet_fast.data.transforms import (
    MAP_KEYS,
    clip_polygon,
    flip_matrix,
    mirror_order,
    resize_matrix,
    rotation_matrix,
    text_preserving_crop,
    transform_polygons,
)


def digest(array) -> str:
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()


def rasterise(polygons, shape) -> np.ndarray:
    """bool (H, W): pixel centres inside any polygon (4 fractional bits, as the generator)."""
    mask = np.zeros(shape, np.uint8)
    for p in polygons:
        if len(p) >= 3:
            cv2.fillPoly(mask, [np.round(np.asarray(p) * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    return mask.astype(bool)


def shoelace(p) -> float:
    """Twice the signed area; > 0 for clockwise on screen (y down)."""
    x, y = p[:, 0], p[:, 1]
    return float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def denormalise(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) normalised RGB -> (H, W, 3) uint8 BGR."""
    x = image.permute(1, 2, 0).numpy() * np.array(IMAGENET_STD) + np.array(IMAGENET_MEAN)
    return np.clip(np.round(x[..., ::-1] * 255), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- generator


def test_render_sample_is_a_pure_function_of_the_seed():
    a = render_sample(7, (160, 224))
    b = render_sample(np.random.default_rng(7), (160, 224))
    c = render_sample(8, (160, 224))
    assert a[0].shape == (160, 224, 3) and a[0].dtype == np.uint8
    assert digest(a[0]) == digest(b[0])
    assert [digest(p) for p in a[1]] == [digest(p) for p in b[1]]
    assert a[2:] == b[2:]
    assert digest(a[0]) != digest(c[0])


def test_dataset_images_are_reproducible_and_splits_disjoint():
    train = SyntheticTextDataset(12, size=96, seed=3, split="train")
    again = SyntheticTextDataset(12, size=96, seed=3, split="train")
    val = SyntheticTextDataset(12, size=96, seed=3, split="val")
    other_seed = SyntheticTextDataset(12, size=96, seed=4, split="train")
    train_hashes = [digest(train.render(i)[0]) for i in range(12)]
    assert train_hashes == [digest(again.render(i)[0]) for i in range(12)]
    assert len(set(train_hashes)) == 12  # different index, different image
    assert not set(train_hashes) & {digest(val.render(i)[0]) for i in range(12)}
    assert not set(train_hashes) & {digest(other_seed.render(i)[0]) for i in range(12)}
    # the sample dict (default EvalTransform) is reproducible too, texts included
    s1, s2 = train[5], again[5]
    assert torch.equal(s1["image"], s2["image"]) and s1["texts"] == s2["texts"]
    assert torch.equal(s1["shrink_map"], s2["shrink_map"])


def test_polygons_lie_on_the_ink():
    inside_all = ink_all = 0
    words = 0
    for seed in range(30):
        _, polygons, ignore, texts, labels = render_sample(seed, (256, 256), return_labels=True)
        assert len(polygons) == len(ignore) == len(texts) >= 1
        for k, p in enumerate(polygons):
            assert p.dtype == np.float32 and p.ndim == 2 and p.shape[1] == 2
            assert len(p) == 4 or len(p) == 2 * SynthConfig().curve_points
            assert shoelace(p) > 0  # clockwise on screen: TL, TR, BR, BL
            assert p.min() >= -0.5 and p[:, 0].max() <= 255.5 and p[:, 1].max() <= 255.5
            ink = labels == k + 1
            region = rasterise([p], labels.shape)
            inside_all += int((ink & region).sum())
            ink_all += int(ink.sum())
            if not ignore[k]:
                words += 1
                assert ink.sum() > 0
                assert (ink & region).sum() >= 0.97 * ink.sum(), f"seed {seed} word {k}"
                assert texts[k] != "###"
            else:
                assert texts[k] == "###"
        # no ink where there is no polygon
        stray = (labels > 0) & ~rasterise(polygons, labels.shape)
        assert stray.sum() <= 0.005 * (labels > 0).sum()
    assert inside_all >= 0.995 * ink_all
    assert words >= 60


def test_straight_quads_are_tight():
    """Axis-aligned words: the quad is the ink's bounding box grown by half a pixel."""
    config = SynthConfig(max_angle=0, perspective=0, curved_prob=0, ignore_prob=0, blur_prob=0,
                         text_height=(20, 40))
    for seed in range(10):
        _, polygons, _, _, labels = render_sample(seed, (192, 192), config, return_labels=True)
        for k, p in enumerate(polygons):
            ys, xs = np.nonzero(labels == k + 1)
            lo, hi = p.min(0), p.max(0)
            box = [[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]]
            np.testing.assert_allclose(p, box, atol=1e-3)
            # ink at coverage >= 1/2 reaches within 2 px of every side of the box
            assert xs.min() - lo[0] <= 2 and hi[0] - xs.max() <= 2
            assert ys.min() - lo[1] <= 2 and hi[1] - ys.max() <= 2
            assert xs.min() >= lo[0] - 0.6 and xs.max() <= hi[0] + 0.6
            assert ys.min() >= lo[1] - 0.6 and ys.max() <= hi[1] + 0.6


def test_rotated_quads_match_the_ink_min_area_rect():
    config = SynthConfig(perspective=0, curved_prob=0, ignore_prob=0, blur_prob=0,
                         text_height=(24, 48))
    ious = []
    for seed in range(10):
        _, polygons, _, _, labels = render_sample(seed, (256, 256), config, return_labels=True)
        for k, p in enumerate(polygons):
            ys, xs = np.nonzero(labels == k + 1)
            box = cv2.boxPoints(cv2.minAreaRect(np.stack([xs, ys], 1).astype(np.float32)))
            a, b = rasterise([p], labels.shape), rasterise([box], labels.shape)
            ious.append((a & b).sum() / (a | b).sum())
    assert min(ious) >= 0.75 and np.mean(ious) >= 0.85, (min(ious), np.mean(ious))


def test_curved_words_have_2n_points_and_cover_their_ink():
    config = SynthConfig(curved_prob=1.0, chars=(4, 9), ignore_prob=0, curve_points=6)
    seen = 0
    for seed in range(8):
        _, polygons, _, _, labels = render_sample(seed, (256, 256), config, return_labels=True)
        for k, p in enumerate(polygons):
            assert len(p) == 12
            assert shoelace(p) > 0
            ink = labels == k + 1
            assert (ink & rasterise([p], labels.shape)).sum() >= 0.97 * ink.sum()
            seen += 1
    assert seen >= 10


def test_words_do_not_overlap():
    shapely = pytest.importorskip("shapely.geometry")
    for seed in range(20):
        _, polygons, _, _ = render_sample(seed, (192, 256))
        shapes = [shapely.Polygon(p) for p in polygons]
        assert all(s.is_valid for s in shapes)
        for i in range(len(shapes)):
            for j in range(i + 1, len(shapes)):
                assert shapes[i].distance(shapes[j]) >= 1.0, f"seed {seed}: words {i} and {j}"


def test_some_words_are_ignored():
    flags = [f for seed in range(60) for f in render_sample(seed, (192, 192))[2]]
    assert 0 < np.mean(flags) < 0.15


def test_generator_arguments_are_checked():
    with pytest.raises(ValueError, match="words"):
        SynthConfig(words=(5, 2))
    with pytest.raises(ValueError, match="curved_prob"):
        SynthConfig(curved_prob=1.5)
    with pytest.raises(TypeError, match="rng_or_seed"):
        render_sample("seven")
    with pytest.raises(ValueError, match="size"):
        render_sample(0, (16, 400))
    with pytest.raises(ValueError, match="split"):
        SyntheticTextDataset(4, split="test")
    with pytest.raises(IndexError):
        SyntheticTextDataset(4)[4]


# ----------------------------------------------------------------------------- geometry


def test_flip_and_rotation_matrices_are_exact():
    image = np.random.default_rng(0).integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    flipped = cv2.warpAffine(image, flip_matrix(50)[:2], (50, 40))
    assert np.array_equal(flipped, cv2.flip(image, 1))
    quad = np.array([[10, 20], [30, 20], [30, 28], [10, 28]], float)
    (moved,) = transform_polygons([quad], flip_matrix(50))
    np.testing.assert_array_equal(mirror_order(moved), [[19, 20], [39, 20], [39, 28], [19, 28]])
    # a curved 2n-point polygon keeps "top left->right, then bottom back"
    curve = np.array([[0, 0], [5, -2], [10, 0], [10, 4], [5, 2], [0, 4]], float)
    (mirrored,) = transform_polygons([curve], flip_matrix(11))
    np.testing.assert_array_equal(mirror_order(mirrored), curve)

    square = image[:, :40]
    rotated = cv2.warpAffine(square, rotation_matrix((40, 40), 90)[:2], (40, 40))
    assert np.array_equal(rotated, np.rot90(square))  # counter-clockwise on screen
    (turned,) = transform_polygons([quad], rotation_matrix((40, 40), 90))
    # (x, y) -> (y, 39 - x): TL (10, 20) goes to (20, 29)
    np.testing.assert_allclose(turned, [[20, 29], [20, 9], [28, 9], [28, 29]], atol=1e-9)


def test_resize_matrix_matches_cv2_resize():
    ramp = np.tile(np.arange(50, dtype=np.float32), (30, 1))  # value = x
    for new_w in (20, 37, 50, 120):
        out = cv2.resize(ramp, (new_w, 30), interpolation=cv2.INTER_LINEAR)
        # the value at output pixel u is the source x that maps to u
        back = np.linalg.inv(resize_matrix((30, 50), (30, new_w)))
        xs = np.arange(new_w) * back[0, 0] + back[0, 2]
        interior = (xs >= 0) & (xs <= 49)
        np.testing.assert_allclose(out[0, interior], xs[interior], atol=1e-3)


def test_clip_polygon():
    square = np.array([[-5, 2], [6, 2], [6, 8], [-5, 8]], float)
    clipped = clip_polygon(square, (0, 0, 10, 10))
    np.testing.assert_allclose(sorted(map(tuple, clipped)), [(0, 2), (0, 8), (6, 2), (6, 8)])
    inside = np.array([[1, 1], [2, 1], [2, 2]], float)
    assert clip_polygon(inside, (0, 0, 10, 10)) is inside
    assert len(clip_polygon(square + 100, (0, 0, 10, 10))) == 0


def test_text_preserving_crop_edges_avoid_text():
    rng = np.random.default_rng(1)
    polygons = [np.array([[x, y], [x + 30, y], [x + 30, y + 12], [x, y + 12]], float)
                for x, y in [(10, 10), (80, 40), (20, 90), (120, 120)]]
    for _ in range(50):
        x0, y0, w, h = text_preserving_crop(polygons, [False] * 4, (160, 170), rng)
        if (x0, y0, w, h) == (0, 0, 170, 160):
            continue
        assert w >= 17 and h >= 16
        for p in polygons:  # the crop's edges are on rows / columns no word's box crosses
            lo, hi = np.floor(p.min(0)), np.ceil(p.max(0))
            assert not any(lo[0] <= x <= hi[0] for x in (x0, x0 + w))
            assert not any(lo[1] <= y <= hi[1] for y in (y0, y0 + h))
        assert any(p[:, 0].max() >= x0 and p[:, 0].min() < x0 + w and p[:, 1].max() >= y0
                   and p[:, 1].min() < y0 + h for p in polygons)


def test_easy_preset():
    config = SynthConfig.easy(curved_prob=0.0)
    assert config.max_angle == 10 and config.curved_prob == 0.0
    _, polygons, _, _ = render_sample(0, (128, 128), config)
    assert all(len(p) == 4 for p in polygons)


coords = st.floats(-50, 150, allow_nan=False, width=32)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(coords, coords), min_size=1, max_size=14))
def test_mirror_order_is_an_involution(points):
    p = np.array(points, float)
    back = mirror_order(mirror_order(p))
    np.testing.assert_array_equal(back, p)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(coords, coords), min_size=3, max_size=10))
def test_clip_polygon_equals_the_intersection(points):
    shapely = pytest.importorskip("shapely.geometry")
    hull = cv2.convexHull(np.array(points, np.float32))
    assume(hull is not None and len(hull) >= 3)
    hull = hull[:, 0].astype(float)
    assume(abs(shoelace(hull)) > 1)
    rect = (0.0, 0.0, 100.0, 80.0)
    clipped = clip_polygon(hull, rect)
    box = shapely.box(*rect)
    expected = shapely.Polygon(hull).intersection(box).area
    area = abs(shoelace(clipped)) / 2 if len(clipped) >= 3 else 0.0
    assert area == pytest.approx(expected, abs=1e-6 * max(1.0, expected))
    if len(clipped):
        assert np.all(clipped >= -1e-9)
        assert np.all(clipped[:, 0] <= 100 + 1e-9) and np.all(clipped[:, 1] <= 80 + 1e-9)


# ----------------------------------------------------------------------------- transforms


def test_train_transform_flip_is_exact():
    image, polygons, ignore, _ = render_sample(2, (96, 128))
    # no rotation, scale 1, crop forced to the whole image, output the input size
    t = TrainTransform(size=(96, 128), flip_prob=1.0, max_rotation=0, scale_range=(1, 1),
                       min_crop_side_ratio=1.0, targets=False)
    sample = t(image, polygons, ignore, rng=np.random.default_rng(0))
    assert np.array_equal(denormalise(sample["image"]), cv2.flip(image, 1))
    assert sample["ignore"] == ignore
    for p, q in zip(polygons, sample["polygons"]):
        expected = p.astype(np.float64).copy()
        expected[:, 0] = 127 - expected[:, 0]
        np.testing.assert_allclose(q, mirror_order(expected), atol=1e-4)
        assert shoelace(q) > 0


@pytest.mark.parametrize("seed", range(6))
def test_train_transform_moves_polygons_with_the_image(seed):
    """A filled-polygon image and its polygons go through the transform; the image's
    mask afterwards matches the polygons' rasterisation. An ignored band across the
    whole image does not steer the crop, so crops cut it: it must be clipped."""
    rng = np.random.default_rng(100 + seed)
    height, width = 180, 240
    polygons = []
    for x, y in [(20, 20), (130, 30), (40, 110), (150, 120)]:
        w, h = rng.uniform(40, 70), rng.uniform(25, 45)
        quad = np.array([[x, y], [x + w, y + rng.uniform(-8, 8)], [x + w, y + h], [x, y + h]])
        polygons.append(quad + rng.uniform(-3, 3, size=(4, 2)))
    t_ = np.linspace(0, np.pi, 7)
    arc = np.stack([120 + 60 * np.cos(t_), 100 - 30 * np.sin(t_)], 1)[::-1]
    polygons.append(np.concatenate([arc, (arc * [1, 0] + [0, 1] * (arc[:, 1:] + 12))[::-1]]))
    polygons.append(np.array([[-20, 88], [260, 88], [260, 104], [-20, 104]], float))
    ignore = [False] * 5 + [True]
    image = np.full((height, width, 3), 60, np.uint8)
    image[rasterise(polygons, (height, width))] = 255
    t = TrainTransform(size=160)
    _, (vh, vw), _ = t.geometry((height, width), polygons, ignore, np.random.default_rng(seed))
    sample = t(image, polygons, ignore, rng=np.random.default_rng(seed))
    out = denormalise(sample["image"])[..., 0] > 127
    drawn = rasterise(sample["polygons"], out.shape)
    assert (out == drawn).mean() >= 0.98
    if drawn.sum() > 200:
        assert (out & drawn).sum() / (out | drawn).sum() >= 0.85
    # polygons are clipped to the crop; the padding is black and has no labels
    assert sample["ignore"].count(True) <= 1 and len(sample["polygons"]) == len(sample["ignore"])
    for p in sample["polygons"]:
        assert p.dtype == np.float32 and len(p) >= 3
        assert p.min() >= -0.5 - 1e-4
        assert p[:, 0].max() <= vw - 0.5 + 1e-4 and p[:, 1].max() <= vh - 0.5 + 1e-4
    assert (sample["image"][:, vh:] == sample["image"][:, -1:, -1:]).all()
    assert sample["shrink_map"].shape == (160, 160)
    # (the threshold band of a word cut by the crop may reach into the padding, as in MhLiao/DB)
    assert sample["shrink_map"][vh:].sum() == 0 and sample["shrink_map"][:, vw:].sum() == 0


@pytest.mark.parametrize("seed", [0, 2, 4, 9])  # seeds whose crops hold >= 10 of the points
def test_train_transform_maps_points_like_the_image(seed):
    """Pixel values that are the pixel's own coordinates (a ramp, which bilinear and area
    resampling reproduce exactly) read back at the transformed points give the points'
    original coordinates: image and polygons share one pixel convention."""
    height, width = 200, 250
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = np.arange(width)[None, :]
    image[..., 1] = np.arange(height)[:, None]
    points = np.random.default_rng(seed).uniform([10, 10], [width - 10, height - 10], size=(60, 2))
    triangles = [p + [[0, 0], [2, 0], [0, 2]] for p in points]
    t = TrainTransform(size=128, targets=False)
    rng = np.random.default_rng(seed)
    matrix, (vh, vw), _ = t.geometry((height, width), triangles, [False] * 60, rng)
    sample = t(image, triangles, [False] * 60, rng=np.random.default_rng(seed))
    moved = transform_polygons([points], matrix)[0]
    inside = ((moved >= 1) & (moved <= [vw - 2, vh - 2])).all(1)
    assert inside.sum() >= 10
    out = denormalise(sample["image"]).astype(np.float32)
    mx, my = moved[inside, 0].astype(np.float32)[None], moved[inside, 1].astype(np.float32)[None]
    read = np.stack([cv2.remap(out[..., c], mx, my, cv2.INTER_LINEAR)[0] for c in (0, 1)], 1)
    error = np.abs(read - points[inside])
    assert error.mean() < 0.6 and error.max() < 1.6, (error.mean(), error.max())
    # the sample's polygons are those same points (the ones wholly inside the crop)
    firsts = [q[0] for q in sample["polygons"]]
    for m in moved[inside]:
        assert min(np.abs(f - m).max() for f in firsts) < 1e-3


def test_polygons_wholly_cropped_away_are_dropped():
    image = np.zeros((200, 200, 3), np.uint8)
    polygons = [np.array([[10, 10], [40, 10], [40, 30], [10, 30]], float),
                np.array([[150, 150], [190, 150], [190, 180], [150, 180]], float)]
    t = TrainTransform(size=100, flip_prob=0, max_rotation=0, scale_range=(1, 1), targets=False)
    counts = set()
    for seed in range(40):
        sample = t(image, polygons, [False, False], rng=np.random.default_rng(seed))
        counts.add(len(sample["polygons"]))
        assert len(sample["polygons"]) == len(sample["ignore"]) >= 1
    assert 1 in counts  # some crops hold one word only: the other was dropped


def test_eval_transform_sizes_and_scale():
    image = np.zeros((72, 128, 3), np.uint8)
    quad = np.array([[10, 10], [50, 10], [50, 30], [10, 30]], float)
    t = EvalTransform(short_side=100)
    assert t.output_size(72, 128) == (96, 192)
    sample = t(image, [quad], [True])
    assert sample["image"].shape == (3, 96, 192)
    assert sample["shape"].tolist() == [72, 128] and sample["shape"].dtype == torch.int64
    np.testing.assert_allclose(sample["scale"].numpy(), [192 / 128, 96 / 72])
    (back,) = unscale_polygons(sample["polygons"], sample["scale"])
    np.testing.assert_allclose(back, quad, atol=1e-4)
    assert sample["ignore"] == [True]
    assert EvalTransform().output_size(100, 300) == (96, 288)
    assert EvalTransform(short_side=736, max_side=1000).output_size(720, 1280) == (576, 992)


def test_normalize_is_rgb_imagenet():
    image = np.zeros((2, 3, 3), np.uint8)
    image[..., 0] = 255  # blue in BGR
    x = normalize(image)
    assert x.shape == (3, 2, 3) and x.dtype == torch.float32
    expected = [(0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], (0 - IMAGENET_MEAN[1]) / IMAGENET_STD[1],
                (1 - IMAGENET_MEAN[2]) / IMAGENET_STD[2]]
    np.testing.assert_allclose(x[:, 0, 0].numpy(), expected, rtol=1e-6)


def test_transform_arguments_are_checked():
    with pytest.raises(ValueError, match="image"):
        EvalTransform()(np.zeros((8, 8), np.uint8), [])
    with pytest.raises(ValueError, match="ignore"):
        EvalTransform()(np.zeros((32, 32, 3), np.uint8), [np.zeros((4, 2))], [True, False])
    with pytest.raises(ValueError, match="polygon 0"):
        TrainTransform(size=32)(np.zeros((32, 32, 3), np.uint8), [np.zeros((4, 3))])
    with pytest.raises(ValueError, match="scale_range"):
        TrainTransform(scale_range=(2, 1))
    with pytest.raises(ValueError, match="short_side"):
        EvalTransform(short_side=0)


# ----------------------------------------------------------------------------- batching


def test_collate_stacks_and_pads():
    t = EvalTransform()
    a = t(*render_sample(0, (64, 96))[:3])
    b = t(*render_sample(1, (96, 64))[:3])
    batch = collate([a, a])
    assert batch["image"].shape == (2, 3, 64, 96)
    for key in MAP_KEYS:
        assert batch[key].shape == (2, 64, 96) and batch[key].dtype == torch.float32
    assert isinstance(batch["polygons"], list) and len(batch["polygons"]) == 2
    assert batch["shape"].shape == (2, 2) and batch["scale"].shape == (2, 2)
    mixed = collate([a, b])
    assert mixed["image"].shape == (2, 3, 96, 96)
    assert mixed["valid_size"].tolist() == [[64, 96], [96, 64]]
    assert mixed["shrink_mask"][0, 64:].sum() == 0
    assert torch.equal(mixed["shrink_map"][1], torch.nn.functional.pad(b["shrink_map"], (0, 32)))
    with pytest.raises(ValueError, match="empty"):
        collate([])


def _batches(num_workers, epoch=0):
    data = SyntheticTextDataset(8, size=(96, 96), seed=5, transform=TrainTransform(size=64))
    data.set_epoch(epoch)
    loader = torch.utils.data.DataLoader(
        data, batch_size=4, shuffle=True, num_workers=num_workers, collate_fn=collate,
        generator=torch.Generator().manual_seed(0))
    return list(loader)


def test_dataloader_workers_give_the_same_batches():
    serial, parallel = _batches(0), _batches(2)
    assert len(serial) == len(parallel) == 2
    for a, b in zip(serial, parallel):
        assert a.keys() == b.keys()
        for key in ("image", *MAP_KEYS):
            assert torch.equal(a[key], b[key]), key
        assert a["texts"] == b["texts"] and a["ignore"] == b["ignore"]
        for pa, pb in zip(a["polygons"], b["polygons"]):
            assert all(np.array_equal(x, y) for x, y in zip(pa, pb))
    # another epoch: same images (texts), new augmentation
    other = _batches(0, epoch=1)
    assert other[0]["texts"] == serial[0]["texts"]
    assert not torch.equal(other[0]["image"], serial[0]["image"])
